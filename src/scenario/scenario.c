/* scenario.c — reading and validating scenario files (see
 * include/cohort/scenario.h for the format).
 *
 * libyaml's document API loads the whole file into a node graph; the schema
 * is then checked in one pass over the top-level mapping, and the
 * cross-references (instance ids, models named by prompt agents, the dag)
 * in a second pass once every agent is known.  Every error says where
 * (FILE:LINE:COLUMN, 1-based) and what was expected. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/grammar.h"
#include "cohort/scenario.h"
#include "scenario_int.h"

#define ID_MAX 64
#define MAX_INSTANCES 1000000
#define MAX_OUTSIDE 1000
#define NO_MODEL_ERROR_MAX 200

/* Per-agent facts kept only while loading, for the cross-reference pass. */
typedef struct agent_aux {
  yaml_mark_t mark;        /* the agent's mapping */
  yaml_mark_t *after_mark; /* one per after entry */
  size_t *after_dep;       /* resolved: agent index of each after entry */
  char *model_ref;         /* prompt agents: config.model, or NULL */
  yaml_mark_t model_mark;
} agent_aux;

typedef struct ctx {
  const char *path;
  coh_err *err;
  yaml_document_t *doc;
  coh_scenario *s;
  coh__yjson yj;
  agent_aux *aux;           /* n_agents */
  yaml_mark_t *msg_to_mark; /* n_messages */
  yaml_mark_t on_exit_mark;
  yaml_mark_t *route_mark;  /* 2 per route: from, to */
  long *route_first;        /* per agent: its first route as a prompt sender, -1 */
  coh_scn_agent **by_id;    /* agents sorted by id */
} ctx;

static yaml_node_t *node_at(ctx *c, int index) {
  return yaml_document_get_node(c->doc, index);
}

static int fail(ctx *c, yaml_mark_t mark, const char *fmt, ...)
    COH__PRINTF(3, 4);
static int fail(ctx *c, yaml_mark_t mark, const char *fmt, ...) {
  char msg[COH_ERRMSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return coh__yaml_err(c->err, COH_EFORMAT, c->path, mark, "%s", msg);
}

static const char *type_name(const yaml_node_t *n) {
  coh__yscalar v;
  switch (n->type) {
  case YAML_MAPPING_NODE: return "a mapping";
  case YAML_SEQUENCE_NODE: return "a sequence";
  case YAML_SCALAR_NODE:
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
      return "a quoted string";
    coh__yaml_resolve(n, &v);
    switch (v.kind) {
    case COH__Y_NULL: return "null";
    case COH__Y_BOOL: return "a boolean";
    case COH__Y_INT:
    case COH__Y_BIGINT: return "an integer";
    case COH__Y_FLOAT:
    case COH__Y_NONFINITE: return "a number";
    default: return "a string";
    }
  default: return "nothing";
  }
}

/* ---- keys ---------------------------------------------------------------- */

/* Checks that map is a mapping whose keys are all in allowed (NULL-ended),
 * each at most once, and fills vals[i] with the value of allowed[i] (NULL
 * when absent).  what names the mapping in messages ("agents[2]"). */
static int take_keys(ctx *c, yaml_node_t *map, const char *what,
                     const char *const *allowed, yaml_node_t **vals) {
  yaml_node_pair_t *p;
  size_t n_allowed = 0, i;
  for (; allowed[n_allowed]; n_allowed++) vals[n_allowed] = NULL;
  if (map->type != YAML_MAPPING_NODE)
    return fail(c, map->start_mark, "%s is %s; expected a mapping", what,
                type_name(map));
  for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
       p++) {
    yaml_node_t *k = node_at(c, p->key);
    const char *ks;
    if (k->type != YAML_SCALAR_NODE)
      return fail(c, k->start_mark, "a key of %s is %s; expected a name",
                  what, type_name(k));
    ks = (const char *)k->data.scalar.value;
    for (i = 0; i < n_allowed; i++)
      if (strlen(allowed[i]) == k->data.scalar.length &&
          strcmp(ks, allowed[i]) == 0)
        break;
    if (i == n_allowed) {
      char list[256];
      size_t len = 0, j;
      list[0] = '\0';
      for (j = 0; j < n_allowed && len < sizeof list; j++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s",
                                j ? ", " : "", allowed[j]);
      return fail(c, k->start_mark,
                  "unknown key '%.64s' in %s; expected one of: %s", ks, what,
                  list);
    }
    if (vals[i] != NULL)
      return fail(c, k->start_mark,
                  "duplicate key '%s' in %s (first at line %zu); expected "
                  "each key once",
                  allowed[i], what, vals[i]->start_mark.line + 1);
    vals[i] = node_at(c, p->value);
  }
  return COH_OK;
}

/* ---- typed values -------------------------------------------------------- */

/* A string value: any scalar but null, without NUL bytes.  *out: owned. */
static int get_str(ctx *c, yaml_node_t *n, const char *what, char **out) {
  coh__yscalar v;
  const char *s;
  size_t len;
  if (n->type != YAML_SCALAR_NODE)
    return fail(c, n->start_mark, "%s is %s; expected a string", what,
                type_name(n));
  coh__yaml_resolve(n, &v);
  s = (const char *)n->data.scalar.value;
  len = n->data.scalar.length;
  if (v.kind == COH__Y_NULL || len == 0)
    return fail(c, n->start_mark, "%s is empty; expected a non-empty string",
                what);
  if (memchr(s, '\0', len) != NULL)
    return fail(c, n->start_mark, "%s contains a NUL byte; expected text",
                what);
  if (!coh__utf8_valid(s, len))
    return fail(c, n->start_mark, "%s is not valid UTF-8; expected UTF-8 "
                "text", what);
  *out = coh__strdup(s);
  return *out == NULL ? COH_ENOMEM : COH_OK;
}

static int valid_id(const char *s) {
  size_t n = strlen(s), i;
  if (n < 1 || n > ID_MAX) return 0;
  for (i = 0; i < n; i++) {
    char ch = s[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-'))
      return 0;
  }
  return 1;
}

/* An id: 1..64 characters of [A-Za-z0-9_.-].  *out: owned. */
static int get_id(ctx *c, yaml_node_t *n, const char *what, char **out) {
  int rc = get_str(c, n, what, out);
  if (rc) return rc;
  if (!valid_id(*out)) {
    rc = fail(c, n->start_mark,
              "%s '%.64s' is not a valid id; expected 1-%d characters of "
              "A-Z a-z 0-9 _ . -",
              what, *out, ID_MAX);
    coh__free(*out);
    *out = NULL;
  }
  return rc;
}

static int get_i64(ctx *c, yaml_node_t *n, const char *what, int64_t lo,
                   int64_t hi, int64_t *out) {
  coh__yscalar v;
  if (n->type == YAML_SCALAR_NODE) coh__yaml_resolve(n, &v);
  if (n->type != YAML_SCALAR_NODE ||
      (v.kind != COH__Y_INT && v.kind != COH__Y_BIGINT))
    return fail(c, n->start_mark,
                "%s is %s; expected an integer in %lld..%lld", what,
                type_name(n), (long long)lo, (long long)hi);
  if (v.kind == COH__Y_BIGINT || v.i < lo || v.i > hi)
    return fail(c, n->start_mark,
                "%s is %.32s, out of range; expected %lld..%lld", what,
                (const char *)n->data.scalar.value, (long long)lo,
                (long long)hi);
  *out = v.i;
  return COH_OK;
}

static int get_int(ctx *c, yaml_node_t *n, const char *what, int lo, int hi,
                   int *out) {
  int64_t v;
  int rc = get_i64(c, n, what, lo, hi, &v);
  if (rc == COH_OK) *out = (int)v;
  return rc;
}

/* 0..UINT64_MAX, decimal or 0x/0o (seed and fuel go beyond int64). */
static int get_u64(ctx *c, yaml_node_t *n, const char *what, uint64_t *out) {
  coh__yscalar v;
  const char *s;
  size_t len, i, off = 0;
  unsigned base = 10;
  uint64_t acc = 0;
  if (n->type == YAML_SCALAR_NODE) coh__yaml_resolve(n, &v);
  if (n->type != YAML_SCALAR_NODE ||
      (v.kind != COH__Y_INT && v.kind != COH__Y_BIGINT))
    return fail(c, n->start_mark,
                "%s is %s; expected an integer in 0..18446744073709551615",
                what, type_name(n));
  s = (const char *)n->data.scalar.value;
  len = n->data.scalar.length;
  if (v.neg && !(v.kind == COH__Y_INT && v.i == 0))
    goto range;
  if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
    base = s[1] == 'x' ? 16 : 8;
    off = 2;
  } else if (s[0] == '+' || s[0] == '-') {
    off = 1;
  }
  for (i = off; i < len; i++) {
    char ch = s[i];
    unsigned d = ch <= '9' ? (unsigned)(ch - '0')
                 : ch <= 'F' ? (unsigned)(ch - 'A' + 10)
                             : (unsigned)(ch - 'a' + 10);
    if (acc > (UINT64_MAX - d) / base) goto range;
    acc = acc * base + d;
  }
  *out = acc;
  return COH_OK;
range:
  return fail(c, n->start_mark,
              "%s is %.32s, out of range; expected 0..18446744073709551615",
              what, s);
}

