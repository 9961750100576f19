/*
 * agent.c — agent instances: instantiate, init, step, the host side of the
 * imports (with validation of every pointer the agent passes), and
 * checkpoint/restore.
 *
 * Every entry into wasm goes through run(): it sets the fuel budget and the
 * call-depth counter in the instance, points the calling thread's trap target
 * at a local sigjmp_buf, and turns whatever comes back (a return or a trap)
 * into a coh_agent_result.  Nesting (a host callback that runs another agent
 * on the same thread) is supported: the thread's previous target is saved
 * and restored.
 */
#include <stdio.h>
#include <string.h>

#include "agent_int.h"

void coh_agent_opts_default(coh_agent_opts *o) {
  memset(o, 0, sizeof *o);
  o->fuel = 100000000;
  o->max_memory_pages = 1024;
  o->max_table_elems = 65536;
  o->max_call_depth = 1000;
  o->seed = 0;
}

const char *coh_trap_name(coh_trap_kind k) {
  switch (k) {
    case COH_TRAP_NONE: return "none";
    case COH_TRAP_OOB: return "oob";
    case COH_TRAP_INT_OVERFLOW: return "int_overflow";
    case COH_TRAP_DIV_BY_ZERO: return "div_by_zero";
    case COH_TRAP_INVALID_CONVERSION: return "invalid_conversion";
    case COH_TRAP_UNREACHABLE: return "unreachable";
    case COH_TRAP_CALL_INDIRECT: return "call_indirect";
    case COH_TRAP_STACK_EXHAUSTED: return "stack_exhausted";
    case COH_TRAP_FUEL: return "fuel";
    case COH_TRAP_BAD_POINTER: return "bad_pointer";
    case COH_TRAP_LIMIT: return "limit";
    case COH_TRAP_EXIT: return "exit";
  }
  return "unknown";
}

static const char *trap_text(coh_trap_kind k) {
  switch (k) {
    case COH_TRAP_OOB: return "out-of-bounds memory or table access";
    case COH_TRAP_INT_OVERFLOW: return "integer overflow";
    case COH_TRAP_DIV_BY_ZERO: return "integer divide by zero";
    case COH_TRAP_INVALID_CONVERSION: return "invalid conversion to integer";
    case COH_TRAP_UNREACHABLE: return "unreachable executed";
    case COH_TRAP_CALL_INDIRECT:
      return "indirect call to a null, out-of-range or mistyped function";
    case COH_TRAP_STACK_EXHAUSTED: return "call stack exhausted";
    case COH_TRAP_FUEL: return "fuel exhausted";
    case COH_TRAP_BAD_POINTER: return "bad pointer passed to the host";
    case COH_TRAP_LIMIT: return "resource limit exceeded";
    case COH_TRAP_EXIT: return "proc_exit with a non-zero code";
    default: return "trap";
  }
}

void coh_agent_buf_free(void *p) { coh__free(p); }
void *coh_agent_userdata(const coh_agent *a) { return a->ud; }
size_t coh_agent_memory_size(const coh_agent *a) {
  return a->mem ? a->mem->size : 0;
}
void coh_agent_set_fuel(coh_agent *a, uint64_t fuel) { a->opts.fuel = fuel; }

/* ---- running wasm -------------------------------------------------------------- */

enum { CALL_INSTANTIATE, CALL_INITIALIZE, CALL_INIT, CALL_EVENT };

/* Host-side pointer check: traps the agent when [p, p+n) is not inside its
 * memory.  Called with the thread out of wasm (in_wasm == 0). */
static uint8_t *mptr(coh_agent *a, uint64_t p, uint64_t n) {
  if (a->mem == NULL || p + n > a->mem->size) {
    snprintf(a->msg, sizeof a->msg,
             "pointer 0x%llx with length %llu is outside the agent's %u-byte "
             "memory",
             (unsigned long long)p, (unsigned long long)n,
             a->mem ? a->mem->size : 0);
    coh__trap(COH_TRAP_BAD_POINTER);
  }
  return a->mem->data + p;
}

