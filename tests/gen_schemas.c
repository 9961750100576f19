/*
 * gen_schemas.c — the generation half of tests/grammar_gen_ajv.sh (not a
 * test by itself): generates under every JSON Schema of a JSON-lines file
 * ({"name", "schema"} a line) with one engine, batched, and writes one JSON
 * line per schema:
 *   {"name", "status": "complete" | "incomplete" | "unsupported" | "refused"
 *              | "not_utf8",
 *    "finish", "tokens", "output", "schema", "error"}
 * complete: the request finished with EOS (the grammar accepted the output);
 * incomplete: it reached max_tokens first; unsupported: the grammar engine
 * reported an unsupported feature (COH_EUNSUPPORTED); refused: any other
 * compile error (e.g. a size limit), with its message.
 *
 *   gen_schemas MODEL_DIR SCHEMAS.jsonl OUT.jsonl MAX_TOKENS BATCH
 *
 * Greedy decoding, prompt = the model's BOS id.  Exit 0 when every line was
 * processed (whatever the statuses), 1 on an engine error or bad input.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/grammar.h"
#include "cohort/infer.h"

#define MAX_SCHEMAS 1000
#define MAX_LINE (1 << 22)

typedef struct item {
  char *name;
  json_t *schema;
  coh_grammar *g;
  const char *status;
  char error[512];
  char *text;
  size_t len, cap;
  int tokens;
  coh_finish finish;
} item;

static void on_token(void *user, const coh_token_event *ev) {
  item *it = user;
  if (ev->token >= 0) it->tokens++;
  if (ev->text_len > 0) {
    if (it->len + ev->text_len + 1 > it->cap) {
      size_t nc = (it->len + ev->text_len + 1) * 2;
      char *n = realloc(it->text, nc);
      if (n == NULL) return; /* reported as a short output: fails to validate */
      it->text = n;
      it->cap = nc;
    }
    memcpy(it->text + it->len, ev->text, ev->text_len);
    it->len += ev->text_len;
    it->text[it->len] = '\0';
  }
  if (ev->finish != COH_FINISH_NONE) it->finish = ev->finish;
}

int main(int argc, char **argv) {
  static item items[MAX_SCHEMAS];
  static char line[MAX_LINE];
  coh_model_options mo;
  coh_model *m = NULL;
  coh_engine *e = NULL;
  coh_err err;
  FILE *in, *out;
  int n = 0, i, max_tokens, batch, rc = 1, guard = 0;
  int32_t prompt[1];

  if (argc != 6) {
    fprintf(stderr, "usage: gen_schemas MODEL_DIR SCHEMAS.jsonl OUT.jsonl MAX_TOKENS BATCH\n");
    return 2;
  }
  max_tokens = atoi(argv[4]);
  batch = atoi(argv[5]);
  if (max_tokens < 1 || batch < 1 || batch > 1024) {
    fprintf(stderr, "gen_schemas: bad MAX_TOKENS or BATCH\n");
    return 2;
  }
  in = fopen(argv[2], "r");
  if (in == NULL) {
    fprintf(stderr, "gen_schemas: cannot open %s\n", argv[2]);
    return 1;
  }
  while (n < MAX_SCHEMAS && fgets(line, sizeof line, in)) {
    json_error_t je;
    json_t *rec = json_loads(line, 0, &je);
    char *text;
    if (rec == NULL || !json_is_string(json_object_get(rec, "name")) ||
        json_object_get(rec, "schema") == NULL) {
      fprintf(stderr, "gen_schemas: %s:%d: not {\"name\", \"schema\"}\n", argv[2], n + 1);
      fclose(in);
      return 1;
    }
    items[n].name = strdup(json_string_value(json_object_get(rec, "name")));
    items[n].schema = json_incref(json_object_get(rec, "schema"));
    json_decref(rec);
    text = json_dumps(items[n].schema, JSON_COMPACT | JSON_ENCODE_ANY);
    if (items[n].name == NULL || text == NULL) {
      fprintf(stderr, "gen_schemas: out of memory\n");
      fclose(in);
      return 1;
    }
    {
      /* the generation form, as llm requests and cohort generate use it */
      static const coh_grammar_options gen_opts = {.ordered_objects = 1};
      int crc = coh_grammar_from_json_schema_opts(text, strlen(text), items[n].name, &gen_opts,
                                                  &items[n].g, &err);
      if (crc != COH_OK) {
        items[n].status = crc == COH_EUNSUPPORTED ? "unsupported" : "refused";
        snprintf(items[n].error, sizeof items[n].error, "%s", err.msg);
        items[n].g = NULL;
      }
    }
    free(text);
    n++;
  }
  fclose(in);

  coh_model_options_default(&mo);
  mo.device = COH_DEVICE_CPU;
  if (coh_model_open(argv[1], &mo, &m, &err) || coh_engine_new(m, batch, &e, &err)) {
    fprintf(stderr, "gen_schemas: %s\n", err.msg);
    goto done;
  }
  {
    const coh_model_info *info = coh_model_get_info(m);
    prompt[0] = info->bos_id >= 0 ? info->bos_id : 1;
  }
  for (i = 0; i < n; i++) {
    coh_request r;
    uint64_t id;
    if (items[i].g == NULL) continue;
    coh_request_default(&r);
    r.prompt = prompt;
    r.n_prompt = 1;
    r.max_tokens = max_tokens;
    r.grammar = items[i].g;
    r.on_token = on_token;
    r.user = &items[i];
    if (coh_engine_submit(e, &r, &id, &err)) {
      fprintf(stderr, "gen_schemas: submit %s: %s\n", items[i].name, err.msg);
      goto done;
    }
  }
  while (coh_engine_busy(e) && guard++ < 10000000)
    if (coh_engine_step(e, &err)) {
      fprintf(stderr, "gen_schemas: step: %s\n", err.msg);
      goto done;
    }
  out = fopen(argv[3], "w");
  if (out == NULL) {
    fprintf(stderr, "gen_schemas: cannot write %s\n", argv[3]);
    goto done;
  }
  for (i = 0; i < n; i++) {
    json_t *o = json_object();
    char *s;
    if (items[i].g != NULL)
      items[i].status = items[i].finish == COH_FINISH_EOS ? "complete" : "incomplete";
    json_object_set_new(o, "name", json_string(items[i].name));
    json_object_set_new(o, "status", json_string(items[i].status));
    json_object_set_new(o, "finish", json_string(coh_finish_name(items[i].finish)));
    json_object_set_new(o, "tokens", json_integer(items[i].tokens));
    {
      /* JSON text is UTF-8: an output that is not cannot be valid */
      json_t *txt = json_stringn(items[i].text ? items[i].text : "", items[i].len);
      if (txt == NULL) {
        json_object_set_new(o, "status", json_string("not_utf8"));
        txt = json_string("");
      }
      json_object_set_new(o, "output", txt);
    }
    json_object_set(o, "schema", items[i].schema);
    json_object_set_new(o, "error", json_string(items[i].error));
    s = json_dumps(o, JSON_COMPACT);
    if (s) fprintf(out, "%s\n", s);
    free(s);
    json_decref(o);
  }
  if (fclose(out) == 0) rc = 0;
done:
  coh_engine_free(e);
  for (i = 0; i < n; i++) {
    coh_grammar_free(items[i].g);
    json_decref(items[i].schema);
    free(items[i].name);
    free(items[i].text);
  }
  coh_model_close(m);
  return rc;
}
