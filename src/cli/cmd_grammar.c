/* cmd_grammar.c — `cohort grammar`: checks texts against a constraint (a
 * JSON Schema or an EBNF grammar) token by token, the way MaskBench does:
 * each text is tokenized (no special tokens) and every token must be in
 * the mask and accepted. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_int.h"
#include "cohort/grammar.h"
#include "cohort/tokenizer.h"
#include "util/util_int.h"

static const char usage[] =
    "usage: cohort grammar (--json-schema FILE | --grammar FILE | "
    "--json-object) --tokenizer FILE\n"
    "\n"
    "Reads JSON lines {\"text\": \"...\"} on stdin, tokenizes each text\n"
    "(without special tokens) and walks the tokens through the grammar's\n"
    "masks.  Writes one line per text:\n"
    "  {\"accepted\": bool, \"complete\": bool, \"rejected_at\": index|null}\n"
    "accepted: every token was in the mask and accepted; complete: the\n"
    "text is a whole sentence of the grammar; rejected_at: the index of\n"
    "the first token refused.\n"
    "\n"
    "  --json-schema FILE  a JSON Schema (docs/grammar.md lists keywords)\n"
    "  --grammar FILE      an EBNF/GBNF grammar, start rule 'root'\n"
    "  --json-object       any JSON object\n"
    "  --tokenizer FILE    Hugging Face tokenizer.json\n"
    "Blank lines are skipped.  A bad line stops the run with exit status 1.\n";

static int check_line(const coh_tokenizer *tok, const coh_grammar *g,
                      const coh_grammar_vocab *v, uint32_t *mask, json_t *in,
                      size_t lineno) {
  json_t *t = json_object_get(in, "text");
  int32_t *ids = NULL;
  size_t n = 0, i;
  long rejected = -1;
  coh_grammar_state *s = NULL;
  coh_err err;
  int rc = COH_EXIT_OK;
  if (!json_is_string(t))
    return coh__runtime_error("grammar",
                              "stdin line %zu: expected {\"text\": string}",
                              lineno);
  if (coh_tokenizer_encode(tok, json_string_value(t), json_string_length(t),
                           0, &ids, &n, &err))
    return coh__runtime_error("grammar", "stdin line %zu: %s", lineno,
                              err.msg);
  if (coh_grammar_state_new(g, v, &s, &err)) {
    coh_free(ids);
    return coh__runtime_error("grammar", "stdin line %zu: %s", lineno,
                              err.msg);
  }
  for (i = 0; i < n; i++) {
    int in_mask;
    if (coh_grammar_state_mask(s, mask, &err)) {
      rc = coh__runtime_error("grammar", "stdin line %zu: %s", lineno,
                              err.msg);
      goto done;
    }
    in_mask = (mask[ids[i] >> 5] >> (ids[i] & 31)) & 1;
    if (!in_mask || coh_grammar_state_accept(s, ids[i], &err)) {
      rejected = (long)i;
      break;
    }
  }
  if (rejected < 0)
    printf("{\"accepted\": true, \"complete\": %s, \"rejected_at\": null}\n",
           coh_grammar_state_is_complete(s) ? "true" : "false");
  else
    printf("{\"accepted\": false, \"complete\": false, \"rejected_at\": "
           "%ld}\n",
           rejected);
done:
  coh_grammar_state_free(s);
  coh_free(ids);
  return rc;
}

int coh__cmd_grammar(int argc, char **argv) {
  const char *schema = NULL, *gpath = NULL, *tpath = NULL;
  int json_object = 0, i, rc = COH_EXIT_OK;
  coh_tokenizer *tok = NULL;
  coh_grammar *g = NULL;
  coh_grammar_vocab *v = NULL;
  uint32_t *mask = NULL;
  coh_err err;
  char *line = NULL, *text = NULL;
  size_t cap = 0, lineno = 0, tlen = 0;
  ssize_t got;
  int32_t eos[4];
  size_t n_eos = 0;
  static const char *eos_names[] = {"</s>", "<|endoftext|>", "<|eot_id|>",
                                    "<|im_end|>"};
  for (i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      fputs(usage, stdout);
      return COH_EXIT_OK;
    } else if (!strcmp(argv[i], "--json-schema") && i + 1 < argc) {
      schema = argv[++i];
    } else if (!strcmp(argv[i], "--grammar") && i + 1 < argc) {
      gpath = argv[++i];
    } else if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc) {
      tpath = argv[++i];
    } else if (!strcmp(argv[i], "--json-object")) {
      json_object = 1;
    } else {
      return coh__usage_error("grammar",
                              "unknown argument or missing FILE: '%s' (try "
                              "--help)",
                              argv[i]);
    }
  }
  if ((schema != NULL) + (gpath != NULL) + json_object != 1)
    return coh__usage_error(
        "grammar", "give exactly one of --json-schema, --grammar, --json-object");
  if (tpath == NULL)
    return coh__usage_error("grammar", "--tokenizer FILE is required");
  if (schema || gpath) {
    const char *p = schema ? schema : gpath;
    if (coh__read_file_max(p, (size_t)16 << 20, &text, &tlen, &err))
      return coh__runtime_error("grammar", "%s", err.msg);
    rc = schema ? coh_grammar_from_json_schema(text, tlen, p, &g, &err)
                : coh_grammar_from_ebnf(text, tlen, p, &g, &err);
    coh__free(text);
  } else {
    rc = coh_grammar_any_json_object(&g, &err);
  }
  if (rc) return coh__runtime_error("grammar", "%s", err.msg);
  if (coh_tokenizer_load(tpath, &tok, &err)) {
    coh_grammar_free(g);
    return coh__runtime_error("grammar", "%s", err.msg);
  }
  for (i = 0; i < 4; i++) {
    int32_t id = coh_tokenizer_token_id(tok, eos_names[i]);
    if (id >= 0) eos[n_eos++] = id;
  }
  if (coh_grammar_vocab_new(tok, eos, n_eos, &v, &err)) {
    rc = coh__runtime_error("grammar", "%s", err.msg);
    goto out;
  }
  mask = calloc((coh_grammar_vocab_size(v) + 31) / 32 + 1, 4);
  if (!mask) {
    rc = coh__runtime_error("grammar", "out of memory");
    goto out;
  }
  while ((got = getline(&line, &cap, stdin)) >= 0) {
    json_error_t jerr;
    json_t *in;
    size_t k, n = (size_t)got;
    lineno++;
    for (k = 0; k < n && strchr(" \t\r\n", line[k]) != NULL; k++) {
    }
    if (k == n) continue;
    in = json_loadb(line, n, JSON_ALLOW_NUL, &jerr);
    if (!json_is_object(in)) {
      rc = coh__runtime_error("grammar", "stdin line %zu: %s", lineno,
                              in ? "expected a JSON object" : jerr.text);
      json_decref(in);
      break;
    }
    rc = check_line(tok, g, v, mask, in, lineno);
    json_decref(in);
    if (rc) break;
    fflush(stdout);
  }
out:
  free(line);
  free(mask);
  coh_grammar_vocab_free(v);
  coh_grammar_free(g);
  coh_tokenizer_free(tok);
  return rc;
}