static int run(coh_agent *a, int what, uint32_t kind, const void *data,
               size_t len, coh_agent_result *res) {
  const struct coh__glue *g = a->mod->glue;
  coh__thread *t = coh__thread_get();
  sigjmp_buf jb;
  sigjmp_buf *prev_jb;
  coh_agent *prev_cur;
  int prev_in, k;
  uint64_t budget = a->opts.fuel ? a->opts.fuel : (uint64_t)INT64_MAX;
  int64_t left;
  memset(res, 0, sizeof *res);
  if (t == NULL) {
    snprintf(res->message, sizeof res->message,
             "cannot set up the thread's trap handling");
    return COH_ENOMEM;
  }
  if (a->running) {
    snprintf(res->message, sizeof res->message, "agent is already running");
    return COH_ESTATE;
  }
  if (a->exited) {
    res->exited = 1;
    snprintf(res->message, sizeof res->message, "agent has exited");
    return COH_ESTATE;
  }
  if (a->host_rc) {
    snprintf(res->message, sizeof res->message,
             "agent's earlier call was abandoned by a host failure: %s", a->msg);
    return COH_ESTATE;
  }
  *g->fuel(a->inst) = budget;
  *g->depth(a->inst) = 0;
  *g->depth_max(a->inst) = a->opts.max_call_depth;
  a->msg[0] = '\0';
  a->running = 1;
  prev_jb = t->jb;
  prev_cur = t->cur;
  prev_in = t->in_wasm;
  k = sigsetjmp(jb, 0);
  if (k == 0) {
    t->jb = &jb;
    t->cur = a;
    t->in_wasm = 1;
    switch (what) {
      case CALL_INSTANTIATE:
        g->instantiate(a->inst, a);
        break;
      case CALL_INITIALIZE:
        g->initialize(a->inst);
        break;
      case CALL_INIT:
      case CALL_EVENT: {
        uint32_t ptr = 0;
        if (len > 0 || what == CALL_EVENT) {
          ptr = g->alloc(a->inst, (uint32_t)len);
          t->in_wasm = 0;
          if (ptr == 0 && len > 0) {
            snprintf(a->msg, sizeof a->msg,
                     "cohort_alloc(%zu) returned 0 (out of memory)", len);
            coh__trap(COH_TRAP_LIMIT);
          }
          if (len) memcpy(mptr(a, ptr, len), data, len);
          t->in_wasm = 1;
        }
        if (what == CALL_INIT)
          res->rc = (int32_t)g->init(a->inst, ptr, (uint32_t)len);
        else
          res->rc = (int32_t)g->on_event(a->inst, kind, ptr, (uint32_t)len);
        break;
      }
    }
    t->in_wasm = 0;
  }
  t->jb = prev_jb;
  t->cur = prev_cur;
  t->in_wasm = prev_in;
  a->running = 0;
  left = (int64_t)*g->fuel(a->inst);
  res->fuel_used = budget - (uint64_t)(left < 0 ? 0 : left);
  if (k == 0) return COH_OK;
  if (k == COH__TRAP_HOST) { /* not the agent's doing: no trap, no result */
    res->fuel_used = 0;
    snprintf(res->message, sizeof res->message, "%s", a->msg);
    return a->host_rc;
  }
  if (k == COH_TRAP_UNREACHABLE && left < 0) k = COH_TRAP_FUEL;
  if (k == COH_TRAP_EXIT) {
    res->exited = 1;
    if (a->exit_code == 0) return COH_OK; /* a clean exit is not a trap */
    snprintf(a->msg, sizeof a->msg, "proc_exit(%d)", a->exit_code);
  }
  res->trap = (coh_trap_kind)k;
  res->rc = 0;
  if (k == COH_TRAP_FUEL)
    snprintf(res->message, sizeof res->message,
             "fuel exhausted (budget %llu)", (unsigned long long)budget);
  else if (a->msg[0])
    snprintf(res->message, sizeof res->message, "%s: %s", trap_text(k),
             a->msg);
  else
    snprintf(res->message, sizeof res->message, "%s", trap_text(k));
  return COH_ETRAP;
}

static void agent_destroy(coh_agent *a) {
  if (a == NULL) return;
  if (a->inst) {
    a->mod->glue->free_instance(a->inst);
    coh__free(a->inst);
  }
  coh__free(a->table0);
  coh__free(a);
}

