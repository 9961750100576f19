/*
 * util_int.h — internal helpers shared by every module: allocation through the
 * replaceable allocator, error-record formatting, small file helpers.
 */
#ifndef COH_UTIL_INT_H
#define COH_UTIL_INT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "cohort/common.h"

#if defined(__GNUC__)
#define COH__PRINTF(fmt_idx, arg_idx) \
  __attribute__((format(printf, fmt_idx, arg_idx)))
#else
#define COH__PRINTF(fmt_idx, arg_idx)
#endif

void *coh__malloc(size_t size);
void *coh__calloc(size_t count, size_t size);
void *coh__realloc(void *ptr, size_t size);
void coh__free(void *ptr);
/* strdup through the cohort allocator; NULL on out of memory. */
char *coh__strdup(const char *s);

/* A growable array: returns items reallocated so that `need` elements of
 * `elem` bytes fit, doubling *cap (from `first` when 0), and updates *cap;
 * items itself when they already fit.  NULL on out of memory or overflow,
 * items and *cap untouched (still valid).  Use:
 *   T *n = coh__grow(a->v, &a->cap, a->n + 1, sizeof *n, 16);
 *   if (n == NULL) return COH_ENOMEM;
 *   a->v = n; */
void *coh__grow(void *items, size_t *cap, size_t need, size_t elem, size_t first);

/* Writes code and a formatted message into err (which may be NULL) and
 * returns code, so that failures read `return coh__err(err, COH_EIO, ...)`. */
int coh__err(coh_err *err, int code, const char *fmt, ...) COH__PRINTF(3, 4);
int coh__verr(coh_err *err, int code, const char *fmt, va_list ap);
/* Prepends "prefix: " to an error already in err (keeps its code). */
void coh__err_prefix(coh_err *err, const char *fmt, ...) COH__PRINTF(2, 3);

/* Reads a whole file into a NUL-terminated buffer.  Only a regular file is
 * read (a device such as /dev/zero, a FIFO or a folder is refused without
 * blocking), and at most max bytes (a file that is larger, or grows past
 * max while being read, is refused).  *out: caller frees with coh__free.
 * Errors, with the path in err: COH_ENOENT, COH_EIO, COH_EINVAL (not a
 * regular file), COH_ERANGE (over max: both sizes named), COH_ENOMEM. */
int coh__read_file_max(const char *path, size_t max, char **out,
                       size_t *out_len, coh_err *err);
/* Same with the default cap COH__FILE_MAX, for files with no cap of their
 * own (docs/reliability.md lists the caps). */
#define COH__FILE_MAX ((size_t)256 << 20)
int coh__read_file(const char *path, char **out, size_t *out_len,
                   coh_err *err);
/* Opens path read-only (close-on-exec) if it is a regular file; *fd: the
 * caller closes it; *size (may be NULL): its size when opened.  Never blocks
 * on a FIFO.  Errors as coh__read_file_max's, less COH_ERANGE. */
int coh__open_regular(const char *path, int *fd, uint64_t *size,
                      coh_err *err);
/* Resolves name (taken from a file in folder dir, e.g. a model's
 * genai_config.json) to a path inside dir: refuses an empty or absolute
 * name, a '..' component, and a name whose real location (symbolic links
 * followed) is outside dir's real location.  `what` says where the name
 * came from ("FILE: field 'F'") and starts each message.  *out: the joined
 * path; caller frees with coh__free.  Errors: COH_EFORMAT, COH_ENOENT (the
 * file or dir does not exist), COH_EIO, COH_ENOMEM. */
int coh__path_inside(const char *dir, const char *name, const char *what,
                     char **out, coh_err *err);

/* ---- growable byte buffer ------------------------------------------------
 * Shared by the tokenizer (text) and the agent runtime (wasm binaries,
 * generated C).  Appends never fail loudly: an allocation failure sets `oom`
 * and later appends are ignored, so a sequence of appends is checked once.
 * The contents are kept NUL-terminated for text use. */
typedef struct coh__buf {
  char *p;
  size_t n, cap;
  int oom;
} coh__buf;

void coh__buf_free(coh__buf *b);
void coh__buf_reserve(coh__buf *b, size_t extra);
void coh__buf_add(coh__buf *b, const void *s, size_t n);
void coh__buf_addc(coh__buf *b, char c);
/* Appends the UTF-8 encoding of code point cp. */
void coh__buf_add_cp(coh__buf *b, uint32_t cp);
/* Appends v as unsigned LEB128 (the wasm binary encoding). */
void coh__buf_uleb(coh__buf *b, uint64_t v);
void coh__buf_printf(coh__buf *b, const char *fmt, ...) COH__PRINTF(2, 3);

