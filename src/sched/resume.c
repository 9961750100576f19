/*
 * resume.c — the orchestrator's resume state (cohort/orch.h,
 * COH_RESUME_STATE_MAGIC): what a checkpoint tick's agent snapshots do not
 * hold.  It is written at every checkpoint tick at which every live agent
 * was checkpointed (after the tick's results were committed, so no request
 * is finished and undelivered), LLM requests outstanding included: those
 * waiting for admission are listed per model and agent in FIFO order, those
 * in an engine in admission order with their admission tick, the tokens
 * and text they had produced.  `resume` reads it back (orch.c), puts the
 * waiting ones back in their queues, re-runs the engine steps of the
 * others from their admission (llm.c, coh__orch_llm_catch_up: a request's
 * tokens, KV cache, sampler stream and grammar state are a function of its
 * own prompt, seed and steps), checks they produced exactly the recorded
 * tokens and text, and re-executes only the ticks after that checkpoint.
 *
 * Layout, every integer in the host's byte order (as the agent checkpoints
 * are), a "str" being a u64 length and that many bytes:
 *   "COHORCH2"  u64 tick  u32 n_agents
 *   i64 events, agent_steps, llm_requests, llm_tokens, traps
 *   per agent slot, in index order:
 *     str id  u32 spec  i64 config_len (-1: none) + bytes  u32 status
 *     u32 needs_init  i64 next_llm  i64 next_timer
 *     u64 n_inbox, per event: u32 kind, str payload ("header\0body")
 *     u64 n_kv, per pair: str key, str value
 *   u64 n_timers, per timer: i64 due, u32 agent, i64 id
 *   u32 n_model_slots (models + 1), per slot: i64 rr_next
 *   per model slot again, the LLM requests outstanding:
 *     u64 n_waiting, per request (agents in index order, each agent's FIFO
 *       in order): u32 agent, i64 number, str json
 *     u64 n_engine, per request in admission order: u32 agent, i64 number,
 *       i64 admit_tick, i64 tokens, str json, str text
 * The format COHORCH1 (before requests in flight were kept) is the same
 * without the requests, and written only when none was outstanding: it is
 * still read.
 * The journal stores it as the tick's last checkpoint, of the reserved id
 * COH_JOURNAL_ORCH_CHECKPOINT, on the chain; resume verifies the chain
 * first.  A state is still read as untrusted input (a journal rebuilt by
 * its owner verifies): every count and length is checked against what is
 * left and against the scenario.
 */
#include <string.h>

#include "orch_int.h"

#define MAGIC COH_RESUME_STATE_MAGIC
#define MAGIC_V1 "COHORCH1"

static void put_u32(coh__buf *b, uint32_t v) { coh__buf_add(b, &v, 4); }
static void put_i64(coh__buf *b, int64_t v) { coh__buf_add(b, &v, 8); }
static void put_str(coh__buf *b, const void *p, size_t n) {
  put_i64(b, (int64_t)n);
  if (n) coh__buf_add(b, p, n);
}

int coh__orch_resumable(const orch *o) {
  int i;
  for (i = 0; i <= o->n_models; i++) {
    const model_slot *ms = &o->models[i];
    /* results not yet committed cannot be (commit_llm runs first); a
     * replay --no-model's engines are the journal */
    if (ms->n_done > 0 || ms->n_replay > 0) return 0;
  }
  return 1;
}

/* The requests in ms's engine, in admission order (at most max_batch). */
static size_t engine_order(const model_slot *ms, const llm_req **out) {
  size_t n = 0, k, j;
  for (k = 0; k < ms->n_live; k++) {
    const llm_req *r = ms->live[k];
    for (j = n; j > 0 && out[j - 1]->admit_seq > r->admit_seq; j--) out[j] = out[j - 1];
    out[j] = r;
    n++;
  }
  return n;
}