static int agent_create(coh_module *m, const coh_agent_opts *opts,
                        const coh_agent_host *host, void *ud, int initialize,
                        coh_agent **out, coh_err *err) {
  coh_agent *a;
  coh_agent_result r;
  int rc;
  *out = NULL;
  a = coh__calloc(1, sizeof *a);
  if (a == NULL) return coh__err(err, COH_ENOMEM, "out of memory");
  a->mod = m;
  a->ud = ud;
  if (host) a->host = *host;
  if (opts)
    a->opts = *opts;
  else
    coh_agent_opts_default(&a->opts);
  if (a->opts.max_memory_pages > 65535) a->opts.max_memory_pages = 65535;
  a->rng = a->opts.seed ^ 0x9e3779b97f4a7c15ull;
  a->inst = coh__calloc(1, m->glue->instance_size);
  if (a->inst == NULL) {
    coh__free(a);
    return coh__err(err, COH_ENOMEM, "out of memory");
  }
  rc = run(a, CALL_INSTANTIATE, 0, NULL, 0, &r);
  if (rc) {
    coh__err(err, rc, "instantiating the module: %s", r.message);
    goto fail;
  }
  a->mem = m->glue->memory(a->inst);
  a->table = m->glue->table ? m->glue->table(a->inst) : NULL;
  if (a->table && a->table->size) {
    a->table0 = coh__malloc(a->table->size * sizeof *a->table0);
    if (a->table0 == NULL) {
      rc = coh__err(err, COH_ENOMEM, "out of memory");
      goto fail;
    }
    memcpy(a->table0, a->table->data, a->table->size * sizeof *a->table0);
    a->table0_size = a->table->size;
  }
  if (initialize && m->glue->initialize) {
    rc = run(a, CALL_INITIALIZE, 0, NULL, 0, &r);
    if (rc) {
      coh__err(err, rc, "_initialize: %s", r.message);
      goto fail;
    }
  }
  *out = a;
  return COH_OK;
fail:
  agent_destroy(a);
  return rc;
}

int coh_agent_new(coh_module *m, const coh_agent_opts *opts,
                  const coh_agent_host *host, void *ud, coh_agent **out,
                  coh_err *err) {
  if (m == NULL || out == NULL)
    return coh__err(err, COH_EINVAL, "coh_agent_new: no module");
  return agent_create(m, opts, host, ud, 1, out, err);
}

void coh_agent_free(coh_agent *a) { agent_destroy(a); }

int coh_agent_init(coh_agent *a, const void *config, size_t len,
                   coh_agent_result *res) {
  if (len > UINT32_MAX) return COH_ERANGE;
  if (a->mod->glue->init == NULL) {
    memset(res, 0, sizeof *res);
    return COH_OK;
  }
  return run(a, CALL_INIT, 0, config, len, res);
}

int coh_agent_step(coh_agent *a, uint32_t kind, const void *payload,
                   size_t len, coh_agent_result *res) {
  if (len > UINT32_MAX) return COH_ERANGE;
  return run(a, CALL_EVENT, kind, payload, len, res);
}

/* ---- imports -------------------------------------------------------------------- */

static void fill_random(coh_agent *a, uint8_t *p, size_t n) {
  if (a->host.random) {
    a->host.random(a->ud, a, p, n);
    return;
  }
  while (n > 0) {
    uint64_t v = coh__splitmix64_next(&a->rng);
    size_t k = n < 8 ? n : 8;
    memcpy(p, &v, k);
    p += k;
    n -= k;
  }
}

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

#define WASI_EBADF 8
#define WASI_ESPIPE 70
#define I32(v) ((uint64_t)(uint32_t)(int32_t)(v))

static uint64_t wasi_fd_write(coh_agent *a, const uint64_t *x) {
  uint32_t fd = (uint32_t)x[0], n = (uint32_t)x[2], i;
  const uint8_t *iov = mptr(a, x[1], (uint64_t)n * 8);
  uint8_t *nw = mptr(a, x[3], 4);
  uint64_t total = 0;
  coh__buf line = {0};
  for (i = 0; i < n; i++) {
    uint32_t bp = get32(iov + 8 * i), bl = get32(iov + 8 * i + 4);
    const uint8_t *b = mptr(a, bp, bl);
    total += bl;
    if (fd == 1 || fd == 2) coh__buf_add(&line, b, bl);
  }
  if (fd != 1 && fd != 2) {
    coh__buf_free(&line);
    return WASI_EBADF;
  }
  if (line.oom) { /* ours, not the agent's: abandon the call (after the switch) */
    coh__buf_free(&line);
    coh_agent_host_fail(a, COH_ENOMEM, "out of memory in the host call fd_write");
    return 0;
  }
  if (a->host.log && line.n)
    a->host.log(a->ud, a, fd == 1 ? COH_ABI_LOG_INFO : COH_ABI_LOG_WARN,
                (const char *)line.p, line.n);
  coh__buf_free(&line);
  put32(nw, (uint32_t)total);
  return 0;
}