/* ---- SHA-256 ------------------------------------------------------------- */
typedef struct coh__sha256 {
  uint32_t h[8];
  uint64_t n;
  uint8_t blk[64];
  size_t fill;
  int accel;  /* set by init: 1 = x86 SHA extensions; a test may clear it to
                 force the portable code (both give the same digest) */
} coh__sha256;
void coh__sha256_init(coh__sha256 *s);
void coh__sha256_update(coh__sha256 *s, const void *p, size_t n);
void coh__sha256_final(coh__sha256 *s, uint8_t out[32]);
/* The sha256 of one buffer (p may be NULL when n is 0). */
void coh__sha256_buf(const void *p, size_t n, uint8_t out[32]);
/* hex of 32 bytes into out[65]. */
void coh__hex32(const uint8_t in[32], char out[65]);
/* SHA-256 of a file's bytes, streamed, as 64 hex digits in hex[65]. */
int coh__sha256_file(const char *path, char hex[65], coh_err *err);

/* Length of the valid UTF-8 sequence at p (at most n bytes; n >= 1), or 0
 * if the bytes there are not valid UTF-8 (overlongs and surrogates
 * included). */
size_t coh__utf8_seq(const unsigned char *p, size_t n);

/* Appends p[0..n) to b with every byte that does not start a valid UTF-8
 * sequence replaced by U+FFFD (generated text cut inside a character), so
 * that the result is always valid UTF-8. */
void coh__buf_add_utf8_lossy(coh__buf *b, const char *p, size_t n);

/* Appends s (n bytes) as a JSON string literal, quotes included; invalid
 * UTF-8 bytes become \ufffd so the output is always valid JSON (the
 * monitor's renderers and the orchestrator's snapshot writer). */
void coh__json_str(coh__buf *b, const char *s, size_t n);

/* "PORT" or "ADDR:PORT" (IPv4 or localhost; a port alone means 127.0.0.1)
 * into a dotted address addr[16] and *port (0..65535).  flag names the
 * option in error messages ("--ui", "--listen"). */
int coh__parse_listen(const char *flag, const char *s, char addr[16], int *port, coh_err *err);

/* Monotonic wall-clock seconds.  The one wall clock of the library: used
 * for timing columns, statistics and traces only, never on the
 * deterministic path. */
double coh__wall_seconds(void);

/* Joins dir and name with a '/'; caller frees with coh__free. */
char *coh__path_join(const char *dir, const char *name);

/* ---- futex (futex.c) ------------------------------------------------------
 * Sleeps while *word == expected (returns at once if it differs), at most
 * ms milliseconds (ms < 0: no limit); may return spuriously, so callers
 * re-check their condition in a loop. */
void coh__futex_wait(_Atomic uint32_t *word, uint32_t expected, int ms);
/* Wakes up to n threads sleeping on word (INT32_MAX: all). */
void coh__futex_wake(_Atomic uint32_t *word, int n);

/* ---- random numbers (rng.c) ---------------------------------------------
 * One implementation for the whole library: these formulas are part of the
 * determinism contract (journals depend on them): never change them.
 *
 * splitmix64 (Steele, Lea & Flood 2014): *state += G (0x9e3779b97f4a7c15),
 * returns mix(*state), mix being the finaliser (z ^= z>>30;
 * z *= 0xbf58476d1ce4e5b9; z ^= z>>27; z *= 0x94d049bb133111eb; z ^= z>>31). */
uint64_t coh__splitmix64_next(uint64_t *state);

/* xoshiro256** (Blackman & Vigna, 2018).  State seeded by running
 * splitmix64 from the 64-bit seed and taking its first four outputs, so
 * every seed (0 included) gives a valid non-zero state. */
typedef struct coh__rng {
  uint64_t s[4];
} coh__rng;

/* Seeds *r from seed (splitmix64 x4 as described above). */
void coh__rng_seed(coh__rng *r, uint64_t seed);
/* Next 64-bit output of xoshiro256**; advances *r by one step. */
uint64_t coh__rng_next(coh__rng *r);
/* A double in [0, 1): the top 53 bits of one coh__rng_next, times 2^-53. */
double coh__rng_uniform(coh__rng *r);

/* Derives a seed from (a, b, c) = (run seed, agent index, request number or
 * UINT64_MAX for the agent's own stream):
 *   h = mix(a + G); h = mix((h ^ b) + G); h = mix((h ^ c) + G); return h.
 * The chaining makes the order of the inputs matter. */
uint64_t coh__seed_derive(uint64_t a, uint64_t b, uint64_t c);

#endif /* COH_UTIL_INT_H */