static int get_bool(ctx *c, yaml_node_t *n, const char *what, int *out) {
  coh__yscalar v;
  if (n->type == YAML_SCALAR_NODE) coh__yaml_resolve(n, &v);
  if (n->type != YAML_SCALAR_NODE || v.kind != COH__Y_BOOL)
    return fail(c, n->start_mark, "%s is %s; expected true or false", what,
                type_name(n));
  *out = v.b;
  return COH_OK;
}

/* One of words (NULL-ended); *out = its index. */
static int get_enum(ctx *c, yaml_node_t *n, const char *what,
                    const char *const *words, int *out) {
  int i;
  char list[128];
  size_t len = 0;
  if (n->type == YAML_SCALAR_NODE)
    for (i = 0; words[i]; i++)
      if (strlen(words[i]) == n->data.scalar.length &&
          strcmp((const char *)n->data.scalar.value, words[i]) == 0) {
        *out = i;
        return COH_OK;
      }
  list[0] = '\0';
  for (i = 0; words[i] && len < sizeof list; i++)
    len += (size_t)snprintf(list + len, sizeof list - len, "%s%s",
                            i ? " | " : "", words[i]);
  if (n->type == YAML_SCALAR_NODE)
    return fail(c, n->start_mark, "%s is '%.32s'; expected %s", what,
                (const char *)n->data.scalar.value, list);
  return fail(c, n->start_mark, "%s is %s; expected %s", what, type_name(n),
              list);
}

/* A file path, resolved against the scenario's folder.  *out: owned. */
static int get_path(ctx *c, yaml_node_t *n, const char *what, char **out) {
  char *raw = NULL;
  int rc = get_str(c, n, what, &raw);
  if (rc) return rc;
  if (raw[0] == '/') {
    *out = raw;
    return COH_OK;
  }
  *out = coh__path_join(c->s->dir, raw);
  coh__free(raw);
  return *out == NULL ? COH_ENOMEM : COH_OK;
}

/* ---- sections ------------------------------------------------------------ */

static int read_models(ctx *c, yaml_node_t *seq) {
  static const char *const keys[] = {"name", "path", "device", "max_batch",
                                     "threads", "prefill_chunk", NULL};
  static const char *const devices[] = {"auto", "cpu", "cuda", NULL};
  coh_scenario *s = c->s;
  yaml_node_item_t *it;
  size_t n, j;
  int rc;
  if (seq->type != YAML_SEQUENCE_NODE)
    return fail(c, seq->start_mark, "models is %s; expected a sequence of "
                "mappings", type_name(seq));
  n = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
  if (n == 0) return COH_OK;
  s->models = coh__calloc(n, sizeof *s->models);
  if (s->models == NULL) return COH_ENOMEM;
  for (it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
       it++) {
    yaml_node_t *m = node_at(c, *it), *v[7];
    coh_scn_model *md = &s->models[s->n_models];
    char what[48], field[80];
    int dev;
    snprintf(what, sizeof what, "models[%zu]", s->n_models);
    rc = take_keys(c, m, what, keys, v);
    if (rc) return rc;
    s->n_models++;
    md->line = (int)m->start_mark.line + 1;
    md->device = COH_DEVICE_AUTO;
    md->max_batch = 16;
    md->threads = 0;
    if (v[0] == NULL)
      return fail(c, m->start_mark, "%s has no 'name'; expected a model name",
                  what);
    snprintf(field, sizeof field, "%s.name", what);
    if ((rc = get_id(c, v[0], field, &md->name))) return rc;
    for (j = 0; j + 1 < s->n_models; j++)
      if (strcmp(s->models[j].name, md->name) == 0)
        return fail(c, v[0]->start_mark,
                    "duplicate model name '%s' (first at line %d); expected "
                    "unique names",
                    md->name, s->models[j].line);
    if (v[1] == NULL)
      return fail(c, m->start_mark,
                  "%s ('%s') has no 'path'; expected the model's folder",
                  what, md->name);
    snprintf(field, sizeof field, "%s.path", what);
    if ((rc = get_path(c, v[1], field, &md->path))) return rc;
    if (v[2]) {
      snprintf(field, sizeof field, "%s.device", what);
      if ((rc = get_enum(c, v[2], field, devices, &dev))) return rc;
      md->device = dev == 0   ? COH_DEVICE_AUTO
                   : dev == 1 ? COH_DEVICE_CPU
                              : COH_DEVICE_CUDA;
    }
    snprintf(field, sizeof field, "%s.max_batch", what);
    if (v[3] && (rc = get_int(c, v[3], field, 1, 1024, &md->max_batch)))
      return rc;
    snprintf(field, sizeof field, "%s.threads", what);
    if (v[4] && (rc = get_int(c, v[4], field, 0, 1024, &md->threads)))
      return rc;
    snprintf(field, sizeof field, "%s.prefill_chunk", what);
    if (v[5] && (rc = get_int(c, v[5], field, 1, 65536, &md->prefill_chunk)))
      return rc;
  }
  return COH_OK;
}

/* ---- the stock prompt agent's configuration ------------------------------
 * agents/prompt.c reads its configuration into fixed buffers; a field that
 * is mistyped, too long or unknown would there become a default, a
 * truncation or a request the engine refuses at run time.  It is checked
 * here instead, with FILE:LINE:COLUMN and the field.  The sizes are the
 * agent's buffers less the terminating NUL; keep them in step. */
#define PROMPT_CFG_MAX 8191        /* the whole config, as compact JSON */
#define PROMPT_ROLE_MAX 1023
#define PROMPT_TEMPLATE_MAX 2047
#define PROMPT_MODEL_MAX 127
#define PROMPT_MATCH_MAX 255
#define PROMPT_MAX_TOKENS 1048576  /* as the llm request parser */
#define PROMPT_MAX_STOPS 16        /* as the llm request parser */

/* A JSON string (a YAML scalar that resolves to a string) of at most max
 * bytes. */
static int prompt_str(ctx *c, yaml_node_t *n, const char *what, size_t max) {
  coh__yscalar v;
  if (n->type == YAML_SCALAR_NODE) coh__yaml_resolve(n, &v);
  if (n->type != YAML_SCALAR_NODE || v.kind != COH__Y_STR)
    return fail(c, n->start_mark, "%s is %s; expected a string", what,
                type_name(n));
  if (n->data.scalar.length > max)
    return fail(c, n->start_mark, "%s is %zu bytes long; expected at most "
                "%zu", what, n->data.scalar.length, max);
  return COH_OK;
}

/* A number in [lo, hi] (lo excluded when lo_open), as the llm request
 * parser (src/infer/llm_request.c) and the sampler take it. */
static int prompt_num(ctx *c, yaml_node_t *n, const char *what, double lo,
                      int lo_open, double hi) {
  coh__yscalar v;
  double d;
  if (n->type == YAML_SCALAR_NODE) coh__yaml_resolve(n, &v);
  if (n->type != YAML_SCALAR_NODE ||
      (v.kind != COH__Y_INT && v.kind != COH__Y_FLOAT))
    return fail(c, n->start_mark, "%s is %s; expected a number in %s%g, %g]",
                what, type_name(n), lo_open ? "(" : "[", lo, hi);
  d = v.kind == COH__Y_INT ? (double)v.i : v.d;
  if (d < lo || (lo_open && d == lo) || d > hi)
    return fail(c, n->start_mark, "%s is %.32s, out of range; expected %s%g, "
                "%g]", what, (const char *)n->data.scalar.value,
                lo_open ? "(" : "[", lo, hi);
  return COH_OK;
}

/* One stop string: a non-empty string of at most COH_STOP_STRING_MAX. */
static int prompt_stop1(ctx *c, yaml_node_t *n, const char *what) {
  int rc = prompt_str(c, n, what, COH_STOP_STRING_MAX);
  if (rc == COH_OK && n->data.scalar.length == 0)
    rc = fail(c, n->start_mark, "%s is empty; expected a non-empty string",
              what);
  return rc;
}

/* stop: one string or a sequence of at most 16 of them. */
static int prompt_stop(ctx *c, yaml_node_t *n, const char *what) {
  yaml_node_item_t *it;
  char field[220];
  int rc;
  if (n->type == YAML_SCALAR_NODE) return prompt_stop1(c, n, what);
  if (n->type != YAML_SEQUENCE_NODE)
    return fail(c, n->start_mark, "%s is %s; expected a string or a sequence "
                "of at most %d strings", what, type_name(n),
                PROMPT_MAX_STOPS);
  if (n->data.sequence.items.top - n->data.sequence.items.start >
      PROMPT_MAX_STOPS)
    return fail(c, n->start_mark, "%s has %ld strings; expected at most %d",
                what,
                (long)(n->data.sequence.items.top -
                       n->data.sequence.items.start),
                PROMPT_MAX_STOPS);
  for (it = n->data.sequence.items.start; it < n->data.sequence.items.top;
       it++) {
    yaml_node_t *e = node_at(c, *it);
    snprintf(field, sizeof field, "%.180s[%ld]", what,
             (long)(it - n->data.sequence.items.start));
    if ((rc = prompt_stop1(c, e, field))) return rc;
  }
  return COH_OK;
}

