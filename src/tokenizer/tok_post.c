/* tok_post.c — post-processors, applied by encode when add_special is set:
 * TemplateProcessing (its "single" template), BertProcessing and
 * RobertaProcessing ([cls] A [sep]), ByteLevel (which only trims offsets,
 * so it leaves ids alone) and Sequence. */
#include <string.h>

#include "tokenizer_int.h"

static int append_ids(int32_t **v, size_t *n, const int32_t *src,
                      size_t count) {
  int32_t *nv;
  if (count == 0) return COH_OK;
  nv = coh__realloc(*v, (*n + count) * sizeof *nv);
  if (nv == NULL) return COH_ENOMEM;
  memcpy(nv + *n, src, count * sizeof *nv);
  *v = nv;
  *n += count;
  return COH_OK;
}

/* The ids of special_tokens[name]. */
static int special_ids(json_t *j, const char *path, const char *name,
                       int32_t **v, size_t *n, coh_err *err) {
  json_t *st = json_object_get(j, "special_tokens"), *ent, *ids;
  char p[COH__PATH_MAX], q[COH__PATH_MAX];
  size_t i;
  int rc;
  coh__path_key(p, path, "special_tokens");
  if (!json_is_object(st))
    return coh__err(err, COH_EFORMAT, "%s: expected an object", p);
  ent = json_object_get(st, name);
  if (ent == NULL)
    return coh__err(err, COH_EFORMAT, "%s: no entry for \"%.100s\"", p, name);
  coh__path_key(q, p, name);
  rc = coh__json_member(ent, q, "ids", &ids, err);
  if (rc) return rc;
  coh__path_key(p, q, "ids");
  if (!json_is_array(ids))
    return coh__err(err, COH_EFORMAT, "%s: expected an array", p);
  for (i = 0; i < json_array_size(ids); i++) {
    json_t *x = json_array_get(ids, i);
    int32_t id;
    if (!json_is_integer(x) || json_integer_value(x) < 0 ||
        json_integer_value(x) > INT32_MAX - 2)
      return coh__err(err, COH_EFORMAT, "%s[%zu]: expected an id", p, i);
    id = (int32_t)json_integer_value(x);
    if (append_ids(v, n, &id, 1))
      return coh__err(err, COH_ENOMEM, "out of memory");
  }
  return COH_OK;
}

static int parse_template(json_t *j, const char *path, coh__post *p,
                          coh_err *err) {
  json_t *single;
  char sp[COH__PATH_MAX];
  size_t i, n_seq = 0;
  int rc = coh__json_member(j, path, "single", &single, err);
  if (rc) return rc;
  coh__path_key(sp, path, "single");
  if (!json_is_array(single))
    return coh__err(err, COH_EFORMAT,
                    "%s: expected an array of template pieces", sp);
  for (i = 0; i < json_array_size(single); i++) {
    json_t *item = json_array_get(single, i), *x;
    char ip[COH__PATH_MAX], xp[COH__PATH_MAX];
    const char *id;
    coh__path_index(ip, sp, i);
    if ((x = json_object_get(item, "SpecialToken")) != NULL) {
      coh__path_key(xp, ip, "SpecialToken");
      rc = coh__json_string(x, xp, "id", &id, NULL, err);
      if (!rc)
        rc = n_seq ? special_ids(j, path, id, &p->post, &p->n_post, err)
                   : special_ids(j, path, id, &p->pre, &p->n_pre, err);
      if (rc) return rc;
    } else if ((x = json_object_get(item, "Sequence")) != NULL) {
      coh__path_key(xp, ip, "Sequence");
      rc = coh__json_string(x, xp, "id", &id, NULL, err);
      if (rc) return rc;
      if (strcmp(id, "A") != 0)
        return coh__err(err, COH_EFORMAT,
                        "%s.id: the single template can only hold "
                        "sequence \"A\", found \"%.20s\"",
                        xp, id);
      n_seq++;
    } else {
      return coh__err(err, COH_EFORMAT,
                      "%s: expected {\"SpecialToken\": ...} or "
                      "{\"Sequence\": ...}",
                      ip);
    }
  }
  if (n_seq != 1)
    return coh__err(err, COH_EUNSUPPORTED,
                    "%s: expected exactly one Sequence \"A\", found %zu", sp,
                    n_seq);
  return COH_OK;
}

