/*
 * alloc.c — the replaceable allocator.  It is the one piece of process-wide
 * state in the library, by design (as libuv's): tests swap it for a
 * fault-injecting allocator to prove that out-of-memory becomes an error.
 */
#include <stdlib.h>
#include <string.h>

#include "util_int.h"

static coh_malloc_fn alloc_malloc = malloc;
static coh_realloc_fn alloc_realloc = realloc;
static coh_calloc_fn alloc_calloc = calloc;
static coh_free_fn alloc_free = free;

int coh_replace_allocator(coh_malloc_fn m, coh_realloc_fn r, coh_calloc_fn c,
                          coh_free_fn f) {
  if (m == NULL || r == NULL || c == NULL || f == NULL) return COH_EINVAL;
  alloc_malloc = m;
  alloc_realloc = r;
  alloc_calloc = c;
  alloc_free = f;
  return COH_OK;
}

void *coh__malloc(size_t size) { return alloc_malloc(size ? size : 1); }
void *coh__calloc(size_t count, size_t size) {
  return alloc_calloc(count ? count : 1, size ? size : 1);
}
void *coh__realloc(void *ptr, size_t size) {
  return alloc_realloc(ptr, size ? size : 1);
}
void coh__free(void *ptr) { alloc_free(ptr); }

char *coh__strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = coh__malloc(n);
  if (p != NULL) memcpy(p, s, n);
  return p;
}
void coh_free(void *ptr) { coh__free(ptr); }

void *coh__grow(void *items, size_t *cap, size_t need, size_t elem, size_t first) {
  size_t ncap = *cap ? *cap : first;
  void *n;
  if (need <= *cap) return items;
  while (ncap < need) {
    if (ncap > SIZE_MAX / 2) return NULL;
    ncap *= 2;
  }
  if (elem != 0 && ncap > SIZE_MAX / elem) return NULL;
  n = coh__realloc(items, ncap * elem);
  if (n == NULL) return NULL;
  *cap = ncap;
  return n;
}
