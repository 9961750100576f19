/*
 * cli_int.h — the CLI's subcommands and shared argument helpers.  Only the
 * CLI exits the process; every subcommand returns its exit status:
 * 0 success, 1 runtime error, 2 usage error (one-line message on stderr),
 * 3 agent trap (exec).
 */
#ifndef COH_CLI_INT_H
#define COH_CLI_INT_H

#include <stddef.h>
#include <stdint.h>

enum { COH_EXIT_OK = 0, COH_EXIT_RUNTIME = 1, COH_EXIT_USAGE = 2,
       COH_EXIT_TRAP = 3 };

typedef int (*coh__cmd_fn)(int argc, char **argv);

int coh__cmd_generate(int argc, char **argv);
int coh__cmd_tokenize(int argc, char **argv);
int coh__cmd_template(int argc, char **argv);
int coh__cmd_grammar(int argc, char **argv);
int coh__cmd_models(int argc, char **argv);
int coh__cmd_exec(int argc, char **argv);
int coh__cmd_inspect(int argc, char **argv);
int coh__cmd_serve(int argc, char **argv);
/* cmd_serve.c: `cohort replay` of a served session's journal; -1 when the
 * file is not one. */
int coh__serve_replay_maybe(int argc, char **argv);
/* inspect_ui.c: serves the monitor dashboard over journal j (borrowed) at
 * listen ("ADDR:PORT") until SIGINT/SIGTERM; returns the exit status. */
struct coh_journal;
int coh__inspect_ui(const char *path, struct coh_journal *j, const char *listen,
                    const char *token);

/* Prints "cohort CMD: MESSAGE" to stderr and returns COH_EXIT_USAGE. */
int coh__usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prints "cohort CMD: MESSAGE" to stderr and returns COH_EXIT_RUNTIME. */
int coh__runtime_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The compiled-module cache folder from $XDG_CACHE_HOME or $HOME (the one
 * place the environment is read), or NULL.  Caller frees with free(). */
char *coh__default_cache_dir(void);
/* rel resolved against the folder of the running cohort binary, if that
 * file exists (e.g. "agents/prompt.wasm"), else NULL.  Caller frees. */
char *coh__exe_relative(const char *rel);

/* journal_open.c: opens the journal at path and verifies its whole chain
 * (coh_journal_verify) before the caller reads anything from it.  Returns
 * COH_EXIT_OK with *j (caller closes), or prints "cohort CMD: ..." naming
 * the first bad record and returns COH_EXIT_RUNTIME. */
int coh__journal_open_verified(const char *cmd, const char *path,
                               struct coh_journal **j);
/* The same for `cohort resume`: the chain is verified from the checkpoint
 * the resume will restore (coh_journal_verify_from), so that its cost is
 * bounded by what lies after that checkpoint; the whole chain when `whole`
 * (resume --full), when there is no resume state, or when the run is
 * marked complete. */
int coh__journal_open_resumable(const char *cmd, const char *path, int whole,
                                struct coh_journal **j);
/* run_journal.c: creates a run's journal at path holding rec's genesis and
 * blobs and the scenario's path and absolute folder (meta, outside the
 * chain).  *j: caller closes. */
struct coh_err;
struct coh_scenario;
struct coh_run_record;
int coh__create_journal(const char *path, const struct coh_scenario *s,
                        const struct coh_run_record *rec,
                        struct coh_journal **j, struct coh_err *err);
/* signals.c: SIGINT/SIGTERM and a closed stdout during run and resume.
 * install: handlers for SIGINT and SIGTERM, SIGPIPE ignored, and a watcher
 * thread; 0, or -1 if no pipe or thread could be made.  The first signal
 * makes coh__interrupt_pending() return it (and posts a STOP control to the
 * monitor given to coh__interrupt_monitor, which may be NULL); a second one
 * exits the process at once with status 128 + signal.  request: the same
 * as a first signal, from ordinary code (a write error on stdout passes
 * SIGPIPE).  check: coh_run_options.interrupted.  uninstall: restores the
 * previous dispositions and ends the thread. */
struct coh_monitor;
int coh__interrupt_install(void);
void coh__interrupt_uninstall(void);
void coh__interrupt_monitor(struct coh_monitor *m);
int coh__interrupt_pending(void);
void coh__interrupt_request(int sig);
int coh__interrupt_check(void *ud);

int coh__cmd_run(int argc, char **argv);
int coh__cmd_replay(int argc, char **argv);
int coh__cmd_resume(int argc, char **argv);

/* Strict numeric parsing of a flag's value: the whole string must parse and
 * lie in [lo, hi].  Returns 0 on success, -1 otherwise. */
int coh__parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out);
int coh__parse_f64(const char *s, double lo, double hi, double *out);
/* A memory size: "N" MiB or "NK" KiB, at most 1 TiB; *out in KiB. */
int coh__parse_size_kib(const char *s, int64_t *out);

#endif /* COH_CLI_INT_H */
