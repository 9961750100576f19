/*
 * rt.c — cohort's own implementation of the wasm-rt support that wasm2c
 * output needs (reached through the glue's ops table): linear memories with
 * guard pages, funcref tables with caps, and traps.
 *
 * Traps are per thread.  Each thread that runs agents has a coh__thread (in
 * thread-local storage, created on first use) holding the jump target of the
 * call in progress, the agent it is running and an alternate signal stack.
 * A trap raised by generated code (wasm_rt_trap) or by host code
 * (coh__trap) long-jumps to the calling thread's target; a SIGSEGV/SIGBUS
 * whose address lies in the running agent's memory reservation does the same
 * from the signal handler.  Any other fault is handed to the previously
 * installed handler, or the default action, so genuine bugs still crash.
 *
 * The signal handlers are the one piece of process-wide state: a signal
 * disposition is per process by nature.  They are installed once
 * (pthread_once) and never removed.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "agent_int.h"

static _Thread_local coh__thread *tls_thread;

static pthread_once_t handlers_once = PTHREAD_ONCE_INIT;
static pthread_key_t thread_key;
static struct sigaction old_segv, old_bus;
static int handlers_ok;

/* ---- fault handling -------------------------------------------------------- */

static void pass_on(int sig, siginfo_t *si, void *uc) {
  struct sigaction *old = sig == SIGBUS ? &old_bus : &old_segv;
  if ((old->sa_flags & SA_SIGINFO) && old->sa_sigaction != NULL) {
    old->sa_sigaction(sig, si, uc);
    return;
  }
  if (!(old->sa_flags & SA_SIGINFO) && old->sa_handler != SIG_DFL &&
      old->sa_handler != SIG_IGN) {
    old->sa_handler(sig);
    return;
  }
  /* Default action: reinstate it; returning re-executes the faulting
   * instruction, which now kills the process with the right signal. */
  signal(sig, SIG_DFL);
}

static void on_fault(int sig, siginfo_t *si, void *uc) {
  coh__thread *t = tls_thread;
  if (t != NULL && t->in_wasm && t->jb != NULL && t->cur != NULL &&
      t->cur->mem_base != NULL) {
    uint8_t *a = (uint8_t *)si->si_addr;
    uint8_t *lo = t->cur->mem_base;
    if (a >= lo && a < lo + COH__MEM_RESERVE) {
      sigset_t set;
      t->in_wasm = 0;
      /* The jump skips the handler's return, so make sure the fault signals
       * are unblocked (SA_NODEFER normally sees to it; sanitizer runtimes
       * that wrap handlers may block them). */
      sigemptyset(&set);
      sigaddset(&set, SIGSEGV);
      sigaddset(&set, SIGBUS);
      pthread_sigmask(SIG_UNBLOCK, &set, NULL);
      siglongjmp(*t->jb, COH_TRAP_OOB);
    }
  }
  pass_on(sig, si, uc);
}

static void thread_free(void *p) {
  coh__thread *t = p;
  stack_t ss;
  if (t == NULL) return;
  if (t->altstack != NULL) {
    memset(&ss, 0, sizeof ss);
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, NULL);
    munmap(t->altstack, t->altstack_size);
  }
  coh__free(t);
}

static void install_handlers(void) {
  struct sigaction sa;
  if (pthread_key_create(&thread_key, thread_free) != 0) return;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_fault;
  /* SA_NODEFER: we leave the handler by siglongjmp without restoring the
   * signal mask (cheap sigsetjmp(…, 0) on every call), so the signal must
   * not be blocked while the handler runs. */
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSEGV, &sa, &old_segv) != 0) return;
  if (sigaction(SIGBUS, &sa, &old_bus) != 0) return;
  handlers_ok = 1;
}

