/* file.c — whole-file reads and path joins, with errors that name the path.
 *
 * Everything cohort reads whole comes from a user: a scenario, an agent
 * module, a tokenizer.json, a model's configuration.  A path there may name
 * /dev/zero, /dev/urandom, a FIFO or a folder, and a read "until end of
 * file" of those never ends (or never starts: opening a FIFO blocks).  So
 * every whole-file read opens without blocking, refuses anything but a
 * regular file, and stops at a stated size cap. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util_int.h"

static const char *kind_of(mode_t m) {
  if (S_ISDIR(m)) return "a folder";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

int coh__open_regular(const char *path, int *fd_out, uint64_t *size,
                      coh_err *err) {
  struct stat st;
  int fd, e;
  *fd_out = -1;
  /* O_NONBLOCK: opening a FIFO for reading would wait for a writer. */
  fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    e = errno;
    return coh__err(err, e == ENOENT || e == ENOTDIR ? COH_ENOENT : COH_EIO,
                    "%s: %s", path, strerror(e));
  }
  if (fstat(fd, &st) != 0) {
    e = errno;
    close(fd);
    return coh__err(err, COH_EIO, "%s: %s", path, strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return coh__err(err, COH_EINVAL,
                    "%s: is %s; expected a regular file", path,
                    kind_of(st.st_mode));
  }
  /* regular files never block; reads go back to ordinary mode anyway */
  (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  *fd_out = fd;
  if (size) *size = (uint64_t)st.st_size;
  return COH_OK;
}

/* grew: the size is what was read so far, past what fstat said */
static int too_big(coh_err *err, const char *path, uint64_t have,
                   size_t max, int grew) {
  return coh__err(err, COH_ERANGE,
                  "%s: file is %llu bytes%s; expected at most %zu bytes",
                  path, (unsigned long long)have,
                  grew ? " or more (it grew while read)" : "", max);
}

int coh__read_file_max(const char *path, size_t max, char **out,
                       size_t *out_len, coh_err *err) {
  char *buf = NULL;
  size_t cap, len = 0;
  uint64_t size;
  int fd, rc;
  *out = NULL;
  if (out_len) *out_len = 0;
  if (max > SIZE_MAX / 2) max = SIZE_MAX / 2;
  if ((rc = coh__open_regular(path, &fd, &size, err))) return rc;
  if (size > max) {
    close(fd);
    return too_big(err, path, size, max, 0);
  }
  /* Read one byte past the size fstat gave (and past max at most), so that
   * a file that grows while we read is caught, not followed. */
  cap = (size_t)size + 2;
  buf = coh__malloc(cap);
  if (buf == NULL) {
    close(fd);
    return coh__err(err, COH_ENOMEM, "%s: out of memory reading file", path);
  }
  for (;;) {
    ssize_t n;
    if (len == cap - 1) {
      if (len > max) {
        coh__free(buf);
        close(fd);
        return too_big(err, path, len, max, 1);
      }
      {
        size_t ncap = cap + (cap < 65536 ? 65536 : cap);
        char *nb;
        if (ncap > max + 2) ncap = max + 2;
        nb = coh__realloc(buf, ncap);
        if (nb == NULL) {
          coh__free(buf);
          close(fd);
          return coh__err(err, COH_ENOMEM, "%s: out of memory reading file",
                          path);
        }
        buf = nb;
        cap = ncap;
      }
    }
    n = read(fd, buf + len, cap - 1 - len);
    if (n < 0) {
      int e = errno;
      if (e == EINTR) continue;
      coh__free(buf);
      close(fd);
      return coh__err(err, COH_EIO, "%s: read error: %s", path, strerror(e));
    }
    if (n == 0) break;
    len += (size_t)n;
  }
  close(fd);
  if (len > max) {
    coh__free(buf);
    return too_big(err, path, len, max, 1);
  }
  buf[len] = '\0';
  *out = buf;
  if (out_len) *out_len = len;
  return COH_OK;
}

int coh__read_file(const char *path, char **out, size_t *out_len,
                   coh_err *err) {
  return coh__read_file_max(path, COH__FILE_MAX, out, out_len, err);
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

int coh__path_inside(const char *dir, const char *name, const char *what,
                     char **out, coh_err *err) {
  char *joined = NULL, *real_dir = NULL, *real = NULL;
  const char *p;
  size_t dl;
  int rc = COH_OK;
  *out = NULL;
  if (name[0] == '\0')
    return coh__err(err, COH_EFORMAT,
                    "%s is empty; expected a file name inside the folder %s",
                    what, dir);
  if (name[0] == '/')
    return coh__err(err, COH_EFORMAT,
                    "%s = \"%.200s\" is an absolute path; expected a file "
                    "name inside the folder %s",
                    what, name, dir);
  for (p = name; *p;) { /* a ".." component anywhere */
    size_t n = strcspn(p, "/");
    if (n == 2 && p[0] == '.' && p[1] == '.')
      return coh__err(err, COH_EFORMAT,
                      "%s = \"%.200s\" goes up with '..'; expected a file "
                      "inside the folder %s",
                      what, name, dir);
    p += n;
    while (*p == '/') p++;
  }
  joined = coh__path_join(dir, name);
  if (joined == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
  real_dir = realpath(dir, NULL);
  if (real_dir == NULL) {
    int e = errno;
    rc = coh__err(err, e == ENOENT ? COH_ENOENT : COH_EIO, "%s: %s", dir,
                  strerror(e));
    goto done;
  }
  real = realpath(joined, NULL);
  if (real == NULL) {
    int e = errno;
    rc = coh__err(err, e == ENOENT || e == ENOTDIR ? COH_ENOENT : COH_EIO,
                  "%s: %s (named by %s)", joined, strerror(e), what);
    goto done;
  }
  dl = strlen(real_dir);
  if (!(strncmp(real, real_dir, dl) == 0 &&
        (real[dl] == '/' || (dl == 1 && real_dir[0] == '/')))) {
    rc = coh__err(err, COH_EFORMAT,
                  "%s = \"%.200s\" resolves to %.300s, outside the folder %s "
                  "(a symbolic link out of it); expected a file inside it",
                  what, name, real, dir);
    goto done;
  }
  *out = joined;
  joined = NULL;
done:
  coh__free(joined);
  free(real_dir); /* realpath's results come from libc malloc */
  free(real);
  return rc;
}