/* "cls": ["[CLS]", 101] */
static int pair_id(json_t *j, const char *path, const char *key, int32_t **v,
                   size_t *n, coh_err *err) {
  json_t *x;
  char p[COH__PATH_MAX];
  int32_t id;
  int rc = coh__json_member(j, path, key, &x, err);
  if (rc) return rc;
  coh__path_key(p, path, key);
  if (!json_is_array(x) || json_array_size(x) != 2 ||
      !json_is_integer(json_array_get(x, 1)) ||
      json_integer_value(json_array_get(x, 1)) < 0 ||
      json_integer_value(json_array_get(x, 1)) > INT32_MAX - 2)
    return coh__err(err, COH_EFORMAT, "%s: expected [token, id]", p);
  id = (int32_t)json_integer_value(json_array_get(x, 1));
  if (append_ids(v, n, &id, 1))
    return coh__err(err, COH_ENOMEM, "out of memory");
  return COH_OK;
}

/* The Sequence element parser, typed for coh__json_parse_list. */
static int seq_item(json_t *j, const char *path, void *out, coh_err *err) {
  return coh__post_parse(j, path, out, err);
}

int coh__post_parse(json_t *j, const char *path, coh__post *p, coh_err *err) {
  const char *type;
  int rc;
  memset(p, 0, sizeof *p);
  rc = coh__json_type(j, path, &type, err);
  if (rc) return rc;
  if (!strcmp(type, "Sequence")) {
    void *kids = NULL;
    p->type = COH__POST_SEQUENCE;
    rc = coh__json_parse_list(j, path, "processors", sizeof *p->kids, seq_item, &kids,
                              &p->n_kids, err);
    p->kids = kids;
    return rc;
  }

  if (!strcmp(type, "ByteLevel")) {
    p->type = COH__POST_BYTELEVEL;
    return COH_OK;
  }
  if (!strcmp(type, "TemplateProcessing")) {
    p->type = COH__POST_TEMPLATE;
    return parse_template(j, path, p, err);
  }
  if (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing")) {
    p->type = COH__POST_BERT;
    rc = pair_id(j, path, "cls", &p->pre, &p->n_pre, err);
    if (!rc) rc = pair_id(j, path, "sep", &p->post, &p->n_post, err);
    return rc;
  }
  return coh__err(err, COH_EUNSUPPORTED,
                  "%s.type: unsupported post-processor type \"%s\"", path,
                  type);
}

void coh__post_free(coh__post *p) {
  size_t i;
  for (i = 0; i < p->n_kids; i++) coh__post_free(&p->kids[i]);
  coh__free(p->kids);
  coh__free(p->pre);
  coh__free(p->post);
  memset(p, 0, sizeof *p);
}

int coh__post_apply(const coh__post *p, coh__ids *ids) {
  size_t i;
  switch (p->type) {
    case COH__POST_SEQUENCE:
      for (i = 0; i < p->n_kids; i++) {
        int rc = coh__post_apply(&p->kids[i], ids);
        if (rc) return rc;
      }
      return COH_OK;
    case COH__POST_BYTELEVEL:
      return COH_OK;
    default: /* template, Bert/Roberta */
      for (i = 0; i < p->n_pre; i++) coh__ids_push(ids, 0);
      if (ids->oom) return COH_ENOMEM;
      memmove(ids->v + p->n_pre, ids->v, (ids->n - p->n_pre) * sizeof *ids->v);
      if (p->n_pre) memcpy(ids->v, p->pre, p->n_pre * sizeof *ids->v);
      for (i = 0; i < p->n_post; i++) coh__ids_push(ids, p->post[i]);
      return ids->oom ? COH_ENOMEM : COH_OK;
  }
}