void coh_agent_host_fail(coh_agent *a, int code, const char *msg) {
  if (a == NULL || !a->running || a->host_rc) return; /* the first one stands */
  a->host_rc = code != COH_OK && code != COH_ETRAP ? code : COH_EINVAL;
  snprintf(a->msg, sizeof a->msg, "%s", msg ? msg : "host failure");
}

uint64_t coh__import_call(void *host, uint32_t id, const uint64_t *x) {
  coh_agent *a = host;
  coh__thread *t = coh__thread_get(); /* exists: we are inside run() */
  uint64_t v = 0;
  t->in_wasm = 0;
  switch (id) {
    case COH__IMP_EMIT: {
      const uint8_t *p = mptr(a, x[0], x[1]);
      if (a->host.emit) a->host.emit(a->ud, a, p, x[1]);
      break;
    }
    case COH__IMP_SEND: {
      const char *to = (const char *)mptr(a, x[0], x[1]);
      const uint8_t *msg = mptr(a, x[2], x[3]);
      v = I32(a->host.send ? a->host.send(a->ud, a, to, x[1], msg, x[3])
                           : COH_ABI_ENOSYS);
      break;
    }
    case COH__IMP_LOG: {
      const char *p = (const char *)mptr(a, x[1], x[2]);
      int level = (int)(int32_t)x[0];
      if (level < COH_ABI_LOG_DEBUG) level = COH_ABI_LOG_DEBUG;
      if (level > COH_ABI_LOG_ERROR) level = COH_ABI_LOG_ERROR;
      if (a->host.log) a->host.log(a->ud, a, level, p, x[2]);
      break;
    }
    case COH__IMP_LLM: {
      const char *p = (const char *)mptr(a, x[0], x[1]);
      v = (uint64_t)(a->host.llm ? a->host.llm(a->ud, a, p, x[1])
                                 : (int64_t)COH_ABI_ENOSYS);
      break;
    }
    case COH__IMP_NOW:
      v = (uint64_t)(a->host.now ? a->host.now(a->ud, a) : 0);
      break;
    case COH__IMP_RANDOM:
      fill_random(a, mptr(a, x[0], x[1]), x[1]);
      break;
    case COH__IMP_TIMER:
      v = (uint64_t)(a->host.timer ? a->host.timer(a->ud, a, (int64_t)x[0])
                                   : (int64_t)COH_ABI_ENOSYS);
      break;
    case COH__IMP_STATE_GET: {
      const char *k = (const char *)mptr(a, x[0], x[1]);
      uint8_t *val = mptr(a, x[2], x[3]);
      v = I32(a->host.state_get
                  ? a->host.state_get(a->ud, a, k, x[1], val, x[3])
                  : COH_ABI_ENOSYS);
      break;
    }
    case COH__IMP_SPAWN: {
      const char *p = (const char *)mptr(a, x[0], x[1]);
      v = I32(a->host.spawn ? a->host.spawn(a->ud, a, p, x[1]) : COH_ABI_ENOSYS);
      break;
    }
    case COH__IMP_STATE_PUT: {
      const char *k = (const char *)mptr(a, x[0], x[1]);
      const uint8_t *val = mptr(a, x[2], x[3]);
      v = I32(a->host.state_put
                  ? a->host.state_put(a->ud, a, k, x[1], val, x[3])
                  : COH_ABI_ENOSYS);
      break;
    }
    case COH__IMP_FD_WRITE:
      v = wasi_fd_write(a, x);
      break;
    case COH__IMP_FD_CLOSE:
      v = x[0] <= 2 ? 0 : WASI_EBADF;
      break;
    case COH__IMP_FD_SEEK:
      v = x[0] <= 2 ? WASI_ESPIPE : WASI_EBADF;
      break;
    case COH__IMP_FD_FDSTAT_GET: {
      uint8_t *p = mptr(a, x[1], 24);
      if (x[0] > 2) {
        v = WASI_EBADF;
        break;
      }
      memset(p, 0, 24);
      p[0] = 2;                                  /* character device */
      put64(p + 8, x[0] == 0 ? 1u << 1 : 1u << 6); /* fd_read / fd_write */
      break;
    }
    case COH__IMP_FD_PRESTAT_GET:
    case COH__IMP_FD_PRESTAT_DIR_NAME:
      v = WASI_EBADF; /* no preopened folders: no filesystem */
      break;
    case COH__IMP_PROC_EXIT:
      a->exited = 1;
      a->exit_code = (int)(int32_t)x[0];
      coh__trap(COH_TRAP_EXIT);
    case COH__IMP_ENVIRON_SIZES_GET:
    case COH__IMP_ARGS_SIZES_GET:
      put32(mptr(a, x[0], 4), 0);
      put32(mptr(a, x[1], 4), 0);
      break;
    case COH__IMP_ENVIRON_GET:
    case COH__IMP_ARGS_GET:
      break;
    case COH__IMP_CLOCK_TIME_GET: {
      uint8_t *p = mptr(a, x[2], 8);
      int64_t now = a->host.now ? a->host.now(a->ud, a) : 0;
      put64(p, (uint64_t)now * 1000000u);
      break;
    }
    case COH__IMP_RANDOM_GET:
      fill_random(a, mptr(a, x[0], x[1]), x[1]);
      break;
    default:
      snprintf(a->msg, sizeof a->msg, "unknown import id %u", id);
      coh__trap(COH_TRAP_UNREACHABLE);
  }
  if (a->host_rc) coh__trap_host(); /* the host failed: the agent sees no result */
  t->in_wasm = 1;
  return v;
}

