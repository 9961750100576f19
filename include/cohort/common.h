/*
 * cohort/common.h — error codes, the error record that carries a human
 * message with a failure, and the replaceable allocator.
 *
 * Every cohort function that can fail returns an int: 0 (COH_OK) on success,
 * a negative COH_E* code otherwise.  Where a failure has a story (which file,
 * which line, which field), the story is written into a coh_err that the
 * caller passes in, or that lives on the handle and is read back with the
 * module's *_errmsg() function.
 */
#ifndef COHORT_COMMON_H
#define COHORT_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, description).  One list generates the enum, coh_strerror()
 * and coh_err_name(), so the three can never disagree. */
#define COH_ERRNO_MAP(X)                                                     \
  X(OK, 0, "success")                                                         \
  X(EINVAL, -1, "invalid argument")                                           \
  X(ENOMEM, -2, "out of memory")                                              \
  X(EIO, -3, "input/output error")                                            \
  X(ENOENT, -4, "no such file or directory")                                  \
  X(EFORMAT, -5, "malformed input")                                           \
  X(EUNSUPPORTED, -6, "unsupported feature")                                  \
  X(ERANGE, -7, "value out of range")                                         \
  X(EORT, -8, "ONNX Runtime error")                                           \
  X(EPROVIDER, -9, "execution provider unavailable")                          \
  X(EMODEL, -10, "model does not match its configuration")                    \
  X(ECONTEXT, -11, "sequence longer than the model context")                  \
  X(EBUSY, -12, "resource busy or full")                                      \
  X(ESTATE, -13, "operation not valid in the current state")                  \
  X(ETRAP, -14, "agent trapped")                                              \
  X(ECOMPILE, -15, "module compilation failed")                               \
  X(EJOURNAL, -16, "journal error")                                          \
  X(ERAISED, -17, "template raised an exception")

typedef enum coh_errcode {
#define COH__ERR_ENUM(name, val, desc) COH_##name = (val),
  COH_ERRNO_MAP(COH__ERR_ENUM)
#undef COH__ERR_ENUM
} coh_errcode;

/* Static description of a code ("out of memory"); never NULL. */
const char *coh_strerror(int code);
/* Symbolic name of a code ("COH_ENOMEM"); never NULL. */
const char *coh_err_name(int code);

#define COH_ERRMSG_MAX 512

/* An error record: the code plus the message that says what and where.
 * Callers allocate it (usually on the stack); cohort fills it on failure. */
typedef struct coh_err {
  int code;
  char msg[COH_ERRMSG_MAX];
} coh_err;

/* Clears an error record (code 0, empty message).  err may be NULL. */
void coh_err_clear(coh_err *err);

/* Replaceable allocator, process-wide (like libuv's uv_replace_allocator):
 * call once before any other cohort function.  All four must be non-NULL.
 * Returns COH_EINVAL if any is NULL. */
typedef void *(*coh_malloc_fn)(size_t size);
typedef void *(*coh_realloc_fn)(void *ptr, size_t size);
typedef void *(*coh_calloc_fn)(size_t count, size_t size);
typedef void (*coh_free_fn)(void *ptr);
int coh_replace_allocator(coh_malloc_fn m, coh_realloc_fn r, coh_calloc_fn c,
                          coh_free_fn f);

/* The cohort version string, part of every run's determinism inputs. */
#define COH_VERSION "0.1.0"
const char *coh_version(void);

#ifdef __cplusplus
}
#endif
#endif /* COHORT_COMMON_H */