/* The chat-mode keys of the prompt agent (agents/prompt.c): system,
 * messages (a sequence of {role, content, name?}), history_tokens, tools (a
 * sequence of mappings), template_vars (a mapping).  v: their nodes or NULL;
 * prompt: the "prompt" node, which chat mode excludes.  Whether the first
 * prompt renders within history_tokens is checked once the model is open
 * (src/sched/llm.c). */
static int check_prompt_chat(ctx *c, yaml_node_t *const *v, yaml_node_t *prompt,
                             const char *what) {
  static const char *const mkeys[] = {"role", "content", "name", NULL};
  yaml_node_t *mv[3];
  yaml_node_item_t *it;
  char field[220];
  int64_t ht;
  int rc, k;
  for (k = 0; k < 5 && v[k] == NULL; k++) {}
  if (k == 5) return COH_OK;
  if (prompt != NULL)
    return fail(c, prompt->start_mark, "%s.prompt cannot be used with system, messages, "
                "history_tokens, tools or template_vars (chat mode renders the model's "
                "chat template)", what);
  snprintf(field, sizeof field, "%.180s.system", what);
  if (v[0] && (rc = prompt_str(c, v[0], field, PROMPT_CFG_MAX))) return rc;
  if (v[1] != NULL) {
    if (v[1]->type != YAML_SEQUENCE_NODE)
      return fail(c, v[1]->start_mark, "%s.messages is %s; expected a sequence of "
                  "{role, content} mappings", what, type_name(v[1]));
    for (it = v[1]->data.sequence.items.start; it < v[1]->data.sequence.items.top; it++) {
      yaml_node_t *m = node_at(c, *it);
      long i = (long)(it - v[1]->data.sequence.items.start);
      snprintf(field, sizeof field, "%.150s.messages[%ld]", what, i);
      if ((rc = take_keys(c, m, field, mkeys, mv))) return rc;
      if (mv[0] == NULL || mv[1] == NULL)
        return fail(c, m->start_mark, "%s has no '%s'; expected a role and a content",
                    field, mv[0] == NULL ? "role" : "content");
      snprintf(field, sizeof field, "%.150s.messages[%ld].role", what, i);
      if ((rc = prompt_str(c, mv[0], field, PROMPT_CFG_MAX))) return rc;
      if (mv[0]->data.scalar.length == 0)
        return fail(c, mv[0]->start_mark, "%s is empty; expected a role such as user", field);
      snprintf(field, sizeof field, "%.150s.messages[%ld].content", what, i);
      if ((rc = prompt_str(c, mv[1], field, PROMPT_CFG_MAX))) return rc;
      snprintf(field, sizeof field, "%.150s.messages[%ld].name", what, i);
      if (mv[2] && (rc = prompt_str(c, mv[2], field, PROMPT_CFG_MAX))) return rc;
    }
  }
  snprintf(field, sizeof field, "%.180s.history_tokens", what);
  if (v[2] && (rc = get_i64(c, v[2], field, 1, 16777216, &ht))) return rc;
  if (v[3] != NULL) {
    if (v[3]->type != YAML_SEQUENCE_NODE)
      return fail(c, v[3]->start_mark, "%s.tools is %s; expected a sequence of mappings",
                  what, type_name(v[3]));
    for (it = v[3]->data.sequence.items.start; it < v[3]->data.sequence.items.top; it++)
      if (node_at(c, *it)->type != YAML_MAPPING_NODE)
        return fail(c, node_at(c, *it)->start_mark, "%s.tools[%ld] is %s; expected a mapping",
                    what, (long)(it - v[3]->data.sequence.items.start),
                    type_name(node_at(c, *it)));
  }
  if (v[4] != NULL && v[4]->type != YAML_MAPPING_NODE)
    return fail(c, v[4]->start_mark, "%s.template_vars is %s; expected a mapping", what,
                type_name(v[4]));
  return COH_OK;
}

/* The value of key in mapping map, or NULL (also when map is not a mapping). */
static yaml_node_t *map_get(ctx *c, yaml_node_t *map, const char *key) {
  yaml_node_pair_t *p;
  if (map == NULL || map->type != YAML_MAPPING_NODE) return NULL;
  for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
    yaml_node_t *k = node_at(c, p->key);
    if (k->type == YAML_SCALAR_NODE && k->data.scalar.length == strlen(key) &&
        !memcmp(k->data.scalar.value, key, k->data.scalar.length))
      return node_at(c, p->value);
  }
  return NULL;
}

/* Compiles the JSON Schema at node n (field names it): a schema the grammar
 * engine refuses fails the load at the node's line, with the keyword and
 * its JSON pointer. */
static int schema_text(ctx *c, yaml_node_t *n, const char *field, char **out,
                       size_t *out_len) {
  json_t *j = NULL;
  char *text = NULL;
  size_t len = 0;
  coh_grammar *g = NULL;
  coh_err e;
  int rc;
  if (n->type != YAML_MAPPING_NODE)
    return fail(c, n->start_mark, "%s is %s; expected a mapping (a JSON Schema)", field,
                type_name(n));
  c->yj.prec = 0;
  if ((rc = coh__yaml_to_json(&c->yj, n, 0, &j))) return rc;
  rc = coh__json_compact(j, c->yj.prec, &text, &len);
  json_decref(j);
  if (rc) return coh__err(c->err, COH_ENOMEM, "out of memory");
  coh_err_clear(&e);
  rc = coh_grammar_from_json_schema(text, len, field, &g, &e);
  coh_grammar_free(g);
  if (rc == COH_OK && out != NULL) {
    *out = text;
    *out_len = len;
    return COH_OK;
  }
  coh__free(text);
  if (rc == COH_ENOMEM) return coh__err(c->err, rc, "out of memory");
  if (rc) return fail(c, n->start_mark, "%s", e.msg); /* e.msg names the field */
  return COH_OK;
}

static int check_schema(ctx *c, yaml_node_t *n, const char *field) {
  return schema_text(c, n, field, NULL, NULL);
}

/* Structured output keys of a prompt agent: schema, tools' parameters,
 * tool_choice, parallel_tool_calls (v: those four nodes, or NULL). */
static int check_prompt_structured(ctx *c, yaml_node_t *const *v, yaml_node_t *tools,
                                   const char *what) {
  static const char *const choices[] = {"none", "auto", "required", NULL};
  char field[220];
  yaml_node_item_t *it;
  int rc, b, k;
  snprintf(field, sizeof field, "%.180s.schema", what);
  if (v[0] && (rc = check_schema(c, v[0], field))) return rc;
  if (tools != NULL && tools->type == YAML_SEQUENCE_NODE)
    for (it = tools->data.sequence.items.start; it < tools->data.sequence.items.top; it++) {
      yaml_node_t *fn = map_get(c, node_at(c, *it), "function"), *pn;
      long i = (long)(it - tools->data.sequence.items.start);
      if (fn == NULL || fn->type != YAML_MAPPING_NODE) continue; /* the request names it */
      if ((pn = map_get(c, fn, "parameters")) == NULL) continue;
      snprintf(field, sizeof field, "%.150s.tools[%ld].function.parameters", what, i);
      if ((rc = check_schema(c, pn, field))) return rc;
    }
  if (v[1] != NULL) {
    coh__yscalar sv;
    if (tools == NULL)
      return fail(c, v[1]->start_mark, "%s.tool_choice needs tools", what);
    if (v[1]->type == YAML_SCALAR_NODE) {
      coh__yaml_resolve(v[1], &sv);
      for (k = 0; choices[k] && (v[1]->data.scalar.length != strlen(choices[k]) ||
                                 memcmp(v[1]->data.scalar.value, choices[k],
                                        strlen(choices[k])));
           k++) {}
      if (choices[k] == NULL || sv.kind != COH__Y_STR)
        return fail(c, v[1]->start_mark, "%s.tool_choice is '%.*s'; expected none, auto, "
                    "required or {type: function, function: {name: TOOL}}", what,
                    (int)(v[1]->data.scalar.length > 64 ? 64 : v[1]->data.scalar.length),
                    (const char *)v[1]->data.scalar.value);
    } else if (v[1]->type != YAML_MAPPING_NODE) {
      return fail(c, v[1]->start_mark, "%s.tool_choice is %s; expected none, auto, required "
                  "or {type: function, function: {name: TOOL}}", what, type_name(v[1]));
    }
  }
  snprintf(field, sizeof field, "%.180s.parallel_tool_calls", what);
  if (v[2] && tools == NULL)
    return fail(c, v[2]->start_mark, "%s needs tools", field);
  if (v[2] && (rc = get_bool(c, v[2], field, &b))) return rc;
  return COH_OK;
}

