/*
 * host.c — what an agent's imports do while it steps on a worker thread.
 *
 * Nothing here touches shared mutable state: every effect (a send, an emit,
 * an LLM request, a timer) is appended to the stepping agent's own output
 * list and takes effect when the orchestrator commits the tick.  Decisions
 * the agent sees at once (a refused send, a request id, a timer id) depend
 * only on state frozen at the start of the tick, so they are the same for
 * any number of workers.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orch_int.h"

/* Out of memory in host call `call`: the agent must not see a result that
 * an uninterrupted run would not give it, so its call is abandoned
 * (coh_agent_host_fail) and the orchestrator fails the tick. */
static void host_oom(agent_slot *a, coh_agent *ag, const char *call) {
  if (a->fail_rc == COH_OK) {
    a->fail_rc = COH_ENOMEM;
    snprintf(a->fail_msg, sizeof a->fail_msg, "out of memory in the host call %s", call);
  }
  coh_agent_host_fail(ag, COH_ENOMEM, a->fail_msg);
}

/* Appends an output; NULL after host_oom (the caller returns at once). */
static out_item *push_out(agent_slot *a, coh_agent *ag, const char *call, enum out_type type,
                          const void *data, size_t len) {
  out_item *it;
  char *copy = NULL;
  if (a->n_outs == a->cap_outs) {
    out_item *n = coh__grow(a->outs, &a->cap_outs, a->n_outs + 1, sizeof *n, 8);
    if (n == NULL) {
      host_oom(a, ag, call);
      return NULL;
    }
    a->outs = n;
  }
  if (len > 0 || data != NULL) {
    copy = coh__malloc(len + 1);
    if (copy == NULL) {
      host_oom(a, ag, call);
      return NULL;
    }
    if (len) memcpy(copy, data, len);
    copy[len] = '\0';
  }
  it = &a->outs[a->n_outs];
  memset(it, 0, sizeof *it);
  it->type = type;
  it->target = -1;
  it->data = copy;
  it->len = copy ? len : 0;
  a->n_outs++;
  return it;
}

void coh__orch_clear_outs(agent_slot *a) {
  size_t i;
  for (i = 0; i < a->n_outs; i++) coh__free(a->outs[i].data);
  a->n_outs = 0;
}

/* Whether agent id `have` (NUL-terminated) is the len bytes at `id`, which
 * come from an agent and may hold NUL bytes: strncmp stops at the first
 * NUL, so the length is compared with strnlen, never by reading have[len]
 * (past the end of a shorter id). */
static int id_is(const char *have, const char *id, size_t len) {
  return strncmp(have, id, len) == 0 && strnlen(have, len + 1) == len;
}