/* ---- checkpoint / restore ------------------------------------------------------- */

/* COHSNAP3: linear memory is stored as a bitmap of its 4 KiB pages (bit
 * set: the page holds a nonzero byte) followed by those pages only.  Most of
 * an agent's memory is zeros (untouched stack, heap and arena): 87% of the
 * checkpoint bytes of bench/run_resume.sh's journal were all-zero pages,
 * which every resume, replay and `inspect --verify` read and hashed.  The
 * encoding is canonical (one memory, one snapshot: no stored zero page, no
 * bit past the memory), since snapshots are on the journal's chain.
 * COHSNAP2 stored the memory whole; COHSNAP1 named the module by its
 * compile-cache key, which hashes the local compiler's version string (two
 * machines with different compilers wrote different checkpoints, and so
 * different run digests).  Neither is read any more: a journal holding them
 * replays and verifies, but resume refuses it (the chain would hold two
 * formats), naming both. */
#define SNAP_MAGIC "COHSNAP3"
#define SNAP_PAGE 4096u

static int snap_page_zero(const uint8_t *p) {
  uint64_t acc = 0, w;
  size_t i;
  for (i = 0; i < SNAP_PAGE; i += 8) {
    memcpy(&w, p + i, 8);
    acc |= w;
  }
  return acc == 0;
}

static int gwidth(uint8_t t) { return (t == 0x7e || t == 0x7c) ? 8 : 4; }