static int check_prompt_config(ctx *c, yaml_node_t *map, const char *what) {
  static const char *const keys[] = {
      "role", "prompt", "model", "max_tokens", "reply", "routes",
      "temperature", "top_k", "top_p", "min_p", "repetition_penalty", "stop",
      "system", "messages", "history_tokens", "tools", "template_vars",
      "schema", "tool_choice", "parallel_tool_calls", "max_ws_run", NULL};
  static const char *const rkeys[] = {"match", "to", NULL};
  yaml_node_t *v[21], *rv[2];
  yaml_node_item_t *it;
  char field[200];
  int64_t mt;
  int rc, b;
  if ((rc = take_keys(c, map, what, keys, v))) return rc;
  if ((rc = check_prompt_chat(c, v + 12, v[1], what))) return rc;
  if ((rc = check_prompt_structured(c, v + 17, v[15], what))) return rc;
  snprintf(field, sizeof field, "%s.max_ws_run", what);
  if (v[20] && (rc = get_i64(c, v[20], field, 0, 1 << 20, &mt))) return rc;
  /* sampling keys: the ranges the llm request parser accepts */
  snprintf(field, sizeof field, "%s.temperature", what);
  if (v[6] && (rc = prompt_num(c, v[6], field, 0, 0, 100))) return rc;
  snprintf(field, sizeof field, "%s.top_k", what);
  if (v[7] && (rc = get_i64(c, v[7], field, 0, INT32_MAX, &mt))) return rc;
  snprintf(field, sizeof field, "%s.top_p", what);
  if (v[8] && (rc = prompt_num(c, v[8], field, 0, 1, 1))) return rc;
  snprintf(field, sizeof field, "%s.min_p", what);
  if (v[9] && (rc = prompt_num(c, v[9], field, 0, 0, 1))) return rc;
  snprintf(field, sizeof field, "%s.repetition_penalty", what);
  if (v[10] && (rc = prompt_num(c, v[10], field, 0, 1, 100))) return rc;
  snprintf(field, sizeof field, "%s.stop", what);
  if (v[11] && (rc = prompt_stop(c, v[11], field))) return rc;
  snprintf(field, sizeof field, "%s.role", what);
  if (v[0] && (rc = prompt_str(c, v[0], field, PROMPT_ROLE_MAX))) return rc;
  snprintf(field, sizeof field, "%s.prompt", what);
  if (v[1] && (rc = prompt_str(c, v[1], field, PROMPT_TEMPLATE_MAX)))
    return rc;
  snprintf(field, sizeof field, "%s.model", what);
  if (v[2] && (rc = prompt_str(c, v[2], field, PROMPT_MODEL_MAX))) return rc;
  snprintf(field, sizeof field, "%s.max_tokens", what);
  if (v[3] &&
      (rc = get_i64(c, v[3], field, 0, PROMPT_MAX_TOKENS, &mt)))
    return rc;
  snprintf(field, sizeof field, "%s.reply", what);
  if (v[4] && (rc = get_bool(c, v[4], field, &b))) return rc;
  if (v[5] == NULL) return COH_OK;
  if (v[5]->type != YAML_SEQUENCE_NODE)
    return fail(c, v[5]->start_mark, "%s.routes is %s; expected a sequence "
                "of {match, to} mappings", what, type_name(v[5]));
  for (it = v[5]->data.sequence.items.start;
       it < v[5]->data.sequence.items.top; it++) {
    yaml_node_t *r = node_at(c, *it);
    size_t i = (size_t)(it - v[5]->data.sequence.items.start);
    char *to = NULL;
    snprintf(field, sizeof field, "%.150s.routes[%zu]", what, i);
    if ((rc = take_keys(c, r, field, rkeys, rv))) return rc;
    if (rv[0] == NULL || rv[1] == NULL)
      return fail(c, r->start_mark, "%s has no '%s'; expected both 'match' "
                  "and 'to'", field, rv[0] == NULL ? "match" : "to");
    snprintf(field, sizeof field, "%.150s.routes[%zu].match", what, i);
    if ((rc = prompt_str(c, rv[0], field, PROMPT_MATCH_MAX))) return rc;
    snprintf(field, sizeof field, "%.150s.routes[%zu].to", what, i);
    if ((rc = prompt_str(c, rv[1], field, ID_MAX))) return rc;
    if ((rc = get_id(c, rv[1], field, &to))) return rc;
    coh__free(to);
  }
  return COH_OK;
}

static int read_config(ctx *c, yaml_node_t *n, const char *what,
                       coh_scn_agent *a, agent_aux *ax) {
  json_t *j = NULL, *model;
  coh__yscalar sv;
  size_t len = 0;
  int rc;
  if (n != NULL && n->type == YAML_SCALAR_NODE) coh__yaml_resolve(n, &sv);
  if (n == NULL || (n->type == YAML_SCALAR_NODE && sv.kind == COH__Y_NULL)) {
    a->config_json = coh__strdup("{}");
    return a->config_json == NULL ? COH_ENOMEM : COH_OK;
  }
  if (n->type != YAML_MAPPING_NODE)
    return fail(c, n->start_mark, "%s is %s; expected a mapping", what,
                type_name(n));
  if (a->is_prompt && (rc = check_prompt_config(c, n, what))) return rc;
  c->yj.prec = 0;
  rc = coh__yaml_to_json(&c->yj, n, 0, &j);
  if (rc) return rc;
  model = json_object_get(j, "model");
  if (a->is_prompt && model != NULL) {
    yaml_node_pair_t *p;
    if (!json_is_string(model)) {
      rc = fail(c, n->start_mark, "%s.model is not a string; expected the "
                "name of a model in 'models'", what);
      goto done;
    }
    ax->model_ref = coh__strdup(json_string_value(model));
    if (ax->model_ref == NULL) {
      rc = COH_ENOMEM;
      goto done;
    }
    ax->model_mark = n->start_mark;
    for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
      yaml_node_t *k = node_at(c, p->key);
      if (k->type == YAML_SCALAR_NODE &&
          strcmp((const char *)k->data.scalar.value, "model") == 0)
        ax->model_mark = node_at(c, p->value)->start_mark;
    }
  }
  rc = coh__json_compact(j, c->yj.prec, &a->config_json, &len);
  if (rc == COH_OK && a->is_prompt && len > PROMPT_CFG_MAX)
    rc = fail(c, n->start_mark, "%s is %zu bytes as JSON; expected at most "
              "%d (the stock prompt agent's buffer)", what, len,
              PROMPT_CFG_MAX);
done:
  json_decref(j);
  return rc;
}

static int read_after(ctx *c, yaml_node_t *n, const char *what,
                      coh_scn_agent *a, agent_aux *ax) {
  yaml_node_item_t *it;
  size_t cnt;
  int rc;
  char field[160];
  if (n->type == YAML_SCALAR_NODE) { /* after: planner — one dependency */
    cnt = 1;
  } else if (n->type == YAML_SEQUENCE_NODE) {
    cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
  } else {
    return fail(c, n->start_mark, "%s is %s; expected a sequence of agent "
                "ids", what, type_name(n));
  }
  if (cnt == 0) return COH_OK;
  a->after = coh__calloc(cnt, sizeof *a->after);
  ax->after_mark = coh__calloc(cnt, sizeof *ax->after_mark);
  ax->after_dep = coh__calloc(cnt, sizeof *ax->after_dep);
  if (a->after == NULL || ax->after_mark == NULL || ax->after_dep == NULL)
    return COH_ENOMEM;
  if (n->type == YAML_SCALAR_NODE) {
    ax->after_mark[0] = n->start_mark;
    rc = get_id(c, n, what, &a->after[0]);
    if (rc == COH_OK) a->n_after = 1;
    return rc;
  }
  for (it = n->data.sequence.items.start; it < n->data.sequence.items.top;
       it++) {
    yaml_node_t *e = node_at(c, *it);
    snprintf(field, sizeof field, "%.120s[%zu]", what, a->n_after);
    ax->after_mark[a->n_after] = e->start_mark;
    if ((rc = get_id(c, e, field, &a->after[a->n_after]))) return rc;
    a->n_after++;
  }
  return COH_OK;
}