/* Binary search in the orchestrator's id index (immutable during ticks). */
static int find_agent(const orch *o, const char *id, size_t len) {
  int lo = 0, hi = o->n_agents - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    const char *mid_id = o->agents[o->by_id[mid]].id;
    int c = strncmp(mid_id, id, len);
    /* equal over len bytes: mid_id is longer (so greater), or the same */
    if (c == 0) c = strnlen(mid_id, len + 1) == len ? 0 : 1;
    if (c == 0) return o->by_id[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/* Whether slot a is an endpoint (spec, inst) of a route. */
static int route_has(const orch *o, int spec, const char *inst, const agent_slot *a) {
  return a->spec == &o->s->agents[spec] && (inst == NULL || strcmp(a->id, inst) == 0);
}

/* The route schemas of a send from a to t, in scenario order: the first
 * that msg does not satisfy is recorded (OUT_SCHEMA_REFUSED) and the send
 * fails with COH_ABI_EINVAL.  A function of (scenario, sender, target,
 * msg) only.  Returns 1 when refused, -1 after host_oom, 0 when valid. */
static int route_check(agent_slot *a, coh_agent *ag, int t, const char *to, size_t to_len,
                       const uint8_t *msg, size_t msg_len) {
  const orch *o = a->o;
  size_t r;
  for (r = 0; r < o->s->n_routes; r++) {
    const orch_route *rt = &o->routes[r];
    coh_grammar_check chk;
    coh_err e;
    out_item *it;
    if (!route_has(o, rt->from_spec, rt->from_inst, a) ||
        !route_has(o, rt->to_spec, rt->to_inst, &o->agents[t]))
      continue;
    coh_err_clear(&e);
    if (coh_grammar_check_text(rt->g, (const char *)msg, msg_len, &chk, &e)) {
      host_oom(a, ag, "send");
      return -1;
    }
    if (chk.accepted) continue;
    it = push_out(a, ag, "send", OUT_SCHEMA_REFUSED, to, to_len);
    if (it == NULL) return -1;
    it->target = t;
    it->level = (int)r;
    it->at = chk.rejected_at;
    it->cut = chk.cut;
    return 1;
  }
  return 0;
}

static void h_emit(void *ud, coh_agent *ag, const uint8_t *data, size_t len) {
  push_out(ud, ag, "emit", OUT_EMIT, data, len);
}

static int32_t h_send(void *ud, coh_agent *ag, const char *to, size_t to_len,
                      const uint8_t *msg, size_t msg_len) {
  agent_slot *a = ud;
  orch *o = a->o;
  /* An agent mostly sends to whom it sent to last (a reply, a pipeline's
   * next stage): one comparison instead of the binary search, which was
   * ~4% of a routing run.  The cache is the sender's own, so no lock. */
  int t = a->send_cache;
  size_t mine = 0, i;
  out_item *it;
  if (t < 0 || t >= o->n_agents || !id_is(o->agents[t].id, to, to_len)) {
    t = find_agent(o, to, to_len);
    if (t >= 0) a->send_cache = t;
  }
  if (t < 0 && memchr(to, '\0', to_len) == NULL) { /* the scenario's `outside` */
    for (i = 0; i < o->s->n_outside; i++)
      if (!strcmp(o->s->outside[i], "*") ||
          (strlen(o->s->outside[i]) == to_len && !memcmp(o->s->outside[i], to, to_len))) {
        /* data: "name\0body", id: the name's length */
        char *buf = coh__malloc(to_len + 1 + msg_len);
        if (buf == NULL) {
          host_oom(a, ag, "send");
          return COH_ABI_ETOOBIG; /* not seen: the call is abandoned */
        }
        memcpy(buf, to, to_len);
        buf[to_len] = '\0';
        if (msg_len) memcpy(buf + to_len + 1, msg, msg_len);
        it = push_out(a, ag, "send", OUT_OUTSIDE, buf, to_len + 1 + msg_len);
        coh__free(buf);
        if (it == NULL) return COH_ABI_ETOOBIG; /* not seen: the call is abandoned */
        it->id = (int64_t)to_len;
        return COH_ABI_OK;
      }
  }
  if (t < 0 || o->agents[t].status != AGENT_ALIVE) {
    push_out(a, ag, "send", OUT_REFUSED, to, to_len);
    return COH_ABI_ENOTFOUND;
  }
  /* Route schemas, before backpressure: a message that is not valid for
   * its route is refused whatever the inbox holds. */
  if (o->s->n_routes) {
    int bad = route_check(a, ag, t, to, to_len, msg, msg_len);
    if (bad < 0) return COH_ABI_ETOOBIG; /* not seen: the call is abandoned */
    if (bad) return COH_ABI_EINVAL;
  }
  /* Backpressure, decided from the inbox as it was at the start of the tick
   * plus this sender's own sends to it this tick: the same in every run. */
  for (i = 0; i < a->n_outs; i++)
    if (a->outs[i].type == OUT_SEND && a->outs[i].target == t) mine++;
  if (o->agents[t].in_snapshot + mine >= (size_t)o->agents[t].spec->inbox) {
    it = push_out(a, ag, "send", OUT_REFUSED, to, to_len);
    if (it) it->target = t;
    return COH_ABI_EFULL;
  }
  /* data is the inbox payload itself, "sender\0body" (id: the body's
   * offset), so that the commit moves it into the target's inbox instead of
   * allocating and copying it again on the orchestrator's thread */
  {
    size_t hl = strlen(a->id);
    char *buf = coh__malloc(hl + 1 + msg_len + 1);
    if (buf == NULL) {
      host_oom(a, ag, "send");
      return COH_ABI_ETOOBIG; /* not seen: the call is abandoned */
    }
    memcpy(buf, a->id, hl + 1);
    if (msg_len) memcpy(buf + hl + 1, msg, msg_len);
    buf[hl + 1 + msg_len] = '\0';
    it = push_out(a, ag, "send", OUT_SEND, NULL, 0);
    if (it == NULL) {
      coh__free(buf);
      return COH_ABI_ETOOBIG;
    }
    it->data = buf;
    it->len = hl + 1 + msg_len;
    it->id = (int64_t)(hl + 1);
    it->target = t;
  }
  return COH_ABI_OK;
}

static void h_log(void *ud, coh_agent *ag, int level, const char *msg,
                  size_t len) {
  out_item *it = push_out(ud, ag, "log", OUT_LOG, msg, len);
  if (it) it->level = level;
}

static int64_t h_llm(void *ud, coh_agent *ag, const char *req, size_t len) {
  agent_slot *a = ud;
  out_item *it = push_out(a, ag, "llm", OUT_LLM, req, len);
  if (it == NULL) return COH_ABI_ETOOBIG; /* not seen: the call is abandoned */
  it->id = ++a->next_llm;
  return it->id;
}

static int64_t h_now(void *ud, coh_agent *ag) {
  (void)ag;
  return ((agent_slot *)ud)->o->tick;
}

static int64_t h_timer(void *ud, coh_agent *ag, int64_t ticks) {
  agent_slot *a = ud;
  out_item *it;
  if (ticks < 1 || ticks > (int64_t)1 << 40) return COH_ABI_EINVAL;
  it = push_out(a, ag, "timer", OUT_TIMER, NULL, 0);
  if (it == NULL) return COH_ABI_ETOOBIG; /* not seen: the call is abandoned */
  it->id = ++a->next_timer;
  it->due = a->o->tick + ticks;
  return it->id;
}

static kv_pair *kv_find(agent_slot *a, const char *key, size_t klen) {
  size_t i;
  for (i = 0; i < a->n_kv; i++)
    if (a->kv[i].klen == klen && !memcmp(a->kv[i].key, key, klen)) return &a->kv[i];
  return NULL;
}

static int32_t h_state_get(void *ud, coh_agent *ag, const char *key,
                           size_t klen, uint8_t *v, size_t vcap) {
  kv_pair *p = kv_find(ud, key, klen);
  (void)ag;
  if (p == NULL) return COH_ABI_ENOTFOUND;
  memcpy(v, p->val, p->vlen < vcap ? p->vlen : vcap);
  return (int32_t)p->vlen;
}

static int32_t h_state_put(void *ud, coh_agent *ag, const char *key,
                           size_t klen, const uint8_t *v, size_t vlen) {
  agent_slot *a = ud;
  kv_pair *p = kv_find(a, key, klen);
  uint8_t *nv;
  if (vlen > (1u << 24) || klen > 4096) return COH_ABI_ETOOBIG;
  if (p == NULL) {
    kv_pair *n = coh__realloc(a->kv, (a->n_kv + 1) * sizeof *n);
    if (n == NULL) goto oom;
    a->kv = n;
    p = &a->kv[a->n_kv];
    memset(p, 0, sizeof *p);
    p->key = coh__malloc(klen + 1);
    if (p->key == NULL) goto oom;
    memcpy(p->key, key, klen);
    p->klen = klen;
    a->n_kv++;
  }
  nv = coh__malloc(vlen + 1);
  if (nv == NULL) goto oom;
  memcpy(nv, v, vlen);
  coh__free(p->val);
  p->val = nv;
  p->vlen = vlen;
  return COH_ABI_OK;
oom: /* the agent does not see this: its call is abandoned */
  host_oom(a, ag, "state_put");
  return COH_ABI_ETOOBIG;
}

static int valid_id(const char *s) {
  size_t n = strlen(s), i;
  if (n < 1 || n > 64) return 0;
  for (i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '_' || c == '.' || c == '-'))
      return 0;
  }
  return 1;
}

