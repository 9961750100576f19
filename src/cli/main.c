/* main.c — the `cohort` command: dispatches to one subcommand per file. */
#include <stdio.h>
#include <string.h>

#include "cli_int.h"
#include "cohort/common.h"

static const struct {
  const char *name;
  coh__cmd_fn fn;
  const char *summary;
} commands[] = {
    /* one line per subcommand, each implemented in its own cmd_*.c */
    {"generate", coh__cmd_generate, "generate text from a model"},
    {"models", coh__cmd_models, "validate a model folder and describe it"},
    {"tokenize", coh__cmd_tokenize, "encode/decode JSON lines with a tokenizer.json"},
    {"template", coh__cmd_template, "render a model's chat template for JSON lines"},
    {"grammar", coh__cmd_grammar, "check JSON lines against a JSON Schema or grammar, token by token"},
    {"exec", coh__cmd_exec, "run one agent module headless"},
    {"run", coh__cmd_run, "run a scenario, journaled; prints the run digest"},
    {"replay", coh__cmd_replay, "re-execute a journaled run and report the first divergence"},
    {"resume", coh__cmd_resume, "continue a killed run from its journal"},
    {"inspect", coh__cmd_inspect, "print or verify a run journal's transcript"},
    {"serve", coh__cmd_serve, "serve models over the OpenAI HTTP API (docs/serve.md)"},
};

static void print_usage(FILE *f) {
  size_t i;
  fprintf(f, "usage: cohort COMMAND [ARGS]   (cohort %s)\n\ncommands:\n",
          coh_version());
  for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf(f, "  %-10s %s\n", "version", "print the version");
  fprintf(f, "\nRun `cohort COMMAND --help` for a command's flags.\n");
}

int main(int argc, char **argv) {
  size_t i;
  if (argc < 2) {
    print_usage(stderr);
    return COH_EXIT_USAGE;
  }
  if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
      !strcmp(argv[1], "help")) {
    print_usage(stdout);
    return COH_EXIT_OK;
  }
  if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
    printf("cohort %s\n", coh_version());
    return COH_EXIT_OK;
  }
  for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (!strcmp(argv[1], commands[i].name))
      return commands[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "cohort: unknown command '%s' (try `cohort --help`)\n",
          argv[1]);
  return COH_EXIT_USAGE;
}
