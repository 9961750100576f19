/* cmd_tokenize.c — `cohort tokenize`: encode JSON lines {"text": ...} to
 * {"ids": [...]} with a tokenizer.json, or decode the other way. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_int.h"
#include "cohort/tokenizer.h"

static const char usage[] =
    "usage: cohort tokenize --tokenizer FILE [--add-special] [--decode "
    "[--keep-special]]\n"
    "\n"
    "Reads JSON lines on stdin and writes one JSON line per input line.\n"
    "  encode (default): {\"text\": \"...\"}  ->  {\"ids\": [...]}\n"
    "  --decode:         {\"ids\": [...]}   ->  {\"text\": \"...\"}\n"
    "\n"
    "  --tokenizer FILE  Hugging Face tokenizer.json (BPE, WordPiece, Unigram)\n"
    "  --add-special     apply the post-processor (e.g. prepend BOS)\n"
    "  --decode          decode ids to text\n"
    "  --keep-special    with --decode: keep special tokens (default: skip,\n"
    "                    as Hugging Face's decode)\n"
    "Blank lines are skipped.  A bad line stops the run with exit status 1.\n";

static int encode_line(const coh_tokenizer *tok, json_t *in, int add_special,
                       size_t lineno) {
  json_t *t = json_object_get(in, "text");
  int32_t *ids = NULL;
  size_t n = 0, i;
  coh_err err;
  if (!json_is_string(t))
    return coh__runtime_error("tokenize",
                              "stdin line %zu: expected {\"text\": string}",
                              lineno);
  if (coh_tokenizer_encode(tok, json_string_value(t), json_string_length(t),
                           add_special, &ids, &n, &err))
    return coh__runtime_error("tokenize", "stdin line %zu: %s", lineno,
                              err.msg);
  fputs("{\"ids\": [", stdout);
  for (i = 0; i < n; i++) printf(i ? ", %d" : "%d", (int)ids[i]);
  fputs("]}\n", stdout);
  coh_free(ids);
  return COH_EXIT_OK;
}

static int decode_line(const coh_tokenizer *tok, json_t *in, int skip,
                       size_t lineno) {
  json_t *arr = json_object_get(in, "ids"), *s;
  int32_t *ids;
  size_t n, i;
  char *text = NULL, *quoted;
  size_t len;
  coh_err err;
  if (!json_is_array(arr))
    return coh__runtime_error("tokenize",
                              "stdin line %zu: expected {\"ids\": [integers]}",
                              lineno);
  n = json_array_size(arr);
  ids = malloc((n ? n : 1) * sizeof *ids);
  if (ids == NULL)
    return coh__runtime_error("tokenize", "stdin line %zu: out of memory",
                              lineno);
  for (i = 0; i < n; i++) {
    json_t *x = json_array_get(arr, i);
    if (!json_is_integer(x) || json_integer_value(x) < INT32_MIN ||
        json_integer_value(x) > INT32_MAX) {
      free(ids);
      return coh__runtime_error(
          "tokenize", "stdin line %zu: ids[%zu] is not a 32-bit integer",
          lineno, i);
    }
    ids[i] = (int32_t)json_integer_value(x);
  }
  if (coh_tokenizer_decode(tok, ids, n, skip, &text, &len, &err)) {
    free(ids);
    return coh__runtime_error("tokenize", "stdin line %zu: %s", lineno,
                              err.msg);
  }
  free(ids);
  s = json_stringn(text, len);
  quoted = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
  json_decref(s);
  coh_free(text);
  if (quoted == NULL)
    return coh__runtime_error("tokenize", "stdin line %zu: out of memory",
                              lineno);
  printf("{\"text\": %s}\n", quoted);
  free(quoted);
  return COH_EXIT_OK;
}

int coh__cmd_tokenize(int argc, char **argv) {
  const char *path = NULL;
  int add_special = 0, decode = 0, keep_special = 0, i, rc = COH_EXIT_OK;
  coh_tokenizer *tok = NULL;
  coh_err err;
  char *line = NULL;
  size_t cap = 0, lineno = 0;
  ssize_t got;
  for (i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      fputs(usage, stdout);
      return COH_EXIT_OK;
    } else if (!strcmp(argv[i], "--tokenizer")) {
      if (i + 1 >= argc)
        return coh__usage_error("tokenize", "--tokenizer needs a FILE");
      path = argv[++i];
    } else if (!strcmp(argv[i], "--add-special")) {
      add_special = 1;
    } else if (!strcmp(argv[i], "--decode")) {
      decode = 1;
    } else if (!strcmp(argv[i], "--keep-special")) {
      keep_special = 1;
    } else {
      return coh__usage_error("tokenize",
                              "unknown argument '%s' (try --help)", argv[i]);
    }
  }
  if (path == NULL)
    return coh__usage_error("tokenize", "--tokenizer FILE is required");
  if (keep_special && !decode)
    return coh__usage_error("tokenize", "--keep-special needs --decode");
  if (add_special && decode)
    return coh__usage_error("tokenize",
                            "--add-special only applies to encoding");
  if (coh_tokenizer_load(path, &tok, &err))
    return coh__runtime_error("tokenize", "%s", err.msg);
  if (coh_tokenizer_notice(tok) != NULL)
    fprintf(stderr, "cohort tokenize: warning: %s\n", coh_tokenizer_notice(tok));
  while ((got = getline(&line, &cap, stdin)) >= 0) {
    json_error_t jerr;
    json_t *in;
    size_t k, n = (size_t)got;
    lineno++;
    for (k = 0; k < n && strchr(" \t\r\n", line[k]) != NULL; k++) {
    }
    if (k == n) continue; /* blank line */
    in = json_loadb(line, n, JSON_ALLOW_NUL, &jerr);
    if (!json_is_object(in)) {
      rc = coh__runtime_error("tokenize", "stdin line %zu: %s", lineno,
                              in ? "expected a JSON object" : jerr.text);
      json_decref(in);
      break;
    }
    rc = decode ? decode_line(tok, in, !keep_special, lineno)
                : encode_line(tok, in, add_special, lineno);
    json_decref(in);
    if (rc) break;
    fflush(stdout);
  }
  free(line);
  coh_tokenizer_free(tok);
  if (rc == COH_EXIT_OK && (ferror(stdout) || fflush(stdout) != 0))
    rc = coh__runtime_error("tokenize", "error writing output");
  return rc;
}