/* spawn: checked against the state at the start of the tick (ids taken, the
 * scenario's agents); a clash with another agent's spawn of the same id in
 * the same tick is settled at commit, in agent order. */
static int32_t h_spawn(void *ud, coh_agent *ag, const char *req, size_t len) {
  agent_slot *a = ud;
  orch *o = a->o;
  json_error_t je;
  json_t *root = json_loadb(req, len, 0, &je), *id, *like, *cfg;
  const char *ids, *likes;
  char *cfgs = NULL, *buf;
  size_t i, il, cl;
  int spec = -1;
  out_item *it;
  if (root == NULL && json_error_code(&je) == json_error_out_of_memory) goto oom;
  if (root == NULL || !json_is_object(root)) goto bad;
  id = json_object_get(root, "id");
  like = json_object_get(root, "like");
  cfg = json_object_get(root, "config");
  if (!json_is_string(id) || !json_is_string(like) || (cfg && !json_is_object(cfg))) goto bad;
  ids = json_string_value(id);
  likes = json_string_value(like);
  if (!valid_id(ids) || find_agent(o, ids, strlen(ids)) >= 0) goto bad;
  for (i = 0; i < o->s->n_agents; i++)
    if (!strcmp(o->s->agents[i].id, likes)) spec = (int)i;
  if (spec < 0) goto bad;
  for (i = 0; i < a->n_outs; i++)
    if (a->outs[i].type == OUT_SPAWN && !strcmp(a->outs[i].data, ids)) goto bad;
  cfgs = cfg ? json_dumps(cfg, JSON_COMPACT) : NULL;
  if (cfg && cfgs == NULL) goto oom;
  il = strlen(ids);
  cl = cfgs ? strlen(cfgs) : 0;
  buf = coh__malloc(il + 1 + cl + 1);
  if (buf == NULL) {
    free(cfgs);
    goto oom;
  }
  memcpy(buf, ids, il + 1);
  if (cfgs) memcpy(buf + il + 1, cfgs, cl + 1);
  else buf[il + 1] = '\0';
  it = push_out(a, ag, "spawn", OUT_SPAWN, buf, il + 1 + cl);
  coh__free(buf);
  free(cfgs);
  json_decref(root);
  if (it == NULL) return COH_ABI_ETOOBIG;
  it->target = spec;
  return COH_ABI_OK;
bad:
  json_decref(root);
  return COH_ABI_EINVAL;
oom: /* the agent does not see this: its call is abandoned */
  json_decref(root);
  host_oom(a, ag, "spawn");
  return COH_ABI_ETOOBIG;
}

