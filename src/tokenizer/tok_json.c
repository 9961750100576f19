/* tok_json.c — typed access to tokenizer.json fields.  Every failure names
 * the field by its JSON path ("model.vocab", "decoder.decoders[2].type"), so
 * that a user can find it in a 4 MB file. */
#include <stdio.h>
#include <string.h>

#include "tokenizer_int.h"

/* Paths only name fields in error messages: a path too long for the buffer
 * is cut short on purpose (the return values say so, and are ignored). */
void coh__path_key(char *out, const char *parent, const char *key) {
  int n;
  if (parent == NULL || parent[0] == '\0')
    n = snprintf(out, COH__PATH_MAX, "%s", key);
  else
    n = snprintf(out, COH__PATH_MAX, "%s.%s", parent, key);
  (void)n;
}

void coh__path_index(char *out, const char *parent, size_t i) {
  /* the parent is cut so that "[index]" always fits */
  snprintf(out, COH__PATH_MAX, "%.*s[%zu]", COH__PATH_MAX - 24, parent, i);
}

int coh__tok_check_len(const char *path, const char *key, size_t len,
                       coh_err *err) {
  char p[COH__PATH_MAX];
  if (len <= COH__TOK_STR_MAX) return COH_OK;
  coh__path_key(p, path, key);
  return coh__err(err, COH_EFORMAT,
                  "%s: %zu bytes; expected at most %d (a string a tokenizer "
                  "inserts into text)",
                  p, len, COH__TOK_STR_MAX);
}

static const char *kind(const json_t *j) {
  switch (json_typeof(j)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
  }
  return "?";
}

int coh__json_member(json_t *obj, const char *parent, const char *key,
                     json_t **out, coh_err *err) {
  char path[COH__PATH_MAX];
  coh__path_key(path, parent, key);
  if (!json_is_object(obj))
    return coh__err(err, COH_EFORMAT, "%s: expected an object, found %s",
                    parent && parent[0] ? parent : "(top level)", kind(obj));
  *out = json_object_get(obj, key);
  if (*out == NULL)
    return coh__err(err, COH_EFORMAT, "%s: missing field", path);
  return COH_OK;
}

static int string_of(json_t *v, const char *path, const char **out,
                     size_t *len, coh_err *err) {
  if (!json_is_string(v))
    return coh__err(err, COH_EFORMAT, "%s: expected a string, found %s", path,
                    kind(v));
  *out = json_string_value(v);
  if (len) *len = json_string_length(v);
  return COH_OK;
}

int coh__json_string(json_t *obj, const char *parent, const char *key,
                     const char **out, size_t *len, coh_err *err) {
  char path[COH__PATH_MAX];
  json_t *v;
  int rc = coh__json_member(obj, parent, key, &v, err);
  if (rc) return rc;
  coh__path_key(path, parent, key);
  return string_of(v, path, out, len, err);
}

int coh__json_char(json_t *obj, const char *parent, const char *key,
                   uint32_t *out, coh_err *err) {
  const char *s;
  size_t n;
  int rc = coh__json_string(obj, parent, key, &s, &n, err);
  if (rc) return rc;
  if (n == 0 || coh__utf8_valid_len((const unsigned char *)s, n) != n)
    return coh__err(err, COH_EFORMAT, "%s.%s: expected a single character",
                    parent, key);
  coh__utf8_next(s, n, out);
  return COH_OK;
}

int coh__json_opt_string(json_t *obj, const char *parent, const char *key,
                         const char **out, size_t *len, coh_err *err) {
  char path[COH__PATH_MAX];
  json_t *v = json_object_get(obj, key);
  if (v == NULL || json_is_null(v)) return COH_OK;
  coh__path_key(path, parent, key);
  return string_of(v, path, out, len, err);
}

int coh__json_opt_bool(json_t *obj, const char *parent, const char *key,
                       int *out, coh_err *err) {
  char path[COH__PATH_MAX];
  json_t *v = json_object_get(obj, key);
  if (v == NULL || json_is_null(v)) return COH_OK;
  coh__path_key(path, parent, key);
  if (!json_is_boolean(v))
    return coh__err(err, COH_EFORMAT, "%s: expected a boolean, found %s",
                    path, kind(v));
  *out = json_is_true(v);
  return COH_OK;
}

static int int_of(json_t *v, const char *path, int64_t lo, int64_t hi,
                  int64_t *out, coh_err *err) {
  json_int_t x;
  if (!json_is_integer(v))
    return coh__err(err, COH_EFORMAT, "%s: expected an integer, found %s",
                    path, kind(v));
  x = json_integer_value(v);
  if (x < lo || x > hi)
    return coh__err(err, COH_EFORMAT, "%s: %lld is out of range [%lld, %lld]",
                    path, (long long)x, (long long)lo, (long long)hi);
  *out = (int64_t)x;
  return COH_OK;
}

int coh__json_int(json_t *obj, const char *parent, const char *key,
                  int64_t lo, int64_t hi, int64_t *out, coh_err *err) {
  char path[COH__PATH_MAX];
  json_t *v;
  int rc = coh__json_member(obj, parent, key, &v, err);
  if (rc) return rc;
  coh__path_key(path, parent, key);
  return int_of(v, path, lo, hi, out, err);
}

int coh__json_opt_int(json_t *obj, const char *parent, const char *key,
                      int64_t lo, int64_t hi, int64_t *out, coh_err *err) {
  char path[COH__PATH_MAX];
  json_t *v = json_object_get(obj, key);
  if (v == NULL || json_is_null(v)) return COH_OK;
  coh__path_key(path, parent, key);
  return int_of(v, path, lo, hi, out, err);
}

int coh__json_type(json_t *obj, const char *path, const char **type,
                   coh_err *err) {
  if (!json_is_object(obj))
    return coh__err(err, COH_EFORMAT, "%s: expected an object, found %s",
                    path, kind(obj));
  return coh__json_string(obj, path, "type", type, NULL, err);
}

int coh__json_parse_list(json_t *obj, const char *parent, const char *key,
                         size_t elem_size, coh__parse_fn parse, void **items,
                         size_t *n, coh_err *err) {
  json_t *arr;
  char sub[COH__PATH_MAX];
  char *out;
  size_t i;
  int rc = coh__json_member(obj, parent, key, &arr, err);
  if (rc) return rc;
  coh__path_key(sub, parent, key);
  if (!json_is_array(arr))
    return coh__err(err, COH_EFORMAT, "%s: expected an array", sub);
  out = coh__calloc(json_array_size(arr) + 1, elem_size);
  if (out == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
  *items = out;
  for (i = 0; i < json_array_size(arr); i++) {
    char item[COH__PATH_MAX];
    coh__path_index(item, sub, i);
    rc = parse(json_array_get(arr, i), item, out + i * elem_size, err);
    *n = i + 1; /* the failed element is freed with the others */
    if (rc) return rc;
  }
  return COH_OK;
}
