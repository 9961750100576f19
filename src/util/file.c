/* file.c — whole-file reads and path joins, with errors that name the path. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util_int.h"

int coh__read_file(const char *path, char **out, size_t *out_len,
                   coh_err *err) {
  FILE *f;
  char *buf = NULL;
  size_t cap = 0, len = 0;
  *out = NULL;
  if (out_len) *out_len = 0;
  f = fopen(path, "rb");
  if (f == NULL) {
    int e = errno;
    return coh__err(err, e == ENOENT ? COH_ENOENT : COH_EIO, "%s: %s", path,
                    strerror(e));
  }
  for (;;) {
    size_t n;
    if (cap - len < 65536) {
      size_t ncap = cap ? cap * 2 : 65536 + 1;
      char *nb = coh__realloc(buf, ncap);
      if (nb == NULL) {
        coh__free(buf);
        fclose(f);
        return coh__err(err, COH_ENOMEM, "%s: out of memory reading file",
                        path);
      }
      buf = nb;
      cap = ncap;
    }
    n = fread(buf + len, 1, cap - len - 1, f);
    len += n;
    if (n == 0) break;
  }
  if (ferror(f)) {
    coh__free(buf);
    fclose(f);
    return coh__err(err, COH_EIO, "%s: read error", path);
  }
  fclose(f);
  buf[len] = '\0';
  *out = buf;
  if (out_len) *out_len = len;
  return COH_OK;
}

char *coh__path_join(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *p = coh__malloc(a + b + 2);
  if (p == NULL) return NULL;
  memcpy(p, dir, a);
  if (a > 0 && dir[a - 1] != '/') p[a++] = '/';
  memcpy(p + a, name, b + 1);
  return p;
}