int coh_agent_checkpoint(coh_agent *a, uint8_t **out, size_t *out_len,
                         coh_err *err) {
  const struct coh__glue *g = a->mod->glue;
  coh__buf b = {0};
  uint32_t i, j, u;
  uint64_t q;
  *out = NULL;
  *out_len = 0;
  if (a->running) return coh__err(err, COH_ESTATE, "agent is running");
  if (a->host_rc)
    return coh__err(err, COH_ESTATE, "agent's last call was abandoned by a host failure: %s", a->msg);
  coh__buf_add(&b, SNAP_MAGIC, 8);
  coh__buf_add(&b, a->mod->ident, 64);
  u = (uint32_t)a->exited;
  coh__buf_add(&b, &u, 4);
  u = (uint32_t)a->exit_code;
  coh__buf_add(&b, &u, 4);
  coh__buf_add(&b, &a->rng, 8);
  u = a->mem->pages;
  coh__buf_add(&b, &u, 4);
  {
    /* the page bitmap, then the pages it marks (see SNAP_MAGIC) */
    size_t n4k = (size_t)a->mem->size / SNAP_PAGE, k, at = b.n;
    uint8_t zero8 = 0;
    for (k = 0; k < (n4k + 7) / 8; k++) coh__buf_add(&b, &zero8, 1);
    for (k = 0; k < n4k && !b.oom; k++) {
      const uint8_t *pg = a->mem->data + k * SNAP_PAGE;
      if (snap_page_zero(pg)) continue;
      ((uint8_t *)b.p)[at + k / 8] |= (uint8_t)(1u << (k % 8));
      coh__buf_add(&b, pg, SNAP_PAGE);
    }
  }
  u = g->nglobals;
  coh__buf_add(&b, &u, 4);
  for (i = 0; i < g->nglobals; i++) {
    q = 0;
    memcpy(&q, g->global(a->inst, i), (size_t)gwidth(g->global_types[i]));
    coh__buf_add(&b, &q, 8);
  }
  u = a->table ? a->table->size : 0;
  coh__buf_add(&b, &u, 4);
  for (i = 0; a->table && i < a->table->size; i++) {
    const wasm_rt_funcref_t *e = &a->table->data[i];
    uint32_t idx = UINT32_MAX;
    if (e->func != NULL) {
      for (j = 0; j < a->table0_size; j++)
        if (a->table0[j].func == e->func &&
            a->table0[j].func_type == e->func_type)
          break;
      if (j == a->table0_size || e->module_instance != a->inst) {
        coh__buf_free(&b);
        return coh__err(err, COH_EUNSUPPORTED,
                        "table slot %u holds a function that was not in the "
                        "table at instantiation; cannot checkpoint", i);
      }
      idx = j;
    }
    coh__buf_add(&b, &idx, 4);
  }
  if (b.oom) {
    coh__buf_free(&b);
    return coh__err(err, COH_ENOMEM, "out of memory writing a checkpoint");
  }
  *out = (uint8_t *)b.p;
  *out_len = b.n;
  return COH_OK;
}

typedef struct snaprd {
  const uint8_t *p, *end;
} snaprd;

static int take(snaprd *s, void *dst, size_t n) {
  if ((size_t)(s->end - s->p) < n) return -1;
  memcpy(dst, s->p, n);
  s->p += n;
  return 0;
}

int coh_agent_checkpoint_format(const uint8_t *snap, size_t len,
                                coh_err *err) {
  if (len >= 8 && memcmp(snap, "COHSNAP1", 8) == 0)
    return coh__err(err, COH_EFORMAT,
                    "checkpoint format COHSNAP1 (module named by its compile-cache "
                    "key) is no longer read; this cohort reads %s", SNAP_MAGIC);
  if (len >= 8 && memcmp(snap, "COHSNAP2", 8) == 0)
    return coh__err(err, COH_EFORMAT,
                    "checkpoint format COHSNAP2 (memory stored whole) is no longer "
                    "read; this cohort reads %s", SNAP_MAGIC);
  if (len < 8 + 64 || memcmp(snap, SNAP_MAGIC, 8) != 0)
    return coh__err(err, COH_EFORMAT, "not a cohort agent checkpoint");
  return COH_OK;
}