static int read_agents(ctx *c, yaml_node_t *seq, yaml_mark_t where) {
  static const char *const keys[] = {"id", "kind", "module", "config", "fuel",
                                     "memory_mb", "priority", "count",
                                     "inbox", "after", NULL};
  static const char *const kinds[] = {"wasm", "prompt", NULL};
  coh_scenario *s = c->s;
  yaml_node_item_t *it;
  size_t n;
  uint64_t instances = 0;
  int rc;
  if (seq == NULL)
    return fail(c, where, "no 'agents'; expected a sequence of at least one "
                "agent");
  if (seq->type != YAML_SEQUENCE_NODE)
    return fail(c, seq->start_mark, "agents is %s; expected a sequence of "
                "mappings", type_name(seq));
  n = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
  if (n == 0)
    return fail(c, seq->start_mark, "agents is empty; expected at least one "
                "agent");
  s->agents = coh__calloc(n, sizeof *s->agents);
  c->aux = coh__calloc(n, sizeof *c->aux);
  if (s->agents == NULL || c->aux == NULL) return COH_ENOMEM;
  for (it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
       it++) {
    yaml_node_t *m = node_at(c, *it), *v[10];
    coh_scn_agent *a = &s->agents[s->n_agents];
    agent_aux *ax = &c->aux[s->n_agents];
    char what[96], field[160];
    int kind = 0;
    uint64_t mem;
    snprintf(what, sizeof what, "agents[%zu]", s->n_agents);
    rc = take_keys(c, m, what, keys, v);
    if (rc) return rc;
    s->n_agents++;
    a->line = (int)m->start_mark.line + 1;
    ax->mark = m->start_mark;
    a->fuel = 100000000;
    a->memory_mb = 64;
    a->count = 1;
    a->inbox = 256;
    if (v[0] == NULL)
      return fail(c, m->start_mark, "%s has no 'id'; expected an agent id",
                  what);
    snprintf(field, sizeof field, "%s.id", what);
    if ((rc = get_id(c, v[0], field, &a->id))) return rc;
    snprintf(what, sizeof what, "agent '%s'", a->id);
    snprintf(field, sizeof field, "%s: kind", what);
    if (v[1] && (rc = get_enum(c, v[1], field, kinds, &kind))) return rc;
    a->is_prompt = kind == 1;
    if (a->is_prompt && v[2])
      return fail(c, v[2]->start_mark, "%s has kind: prompt and a 'module'; "
                  "expected one or the other", what);
    if (!a->is_prompt && v[2] == NULL)
      return fail(c, m->start_mark, "%s has no 'module'; expected a .wasm "
                  "path (or kind: prompt)", what);
    snprintf(field, sizeof field, "%s: module", what);
    if (v[2] && (rc = get_path(c, v[2], field, &a->module))) return rc;
    snprintf(field, sizeof field, "%s: config", what);
    if ((rc = read_config(c, v[3], field, a, ax))) return rc;
    snprintf(field, sizeof field, "%s: fuel", what);
    if (v[4] && (rc = get_u64(c, v[4], field, &a->fuel))) return rc;
    snprintf(field, sizeof field, "%s: memory_mb", what);
    if (v[5]) {
      int mb;
      if ((rc = get_int(c, v[5], field, 1, 4096, &mb))) return rc;
      mem = (uint64_t)mb;
      a->memory_mb = (uint32_t)mem;
    }
    snprintf(field, sizeof field, "%s: priority", what);
    if (v[6] &&
        (rc = get_int(c, v[6], field, -1000000, 1000000, &a->priority)))
      return rc;
    snprintf(field, sizeof field, "%s: count", what);
    if (v[7] && (rc = get_int(c, v[7], field, 1, 100000, &a->count)))
      return rc;
    snprintf(field, sizeof field, "%s: inbox", what);
    if (v[8] && (rc = get_int(c, v[8], field, 1, 1000000, &a->inbox)))
      return rc;
    snprintf(field, sizeof field, "%s: after", what);
    if (v[9] && (rc = read_after(c, v[9], field, a, ax))) return rc;
    instances += (uint64_t)a->count;
    if (instances > MAX_INSTANCES)
      return fail(c, m->start_mark,
                  "%s brings the agent instances to %llu; expected at most "
                  "%d in all",
                  what, (unsigned long long)instances, MAX_INSTANCES);
  }
  return COH_OK;
}

static int read_messages(ctx *c, yaml_node_t *seq) {
  static const char *const keys[] = {"to", "from", "body", "tick", NULL};
  coh_scenario *s = c->s;
  yaml_node_item_t *it;
  size_t n;
  int rc;
  if (seq->type != YAML_SEQUENCE_NODE)
    return fail(c, seq->start_mark, "messages is %s; expected a sequence of "
                "mappings", type_name(seq));
  n = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
  if (n == 0) return COH_OK;
  s->messages = coh__calloc(n, sizeof *s->messages);
  c->msg_to_mark = coh__calloc(n, sizeof *c->msg_to_mark);
  if (s->messages == NULL || c->msg_to_mark == NULL) return COH_ENOMEM;
  for (it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
       it++) {
    yaml_node_t *m = node_at(c, *it), *v[4];
    coh_scn_message *msg = &s->messages[s->n_messages];
    char what[48], field[80];
    snprintf(what, sizeof what, "messages[%zu]", s->n_messages);
    rc = take_keys(c, m, what, keys, v);
    if (rc) return rc;
    s->n_messages++;
    msg->line = (int)m->start_mark.line + 1;
    if (v[0] == NULL)
      return fail(c, m->start_mark, "%s has no 'to'; expected an agent "
                  "instance id", what);
    c->msg_to_mark[s->n_messages - 1] = v[0]->start_mark;
    snprintf(field, sizeof field, "%s.to", what);
    if ((rc = get_id(c, v[0], field, &msg->to))) return rc;
    snprintf(field, sizeof field, "%s.from", what);
    if (v[1]) {
      if ((rc = get_id(c, v[1], field, &msg->from))) return rc;
    } else if ((msg->from = coh__strdup("scenario")) == NULL) {
      return COH_ENOMEM;
    }
    if (v[2] == NULL) {
      msg->body = coh__strdup("");
      if (msg->body == NULL) return COH_ENOMEM;
    } else {
      coh__yscalar sv;
      if (v[2]->type == YAML_SCALAR_NODE) coh__yaml_resolve(v[2], &sv);
      if (v[2]->type == YAML_SCALAR_NODE && sv.kind == COH__Y_STR) {
        /* a string as is (NUL bytes kept: body_len says where it ends) */
        size_t len = v[2]->data.scalar.length;
        msg->body = coh__malloc(len + 1);
        if (msg->body == NULL) return COH_ENOMEM;
        memcpy(msg->body, v[2]->data.scalar.value, len);
        msg->body[len] = '\0';
        msg->body_len = len;
      } else {
        json_t *j = NULL;
        c->yj.prec = 0;
        if ((rc = coh__yaml_to_json(&c->yj, v[2], 0, &j))) return rc;
        rc = coh__json_compact(j, c->yj.prec, &msg->body, &msg->body_len);
        json_decref(j);
        if (rc) return rc;
      }
    }
    snprintf(field, sizeof field, "%s.tick", what);
    if (v[3] &&
        (rc = get_i64(c, v[3], field, 0, 1000000000, &msg->tick)))
      return rc;
  }
  return COH_OK;
}

static int read_routes(ctx *c, yaml_node_t *seq) {
  static const char *const keys[] = {"from", "to", "schema", NULL};
  coh_scenario *s = c->s;
  yaml_node_item_t *it;
  size_t n;
  int rc;
  if (seq->type != YAML_SEQUENCE_NODE)
    return fail(c, seq->start_mark, "routes is %s; expected a sequence of "
                "{from, to, schema} mappings", type_name(seq));
  n = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
  if (n == 0) return COH_OK;
  if (n > 4096)
    return fail(c, seq->start_mark, "routes has %zu entries; expected at most 4096", n);
  s->routes = coh__calloc(n, sizeof *s->routes);
  c->route_mark = coh__calloc(n, 2 * sizeof *c->route_mark);
  if (s->routes == NULL || c->route_mark == NULL) return COH_ENOMEM;
  for (it = seq->data.sequence.items.start; it < seq->data.sequence.items.top; it++) {
    yaml_node_t *m = node_at(c, *it), *v[3];
    coh_scn_route *r = &s->routes[s->n_routes];
    char what[48], field[80];
    snprintf(what, sizeof what, "routes[%zu]", s->n_routes);
    if ((rc = take_keys(c, m, what, keys, v))) return rc;
    s->n_routes++;
    r->line = (int)m->start_mark.line + 1;
    if (v[0] == NULL || v[1] == NULL || v[2] == NULL)
      return fail(c, m->start_mark, "%s has no '%s'; expected 'from', 'to' and 'schema'",
                  what, v[0] == NULL ? "from" : v[1] == NULL ? "to" : "schema");
    c->route_mark[2 * (s->n_routes - 1)] = v[0]->start_mark;
    c->route_mark[2 * (s->n_routes - 1) + 1] = v[1]->start_mark;
    snprintf(field, sizeof field, "%s.from", what);
    if ((rc = get_id(c, v[0], field, &r->from))) return rc;
    snprintf(field, sizeof field, "%s.to", what);
    if ((rc = get_id(c, v[1], field, &r->to))) return rc;
    snprintf(field, sizeof field, "%s.schema", what);
    if ((rc = schema_text(c, v[2], field, &r->schema_json, &r->schema_len))) return rc;
  }
  return COH_OK;
}

/* ---- cross-references ---------------------------------------------------- */

/* Agents sorted by id (ties in file order), so that names resolve by
 * binary search: thousands of agents and messages stay cheap. */
static int cmp_by_id(const void *a, const void *b) {
  const coh_scn_agent *x = *(const coh_scn_agent *const *)a;
  const coh_scn_agent *y = *(const coh_scn_agent *const *)b;
  int d = strcmp(x->id, y->id);
  return d ? d : (x < y ? -1 : x > y);
}

/* Index of the agent whose id is exactly name[0..len), or -1. */
static long find_base(ctx *c, const char *name, size_t len) {
  size_t lo = 0, hi = c->s->n_agents;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const char *id = c->by_id[mid]->id;
    int d = strncmp(id, name, len);
    if (d == 0 && id[len] != '\0') d = 1;
    if (d == 0) return (long)(c->by_id[mid] - c->s->agents);
    if (d < 0) lo = mid + 1;
    else hi = mid;
  }
  return -1;
}

