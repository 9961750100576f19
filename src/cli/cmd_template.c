/* cmd_template.c — `cohort template`: render a model's chat template for
 * JSON lines {"messages": [...], "add_generation_prompt": true, ...} into
 * {"text": "..."}, or {"error": "..."} where the template raises. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_int.h"
#include "cohort/chat.h"

static const char usage[] =
    "usage: cohort template --config FILE [--tokenizer-config FILE]\n"
    "\n"
    "Renders a chat template for each JSON line on stdin:\n"
    "  {\"messages\": [...], \"add_generation_prompt\": true, \"tools\": [...],\n"
    "   ...any other variable}  ->  {\"text\": \"...\"}\n"
    "A template that fails at render time (raise_exception, a runtime error)\n"
    "gives {\"error\": \"...\"} for that line and the run goes on.\n"
    "\n"
    "  --config FILE     a model folder, a tokenizer_config.json, a\n"
    "                    chat_template.json or a .jinja file\n"
    "  --tokenizer-config FILE\n"
    "                    with a .jinja or chat_template.json: the\n"
    "                    tokenizer_config.json whose special tokens\n"
    "                    (bos_token, eos_token, ...) become variables\n"
    "Blank lines are skipped.  A malformed line stops the run with exit\n"
    "status 1, naming the line.\n";

static int print_json_field(const char *field, const char *s, size_t n) {
  json_t *j = json_stringn(s, n);
  char *q = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
  json_decref(j);
  if (q == NULL) return -1;
  printf("{\"%s\": %s}\n", field, q);
  free(q);
  return 0;
}

int coh__cmd_template(int argc, char **argv) {
  const char *path = NULL, *cfg = NULL;
  coh_chat_template *t = NULL;
  coh_err err;
  char *line = NULL;
  size_t cap = 0, lineno = 0;
  ssize_t got;
  int i, rc = COH_EXIT_OK;
  struct stat st;
  for (i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      fputs(usage, stdout);
      return COH_EXIT_OK;
    } else if (!strcmp(argv[i], "--config")) {
      if (i + 1 >= argc) return coh__usage_error("template", "--config needs a FILE");
      path = argv[++i];
    } else if (!strcmp(argv[i], "--tokenizer-config")) {
      if (i + 1 >= argc)
        return coh__usage_error("template", "--tokenizer-config needs a FILE");
      cfg = argv[++i];
    } else {
      return coh__usage_error("template", "unknown argument '%s' (try --help)", argv[i]);
    }
  }
  if (path == NULL) return coh__usage_error("template", "--config FILE is required");
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    if (cfg) return coh__usage_error("template", "--tokenizer-config does not apply to a folder");
    if (coh_chat_template_load_dir(path, &t, &err))
      return coh__runtime_error("template", "%s", err.msg);
    if (t == NULL)
      return coh__runtime_error("template",
                                "%s: no chat template (tokenizer_config.json, "
                                "chat_template.jinja, chat_template.json)", path);
  } else if (coh_chat_template_load_file(path, cfg, &t, &err)) {
    return coh__runtime_error("template", "%s", err.msg);
  }
  while ((got = getline(&line, &cap, stdin)) >= 0) {
    json_error_t jerr;
    json_t *in;
    size_t k, n = (size_t)got, tl;
    char *text;
    lineno++;
    for (k = 0; k < n && strchr(" \t\r\n", line[k]) != NULL; k++) {
    }
    if (k == n) continue;
    in = json_loadb(line, n, 0, &jerr);
    if (!json_is_object(in)) {
      rc = coh__runtime_error("template", "stdin line %zu: %s", lineno,
                              in ? "expected a JSON object" : jerr.text);
      json_decref(in);
      break;
    }
    json_decref(in);
    if (coh_chat_render(t, line, n, &text, &tl, &err) == 0) {
      rc = print_json_field("text", text, tl);
      coh_free(text);
    } else if (err.code == COH_ERAISED || err.code == COH_EFORMAT ||
               err.code == COH_ERANGE) {
      rc = print_json_field("error", err.msg, strlen(err.msg));
    } else {
      rc = coh__runtime_error("template", "stdin line %zu: %s", lineno, err.msg);
      break;
    }
    if (rc) {
      rc = coh__runtime_error("template", "stdin line %zu: out of memory", lineno);
      break;
    }
    fflush(stdout);
  }
  free(line);
  coh_chat_template_free(t);
  if (rc == COH_EXIT_OK && (ferror(stdout) || fflush(stdout) != 0))
    rc = coh__runtime_error("template", "error writing output");
  return rc;
}