coh__thread *coh__thread_get(void) {
  coh__thread *t = tls_thread;
  stack_t ss;
  if (t != NULL) return t;
  pthread_once(&handlers_once, install_handlers);
  if (!handlers_ok) return NULL;
  t = coh__calloc(1, sizeof *t);
  if (t == NULL) return NULL;
  /* An alternate stack per thread: a fault on an exhausted native stack
   * still reaches the handler (which then passes it on: the depth limit,
   * not the native stack, bounds wasm recursion). */
  t->altstack_size = 64 * 1024;
  t->altstack = mmap(NULL, t->altstack_size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (t->altstack == MAP_FAILED) {
    coh__free(t);
    return NULL;
  }
  memset(&ss, 0, sizeof ss);
  ss.ss_sp = t->altstack;
  ss.ss_size = t->altstack_size;
  if (sigaltstack(&ss, NULL) != 0) {
    munmap(t->altstack, t->altstack_size);
    coh__free(t);
    return NULL;
  }
  pthread_setspecific(thread_key, t);
  tls_thread = t;
  return t;
}

void coh__trap(coh_trap_kind k) {
  coh__thread *t = tls_thread;
  if (t == NULL || t->jb == NULL) abort(); /* a runtime bug, not input */
  t->in_wasm = 0;
  siglongjmp(*t->jb, (int)k);
}

void coh__trap_host(void) {
  coh__thread *t = tls_thread;
  if (t == NULL || t->jb == NULL) abort(); /* a runtime bug, not input */
  t->in_wasm = 0;
  siglongjmp(*t->jb, COH__TRAP_HOST);
}

/* Out of memory in the runtime while the agent runs: not the agent's doing,
 * so not a trap it would see (a trap would change the run); the call is
 * abandoned and coh_agent_* returns COH_ENOMEM. */
static __attribute__((noreturn)) void host_oom(coh_agent *a, const char *what) {
  a->host_rc = COH_ENOMEM;
  snprintf(a->msg, sizeof a->msg, "out of memory %s", what);
  coh__trap_host();
}

/* ---- ops called by generated code ---------------------------------------- */

static __attribute__((noreturn)) void op_trap(int wk) {
  coh_trap_kind k;
  switch ((wasm_rt_trap_t)wk) {
    case WASM_RT_TRAP_OOB: k = COH_TRAP_OOB; break;
    case WASM_RT_TRAP_INT_OVERFLOW: k = COH_TRAP_INT_OVERFLOW; break;
    case WASM_RT_TRAP_DIV_BY_ZERO: k = COH_TRAP_DIV_BY_ZERO; break;
    case WASM_RT_TRAP_INVALID_CONVERSION:
      k = COH_TRAP_INVALID_CONVERSION;
      break;
    case WASM_RT_TRAP_UNREACHABLE: k = COH_TRAP_UNREACHABLE; break;
    case WASM_RT_TRAP_CALL_INDIRECT: k = COH_TRAP_CALL_INDIRECT; break;
    case WASM_RT_TRAP_EXHAUSTION: k = COH_TRAP_STACK_EXHAUSTED; break;
    default: k = COH_TRAP_UNREACHABLE; break;
  }
  coh__trap(k);
}

static coh_agent *current(void) {
  coh__thread *t = tls_thread;
  if (t == NULL || t->cur == NULL) abort(); /* only called inside a call */
  return t->cur;
}

static void op_alloc_memory(wasm_rt_memory_t *m, uint32_t initial,
                            uint32_t max) {
  coh_agent *a = current();
  uint32_t cap = a->opts.max_memory_pages;
  uint8_t *base;
  if (max > cap) max = cap;
  if (initial > max) {
    snprintf(a->msg, sizeof a->msg,
             "initial memory of %u pages exceeds the cap of %u pages",
             initial, max);
    coh__trap(COH_TRAP_LIMIT);
  }
  base = mmap(NULL, COH__MEM_RESERVE, PROT_NONE,
              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) {
    snprintf(a->msg, sizeof a->msg,
             "cannot reserve address space for linear memory: %s",
             strerror(errno));
    coh__trap(COH_TRAP_LIMIT);
  }
  if (initial &&
      mprotect(base, (size_t)initial << 16, PROT_READ | PROT_WRITE) != 0) {
    munmap(base, COH__MEM_RESERVE);
    snprintf(a->msg, sizeof a->msg, "cannot commit %u pages: %s", initial,
             strerror(errno));
    coh__trap(COH_TRAP_LIMIT);
  }
  m->data = base;
  m->pages = initial;
  m->max_pages = max;
  m->size = (uint32_t)((size_t)initial << 16);
  a->mem = m;
  a->mem_base = base;
}

static uint32_t op_grow_memory(wasm_rt_memory_t *m, uint32_t delta) {
  uint32_t old = m->pages;
  uint64_t np = (uint64_t)old + delta;
  if (delta == 0) return old;
  if (np > m->max_pages) return UINT32_MAX;
  if (mprotect(m->data + ((size_t)old << 16), (size_t)delta << 16,
               PROT_READ | PROT_WRITE) != 0)
    return UINT32_MAX;
  m->pages = (uint32_t)np;
  m->size = (uint32_t)(np << 16);
  return old;
}

static void op_free_memory(wasm_rt_memory_t *m) {
  if (m->data != NULL) munmap(m->data, COH__MEM_RESERVE);
  m->data = NULL;
  m->size = m->pages = 0;
}

static void op_alloc_table(wasm_rt_funcref_table_t *t, uint32_t n,
                           uint32_t max) {
  coh_agent *a = current();
  if (max > a->opts.max_table_elems) max = a->opts.max_table_elems;
  if (n > max) {
    snprintf(a->msg, sizeof a->msg,
             "table of %u elements exceeds the cap of %u", n, max);
    coh__trap(COH_TRAP_LIMIT);
  }
  t->data = NULL;
  if (n) {
    t->data = coh__calloc(n, sizeof *t->data);
    if (t->data == NULL) host_oom(a, "allocating the agent's table");
  }
  t->size = n;
  t->max_size = max;
  a->table = t;
}

static uint32_t op_grow_table(wasm_rt_funcref_table_t *t, uint32_t delta,
                              wasm_rt_funcref_t init) {
  uint32_t old = t->size, i;
  uint64_t ns = (uint64_t)old + delta;
  wasm_rt_funcref_t *nd;
  if (delta == 0) return old;
  if (ns > t->max_size) return UINT32_MAX;
  nd = coh__realloc(t->data, (size_t)ns * sizeof *nd);
  /* table.grow's -1 is for the agent's cap, which is the same in every run;
   * our out of memory is not */
  if (nd == NULL) host_oom(current(), "growing the agent's table");
  for (i = old; i < ns; i++) nd[i] = init;
  t->data = nd;
  t->size = (uint32_t)ns;
  return old;
}

static void op_free_table(wasm_rt_funcref_table_t *t) {
  coh__free(t->data);
  t->data = NULL;
  t->size = 0;
}

const struct coh__glue_ops coh__glue_ops_impl = {
    op_trap,       op_alloc_memory, op_grow_memory, op_free_memory,
    op_alloc_table, op_grow_table,  op_free_table,  coh__import_call,
};
