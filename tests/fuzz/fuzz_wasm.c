/* fuzz_wasm.c — libFuzzer harness for the wasm validator and instrumenter
 * (src/agent/wasm.c): the input is an agent module, instrumented with and
 * without fuel metering.
 *
 * Properties checked beyond "no crash, no sanitizer report":
 *  - a failure is COH_EFORMAT, COH_EUNSUPPORTED or COH_ENOMEM with a
 *    non-empty message;
 *  - a success writes a module that starts with the wasm header, and the
 *    same input gives byte-identical output twice (the rewrite is part of
 *    the compile-cache key, so it must be a function of the input);
 *  - the injected fuel global comes after the module's own globals;
 *  - the rewritten module is refused when fed back in (it exports the
 *    reserved __coh_ names), never accepted and never a crash.
 *
 * Built as a fuzzer with -DCOH_FUZZ=ON (clang); seeds in
 * tests/fuzz/corpus/wasm are the small test modules (agents/testmods). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_int.h"

#define FUZZ_CHECK(cond)                                              \
  do {                                                                \
    if (!(cond)) {                                                    \
      fprintf(stderr, "fuzz property failed: %s (%s:%d)\n", #cond,   \
              __FILE__, __LINE__);                                    \
      abort();                                                        \
    }                                                                 \
  } while (0)

static void fuzz_fail_ok(int rc, const coh_err *err) {
  FUZZ_CHECK(rc == COH_EFORMAT || rc == COH_EUNSUPPORTED || rc == COH_ENOMEM);
  FUZZ_CHECK(err->code == rc && err->msg[0] != '\0');
}

static void fuzz_one(const uint8_t *data, size_t size, int fuel) {
  coh__wasm_info a, b, c;
  coh__buf out1 = {0}, out2 = {0}, out3 = {0};
  coh_err err;
  int rc;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  memset(&c, 0, sizeof c);
  coh_err_clear(&err);
  rc = coh__wasm_instrument(data, size, fuel, &a, &out1, &err);
  if (rc != COH_OK) {
    fuzz_fail_ok(rc, &err);
    goto done;
  }
  FUZZ_CHECK(out1.n >= 8 && memcmp(out1.p, "\0asm\1\0\0\0", 8) == 0);
  FUZZ_CHECK(a.fuel_global >= a.nglobals);
  rc = coh__wasm_instrument(data, size, fuel, &b, &out2, &err);
  FUZZ_CHECK(rc == COH_OK);
  FUZZ_CHECK(out2.n == out1.n && memcmp(out1.p, out2.p, out1.n) == 0);
  FUZZ_CHECK(a.nglobals == b.nglobals && a.fuel_global == b.fuel_global);
  rc = coh__wasm_instrument((const uint8_t *)out1.p, out1.n, fuel, &c, &out3,
                            &err);
  FUZZ_CHECK(rc != COH_OK);
  fuzz_fail_ok(rc, &err);
done:
  coh__buf_free(&out1);
  coh__buf_free(&out2);
  coh__buf_free(&out3);
  coh__wasm_info_free(&a);
  coh__wasm_info_free(&b);
  coh__wasm_info_free(&c);
}

int coh__fuzz_wasm_one(const uint8_t *data, size_t size);
int coh__fuzz_wasm_one(const uint8_t *data, size_t size) {
  fuzz_one(data, size, 1);
  fuzz_one(data, size, 0);
  return 0;
}

#ifdef COH_FUZZ_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return coh__fuzz_wasm_one(data, size);
}
#endif
