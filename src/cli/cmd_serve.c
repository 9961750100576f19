/*
 * cmd_serve.c — `cohort serve`: the OpenAI-compatible HTTP server
 * (cohort/serve.h, docs/serve.md).  Prints one line "cohort serve:
 * listening on http://ADDR:PORT" on stdout once it accepts requests (a test
 * that asked for port 0 reads the port from it); SIGINT/SIGTERM drains the
 * requests in flight and exits 0.
 */
#include <stdio.h>
#include <string.h>

#include <sys/stat.h>

#include "cli_int.h"
#include "cohort/journal.h"
#include "cohort/serve.h"

static const char usage[] =
    "usage: cohort serve --model DIR [--model DIR]... [options]\n"
    "  --model DIR          a model folder; its id is the folder's base name (repeatable)\n"
    "  --listen ADDR:PORT   where to listen (default 127.0.0.1:8080; port 0: any free one);\n"
    "                       a non-loopback address needs --api-key\n"
    "  --api-key KEY        require 'Authorization: Bearer KEY' on /v1 and /metrics\n"
    "  --max-batch N        requests decoded at once per model (default 16)\n"
    "  --max-queue N        requests waiting for a batch slot before 429 (default 256)\n"
    "  --max-body BYTES     largest request body before 413 (default 4194304)\n"
    "  --journal FILE       journal every admitted request, cancellation and result\n"
    "                       (a new file; `cohort replay FILE` re-executes the session)\n"
    "  --device auto|cpu|cuda   execution provider (default auto)\n"
    "  --threads N          ONNX Runtime intra-op threads (default: all cores)\n";

static void log_line(void *ud, const char *line) {
  (void)ud;
  fprintf(stderr, "%s\n", line);
}

int coh__cmd_serve(int argc, char **argv) {
  const char *dirs[COH_SERVE_MAX_MODELS];
  coh_serve_options o;
  coh_serve *s = NULL;
  coh_err err = {0};
  int i, rc;
  int64_t v;

  coh_serve_options_default(&o);
  for (i = 1; i < argc; i++) {
    const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(usage, stdout);
      return COH_EXIT_OK;
    } else if (!strcmp(a, "--model")) {
      if (val == NULL) return coh__usage_error("serve", "--model needs a folder");
      if (o.n_models == COH_SERVE_MAX_MODELS)
        return coh__usage_error("serve", "at most %d --model folders", COH_SERVE_MAX_MODELS);
      dirs[o.n_models++] = val;
      i++;
    } else if (!strcmp(a, "--listen")) {
      if (val == NULL) return coh__usage_error("serve", "--listen needs ADDR:PORT");
      o.listen = val;
      i++;
    } else if (!strcmp(a, "--api-key")) {
      if (val == NULL || *val == '\0') return coh__usage_error("serve", "--api-key needs a key");
      o.api_key = val;
      i++;
    } else if (!strcmp(a, "--max-batch")) {
      if (val == NULL || coh__parse_i64(val, 1, 1024, &v))
        return coh__usage_error("serve", "--max-batch must be an integer in [1, 1024]");
      o.max_batch = (int)v;
      i++;
    } else if (!strcmp(a, "--max-queue")) {
      if (val == NULL || coh__parse_i64(val, 1, 65536, &v))
        return coh__usage_error("serve", "--max-queue must be an integer in [1, 65536]");
      o.max_queue = (int)v;
      i++;
    } else if (!strcmp(a, "--max-body")) {
      if (val == NULL || coh__parse_i64(val, 1024, (int64_t)1 << 30, &v))
        return coh__usage_error("serve", "--max-body must be an integer in [1024, 2^30]");
      o.max_body = (size_t)v;
      i++;
    } else if (!strcmp(a, "--journal")) {
      if (val == NULL || *val == '\0') return coh__usage_error("serve", "--journal needs a file name");
      o.journal = val;
      i++;
    } else if (!strcmp(a, "--device")) {
      if (val == NULL || coh_device_parse(val, &o.device))
        return coh__usage_error("serve", "--device must be auto, cpu or cuda");
      i++;
    } else if (!strcmp(a, "--threads")) {
      if (val == NULL || coh__parse_i64(val, 1, 1024, &v))
        return coh__usage_error("serve", "--threads must be an integer in [1, 1024]");
      o.threads = (int)v;
      i++;
    } else {
      return coh__usage_error("serve", "unknown argument '%s' (see --help)", a);
    }
  }
  if (o.n_models == 0) return coh__usage_error("serve", "give at least one --model DIR");
  o.model_dirs = dirs;
  o.log = log_line;
  o.should_stop = coh__interrupt_check;
  if (coh__interrupt_install() != 0)
    return coh__runtime_error("serve", "cannot install signal handlers");
  rc = coh_serve_new(&o, &s, &err);
  if (rc != COH_OK) {
    coh__interrupt_uninstall();
    return rc == COH_EINVAL && strstr(err.msg, "--listen") != NULL
               ? coh__usage_error("serve", "%s", err.msg)
               : coh__runtime_error("serve", "%s", err.msg);
  }
  printf("cohort serve: listening on http://%s:%d\n", coh_serve_host(s), coh_serve_port(s));
  fflush(stdout);
  rc = coh_serve_run(s, &err);
  coh_serve_free(s);
  coh__interrupt_uninstall();
  if (rc != COH_OK) return coh__runtime_error("serve", "%s", err.msg);
  fprintf(stderr, "cohort serve: drained and stopped\n");
  return COH_EXIT_OK;
}

/* `cohort replay FILE` of a served session's journal: -1 when FILE is not
 * one (the scenario replay handles it), else the exit status: 0 every
 * result reproduced, 4 a divergence (printed), 1 an error. */
int coh__serve_replay_maybe(int argc, char **argv) {
  const char *path = NULL;
  coh_journal *j = NULL;
  coh_device device = COH_DEVICE_AUTO;
  coh_serve_replay_report rep;
  coh_err err = {0};
  struct stat st;
  int i, rc, threads = 0;
  int64_t v;
  for (i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--device") && i + 1 < argc) {
      if (coh_device_parse(argv[++i], &device)) return -1;
    } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
      if (coh__parse_i64(argv[++i], 1, 1024, &v)) return -1;
      threads = (int)v;
    } else if (argv[i][0] != '-' && path == NULL) {
      path = argv[i];
    } else {
      return -1; /* flags of the scenario replay: its parser reports them */
    }
  }
  if (path == NULL || stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return -1;
  if (coh_journal_open(path, &j, &err) != COH_OK) return -1;
  rc = coh_serve_journal_is(j);
  coh_journal_close(j);
  if (!rc) return -1;
  if ((rc = coh__journal_open_verified("replay", path, &j)) != COH_EXIT_OK) return rc;
  rc = coh_serve_replay(j, device, threads, &rep, &err);
  coh_journal_close(j);
  if (rc != COH_OK) return coh__runtime_error("replay", "%s: %s", path, err.msg);
  if (rep.diverged) {
    printf("diverged at tick %lld, request %llu: %s\n", (long long)rep.tick,
           (unsigned long long)rep.seq, rep.what);
    return 4;
  }
  printf("replayed %llu request(s), %llu result(s) identical\n", (unsigned long long)rep.requests,
         (unsigned long long)rep.results);
  return COH_EXIT_OK;
}
