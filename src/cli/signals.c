/*
 * signals.c — how `cohort run` and `cohort resume` are interrupted.
 *
 * The first SIGINT or SIGTERM asks the run to stop at the next tick
 * boundary: the tick in progress finishes and commits, the journal is
 * closed, and the command says where to continue.  A second signal exits at
 * once (the journal is SQLite in WAL mode: a transaction cut short is rolled
 * back when the file is next opened, so the journal keeps every committed
 * tick).  A closed stdout (EPIPE, e.g. `cohort run x.yaml | head -1`) stops
 * the run the same way as a first signal; SIGPIPE is ignored so that the
 * write error is seen instead of the process being killed.
 *
 * The handler does only async-signal-safe work: an atomic counter, a byte
 * written to a pipe, and on the second signal write(2) and _exit(2).  A
 * watcher thread reads the pipe and does the rest in an ordinary thread:
 * it records which signal asked to stop and posts a STOP control to the
 * dashboard, so that a run paused from the dashboard (asleep waiting for a
 * control) wakes up too.
 *
 * Signal dispositions are process state, so this file keeps the only
 * process-wide state of the CLI; the library itself has none.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "cli_int.h"
#include "cohort/monitor.h"

static int pipe_fd[2] = {-1, -1};
static _Atomic int n_signals; /* SIGINT/SIGTERM received */
static _Atomic int pending;   /* the first signal that asked to stop; 0: none */
static pthread_t watcher;
static int watching;
static pthread_mutex_t mon_lock = PTHREAD_MUTEX_INITIALIZER;
static coh_monitor *mon; /* under mon_lock */
static struct sigaction old_int, old_term, old_pipe;

static void on_signal(int sig) {
  int saved = errno;
  unsigned char b = (unsigned char)sig;
  if (atomic_fetch_add(&n_signals, 1) > 0) {
    static const char msg[] =
        "cohort: second signal: exiting now (the journal keeps every committed tick)\n";
    (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
    _exit(128 + sig);
  }
  (void)!write(pipe_fd[1], &b, 1);
  errno = saved;
}

/* Records the first reason to stop and wakes a paused run. */
static void request(int sig) {
  int none = 0;
  atomic_compare_exchange_strong(&pending, &none, sig);
  pthread_mutex_lock(&mon_lock);
  if (mon != NULL) (void)coh_monitor_post_control(mon, COH_CONTROL_STOP);
  pthread_mutex_unlock(&mon_lock);
}

static void *watch(void *arg) {
  (void)arg;
  for (;;) {
    unsigned char b;
    ssize_t n = read(pipe_fd[0], &b, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n != 1 || b == 0) return NULL; /* uninstall */
    request(b);
  }
}

int coh__interrupt_install(void) {
  struct sigaction sa;
  if (pipe(pipe_fd) != 0) return -1;
  atomic_store(&n_signals, 0);
  atomic_store(&pending, 0);
  if (pthread_create(&watcher, NULL, watch, NULL) != 0) {
    close(pipe_fd[0]);
    close(pipe_fd[1]);
    pipe_fd[0] = pipe_fd[1] = -1;
    return -1;
  }
  watching = 1;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  sa.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &sa, &old_pipe);
  return 0;
}

void coh__interrupt_uninstall(void) {
  unsigned char zero = 0;
  if (!watching) return;
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  sigaction(SIGPIPE, &old_pipe, NULL);
  (void)!write(pipe_fd[1], &zero, 1);
  pthread_join(watcher, NULL);
  watching = 0;
  close(pipe_fd[0]);
  close(pipe_fd[1]);
  pipe_fd[0] = pipe_fd[1] = -1;
  coh__interrupt_monitor(NULL);
}

void coh__interrupt_monitor(coh_monitor *m) {
  pthread_mutex_lock(&mon_lock);
  mon = m;
  if (m != NULL && atomic_load(&pending) != 0)
    (void)coh_monitor_post_control(m, COH_CONTROL_STOP);
  pthread_mutex_unlock(&mon_lock);
}

int coh__interrupt_pending(void) { return atomic_load(&pending); }

void coh__interrupt_request(int sig) { request(sig); }

int coh__interrupt_check(void *ud) {
  (void)ud;
  return atomic_load(&pending) != 0;
}