const coh_agent_host coh__orch_host = {
    h_emit, h_send, h_log, h_llm, h_now, NULL, h_timer, h_state_get, h_state_put, h_spawn,
};

/* Room for one more queued-latency sample (timings only: on failure the
 * sample is dropped). */
static int grow_qlat(agent_slot *a) {
  double *n = coh__grow(a->qlat, &a->cap_qlat, a->n_qlat + 1, sizeof *n, 8);
  if (n == NULL) return 0;
  a->qlat = n;
  return 1;
}

/* A call that ended with neither a result nor the agent's own trap or exit
 * (out of memory in a host call, in the runtime or setting up the thread):
 * recorded for the orchestrator, which fails the tick.  Returns 1 if so. */
static int host_failed(agent_slot *a, int rc, const coh_agent_result *r) {
  if (rc == COH_OK || rc == COH_ETRAP || rc == COH_ESTATE) return 0;
  if (a->fail_rc == COH_OK) {
    a->fail_rc = rc;
    snprintf(a->fail_msg, sizeof a->fail_msg, "%.383s", r->message[0] ? r->message : coh_strerror(rc));
  }
  a->step_t1 = coh__wall_seconds();
  return 1;
}

/* Runs an agent's work for this tick: its init (tick 0) or the first
 * `to_deliver` events of its inbox, stopping at a trap or an exit.  t0 is
 * the clock at the start (a worker passes the previous step's end: steps
 * run back to back, and each clock reading was ~3% of a routing run);
 * returns the clock at the end. */
double coh__orch_run_step(agent_slot *a, int64_t tick, double t0) {
  coh_agent_result r;
  int rc;
  (void)tick;
  a->fuel_used = 0;
  a->delivered = 0;
  a->trapped = a->exited = 0;
  a->last_rc = 0;
  a->n_qlat = 0;
  a->fail_rc = COH_OK; /* fail_msg is read only when fail_rc is set, and set with it */
  a->step_t0 = t0;
  if (a->is_init) {
    const char *cfg = a->config ? a->config : a->spec->config_json ? a->spec->config_json : "{}";
    rc = coh_agent_init(a->agent, cfg, strlen(cfg), &r);
    if (host_failed(a, rc, &r)) return a->step_t1;
    a->fuel_used = r.fuel_used;
    a->last_rc = r.rc;
    if (rc == COH_ETRAP || r.trap != COH_TRAP_NONE || (rc == COH_OK && r.rc != 0)) {
      a->trapped = 1;
      a->res = r;
      if (rc == COH_OK && r.trap == COH_TRAP_NONE)
        snprintf(a->res.message, sizeof a->res.message,
                 "cohort_init returned %d (the agent refused to start)", r.rc);
    }
    if (r.exited) a->exited = 1;
    a->step_t1 = coh__wall_seconds();
    return a->step_t1;
  }
  while (a->delivered < a->to_deliver && a->in.count > 0) {
    inbox_ev ev = a->in.items[a->in.head];
    a->in.head = (a->in.head + 1) % a->in.cap;
    a->in.count--;
    a->delivered++;
    if (a->n_qlat < a->cap_qlat || (a->n_qlat == a->cap_qlat && grow_qlat(a)))
      a->qlat[a->n_qlat++] = (a->step_t0 - ev.queued_at) * 1e3;
    rc = coh_agent_step(a->agent, ev.kind, ev.payload, ev.len, &r);
    coh__free(ev.payload);
    if (host_failed(a, rc, &r)) break;
    a->fuel_used += r.fuel_used;
    a->last_rc = r.rc;
    if (rc == COH_ETRAP || r.trap != COH_TRAP_NONE) {
      a->trapped = 1;
      a->res = r;
      break;
    }
    if (r.exited || rc == COH_ESTATE) {
      a->exited = 1;
      a->res = r;
      break;
    }
  }
  a->step_t1 = coh__wall_seconds();
  return a->step_t1;
}