int coh__orch_state_save(const orch *o, coh__buf *b) {
  const coh_run_summary *sum = o->sum;
  int k, i;
  size_t e;
  coh__buf_add(b, MAGIC, 8);
  put_i64(b, o->tick);
  put_u32(b, (uint32_t)o->n_agents);
  put_i64(b, o->events);
  put_i64(b, sum->agent_steps);
  put_i64(b, sum->llm_requests);
  put_i64(b, sum->llm_tokens);
  put_i64(b, sum->traps);
  for (k = 0; k < o->n_agents; k++) {
    const agent_slot *a = &o->agents[k];
    put_str(b, a->id, strlen(a->id));
    put_u32(b, (uint32_t)(a->spec - o->s->agents));
    if (a->config) {
      put_str(b, a->config, strlen(a->config));
    } else {
      put_i64(b, -1);
    }
    put_u32(b, (uint32_t)a->status);
    put_u32(b, (uint32_t)a->needs_init);
    put_i64(b, a->next_llm);
    put_i64(b, a->next_timer);
    put_i64(b, (int64_t)a->in.count);
    for (e = 0; e < a->in.count; e++) {
      const inbox_ev *ev = &a->in.items[(a->in.head + e) % a->in.cap];
      put_u32(b, ev->kind);
      put_str(b, ev->payload, ev->len);
    }
    put_i64(b, (int64_t)a->n_kv);
    for (e = 0; e < a->n_kv; e++) {
      put_str(b, a->kv[e].key, a->kv[e].klen);
      put_str(b, a->kv[e].val, a->kv[e].vlen);
    }
  }
  put_i64(b, (int64_t)o->n_timers);
  for (e = 0; e < o->n_timers; e++) {
    put_i64(b, o->timers[e].due);
    put_u32(b, (uint32_t)o->timers[e].agent);
    put_i64(b, o->timers[e].id);
  }
  put_u32(b, (uint32_t)(o->n_models + 1));
  for (i = 0; i <= o->n_models; i++) put_i64(b, (int64_t)o->models[i].rr_next);
  for (i = 0; i <= o->n_models; i++) {
    const model_slot *ms = &o->models[i];
    const llm_req **eng;
    size_t n;
    put_i64(b, (int64_t)ms->waiting);
    for (k = 0; k < o->n_agents; k++) {
      const llm_req *r;
      for (r = ms->wait_head[k]; r != NULL; r = r->next) {
        put_u32(b, (uint32_t)r->agent);
        put_i64(b, r->number);
        put_str(b, r->json, r->len);
      }
    }
    if (ms->n_live == 0) {
      put_i64(b, 0);
      continue;
    }
    if ((eng = coh__calloc(ms->n_live, sizeof *eng)) == NULL) return COH_ENOMEM;
    n = engine_order(ms, eng);
    put_i64(b, (int64_t)n);
    for (e = 0; e < n; e++) {
      put_u32(b, (uint32_t)eng[e]->agent);
      put_i64(b, eng[e]->number);
      put_i64(b, eng[e]->admit_tick);
      put_i64(b, eng[e]->tokens);
      put_str(b, eng[e]->json, eng[e]->len);
      put_str(b, eng[e]->text.p, eng[e]->text.n);
    }
    coh__free(eng);
  }
  return b->oom ? COH_ENOMEM : COH_OK;
}

/* ---- reading ----------------------------------------------------------------- */

typedef struct rd {
  const uint8_t *p, *end;
  const char *what; /* the field being read, for errors */
} rd;

static int get(rd *r, void *dst, size_t n, const char *what) {
  r->what = what;
  if ((size_t)(r->end - r->p) < n) return -1;
  memcpy(dst, r->p, n);
  r->p += n;
  return 0;
}

static int get_u32(rd *r, uint32_t *v, const char *what) { return get(r, v, 4, what); }
static int get_i64(rd *r, int64_t *v, const char *what) { return get(r, v, 8, what); }

/* A length-prefixed byte string, borrowed from the state. */
static int get_str(rd *r, const uint8_t **p, size_t *n, const char *what) {
  int64_t len;
  if (get_i64(r, &len, what) || len < 0 || (uint64_t)len > (uint64_t)(r->end - r->p)) return -1;
  *p = r->p;
  *n = (size_t)len;
  r->p += len;
  return 0;
}

static char *dup_n(const uint8_t *p, size_t n) {
  char *s = coh__malloc(n + 1);
  if (s == NULL) return NULL;
  if (n) memcpy(s, p, n);
  s[n] = '\0';
  return s;
}

int coh__orch_state_tick(const uint8_t *p, size_t n, int64_t *tick) {
  if (n < 16 || (memcmp(p, MAGIC, 8) != 0 && memcmp(p, MAGIC_V1, 8) != 0)) return -1;
  memcpy(tick, p + 8, 8);
  return *tick > 0 ? 0 : -1;
}

#define BAD(...) \
  do { \
    rc = coh__err(err, COH_EFORMAT, __VA_ARGS__); \
    goto done; \
  } while (0)