/* name as "ID-K" with ID a counted agent and K (decimal, no leading zeros)
 * below its count: that agent's index, or -1. */
static long find_instance(ctx *c, const char *name) {
  const char *dash = strrchr(name, '-'), *p;
  unsigned long num = 0;
  long k;
  if (dash == NULL || dash[1] == '\0') return -1;
  if (dash[1] == '0' && dash[2] != '\0') return -1;
  for (p = dash + 1; *p; p++) {
    if (*p < '0' || *p > '9') return -1;
    num = num * 10 + (unsigned long)(*p - '0');
    if (num > MAX_INSTANCES) return -1;
  }
  k = find_base(c, name, (size_t)(dash - name));
  if (k < 0 || c->s->agents[k].count == 1 ||
      num >= (unsigned long)c->s->agents[k].count)
    return -1;
  return k;
}

/* Resolves name to an agent index.  *is_instance: 1 when name is one
 * instance (a count-1 id or ID-K), 0 when it is the base id of a counted
 * agent.  -1 if nothing matches. */
static long resolve(ctx *c, const char *name, int *is_instance) {
  long k = find_base(c, name, strlen(name));
  if (k >= 0) {
    *is_instance = c->s->agents[k].count == 1;
    return k;
  }
  *is_instance = 1;
  return find_instance(c, name);
}

static int unknown_agent(ctx *c, yaml_mark_t mark, const char *what,
                         const char *name, int base_ok) {
  int inst;
  long k = resolve(c, name, &inst);
  if (k >= 0 && !inst && !base_ok) {
    const coh_scn_agent *a = &c->s->agents[k];
    return fail(c, mark, "%s names '%s', which has %d instances; expected "
                "one of %s-0 .. %s-%d", what, name, a->count, a->id, a->id,
                a->count - 1);
  }
  return fail(c, mark, "%s names unknown agent '%s'; expected an agent "
              "instance id%s", what, name,
              base_ok ? " or an agent id" : "");
}

/* DFS over the 'after' graph (agent → agents it waits for), iterative so
 * that a long chain of agents cannot exhaust the stack. */
static int check_dag(ctx *c) {
  coh_scenario *s = c->s;
  size_t n = s->n_agents, i;
  unsigned char *color = coh__calloc(n, 1); /* 0 new, 1 on stack, 2 done */
  size_t *stk = coh__calloc(n, sizeof *stk), *edge = coh__calloc(n, sizeof
                                                                     *edge);
  int rc = COH_OK;
  if (color == NULL || stk == NULL || edge == NULL) {
    rc = COH_ENOMEM;
    goto done;
  }
  for (i = 0; i < n && rc == COH_OK; i++) {
    size_t top = 0;
    if (color[i]) continue;
    stk[top] = i;
    edge[top] = 0;
    color[i] = 1;
    top = 1;
    while (top > 0) {
      size_t u = stk[top - 1], e = edge[top - 1];
      size_t v;
      if (e == s->agents[u].n_after) {
        color[u] = 2;
        top--;
        continue;
      }
      edge[top - 1]++;
      v = c->aux[u].after_dep[e];
      if (color[v] == 2) continue;
      if (color[v] == 0) {
        color[v] = 1;
        stk[top] = v;
        edge[top] = 0;
        top++;
        continue;
      }
      { /* back edge u → v: the cycle is v .. u on the stack, then v */
        char cyc[320];
        size_t len = 0, j = top;
        while (j > 0 && stk[j - 1] != v) j--;
        for (j = j - 1; j < top && len < sizeof cyc; j++)
          len += (size_t)snprintf(cyc + len, sizeof cyc - len, "%s -> ",
                                  s->agents[stk[j]].id);
        if (len < sizeof cyc)
          snprintf(cyc + len, sizeof cyc - len, "%s", s->agents[v].id);
        rc = fail(c, c->aux[u].after_mark[e],
                  "agent '%s': after '%s' makes a dependency cycle: %s; "
                  "expected the dag to have no cycles",
                  s->agents[u].id, s->agents[u].after[e], cyc);
        break;
      }
    }
  }
done:
  coh__free(color);
  coh__free(stk);
  coh__free(edge);
  return rc;
}

/* Route endpoints name agents; a stock prompt agent that is the `from` of
 * routes gets the routes' schema as its config.schema (one schema: its
 * output goes wherever its routes and replies take it), unless it has its
 * own schema or tools (refused: the constraint would be ambiguous). */
static int check_routes(ctx *c) {
  coh_scenario *s = c->s;
  size_t i, j;
  int inst;
  for (i = 0; i < s->n_routes; i++) {
    char what[48];
    long kf = resolve(c, s->routes[i].from, &inst), kt;
    snprintf(what, sizeof what, "routes[%zu].from", i);
    if (kf < 0) return unknown_agent(c, c->route_mark[2 * i], what, s->routes[i].from, 1);
    if (s->agents[kf].is_prompt && s->agents[kf].count > 1 &&
        strcmp(s->routes[i].from, s->agents[kf].id) != 0)
      return fail(c, c->route_mark[2 * i], "%s names '%s', one instance of the prompt "
                  "agent '%s'; expected '%s' (its instances share one config, which "
                  "the route's schema constrains)", what, s->routes[i].from,
                  s->agents[kf].id, s->agents[kf].id);
    snprintf(what, sizeof what, "routes[%zu].to", i);
    kt = resolve(c, s->routes[i].to, &inst);
    if (kt < 0) return unknown_agent(c, c->route_mark[2 * i + 1], what, s->routes[i].to, 1);
    for (j = 0; j < i; j++)
      if (!strcmp(s->routes[j].from, s->routes[i].from) &&
          !strcmp(s->routes[j].to, s->routes[i].to))
        return fail(c, c->route_mark[2 * i], "routes[%zu] repeats the route %s -> %s of "
                    "routes[%zu] (line %d); expected one schema per route", i,
                    s->routes[i].from, s->routes[i].to, j, s->routes[j].line);
  }
  /* the prompt agents that send over routes: the first such route of each
   * (one pass over the routes, then over those agents) */
  if (s->n_routes == 0) return COH_OK;
  c->route_first = coh__malloc(s->n_agents * sizeof *c->route_first);
  if (c->route_first == NULL) return COH_ENOMEM;
  for (i = 0; i < s->n_agents; i++) c->route_first[i] = -1;
  for (j = 0; j < s->n_routes; j++) {
    long k = resolve(c, s->routes[j].from, &inst), first;
    if (!s->agents[k].is_prompt) continue;
    first = c->route_first[k];
    if (first < 0) {
      c->route_first[k] = (long)j;
    } else if (strcmp(s->routes[j].schema_json, s->routes[first].schema_json) != 0) {
      return fail(c, c->route_mark[2 * j], "routes[%zu] gives the messages of prompt agent "
                  "'%s' another schema than routes[%ld] (line %d); expected one schema "
                  "for all routes from a prompt agent (its output is constrained by it)",
                  j, s->agents[k].id, first, s->routes[first].line);
    }
  }
  for (i = 0; i < s->n_agents; i++) {
    coh_scn_agent *a = &s->agents[i];
    long first = c->route_first[i];
    json_t *cfg;
    char *ncfg;
    size_t clen, n;
    if (first < 0) continue;
    cfg = json_loads(a->config_json, 0, NULL);
    if (cfg == NULL) return COH_ENOMEM;
    n = json_object_get(cfg, "schema") != NULL ? 1 : json_object_get(cfg, "tools") != NULL ? 2 : 0;
    json_decref(cfg);
    if (n)
      return fail(c, c->route_mark[2 * (size_t)first], "routes[%ld] gives the messages of "
                  "prompt agent '%s' a schema, but its config (line %d) has '%s'; expected "
                  "the schema in one place: on the route, or in config.schema without "
                  "a route schema", first, a->id, a->line, n == 1 ? "schema" : "tools");
    /* config.schema := the route's schema: {"schema":S, ...the config} */
    clen = strlen(a->config_json);
    n = clen + s->routes[first].schema_len + 16;
    if ((ncfg = coh__malloc(n)) == NULL) return COH_ENOMEM;
    snprintf(ncfg, n, "{\"schema\":%s%s%s", s->routes[first].schema_json,
             clen > 2 ? "," : "", clen > 2 ? a->config_json + 1 : "}");
    if ((clen = strlen(ncfg)) > PROMPT_CFG_MAX) {
      coh__free(ncfg);
      return fail(c, c->route_mark[2 * (size_t)first], "routes[%ld]: agent '%s''s config "
                  "with the route's schema is %zu bytes as JSON; expected at most %d (the "
                  "stock prompt agent's buffer)", first, a->id, clen, PROMPT_CFG_MAX);
    }
    coh__free(a->config_json);
    a->config_json = ncfg;
  }
  return COH_OK;
}