int coh_agent_restore(coh_module *m, const coh_agent_opts *opts,
                      const coh_agent_host *host, void *ud,
                      const uint8_t *snap, size_t snap_len, coh_agent **out,
                      coh_err *err) {
  const struct coh__glue *g = m->glue;
  snaprd s;
  coh_agent *a = NULL;
  char magic[8], key[64];
  uint32_t exited, code, pages, ng, tsize, i;
  uint64_t rng;
  int rc;
  *out = NULL;
  s.p = snap;
  s.end = snap + snap_len;
  if ((rc = coh_agent_checkpoint_format(snap, snap_len, err))) return rc;
  if (take(&s, magic, 8) || take(&s, key, 64))
    return coh__err(err, COH_EFORMAT, "not a cohort agent checkpoint");
  if (memcmp(key, m->ident, 64))
    return coh__err(err, COH_EFORMAT,
                    "checkpoint is of another module (identity %.16s…, "
                    "module %.16s…)", key, m->ident);
  if (take(&s, &exited, 4) || take(&s, &code, 4) || take(&s, &rng, 8) ||
      take(&s, &pages, 4))
    return coh__err(err, COH_EFORMAT, "checkpoint truncated (header)");
  if (pages > 65536u)
    return coh__err(err, COH_EFORMAT, "checkpoint memory of %u pages is past wasm32's", pages);
  rc = agent_create(m, opts, host, ud, 0, &a, err);
  if (rc) return rc;
  if (pages < a->mem->pages) {
    rc = coh__err(err, COH_EFORMAT, "checkpoint memory smaller than the "
                  "module's initial memory");
    goto fail;
  }
  if (pages > a->mem->pages &&
      coh__glue_ops_impl.grow_memory(a->mem, pages - a->mem->pages) ==
          UINT32_MAX) {
    rc = coh__err(err, COH_ERANGE, "checkpoint memory of %u pages exceeds "
                  "the cap of %u", pages, a->mem->max_pages);
    goto fail;
  }
  {
    size_t n4k = ((size_t)pages << 16) / SNAP_PAGE, nb = (n4k + 7) / 8, k;
    const uint8_t *bits = s.p;
    if ((size_t)(s.end - s.p) < nb) {
      rc = coh__err(err, COH_EFORMAT, "checkpoint truncated (page map)");
      goto fail;
    }
    s.p += nb;
    if (n4k % 8 && (bits[nb - 1] >> (n4k % 8)) != 0) {
      rc = coh__err(err, COH_EFORMAT, "checkpoint page map marks pages past its memory");
      goto fail;
    }
    for (k = 0; k < n4k; k++) {
      uint8_t *pg = a->mem->data + k * SNAP_PAGE;
      if (bits[k / 8] >> (k % 8) & 1) {
        if ((size_t)(s.end - s.p) < SNAP_PAGE) {
          rc = coh__err(err, COH_EFORMAT, "checkpoint truncated (memory page %zu)", k);
          goto fail;
        }
        if (snap_page_zero(s.p)) {
          rc = coh__err(err, COH_EFORMAT, "checkpoint stores memory page %zu, which is all "
                        "zeros (not a canonical snapshot)", k);
          goto fail;
        }
        memcpy(pg, s.p, SNAP_PAGE);
        s.p += SNAP_PAGE;
      } else if (!snap_page_zero(pg)) {
        /* instantiation wrote data here; reading an untouched page maps the
         * shared zero page, so only pages that hold something are written */
        memset(pg, 0, SNAP_PAGE);
      }
    }
  }
  if (take(&s, &ng, 4) || ng != g->nglobals) {
    rc = coh__err(err, COH_EFORMAT, "checkpoint globals do not match");
    goto fail;
  }
  for (i = 0; i < ng; i++) {
    uint64_t q;
    if (take(&s, &q, 8)) {
      rc = coh__err(err, COH_EFORMAT, "checkpoint truncated (globals)");
      goto fail;
    }
    memcpy(g->global(a->inst, i), &q, (size_t)gwidth(g->global_types[i]));
  }
  if (take(&s, &tsize, 4) || (tsize && a->table == NULL) ||
      (a->table && tsize < a->table->size)) {
    rc = coh__err(err, COH_EFORMAT, "checkpoint table does not match");
    goto fail;
  }
  if (a->table && tsize > a->table->size &&
      coh__glue_ops_impl.grow_table(a->table, tsize - a->table->size,
                                    wasm_rt_funcref_null_value) ==
          UINT32_MAX) {
    rc = coh__err(err, COH_ERANGE, "checkpoint table exceeds the cap");
    goto fail;
  }
  for (i = 0; i < tsize; i++) {
    uint32_t idx;
    if (take(&s, &idx, 4) || (idx != UINT32_MAX && idx >= a->table0_size)) {
      rc = coh__err(err, COH_EFORMAT, "checkpoint table entry %u invalid", i);
      goto fail;
    }
    a->table->data[i] =
        idx == UINT32_MAX ? wasm_rt_funcref_null_value : a->table0[idx];
  }
  if (s.p != s.end) {
    rc = coh__err(err, COH_EFORMAT, "checkpoint has trailing bytes");
    goto fail;
  }
  a->exited = (int)exited;
  a->exit_code = (int)code;
  a->rng = rng;
  *out = a;
  return COH_OK;
fail:
  agent_destroy(a);
  return rc;
}