int coh__orch_state_restore(orch *o, const uint8_t *p, size_t n, coh_err *err) {
  rd r = {p, p + n, "magic"};
  uint8_t magic[8];
  int64_t tick, v[5];
  uint32_t n_agents, u, n_models;
  int k, rc = COH_OK, n_scn = o->n_agents, v1;
  int64_t cnt, e;
  static const char *const cnames[5] = {"events", "agent_steps", "llm_requests", "llm_tokens",
                                        "traps"};
  if (get(&r, magic, 8, "magic") ||
      (memcmp(magic, MAGIC, 8) != 0 && memcmp(magic, MAGIC_V1, 8) != 0))
    BAD("not a resume state of format %s", MAGIC);
  v1 = memcmp(magic, MAGIC_V1, 8) == 0;
  if (get_i64(&r, &tick, "tick") || get_u32(&r, &n_agents, "n_agents")) goto trunc;
  if (n_agents < (uint32_t)n_scn || n_agents > (uint32_t)o->cap_agents)
    BAD("%u agent slots, the scenario has %d (at most %d with spawned agents)", n_agents, n_scn,
        o->cap_agents);
  for (k = 0; k < 5; k++)
    if (get_i64(&r, &v[k], cnames[k])) goto trunc;
  for (k = 0; k < (int)n_agents; k++) {
    agent_slot *a = &o->agents[k];
    const uint8_t *sp;
    size_t sn;
    int64_t clen;
    uint32_t spec, status, needs_init;
    if (get_str(&r, &sp, &sn, "agent id") || get_u32(&r, &spec, "agent spec")) goto trunc;
    if (spec >= o->s->n_agents) BAD("agent slot %d: scenario agent %u does not exist", k, spec);
    if (k < n_scn) {
      if (strlen(a->id) != sn || memcmp(a->id, sp, sn) != 0 ||
          a->spec != &o->s->agents[spec])
        BAD("agent slot %d is '%.*s', the scenario's is '%s'", k, (int)(sn > 80 ? 80 : sn),
            (const char *)sp, a->id);
    } else {
      int i;
      memset(a, 0, sizeof *a);
      a->o = o;
      a->index = k;
      a->spec = &o->s->agents[spec];
      a->module = o->modules[spec];
      if ((a->id = dup_n(sp, sn)) == NULL) {
        rc = coh__err(err, COH_ENOMEM, "out of memory");
        goto done;
      }
      o->n_agents = k + 1; /* teardown frees it from here on */
      if (sn == 0 || memchr(sp, '\0', sn) != NULL || coh__orch_agent_index(o, a->id) >= 0)
        BAD("agent slot %d: bad or repeated id", k);
      for (i = k; i > 0 && strcmp(o->agents[o->by_id[i - 1]].id, a->id) > 0; i--)
        o->by_id[i] = o->by_id[i - 1];
      o->by_id[i] = k;
    }
    if (get_i64(&r, &clen, "agent config")) goto trunc;
    if (clen >= 0) {
      if ((uint64_t)clen > (uint64_t)(r.end - r.p)) goto trunc;
      if (k < n_scn) BAD("agent slot %d ('%s'): a scenario agent has no spawn config", k, a->id);
      if ((a->config = dup_n(r.p, (size_t)clen)) == NULL) {
        rc = coh__err(err, COH_ENOMEM, "out of memory");
        goto done;
      }
      r.p += clen;
    }
    if (get_u32(&r, &status, "agent status") || get_u32(&r, &needs_init, "agent needs_init") ||
        get_i64(&r, &a->next_llm, "agent next_llm") ||
        get_i64(&r, &a->next_timer, "agent next_timer") || get_i64(&r, &cnt, "inbox length"))
      goto trunc;
    if (status > AGENT_FAILED || needs_init > 1 || a->next_llm < 0 || a->next_timer < 0)
      BAD("agent '%s': status %u, needs_init %u, counters %lld/%lld out of range", a->id, status,
          needs_init, (long long)a->next_llm, (long long)a->next_timer);
    a->status = (enum agent_status)status;
    a->needs_init = (int)needs_init;
    /* each event takes at least 12 bytes: a bound before any allocation */
    if (cnt < 0 || (uint64_t)cnt > (uint64_t)(r.end - r.p) / 12) goto trunc;
    for (e = 0; e < cnt; e++) {
      uint32_t kind;
      const char *hdr;
      size_t hl;
      if (get_u32(&r, &kind, "inbox event kind") || get_str(&r, &sp, &sn, "inbox event"))
        goto trunc;
      hdr = (const char *)sp;
      if (sn == 0 || memchr(sp, '\0', sn) == NULL)
        BAD("agent '%s': inbox event %lld has no header", a->id, (long long)e);
      hl = strlen(hdr);
      if ((rc = coh__orch_inbox_push(&a->in, kind, hdr, sp + hl + 1, sn - hl - 1,
                                      coh__wall_seconds()))) {
        rc = coh__err(err, rc, "out of memory");
        goto done;
      }
    }
    if (get_i64(&r, &cnt, "kv length")) goto trunc;
    if (cnt < 0 || (uint64_t)cnt > (uint64_t)(r.end - r.p) / 16) goto trunc;
    if (cnt > 0 && (a->kv = coh__calloc((size_t)cnt, sizeof *a->kv)) == NULL) {
      rc = coh__err(err, COH_ENOMEM, "out of memory");
      goto done;
    }
    for (e = 0; e < cnt; e++) {
      kv_pair *kv = &a->kv[e];
      const uint8_t *vp;
      size_t vn;
      if (get_str(&r, &sp, &sn, "kv key") || get_str(&r, &vp, &vn, "kv value")) goto trunc;
      kv->key = dup_n(sp, sn);
      kv->val = (uint8_t *)dup_n(vp, vn);
      a->n_kv = (size_t)e + 1;
      if (kv->key == NULL || kv->val == NULL) {
        rc = coh__err(err, COH_ENOMEM, "out of memory");
        goto done;
      }
      kv->klen = sn;
      kv->vlen = vn;
    }
  }
  if (get_i64(&r, &cnt, "timer count")) goto trunc;
  if (cnt < 0 || (uint64_t)cnt > (uint64_t)(r.end - r.p) / 20) goto trunc;
  for (e = 0; e < cnt; e++) {
    int64_t due, id;
    if (get_i64(&r, &due, "timer due") || get_u32(&r, &u, "timer agent") ||
        get_i64(&r, &id, "timer id"))
      goto trunc;
    if (u >= n_agents || due <= tick)
      BAD("timer %lld: agent %u, due %lld (the state is of tick %lld)", (long long)e, u,
          (long long)due, (long long)tick);
    if (coh__orch_add_timer(o, (int)u, id, due)) {
      rc = coh__err(err, COH_ENOMEM, "out of memory");
      goto done;
    }
  }
  if (get_u32(&r, &n_models, "model count")) goto trunc;
  if (n_models != (uint32_t)o->n_models + 1)
    BAD("%u model slots, the scenario has %d", n_models, o->n_models + 1);
  for (k = 0; k <= o->n_models; k++) {
    int64_t rr;
    if (get_i64(&r, &rr, "admission cursor")) goto trunc;
    if (rr < 0 || rr > o->cap_agents) BAD("model slot %d: admission cursor %lld", k, (long long)rr);
    o->models[k].rr_next = (int)rr;
  }
  for (k = 0; k <= o->n_models && !v1; k++) {
    int in_engine;
    int64_t last_admit = 0;
    for (in_engine = 0; in_engine < 2; in_engine++) {
      if (get_i64(&r, &cnt, in_engine ? "engine request count" : "waiting request count"))
        goto trunc;
      /* a waiting request takes at least 20 bytes, one in an engine 44 */
      if (cnt < 0 || (uint64_t)cnt > (uint64_t)(r.end - r.p) / (in_engine ? 44 : 20)) goto trunc;
      for (e = 0; e < cnt; e++) {
        int64_t number, admit = 0, tokens = 0;
        const uint8_t *jp, *tp = NULL;
        size_t jn, tn = 0;
        if (get_u32(&r, &u, "request agent") || get_i64(&r, &number, "request number"))
          goto trunc;
        if (in_engine && (get_i64(&r, &admit, "request admission tick") ||
                          get_i64(&r, &tokens, "request tokens")))
          goto trunc;
        if (get_str(&r, &jp, &jn, "request json")) goto trunc;
        if (in_engine && get_str(&r, &tp, &tn, "request text")) goto trunc;
        if (u >= n_agents || number < 1 || number > o->agents[u].next_llm)
          BAD("model slot %d: request %lld of agent slot %u is out of range", k,
              (long long)number, u);
        if (in_engine && (admit < 1 || admit > tick || admit < last_admit || tokens < 0 ||
                          tokens > INT32_MAX))
          BAD("model slot %d: request %lld of agent '%s': admitted at tick %lld (after tick "
              "%lld), %lld tokens", k, (long long)number, o->agents[u].id, (long long)admit,
              (long long)last_admit, (long long)tokens);
        last_admit = admit;
        if ((rc = coh__orch_llm_restore(o, k, (int)u, number, (const char *)jp, jn, in_engine,
                                        admit, (int32_t)tokens, (const char *)tp, tn, err)))
          goto done;
      }
    }
  }
  if (r.p != r.end) BAD("%zu trailing bytes", (size_t)(r.end - r.p));
  o->events = v[0];
  o->sum->agent_steps = v[1];
  o->sum->llm_requests = v[2];
  o->sum->llm_tokens = v[3];
  o->sum->traps = v[4];
  o->tick = tick;
  return COH_OK;
trunc:
  rc = coh__err(err, COH_EFORMAT, "truncated or out of range at %s", r.what);
done:
  return rc;
}
