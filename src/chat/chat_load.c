/* chat_load.c — the public API: parsing a template, loading it from a model
 * folder or file (with the special tokens of tokenizer_config.json as
 * default variables), rendering it from JSON variables, and the plain
 * format for a model without a template. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "chat_int.h"

void coh_chat_template_free(coh_chat_template *t) {
  if (t == NULL) return;
  coh__ch_arena_free(&t->ar);
  coh__free(t);
}

int coh_chat_template_parse(const char *src, size_t len, const char *name,
                            coh_chat_template **out, coh_err *err) {
  coh_chat_template *t;
  ch_token *toks = NULL;
  size_t nt = 0;
  coh_err local;
  int rc;
  if (err == NULL) err = &local;
  coh_err_clear(err);
  if (out == NULL || (src == NULL && len > 0))
    return coh__err(err, COH_EINVAL, "coh_chat_template_parse: NULL argument");
  *out = NULL;
  if (name == NULL) name = "template";
  if (len > COH__CHAT_SRC_MAX)
    return coh__err(err, COH_ERANGE, "%s: template is %zu bytes, over the %zu-byte limit",
                    name, len, COH__CHAT_SRC_MAX);
  if ((t = coh__calloc(1, sizeof *t)) == NULL)
    return coh__err(err, COH_ENOMEM, "out of memory");
  if ((t->name = coh__ch_strdup(&t->ar, name, strlen(name))) == NULL) {
    rc = coh__err(err, COH_ENOMEM, "out of memory");
    goto fail;
  }
  if ((rc = coh__ch_lex(&t->ar, t->name, src ? src : "", len, &toks, &nt, err))) goto fail;
  if ((rc = coh__ch_parse(&t->ar, t->name, toks, nt, &t->body, err))) goto fail;
  if (t->ar.oom) {
    rc = coh__err(err, COH_ENOMEM, "%s: out of memory", name);
    goto fail;
  }
  *out = t;
  return 0;
fail:
  coh_chat_template_free(t);
  return rc;
}

const char *coh_chat_template_special(const coh_chat_template *t,
                                      const char *name) {
  size_t i;
  if (t == NULL || name == NULL) return NULL;
  for (i = 0; i < t->nspecial; i++)
    if (!strcmp(t->special_names[i], name)) return t->special_values[i];
  return NULL;
}

/* Adds the top-level "*_token" fields of a tokenizer_config.json (a string
 * or {"content": string}) as default variables. */