static int cross_check(ctx *c) {
  coh_scenario *s = c->s;
  size_t i, j;
  int inst, rc;
  c->by_id = coh__calloc(s->n_agents, sizeof *c->by_id);
  if (c->by_id == NULL) return COH_ENOMEM;
  for (i = 0; i < s->n_agents; i++) c->by_id[i] = &s->agents[i];
  qsort(c->by_id, s->n_agents, sizeof *c->by_id, cmp_by_id);
  /* duplicate ids; the later one (in file order) is reported */
  for (i = 1; i < s->n_agents; i++) {
    size_t a = (size_t)(c->by_id[i - 1] - s->agents),
           b = (size_t)(c->by_id[i] - s->agents);
    if (strcmp(s->agents[a].id, s->agents[b].id) == 0)
      return fail(c, c->aux[b].mark, "duplicate agent id '%s' (first at "
                  "line %d); expected unique ids", s->agents[b].id,
                  s->agents[a].line);
  }
  /* a count-1 id that is also an instance of a counted agent (x-1 vs x
   * with count 3); counted agents cannot collide among themselves */
  for (i = 0; i < s->n_agents; i++) {
    long k;
    if (s->agents[i].count != 1) continue;
    k = find_instance(c, s->agents[i].id);
    if (k >= 0)
      return fail(c, c->aux[i].mark, "agent id '%s' is also an instance of "
                  "'%s' (count %d, line %d); expected unique instance ids",
                  s->agents[i].id, s->agents[k].id, s->agents[k].count,
                  s->agents[k].line);
  }
  /* models named by prompt agents */
  for (i = 0; i < s->n_agents; i++) {
    const char *m = c->aux[i].model_ref;
    if (m == NULL) continue;
    for (j = 0; j < s->n_models; j++)
      if (strcmp(s->models[j].name, m) == 0) break;
    if (j == s->n_models)
      return fail(c, c->aux[i].model_mark, "agent '%s': config.model names "
                  "unknown model '%.64s'; expected one of the names in "
                  "'models'%s", s->agents[i].id, m,
                  s->n_models ? "" : " (there are none)");
  }
  /* dag dependencies */
  for (i = 0; i < s->n_agents; i++)
    for (j = 0; j < s->agents[i].n_after; j++) {
      long k = resolve(c, s->agents[i].after[j], &inst);
      char what[96];
      if (k < 0) {
        snprintf(what, sizeof what, "agent '%s': after", s->agents[i].id);
        return unknown_agent(c, c->aux[i].after_mark[j], what,
                             s->agents[i].after[j], 1);
      }
      c->aux[i].after_dep[j] = (size_t)k;
    }
  if ((rc = check_dag(c))) return rc;
  /* messages */
  for (i = 0; i < s->n_messages; i++) {
    long k = resolve(c, s->messages[i].to, &inst);
    if (k < 0 || !inst) {
      char what[48];
      snprintf(what, sizeof what, "messages[%zu].to", i);
      return unknown_agent(c, c->msg_to_mark[i], what, s->messages[i].to, 0);
    }
  }
  if ((rc = check_routes(c))) return rc;
  if (s->stop_on_exit) {
    long k = resolve(c, s->stop_on_exit, &inst);
    if (k < 0 || !inst)
      return unknown_agent(c, c->on_exit_mark, "stop.on_exit",
                           s->stop_on_exit, 0);
  }
  return COH_OK;
}

/* ---- the top level ------------------------------------------------------- */

/* outside: names that are not agents but may be sent to (a message to one
 * is committed and goes nowhere), e.g. `cohort exec`'s "exec"; "*" stands
 * for every name that is no agent instance's.  Read after
 * the agents, so that a name an agent instance has is refused. */
static int read_outside(ctx *c, yaml_node_t *n) {
  yaml_node_item_t *it;
  size_t cnt, i;
  int rc, inst;
  char field[48];
  if (n->type != YAML_SEQUENCE_NODE)
    return fail(c, n->start_mark, "outside is %s; expected a sequence of ids",
                type_name(n));
  cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
  if (cnt > MAX_OUTSIDE)
    return fail(c, n->start_mark, "outside has %zu names; expected at most %d",
                cnt, MAX_OUTSIDE);
  if (cnt == 0) return COH_OK;
  c->s->outside = coh__calloc(cnt, sizeof *c->s->outside);
  if (c->s->outside == NULL) return COH_ENOMEM;
  for (it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
    yaml_node_t *e = node_at(c, *it);
    char *id = NULL;
    snprintf(field, sizeof field, "outside[%zu]", c->s->n_outside);
    if (e->type == YAML_SCALAR_NODE && e->data.scalar.length == 1 &&
        e->data.scalar.value[0] == '*')
      rc = get_str(c, e, field, &id); /* "*": every name that is no agent's */
    else
      rc = get_id(c, e, field, &id);
    if (rc) return rc;
    c->s->outside[c->s->n_outside++] = id;
    if (resolve(c, id, &inst) >= 0)
      return fail(c, e->start_mark, "%s '%s' is an agent's id; expected a name "
                  "that no agent instance has", field, id);
    for (i = 0; i + 1 < c->s->n_outside; i++)
      if (strcmp(c->s->outside[i], id) == 0)
        return fail(c, e->start_mark, "%s '%s' is listed twice; expected "
                    "unique names", field, id);
  }
  return COH_OK;
}

static int read_top(ctx *c, yaml_node_t *root) {
  static const char *const keys[] = {"name", "seed", "models", "policy",
                                     "stop", "checkpoint_every", "agents",
                                     "messages", "routes", "outside",
                                     "default_model", "no_model_error", NULL};
  static const char *const pkeys[] = {"kind", "quantum", NULL};
  static const char *const policies[] = {"round_robin", "priority", "dag",
                                         NULL};
  static const char *const skeys[] = {"max_ticks", "quiescence", "on_exit",
                                      NULL};
  coh_scenario *s = c->s;
  yaml_node_t *v[12], *pv[2], *sv[3];
  int rc;
  if ((rc = take_keys(c, root, "the scenario", keys, v))) return rc;
  if (v[0]) {
    coh__free(s->name);
    s->name = NULL;
    if ((rc = get_str(c, v[0], "name", &s->name))) return rc;
  }
  if (v[1] && (rc = get_u64(c, v[1], "seed", &s->seed))) return rc;
  if (v[3]) {
    int kind;
    if ((rc = take_keys(c, v[3], "policy", pkeys, pv))) return rc;
    if (pv[0]) {
      if ((rc = get_enum(c, pv[0], "policy.kind", policies, &kind)))
        return rc;
      s->policy = (coh_policy)kind;
    }
    if (pv[1] &&
        (rc = get_int(c, pv[1], "policy.quantum", 1, 1000000, &s->quantum)))
      return rc;
  }
  if (v[4]) {
    if ((rc = take_keys(c, v[4], "stop", skeys, sv))) return rc;
    if (sv[0] && (rc = get_i64(c, sv[0], "stop.max_ticks", 1, 1000000000,
                               &s->max_ticks)))
      return rc;
    if (sv[1] && (rc = get_bool(c, sv[1], "stop.quiescence",
                                &s->quiescence)))
      return rc;
    if (sv[2]) {
      c->on_exit_mark = sv[2]->start_mark;
      if ((rc = get_id(c, sv[2], "stop.on_exit", &s->stop_on_exit)))
        return rc;
    }
  }
  if (v[5] && (rc = get_int(c, v[5], "checkpoint_every", 0, 1000000000,
                            &s->checkpoint_every)))
    return rc;
  if (v[2] && (rc = read_models(c, v[2]))) return rc;
  if ((rc = read_agents(c, v[6], root->start_mark))) return rc;
  if (v[7] && (rc = read_messages(c, v[7]))) return rc;
  if (v[8] && (rc = read_routes(c, v[8]))) return rc;
  if ((rc = cross_check(c))) return rc;
  if (v[9] && (rc = read_outside(c, v[9]))) return rc;
  if (v[10]) {
    size_t i;
    if ((rc = get_id(c, v[10], "default_model", &s->default_model))) return rc;
    for (i = 0; i < s->n_models; i++)
      if (strcmp(s->models[i].name, s->default_model) == 0) break;
    if (i == s->n_models)
      return fail(c, v[10]->start_mark, "default_model names unknown model "
                  "'%s'; expected one of the names in 'models'%s",
                  s->default_model, s->n_models ? "" : " (there are none)");
  }
  if (v[11]) {
    if ((rc = get_str(c, v[11], "no_model_error", &s->no_model_error))) return rc;
    if (strlen(s->no_model_error) > NO_MODEL_ERROR_MAX)
      return fail(c, v[11]->start_mark, "no_model_error is %zu bytes; expected "
                  "at most %d", strlen(s->no_model_error), NO_MODEL_ERROR_MAX);
  }
  return COH_OK;
}

/* Translates a libyaml failure into "FILE:LINE:COLUMN: ...". */
static int yaml_failure(ctx *c, const yaml_parser_t *p, const char *text,
                        size_t len) {
  yaml_mark_t m = p->problem_mark;
  const char *problem = p->problem ? p->problem : "malformed YAML";
  if (p->error == YAML_MEMORY_ERROR)
    return coh__err(c->err, COH_ENOMEM, "%s: out of memory reading YAML",
                    c->path);
  if (p->error == YAML_READER_ERROR) {
    /* the reader reports a byte offset, not a mark */
    size_t i, off = p->problem_offset < len ? p->problem_offset : len;
    memset(&m, 0, sizeof m);
    for (i = 0; i < off; i++) {
      if (text[i] == '\n') {
        m.line++;
        m.column = 0;
      } else {
        m.column++;
      }
    }
    return fail(c, m, "%s; expected UTF-8 text", problem);
  }
  if (p->context)
    return fail(c, m, "YAML syntax error: %s %s (line %zu, column %zu)",
                problem, p->context, p->context_mark.line + 1,
                p->context_mark.column + 1);
  return fail(c, m, "YAML syntax error: %s", problem);
}