static int add_specials(coh_chat_template *t, json_t *cfg, coh_err *err) {
  const char *k;
  json_t *v;
  size_t n = 0, i;
  json_object_foreach(cfg, k, v) {
    size_t kl = strlen(k);
    if (kl > 6 && !strcmp(k + kl - 6, "_token") &&
        (json_is_string(v) || json_is_string(json_object_get(v, "content"))))
      n++;
  }
  if (n == 0) return 0;
  {
    char **nn = coh__ch_alloc(&t->ar, (t->nspecial + n) * sizeof *nn);
    char **nv = coh__ch_alloc(&t->ar, (t->nspecial + n) * sizeof *nv);
    if (nn == NULL || nv == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
    if (t->nspecial) {
      memcpy(nn, t->special_names, t->nspecial * sizeof *nn);
      memcpy(nv, t->special_values, t->nspecial * sizeof *nv);
    }
    t->special_names = nn;
    t->special_values = nv;
  }
  json_object_foreach(cfg, k, v) {
    size_t kl = strlen(k);
    json_t *s = json_is_string(v) ? v : json_object_get(v, "content");
    char *val;
    if (!(kl > 6 && !strcmp(k + kl - 6, "_token") && json_is_string(s))) continue;
    for (i = 0; i < t->nspecial; i++)
      if (!strcmp(t->special_names[i], k)) break;
    val = coh__ch_strdup(&t->ar, json_string_value(s), strlen(json_string_value(s)));
    if (val == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
    if (i == t->nspecial) {
      if ((t->special_names[i] = coh__ch_strdup(&t->ar, k, kl)) == NULL)
        return coh__err(err, COH_ENOMEM, "out of memory");
      t->nspecial++;
    }
    t->special_values[i] = val;
  }
  return 0;
}

static int read_json(const char *path, json_t **out, coh_err *err) {
  char *text;
  size_t n;
  json_error_t je;
  int rc = coh__read_file_max(path, (size_t)64 << 20, &text, &n, err);
  if (rc) return rc;
  *out = json_loadb(text, n, 0, &je);
  coh__free(text);
  if (*out == NULL)
    return coh__err(err, COH_EFORMAT, "%s:%d:%d: %s", path, je.line, je.column, je.text);
  if (!json_is_object(*out)) {
    json_decref(*out);
    *out = NULL;
    return coh__err(err, COH_EFORMAT, "%s: expected a JSON object", path);
  }
  return 0;
}

/* The chat_template field of a JSON object: a string, or a list of
 * {"name", "template"} (the one named "default", else the first).  *src is
 * borrowed from j; NULL when the field is absent or null. */
static int template_field(json_t *j, const char *path, const char **src,
                          size_t *len, char *what, size_t wn, coh_err *err) {
  json_t *ct = json_object_get(j, "chat_template");
  *src = NULL;
  if (ct == NULL || json_is_null(ct)) return 0;
  if (json_is_string(ct)) {
    *src = json_string_value(ct);
    *len = json_string_length(ct);
    snprintf(what, wn, "%s:chat_template", path);
    return 0;
  }
  if (json_is_array(ct)) {
    size_t i, pick = 0;
    json_t *e;
    if (json_array_size(ct) == 0)
      return coh__err(err, COH_EFORMAT, "%s: field 'chat_template' is an empty list", path);
    json_array_foreach(ct, i, e) {
      json_t *nm = json_object_get(e, "name"), *tp = json_object_get(e, "template");
      if (!json_is_object(e) || !json_is_string(nm) || !json_is_string(tp))
        return coh__err(err, COH_EFORMAT,
                        "%s: field 'chat_template[%zu]' must be {\"name\": string, \"template\": string}",
                        path, i);
      if (!strcmp(json_string_value(nm), "default")) {
        pick = i;
        break;
      }
    }
    e = json_array_get(ct, pick);
    *src = json_string_value(json_object_get(e, "template"));
    *len = json_string_length(json_object_get(e, "template"));
    snprintf(what, wn, "%s:chat_template[%s]", path,
             json_string_value(json_object_get(e, "name")));
    return 0;
  }
  return coh__err(err, COH_EFORMAT,
                  "%s: field 'chat_template' must be a string or a list of {name, template}", path);
}

static int ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && !strcmp(s + a - b, suf);
}

static int load_any(const char *path, json_t *cfg, coh_chat_template **out,
                    coh_err *err) {
  int rc;
  char what[1024];
  *out = NULL;
  if (ends_with(path, ".jinja")) {
    char *text;
    size_t n;
    if ((rc = coh__read_file_max(path, COH__CHAT_SRC_MAX, &text, &n, err))) return rc;
    rc = coh_chat_template_parse(text, n, path, out, err);
    coh__free(text);
  } else {
    json_t *j;
    const char *src;
    size_t len = 0;
    if ((rc = read_json(path, &j, err))) return rc;
    rc = template_field(j, path, &src, &len, what, sizeof what, err);
    if (rc == 0 && src == NULL)
      rc = coh__err(err, COH_EFORMAT, "%s: no field 'chat_template'", path);
    if (rc == 0) rc = coh_chat_template_parse(src, len, what, out, err);
    if (rc == 0) rc = add_specials(*out, j, err);
    json_decref(j);
  }
  if (rc == 0 && cfg) rc = add_specials(*out, cfg, err);
  if (rc) {
    coh_chat_template_free(*out);
    *out = NULL;
  }
  return rc;
}

int coh_chat_template_load_file(const char *path, const char *config_path,
                                coh_chat_template **out, coh_err *err) {
  json_t *cfg = NULL;
  coh_err local;
  int rc;
  if (err == NULL) err = &local;
  coh_err_clear(err);
  if (path == NULL || out == NULL)
    return coh__err(err, COH_EINVAL, "coh_chat_template_load_file: NULL argument");
  *out = NULL;
  if (config_path && (rc = read_json(config_path, &cfg, err))) return rc;
  rc = load_any(path, cfg, out, err);
  json_decref(cfg);
  return rc;
}

static int exists(const char *path) {
  int fd;
  coh_err e;
  if (coh__open_regular(path, &fd, NULL, &e)) return e.code == COH_ENOENT ? 0 : -1;
  close(fd);
  return 1;
}

int coh_chat_template_load_dir(const char *dir, coh_chat_template **out,
                               coh_err *err) {
  char *cfgp = NULL, *p = NULL;
  json_t *cfg = NULL;
  coh_err local;
  int rc = 0;
  if (err == NULL) err = &local;
  coh_err_clear(err);
  if (dir == NULL || out == NULL)
    return coh__err(err, COH_EINVAL, "coh_chat_template_load_dir: NULL argument");
  *out = NULL;
  if ((cfgp = coh__path_join(dir, "tokenizer_config.json")) == NULL)
    return coh__err(err, COH_ENOMEM, "out of memory");
  if (exists(cfgp) != 0) {
    const char *src;
    size_t len = 0;
    char what[1024];
    if ((rc = read_json(cfgp, &cfg, err))) goto out;
    if ((rc = template_field(cfg, cfgp, &src, &len, what, sizeof what, err))) goto out;
    if (src) {
      if ((rc = coh_chat_template_parse(src, len, what, out, err))) goto out;
      rc = add_specials(*out, cfg, err);
      goto out;
    }
  }
  if ((p = coh__path_join(dir, "chat_template.jinja")) == NULL) {
    rc = coh__err(err, COH_ENOMEM, "out of memory");
    goto out;
  }
  if (!exists(p)) {
    coh__free(p);
    if ((p = coh__path_join(dir, "chat_template.json")) == NULL) {
      rc = coh__err(err, COH_ENOMEM, "out of memory");
      goto out;
    }
    if (!exists(p)) goto out; /* no template: *out stays NULL */
  }
  rc = load_any(p, cfg, out, err);
out:
  if (rc && *out) {
    coh_chat_template_free(*out);
    *out = NULL;
  }
  json_decref(cfg);
  coh__free(cfgp);
  coh__free(p);
  return rc;
}

/* ---- rendering --------------------------------------------------------------- */
static const char *const globals[] = {"false", "true", "none", "raise_exception",
                                      "range", "strftime_now", "True", "False",
                                      "None", "namespace"};

static int set_globals(ch_render *r, ch_env *g) {
  size_t i;
  for (i = 0; i < sizeof globals / sizeof globals[0]; i++) {
    const char *n = globals[i];
    ch_val v;
    if (!strcmp(n, "false") || !strcmp(n, "False")) v = coh__ch_bool(0);
    else if (!strcmp(n, "true") || !strcmp(n, "True")) v = coh__ch_bool(1);
    else if (!strcmp(n, "none") || !strcmp(n, "None")) v = coh__ch_null();
    else {
      ch_fn *fn = coh__ch_alloc(&r->ar, sizeof *fn);
      if (fn == NULL) return coh__ch_fail(r, COH_ENOMEM, "out of memory");
      fn->kind = !strcmp(n, "raise_exception") ? FN_RAISE
                 : !strcmp(n, "range") ? FN_RANGE
                 : !strcmp(n, "strftime_now") ? FN_STRFTIME : FN_NAMESPACE;
      fn->name = n;
      v.t = V_FUNC;
      v.u.fn = fn;
    }
    if (coh__ch_setvar(r, g, n, strlen(n), v)) return -1;
  }
  return 0;
}

int coh_chat_render(const coh_chat_template *t, const char *vars_json,
                    size_t len, char **text, size_t *text_len, coh_err *err) {
  ch_render r;
  ch_env *g;
  json_t *vars = NULL, *x;
  json_error_t je;
  coh__buf out = {0};
  coh_err local;
  const char *k;
  size_t i;
  int rc = 0;
  if (err == NULL) err = &local;
  coh_err_clear(err);
  if (t == NULL || text == NULL || (vars_json == NULL && len > 0 && len != SIZE_MAX))
    return coh__err(err, COH_EINVAL, "coh_chat_render: NULL argument");
  *text = NULL;
  if (text_len) *text_len = 0;
  memset(&r, 0, sizeof r);
  r.t = t;
  r.err = err;
  if (vars_json == NULL) vars_json = "{}", len = 2;
  if (len == SIZE_MAX) len = strlen(vars_json);
  vars = json_loadb(vars_json, len, 0, &je);
  if (vars == NULL) {
    rc = coh__err(err, COH_EFORMAT, "%s: variables: JSON error at %d:%d: %s", t->name,
                  je.line, je.column, je.text);
    goto out;
  }
  if (!json_is_object(vars)) {
    rc = coh__err(err, COH_EFORMAT, "%s: variables: expected a JSON object", t->name);
    goto out;
  }
  if ((g = coh__ch_env_new(&r, NULL)) == NULL || set_globals(&r, g)) goto fail;
  for (i = 0; i < t->nspecial; i++) {
    const char *n = t->special_names[i];
    if (json_object_get(vars, n)) continue;
    if (coh__ch_setvar(&r, g, n, strlen(n),
                       coh__ch_str(t->special_values[i], strlen(t->special_values[i]))))
      goto fail;
  }
  json_object_foreach(vars, k, x) {
    ch_val v;
    size_t j;
    for (j = 0; j < sizeof globals / sizeof globals[0]; j++)
      if (!strcmp(globals[j], k)) {
        rc = coh__err(err, COH_EFORMAT, "%s: variables: '%s' is a built-in name", t->name, k);
        goto out;
      }
    if (coh__ch_from_json(&r, x, &v, 0)) goto fail;
    {
      char *kc = coh__ch_strdup(&r.ar, k, strlen(k));
      if (kc == NULL) {
        coh__ch_fail(&r, COH_ENOMEM, "out of memory");
        goto fail;
      }
      if (coh__ch_setvar(&r, g, kc, strlen(k), v)) goto fail;
    }
    if (!strcmp(k, "date_time") && v.t == V_STR) {
      r.date_time = v.u.s.p;
      r.date_time_n = v.u.s.n;
    }
  }
  if (coh__ch_run(&r, g, &out)) goto fail;
  if (out.oom) {
    rc = coh__err(err, COH_ENOMEM, "out of memory");
    goto out;
  }
  *text = coh__malloc(out.n + 1);
  if (*text == NULL) {
    rc = coh__err(err, COH_ENOMEM, "out of memory");
    goto out;
  }
  if (out.n) memcpy(*text, out.p, out.n);
  (*text)[out.n] = 0;
  if (text_len) *text_len = out.n;
  goto out;
fail:
  rc = err->code ? err->code : COH_ENOMEM;
  if (!r.failed) coh__err(err, rc, "%s: out of memory", t->name);
out:
  coh__buf_free(&out);
  json_decref(vars);
  coh__ch_arena_free(&r.ar);
  return rc;
}

/* ---- the plain format -------------------------------------------------------- */
int coh_chat_render_plain(const char *messages_json, size_t len,
                          int add_generation_prompt, char **text,
                          size_t *text_len, coh_err *err) {
  json_t *msgs, *m;
  json_error_t je;
  coh__buf b = {0};
  coh_err local;
  size_t i;
  int rc = 0;
  if (err == NULL) err = &local;
  coh_err_clear(err);
  if (messages_json == NULL || text == NULL)
    return coh__err(err, COH_EINVAL, "coh_chat_render_plain: NULL argument");
  *text = NULL;
  if (len == SIZE_MAX) len = strlen(messages_json);
  msgs = json_loadb(messages_json, len, 0, &je);
  if (!json_is_array(msgs)) {
    rc = coh__err(err, COH_EFORMAT, "messages: %s", msgs ? "expected a JSON array" : je.text);
    goto out;
  }
  json_array_foreach(msgs, i, m) {
    json_t *role = json_object_get(m, "role"), *content = json_object_get(m, "content");
    json_t *name = json_object_get(m, "name");
    const char *rs;
    size_t k;
    if (!json_is_object(m)) {
      rc = coh__err(err, COH_EFORMAT, "messages[%zu]: expected an object", i);
      goto out;
    }
    if (!json_is_string(role) || json_string_length(role) == 0) {
      rc = coh__err(err, COH_EFORMAT, "messages[%zu]: field 'role' missing or not a string", i);
      goto out;
    }
    if (content && !json_is_string(content) && !json_is_null(content)) {
      rc = coh__err(err, COH_EFORMAT, "messages[%zu]: field 'content' must be a string", i);
      goto out;
    }
    if (name && !json_is_string(name) && !json_is_null(name)) {
      rc = coh__err(err, COH_EFORMAT, "messages[%zu]: field 'name' must be a string", i);
      goto out;
    }
    rs = json_string_value(role);
    if (json_is_string(name)) {
      coh__buf_add(&b, json_string_value(name), json_string_length(name));
      coh__buf_add(&b, " (", 2);
    }
    for (k = 0; k < json_string_length(role); k++)
      coh__buf_addc(&b, rs[k] >= 'a' && rs[k] <= 'z' ? (char)(rs[k] - 32) : rs[k]);
    if (json_is_string(name)) coh__buf_addc(&b, ')');
    coh__buf_add(&b, ": ", 2);
    if (json_is_string(content))
      coh__buf_add(&b, json_string_value(content), json_string_length(content));
    coh__buf_addc(&b, '\n');
    if (b.n > COH__CHAT_OUT_MAX) {
      rc = coh__err(err, COH_ERANGE, "messages: rendered text over %zu bytes", COH__CHAT_OUT_MAX);
      goto out;
    }
  }
  if (add_generation_prompt) coh__buf_add(&b, "ASSISTANT: ", 11);
  if (b.oom) {
    rc = coh__err(err, COH_ENOMEM, "out of memory");
    goto out;
  }
  *text = coh__malloc(b.n + 1);
  if (*text == NULL) {
    rc = coh__err(err, COH_ENOMEM, "out of memory");
    goto out;
  }
  if (b.n) memcpy(*text, b.p, b.n);
  (*text)[b.n] = 0;
  if (text_len) *text_len = b.n;
out:
  coh__buf_free(&b);
  json_decref(msgs);
  return rc;
}