/* One pass over the parser's events, before the document is loaded, that
 * refuses nesting deeper than COH_SCENARIO_MAX_DEPTH.  libyaml's scanner
 * re-examines every open flow level for each token it reads, so a line of
 * 200,000 '[' makes yaml_parser_load run for hours; counting levels on
 * events stops such a file within the first few hundred bytes.  Syntax
 * errors found here are the ones the load would report. */
static int check_depth(ctx *c, const char *text, size_t len) {
  yaml_parser_t p;
  yaml_event_t ev;
  int depth = 0, rc = COH_OK, end = 0;
  if (!yaml_parser_initialize(&p)) return COH_ENOMEM;
  yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
  while (!end && rc == COH_OK) {
    if (!yaml_parser_parse(&p, &ev)) {
      rc = yaml_failure(c, &p, text, len);
      break;
    }
    switch (ev.type) {
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
      if (++depth > COH_SCENARIO_MAX_DEPTH)
        rc = fail(c, ev.start_mark,
                  "nesting deeper than %d levels; expected at most %d",
                  COH_SCENARIO_MAX_DEPTH, COH_SCENARIO_MAX_DEPTH);
      break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
      depth--;
      break;
    case YAML_STREAM_END_EVENT:
      end = 1;
      break;
    default:
      break;
    }
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&p);
  return rc;
}

/* The file name without folder and .yaml/.yml: the default run name. */
static char *default_name(const char *path) {
  const char *b = strrchr(path, '/');
  size_t n;
  char *out;
  b = b ? b + 1 : path;
  n = strlen(b);
  if (n > 5 && strcmp(b + n - 5, ".yaml") == 0) n -= 5;
  else if (n > 4 && strcmp(b + n - 4, ".yml") == 0) n -= 4;
  if (n == 0) return coh__strdup("scenario");
  out = coh__malloc(n + 1);
  if (out == NULL) return NULL;
  memcpy(out, b, n);
  out[n] = '\0';
  return out;
}

int coh_scenario_parse(const char *text, size_t len, const char *path,
                       const char *base_dir, coh_scenario **out,
                       coh_err *err) {
  yaml_parser_t parser;
  yaml_document_t doc, extra;
  int have_doc = 0, rc = COH_OK;
  coh_scenario *s;
  ctx c;
  size_t i;
  *out = NULL;
  if (text == NULL && len > 0)
    return coh__err(err, COH_EINVAL, "scenario: NULL text");
  if (path == NULL) path = "<scenario>";
  if (base_dir == NULL || base_dir[0] == '\0') base_dir = ".";
  if (len > COH_SCENARIO_MAX_BYTES)
    return coh__err(err, COH_ERANGE,
                    "%s: the scenario is %zu bytes; expected at most %zu",
                    path, len, (size_t)COH_SCENARIO_MAX_BYTES);
  memset(&c, 0, sizeof c);
  c.path = path;
  c.err = err;
  s = coh__calloc(1, sizeof *s);
  if (s == NULL) return coh__err(err, COH_ENOMEM, "%s: out of memory", path);
  c.s = s;
  s->path = coh__strdup(path);
  s->dir = coh__strdup(base_dir);
  s->name = default_name(path);
  s->text = coh__malloc(len + 1);
  if (s->path == NULL || s->dir == NULL || s->name == NULL ||
      s->text == NULL) {
    rc = COH_ENOMEM;
    goto fail_scenario;
  }
  if (len) memcpy(s->text, text, len);
  s->text[len] = '\0';
  s->text_len = len;
  s->policy = COH_POLICY_ROUND_ROBIN;
  s->quantum = 1;
  s->max_ticks = 1000;
  s->quiescence = 1;

  if ((rc = check_depth(&c, s->text, len))) goto fail_scenario;
  if (!yaml_parser_initialize(&parser)) {
    rc = COH_ENOMEM;
    goto fail_scenario;
  }
  yaml_parser_set_input_string(&parser, (const unsigned char *)s->text, len);
  if (!yaml_parser_load(&parser, &doc)) {
    rc = yaml_failure(&c, &parser, s->text, len);
    goto fail_parser;
  }
  have_doc = 1;
  c.doc = &doc;
  c.yj.doc = &doc;
  c.yj.path = path;
  c.yj.err = err;
  c.yj.budget = COH__YJSON_BUDGET +
                (len < SIZE_MAX / 32 ? len * 16 : SIZE_MAX / 2);
  if (yaml_document_get_root_node(&doc) == NULL) {
    yaml_mark_t m;
    memset(&m, 0, sizeof m);
    rc = fail(&c, m, "the scenario is empty; expected a mapping with at "
              "least 'agents'");
    goto fail_parser;
  }
  /* a second document would be silently ignored: refuse it */
  if (!yaml_parser_load(&parser, &extra)) {
    rc = yaml_failure(&c, &parser, s->text, len);
    goto fail_parser;
  }
  if (yaml_document_get_root_node(&extra) != NULL) {
    rc = fail(&c, yaml_document_get_root_node(&extra)->start_mark,
              "a second YAML document; expected one document per scenario");
    yaml_document_delete(&extra);
    goto fail_parser;
  }
  yaml_document_delete(&extra);

  rc = read_top(&c, yaml_document_get_root_node(&doc));

fail_parser:
  if (c.aux) {
    for (i = 0; i < s->n_agents; i++) {
      coh__free(c.aux[i].after_mark);
      coh__free(c.aux[i].after_dep);
      coh__free(c.aux[i].model_ref);
    }
    coh__free(c.aux);
  }
  coh__free(c.msg_to_mark);
  coh__free(c.route_mark);
  coh__free(c.route_first);
  coh__free(c.by_id);
  if (have_doc) yaml_document_delete(&doc);
  yaml_parser_delete(&parser);
fail_scenario:
  if (rc) {
    if (rc == COH_ENOMEM && (err == NULL || err->code != COH_ENOMEM))
      coh__err(err, COH_ENOMEM, "%s: out of memory", path);
    coh_scenario_free(s);
    return rc;
  }
  *out = s;
  return COH_OK;
}

int coh_scenario_load(const char *path, coh_scenario **out, coh_err *err) {
  char *text = NULL, *dir;
  const char *slash;
  size_t len = 0;
  int rc;
  *out = NULL;
  if (path == NULL) return coh__err(err, COH_EINVAL, "scenario: NULL path");
  rc = coh__read_file_max(path, COH_SCENARIO_MAX_BYTES, &text, &len, err);
  if (rc) return rc;
  slash = strrchr(path, '/');
  if (slash == NULL) {
    dir = coh__strdup(".");
  } else {
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    dir = coh__malloc(n + 1);
    if (dir) {
      memcpy(dir, path, n);
      dir[n] = '\0';
    }
  }
  if (dir == NULL) {
    coh__free(text);
    return coh__err(err, COH_ENOMEM, "%s: out of memory", path);
  }
  rc = coh_scenario_parse(text, len, path, dir, out, err);
  coh__free(dir);
  coh__free(text);
  return rc;
}

void coh_scenario_free(coh_scenario *s) {
  size_t i, j;
  if (s == NULL) return;
  for (i = 0; i < s->n_models; i++) {
    coh__free(s->models[i].name);
    coh__free(s->models[i].path);
  }
  coh__free(s->models);
  for (i = 0; i < s->n_agents; i++) {
    coh_scn_agent *a = &s->agents[i];
    coh__free(a->id);
    coh__free(a->module);
    coh__free(a->config_json);
    for (j = 0; j < a->n_after; j++) coh__free(a->after[j]);
    coh__free(a->after);
  }
  coh__free(s->agents);
  for (i = 0; i < s->n_messages; i++) {
    coh__free(s->messages[i].from);
    coh__free(s->messages[i].to);
    coh__free(s->messages[i].body);
  }
  coh__free(s->messages);
  for (i = 0; i < s->n_routes; i++) {
    coh__free(s->routes[i].from);
    coh__free(s->routes[i].to);
    coh__free(s->routes[i].schema_json);
  }
  coh__free(s->routes);
  for (i = 0; i < s->n_outside; i++) coh__free(s->outside[i]);
  coh__free(s->outside);
  coh__free(s->default_model);
  coh__free(s->no_model_error);
  coh__free(s->stop_on_exit);
  coh__free(s->name);
  coh__free(s->text);
  coh__free(s->dir);
  coh__free(s->path);
  coh__free(s);
}

size_t coh_scenario_instances(const coh_scenario *s) {
  size_t i, n = 0;
  if (s == NULL) return 0;
  for (i = 0; i < s->n_agents; i++) n += (size_t)s->agents[i].count;
  return n;
}
