/*
 * gram_state.c — the vocabulary trie, parse states and masks.
 *
 * A parse state is a set of stacks (gram_int.h).  A stack is a chain of
 * nodes (position in elems, parent); every top is at a byte class.  A byte
 * advances each top whose class holds it, then the new position is
 * normalized: an END pops to the parent, a rule reference expands into its
 * alternatives (its continuation is the parent itself when the reference is
 * last in its alternative: tail calls, so loops keep a constant stack).
 *
 * The mask walks the vocabulary trie depth first, keeping the state after
 * each prefix; a prefix that leaves no stack (and does not accept) cuts its
 * whole subtree.  Masks are cached per state by the positions of its stacks
 * (the mask depends on nothing else), so the long runs inside a string or a
 * number reuse one walk.
 */
#include <stdlib.h>
#include <string.h>

#include "grammar/gram_int.h"

#define NONE UINT32_MAX

/* ---- vocabulary ------------------------------------------------------------ */

struct coh_grammar_vocab {
  size_t n_ids;
  /* trie in preorder; node 0 is the root (empty string) */
  uint8_t *byte;
  uint16_t *depth;
  uint32_t *end;      /* index after the node's subtree */
  uint32_t *tok_off;  /* tokens ending here: ids[tok_off[i]..tok_off[i+1]) */
  int32_t *ids;
  size_t n_nodes;
  int32_t *eos;
  size_t n_eos;
  unsigned char *is_eos; /* n_ids */
  /* bytes of each id (for accept): off/len into text */
  uint32_t *boff, *blen;
  char *text;
  uint16_t max_depth;
  /* node → every token in its subtree is "string-safe": complete JSON
   * string characters, no '"', '\\' or control byte (see safe_bytes) */
  uint8_t *all_safe;
  /* the char-count fast path: characters of each token (by its index in
   * ids; 0 when not string-safe) and the most characters of a token in
   * each node's subtree */
  uint16_t *nch;
  uint16_t *max_ch;
  /* the ASCII chain: node → every token in its subtree is bytes of A only
   * (gram_int.h cauni), and the longest token of the subtree */
  uint8_t *all_a;
  uint16_t *max_len;
};

typedef struct vtok {
  const char *s;
  uint32_t n;
  int32_t id;
} vtok;

static int cmp_vtok(const void *a, const void *b) {
  const vtok *x = a, *y = b;
  uint32_t n = x->n < y->n ? x->n : y->n;
  int c = memcmp(x->s, y->s, n);
  if (c) return c;
  if (x->n != y->n) return x->n < y->n ? -1 : 1;
  return x->id < y->id ? -1 : x->id > y->id;
}

void coh_grammar_vocab_free(coh_grammar_vocab *v) {
  if (!v) return;
  coh__free(v->byte);
  coh__free(v->depth);
  coh__free(v->end);
  coh__free(v->tok_off);
  coh__free(v->ids);
  coh__free(v->eos);
  coh__free(v->is_eos);
  coh__free(v->boff);
  coh__free(v->blen);
  coh__free(v->text);
  coh__free(v->all_safe);
  coh__free(v->nch);
  coh__free(v->max_ch);
  coh__free(v->all_a);
  coh__free(v->max_len);
  coh__free(v);
}

size_t coh_grammar_vocab_size(const coh_grammar_vocab *v) {
  return v ? v->n_ids : 0;
}

/* Whether b[0..n) is a sequence of whole JSON string characters without
 * quote, backslash or control bytes, with the same UTF-8 shapes as the
 * schema compiler's character rule (gram_schema.c json_char). */
static int safe_bytes(const unsigned char *b, size_t n) {
  size_t i = 0, k, l;
  while (i < n) {
    unsigned char c = b[i];
    if (c < 0x80) {
      if (c < 0x20 || c == '"' || c == '\\') return 0;
      i++;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF) l = 2;
    else if (c >= 0xE0 && c <= 0xEF) l = 3;
    else if (c >= 0xF0 && c <= 0xF4) l = 4;
    else return 0;
    if (i + l > n) return 0;
    for (k = 1; k < l; k++)
      if (b[i + k] < 0x80 || b[i + k] > 0xBF) return 0;
    i += l;
  }
  return 1;
}

#define TOK_MAX 1024 /* longer tokens are never allowed (none real are) */

int coh_grammar_vocab_new(const coh_tokenizer *tok, const int32_t *eos_ids,
                          size_t n_eos, coh_grammar_vocab **out,
                          coh_err *err) {
  coh_grammar_vocab *v = NULL;
  vtok *t = NULL;
  size_t n, i, nt = 0, tlen = 0, cap_text = 0;
  uint32_t *path = NULL;
  int rc = COH_OK;
  char buf[TOK_MAX];
  *out = NULL;
  if (!tok || !out || (n_eos && !eos_ids))
    return coh__err(err, COH_EINVAL, "grammar vocab: NULL argument");
  n = coh_tokenizer_vocab_size(tok);
  v = coh__calloc(1, sizeof *v);
  if (!v) goto oom;
  v->n_ids = n;
  v->is_eos = coh__calloc(n + 1, 1);
  v->boff = coh__calloc(n + 1, sizeof *v->boff);
  v->blen = coh__calloc(n + 1, sizeof *v->blen);
  v->eos = coh__malloc((n_eos + 1) * sizeof *v->eos);
  t = coh__malloc((n + 1) * sizeof *t);
  if (!v->is_eos || !v->boff || !v->blen || !v->eos || !t) goto oom;
  for (i = 0; i < n_eos; i++) {
    if (eos_ids[i] < 0 || (size_t)eos_ids[i] >= n) {
      rc = coh__err(err, COH_ERANGE,
                    "grammar vocab: eos id %ld out of range (vocab %zu)",
                    (long)eos_ids[i], n);
      goto done;
    }
    v->eos[i] = eos_ids[i];
    v->is_eos[eos_ids[i]] = 1;
  }
  v->n_eos = n_eos;
  /* the bytes of every token into one text buffer */
  for (i = 0; i < n; i++) {
    size_t len = 0;
    coh_err e2;
    if (coh_tokenizer_is_special(tok, (int32_t)i)) continue;
    if (coh_tokenizer_token_bytes(tok, (int32_t)i, buf, sizeof buf, &len,
                                  &e2))
      continue; /* a gap in the ids, or a token over TOK_MAX bytes */
    if (len == 0) continue;
    if (tlen + len > cap_text) {
      size_t c = cap_text ? cap_text * 2 : 1 << 16;
      char *p;
      while (c < tlen + len) c *= 2;
      p = coh__realloc(v->text, c);
      if (!p) goto oom;
      v->text = p;
      cap_text = c;
    }
    memcpy(v->text + tlen, buf, len);
    v->boff[i] = (uint32_t)tlen;
    v->blen[i] = (uint32_t)len;
    tlen += len;
  }
  for (i = 0; i < n; i++)
    if (v->blen[i]) {
      t[nt].s = v->text + v->boff[i];
      t[nt].n = v->blen[i];
      t[nt].id = (int32_t)i;
      nt++;
    }
  qsort(t, nt, sizeof *t, cmp_vtok);
  /* preorder trie */
  {
    size_t cap = tlen + 2, sp = 0;
    uint32_t prev_n = 0;
    const char *prev = "";
    v->byte = coh__malloc(cap);
    v->depth = coh__malloc(cap * sizeof *v->depth);
    v->end = coh__malloc(cap * sizeof *v->end);
    v->tok_off = coh__malloc((cap + 1) * sizeof *v->tok_off);
    v->ids = coh__malloc((nt + 1) * sizeof *v->ids);
    path = coh__malloc((TOK_MAX + 2) * sizeof *path);
    if (!v->byte || !v->depth || !v->end || !v->tok_off || !v->ids || !path)
      goto oom;
    v->byte[0] = 0;
    v->depth[0] = 0;
    v->tok_off[0] = 0;
    v->n_nodes = 1;
    path[0] = 0;
    sp = 1; /* path[0..sp): nodes at depth 0..sp-1 */
    for (i = 0; i < nt; i++) {
      uint32_t l = 0, d;
      while (l < prev_n && l < t[i].n && prev[l] == t[i].s[l]) l++;
      while (sp > l + 1) { /* close nodes deeper than l */
        sp--;
        v->end[path[sp]] = (uint32_t)v->n_nodes;
      }
      for (d = l; d < t[i].n; d++) {
        uint32_t k = (uint32_t)v->n_nodes++;
        v->byte[k] = (uint8_t)t[i].s[d];
        v->depth[k] = (uint16_t)(d + 1);
        v->tok_off[k] = (uint32_t)i; /* tokens of k start at i (or later) */
        path[sp++] = k;
        if (d + 1 > v->max_depth) v->max_depth = (uint16_t)(d + 1);
      }
      v->ids[i] = t[i].id;
      prev = t[i].s;
      prev_n = t[i].n;
    }
    while (sp > 1) {
      sp--;
      v->end[path[sp]] = (uint32_t)v->n_nodes;
    }
    v->end[0] = (uint32_t)v->n_nodes;
    /* tok ranges: a node's tokens are the consecutive sorted entries equal
     * to its string; recompute by a second pass */
    {
      size_t node = 0, j = 0;
      uint32_t *cnt = coh__calloc(v->n_nodes + 1, sizeof *cnt);
      if (!cnt) goto oom;
      /* walk again, mapping each token to its node */
      sp = 1;
      prev_n = 0;
      prev = "";
      node = 0;
      for (i = 0; i < nt; i++) {
        uint32_t l = 0, d;
        while (l < prev_n && l < t[i].n && prev[l] == t[i].s[l]) l++;
        if (sp > l + 1) sp = l + 1;
        for (d = l; d < t[i].n; d++) path[sp++] = (uint32_t)++node;
        if (l == t[i].n && t[i].n == prev_n) { /* same string */ }
        cnt[path[sp - 1]]++;
        prev = t[i].s;
        prev_n = t[i].n;
      }
      v->tok_off[0] = 0;
      for (j = 0; j < v->n_nodes; j++) v->tok_off[j + 1] = v->tok_off[j] + cnt[j];
      coh__free(cnt);
    }
  }
  /* all_safe: clear on the node of every unsafe token and its ancestors
   * (the ancestor at depth d-1 of a node is the last node before it at
   * that depth, in preorder) */
  v->all_safe = coh__malloc(v->n_nodes + 1);
  if (!v->all_safe) goto oom;
  memset(v->all_safe, 1, v->n_nodes + 1);
  {
    size_t k;
    uint32_t *last = path; /* reuse: last node seen at each depth */
    for (k = 0; k < v->n_nodes; k++) {
      uint32_t q;
      int bad = 0;
      last[v->depth[k]] = (uint32_t)k;
      for (q = v->tok_off[k]; q < v->tok_off[k + 1]; q++) {
        int32_t id = v->ids[q];
        if (!safe_bytes((const unsigned char *)v->text + v->boff[id], v->blen[id]))
          bad = 1;
      }
      if (bad) {
        int d;
        for (d = v->depth[k]; d >= 0 && v->all_safe[last[d]]; d--)
          v->all_safe[last[d]] = 0;
      }
    }
  }
  v->nch = coh__calloc(nt + 1, sizeof *v->nch);
  v->max_ch = coh__calloc(v->n_nodes + 1, sizeof *v->max_ch);
  if (!v->nch || !v->max_ch) goto oom;
  {
    size_t q, k;
    for (q = 0; q < nt; q++) {
      const unsigned char *b = (const unsigned char *)v->text + v->boff[v->ids[q]];
      uint32_t n = v->blen[v->ids[q]], j, c = 0;
      if (!safe_bytes(b, n)) continue;
      for (j = 0; j < n; j++) c += (b[j] & 0xC0) != 0x80;
      v->nch[q] = (uint16_t)c;
    }
    v->all_a = coh__malloc(v->n_nodes + 1);
    v->max_len = coh__calloc(v->n_nodes + 1, sizeof *v->max_len);
    if (!v->all_a || !v->max_len) goto oom;
    for (k = 0; k < v->n_nodes; k++) {
      uint16_t m = 0;
      int all = 1;
      for (q = v->tok_off[k]; q < v->tok_off[v->end[k]] && all; q++) {
        const unsigned char *b = (const unsigned char *)v->text + v->boff[v->ids[q]];
        uint32_t n = v->blen[v->ids[q]], j;
        for (j = 0; j < n; j++)
          if (b[j] < 0x20 || b[j] > 0x7E || b[j] == '"' || b[j] == '\\') all = 0;
        if (n > m) m = (uint16_t)n;
      }
      v->all_a[k] = (uint8_t)all;
      v->max_len[k] = all ? m : 0;
    }
    /* a subtree's tokens are consecutive in ids */
    for (k = 0; k < v->n_nodes; k++) {
      uint16_t m = 0;
      if (v->all_safe[k])
        for (q = v->tok_off[k]; q < v->tok_off[v->end[k]]; q++)
          if (v->nch[q] > m) m = v->nch[q];
      v->max_ch[k] = m;
    }
  }
  *out = v;
  v = NULL;
  goto done;
oom:
  rc = coh__err(err, COH_ENOMEM, "grammar vocab: out of memory");
done:
  coh__free(t);
  coh__free(path);
  coh_grammar_vocab_free(v);
  return rc;
}

/* ---- parse states ---------------------------------------------------------- */

typedef struct gnode {
  uint32_t pos, parent, depth;
} gnode;

/* A set of stacks: tops[0..n) are node indices; tops live in the tops
 * arena from `at`. */
typedef struct gset {
  uint32_t at, n;
  int accept;
} gset;

#define CACHE_N 16
#define NC 16384 /* node hash-consing table (direct mapped, lossy) */
#define HS 4096 /* dedup hash of one set's tops (> COH__GRAM_MAX_STACKS) */

struct coh_grammar_state {
  const coh_grammar *g;
  const coh_grammar_vocab *v;
  gnode *nodes;
  size_t n_nodes, cap_nodes;
  uint32_t *tops;
  size_t n_tops, cap_tops;
  gset cur; /* the committed state */
  int finished;
  int oom;
  int overflow; /* stacks or depth were cut (never breaks the invariant) */
  size_t n_bytes;
  /* walk scratch: the set after each trie depth, and the node arena's
   * size after it */
  gset *lv;
  size_t *lvn;
  uint8_t *lvb; /* between() of each level's set */
  uint16_t *lvc;  /* characters (non-continuation bytes) of the prefix */
  int32_t *lvk;   /* char-count chain of the level's set: -1 not computed */
  int32_t *lva;   /* ... the most safe characters it survives */
  int32_t *lvz;   /* ... 1 when lva is exact for any count (the chain died) */
  uint32_t *lvu;  /* 8 words per level: the union of its tops' classes */
  int32_t *lak;   /* ASCII chain of the level's set: how far computed, -1 not */
  int32_t *laa;   /* ... the most A bytes its uniform part survives */
  /* mask cache: key = positions of every stack, root first */
  uint64_t key[CACHE_N];
  uint32_t *cmask[CACHE_N];
  uint32_t next_slot;
  size_t mask_words;
  /* dedup of the set being built: (pos, parent) with a generation */
  uint32_t h_pos[HS], h_par[HS], h_gen[HS];
  uint32_t gen;
  /* hash-consing of nodes by (pos, parent): two paths that reach the same
   * stack share its nodes, so that add_top's dedup sees them as one (an
   * ambiguous pattern would otherwise double its stacks at every byte up
   * to the cut).  A lossy cache: a miss only makes a duplicate.  Entries
   * are valid for generation ngen, renewed at every walk and accept, so
   * that a mask depends only on the state, not on earlier calls. */
  uint32_t *nc_idx, *nc_gen;
  uint32_t ngen;
  /* text so far (for messages): the last bytes */
  char tail[48];
  size_t tail_n;
  /* the token budget (coh_grammar_state_budget_mask): per position, the
   * fewest bytes from it to the end of its alternative; made on first use */
  uint32_t *sfx;
};

static void nc_reset(coh_grammar_state *s) {
  if (++s->ngen == 0) {
    memset(s->nc_gen, 0, NC * sizeof *s->nc_gen);
    s->ngen = 1;
  }
}

static uint32_t new_node(coh_grammar_state *s, uint32_t pos, uint32_t parent) {
  uint32_t h = ((pos * 2654435761u) ^ (parent * 0x85ebca6bu)) >> 18;
  if (s->nc_gen[h] == s->ngen) {
    uint32_t x = s->nc_idx[h];
    if (x < s->n_nodes && s->nodes[x].pos == pos && s->nodes[x].parent == parent)
      return x;
  }
  if (s->n_nodes == s->cap_nodes) {
    size_t cap = s->cap_nodes ? s->cap_nodes * 2 : 256;
    gnode *p = coh__realloc(s->nodes, cap * sizeof *p);
    if (!p) {
      s->oom = 1;
      return NONE;
    }
    s->nodes = p;
    s->cap_nodes = cap;
  }
  s->nodes[s->n_nodes].pos = pos;
  s->nodes[s->n_nodes].parent = parent;
  s->nodes[s->n_nodes].depth =
      parent == NONE ? 1 : s->nodes[parent].depth + 1;
  s->nc_gen[h] = s->ngen;
  s->nc_idx[h] = (uint32_t)s->n_nodes;
  return (uint32_t)s->n_nodes++;
}

static void add_top(coh_grammar_state *s, gset *o, uint32_t nd) {
  uint32_t pos = s->nodes[nd].pos, par = s->nodes[nd].parent;
  uint32_t h = (pos * 2654435761u) ^ (par * 40503u + 0x9e37u);
  h &= HS - 1;
  while (s->h_gen[h] == s->gen) {
    if (s->h_pos[h] == pos && s->h_par[h] == par) return;
    h = (h + 1) & (HS - 1);
  }
  if (o->n >= COH__GRAM_MAX_STACKS) {
    s->overflow = 1;
    return;
  }
  s->h_gen[h] = s->gen;
  s->h_pos[h] = pos;
  s->h_par[h] = par;
  if (s->n_tops == s->cap_tops) {
    size_t cap = s->cap_tops ? s->cap_tops * 2 : 256;
    uint32_t *p = coh__realloc(s->tops, cap * sizeof *p);
    if (!p) {
      s->oom = 1;
      return;
    }
    s->tops = p;
    s->cap_tops = cap;
  }
  s->tops[s->n_tops++] = nd;
  o->n++;
}

/* Brings node nd (whose pos may be END or a reference) to byte-class tops
 * in o.  rec bounds the recursion (no left recursion: it is finite). */
static void normalize(coh_grammar_state *s, gset *o, uint32_t nd, int rec) {
  const coh_grammar *g = s->g;
  while (nd != NONE && !s->oom) {
    uint32_t pos = s->nodes[nd].pos, e = g->elems[pos];
    if (rec > COH__GRAM_MAX_DEPTH || s->nodes[nd].depth > COH__GRAM_MAX_DEPTH) {
      s->overflow = 1;
      return;
    }
    switch (COH__E_KIND(e)) {
      case COH__E_CLS:
        add_top(s, o, nd);
        return;
      case COH__E_END: {
        uint32_t p = s->nodes[nd].parent;
        if (p == NONE) {
          o->accept = 1;
          return;
        }
        nd = p;
        continue;
      }
      default: { /* reference */
        uint32_t r = COH__E_VAL(e), a, cont;
        uint32_t nx = g->elems[pos + 1];
        if (COH__E_KIND(nx) == COH__E_END)
          cont = s->nodes[nd].parent;
        else
          cont = new_node(s, pos + 1, s->nodes[nd].parent);
        if (s->oom) return;
        for (a = g->alt_off[r]; a < g->alt_off[r + 1]; a++) {
          uint32_t c = new_node(s, g->alts[a], cont);
          if (c == NONE) return;
          normalize(s, o, c, rec + 1);
        }
        return;
      }
    }
  }
}

/* o := in advanced by byte c (o's tops appended at the arena's end). */
static void step(coh_grammar_state *s, const gset *in, unsigned char c,
                 gset *o) {
  uint32_t i;
  o->at = (uint32_t)s->n_tops;
  o->n = 0;
  o->accept = 0;
  if (++s->gen == 0) { /* wrapped: clear the stamps */
    memset(s->h_gen, 0, sizeof s->h_gen);
    s->gen = 1;
  }
  for (i = 0; i < in->n; i++) {
    uint32_t nd = s->tops[in->at + i];
    const gnode *x = &s->nodes[nd];
    const coh__cls *k = &s->g->cls[COH__E_VAL(s->g->elems[x->pos])];
    if (k->w[c >> 5] & (1u << (c & 31))) {
      uint32_t nn = new_node(s, x->pos + 1, x->parent);
      if (nn == NONE) return;
      normalize(s, o, nn, 0);
    }
  }
}

/* Copies the stacks of set in into fresh arenas (dropping garbage). */
static int compact(coh_grammar_state *s, gset *in) {
  gnode *nodes = NULL;
  uint32_t *tops = NULL, *map = NULL;
  size_t nn = 0, i, cap;
  cap = s->n_nodes + 1;
  map = coh__malloc(cap * sizeof *map);
  nodes = coh__malloc(cap * sizeof *nodes);
  tops = coh__malloc((in->n + 1) * sizeof *tops);
  if (!map || !nodes || !tops) goto oom;
  for (i = 0; i < s->n_nodes; i++) map[i] = NONE;
  /* nodes reachable from the tops, parents first: collect then order by
   * index (a parent always has a smaller index than its child) */
  {
    unsigned char *live = coh__calloc(cap, 1);
    if (!live) goto oom;
    for (i = 0; i < in->n; i++) {
      uint32_t x = s->tops[in->at + i];
      while (x != NONE && !live[x]) {
        live[x] = 1;
        x = s->nodes[x].parent;
      }
    }
    for (i = 0; i < s->n_nodes; i++)
      if (live[i]) {
        nodes[nn] = s->nodes[i];
        nodes[nn].parent =
            s->nodes[i].parent == NONE ? NONE : map[s->nodes[i].parent];
        map[i] = (uint32_t)nn++;
      }
    coh__free(live);
  }
  for (i = 0; i < in->n; i++) tops[i] = map[s->tops[in->at + i]];
  coh__free(s->nodes);
  coh__free(s->tops);
  s->nodes = nodes;
  s->n_nodes = nn;
  s->cap_nodes = cap;
  s->tops = tops;
  s->n_tops = in->n;
  s->cap_tops = in->n + 1;
  in->at = 0;
  coh__free(map);
  nc_reset(s);
  return COH_OK;
oom:
  coh__free(map);
  coh__free(nodes);
  coh__free(tops);
  return COH_ENOMEM;
}

/* A state at the start of g; v may be NULL (text checks: no masks). */
static int state_new(const coh_grammar *g, const coh_grammar_vocab *v,
                     coh_grammar_state **out, coh_err *err) {
  coh_grammar_state *s;
  uint32_t a;
  size_t md = v ? (size_t)v->max_depth : 0;
  *out = NULL;
  s = coh__calloc(1, sizeof *s);
  if (!s) return coh__err(err, COH_ENOMEM, "grammar state: out of memory");
  s->g = g;
  s->v = v;
  s->mask_words = v ? (v->n_ids + 31) / 32 : 0;
  s->lv = coh__malloc((md + 2) * sizeof *s->lv);
  s->lvn = coh__malloc((md + 2) * sizeof *s->lvn);
  s->lvb = coh__malloc(md + 2);
  s->lvc = coh__malloc((md + 2) * sizeof *s->lvc);
  s->lvk = coh__malloc((md + 2) * sizeof *s->lvk);
  s->lva = coh__malloc((md + 2) * sizeof *s->lva);
  s->lvz = coh__malloc((md + 2) * sizeof *s->lvz);
  s->lvu = coh__malloc((md + 2) * 8 * sizeof *s->lvu);
  s->lak = coh__malloc((md + 2) * sizeof *s->lak);
  s->laa = coh__malloc((md + 2) * sizeof *s->laa);
  s->nc_idx = coh__malloc(NC * sizeof *s->nc_idx);
  s->nc_gen = coh__calloc(NC, sizeof *s->nc_gen);
  if (!s->lv || !s->lvn || !s->lvb || !s->lvc || !s->lvk || !s->lva || !s->lvz ||
      !s->nc_idx || !s->nc_gen || !s->lvu || !s->lak || !s->laa)
    s->oom = 1;
  s->ngen = 1;
  s->cur.at = 0;
  s->gen = 1;
  for (a = g->alt_off[g->root]; a < g->alt_off[g->root + 1] && !s->oom; a++) {
    uint32_t c = new_node(s, g->alts[a], NONE);
    if (c != NONE) normalize(s, &s->cur, c, 0);
  }
  if (s->oom) {
    coh_grammar_state_free(s);
    return coh__err(err, COH_ENOMEM, "grammar state: out of memory");
  }
  *out = s;
  return COH_OK;
}

int coh_grammar_state_new(const coh_grammar *g, const coh_grammar_vocab *v,
                          coh_grammar_state **out, coh_err *err) {
  *out = NULL;
  if (!g || !v) return coh__err(err, COH_EINVAL, "grammar state: NULL argument");
  return state_new(g, v, out, err);
}

void coh_grammar_state_free(coh_grammar_state *s) {
  int i;
  if (!s) return;
  coh__free(s->nodes);
  coh__free(s->tops);
  coh__free(s->lv);
  coh__free(s->lvn);
  coh__free(s->lvb);
  coh__free(s->lvc);
  coh__free(s->lvk);
  coh__free(s->lva);
  coh__free(s->lvz);
  coh__free(s->lvu);
  coh__free(s->lak);
  coh__free(s->laa);
  coh__free(s->nc_idx);
  coh__free(s->nc_gen);
  coh__free(s->sfx);
  for (i = 0; i < CACHE_N; i++) coh__free(s->cmask[i]);
  coh__free(s);
}

int coh_grammar_state_is_complete(const coh_grammar_state *s) {
  return s && !s->finished && s->cur.accept;
}

/* FNV-1a over the positions of every stack (top to root), in set order;
 * the mask is a function of exactly these. */
static uint64_t state_key(const coh_grammar_state *s) {
  uint64_t h = 1469598103934665603ull;
  uint32_t i;
  h = (h ^ (uint64_t)(s->cur.accept + 7)) * 1099511628211ull;
  for (i = 0; i < s->cur.n; i++) {
    uint32_t x = s->tops[s->cur.at + i];
    while (x != NONE) {
      h = (h ^ s->nodes[x].pos) * 1099511628211ull;
      x = s->nodes[x].parent;
    }
    h = (h ^ 0xffffffffu) * 1099511628211ull;
  }
  return h ? h : 1;
}

/* Whether some stack of set x sits between two characters of the JSON
 * string loop: its top is the first element of one of the loop's
 * alternatives, and expansion put all of them there together, so that
 * stack accepts every string-safe token.  (Not after a cut of stacks.) */
int coh__grammar_slow_masks = 0;

static int between(const coh_grammar_state *s, const gset *x) {
  const uint8_t *f = s->g->pflag;
  uint32_t i;
  if (!f || s->overflow || coh__grammar_slow_masks) return 0;
  for (i = 0; i < x->n; i++)
    if (f[s->nodes[s->tops[x->at + i]].pos] == 1) return 1;
  return 0;
}

/* Whether every top of x is at an entry of the character rule or the
 * string loop (gram_int.h centry), or at a class no string-safe character
 * can start in.  From such a set, every string-safe character leads to
 * the same positions (each entry group is all the alternatives of its rule
 * with one parent: exactly one takes the character, and then the
 * continuation is the same), so stepping one 'a' stands for any of them. */
static int char_entry(const coh_grammar_state *s, const gset *x) {
  const coh_grammar *g = s->g;
  uint32_t i;
  for (i = 0; i < x->n; i++) {
    uint32_t pos = s->nodes[s->tops[x->at + i]].pos;
    if (!g->centry[pos] && !g->cinert[COH__E_VAL(g->elems[pos])]) return 0;
  }
  return 1;
}

/* The char-count chain of level d's set: X_0 = lv[d], X_j+1 = X_j after
 * one string-safe character.  lva[d] = the largest j (<= want) with X_j
 * alive (a top or accepting); lvk[d] = how far the chain is known (it
 * stops at a set that is not char_entry); lvz[d] = 1 when it died, so
 * that every count above lva[d] is refused.  Uses the arena above its
 * current end and gives it back. */
static void char_chain(coh_grammar_state *s, uint16_t d, int32_t want) {
  size_t nn = s->n_nodes, nt = s->n_tops;
  gset x = s->lv[d], y;
  int32_t j = 0;
  int over = s->overflow;
  s->lva[d] = 0;
  s->lvz[d] = 0;
  while (j < want && !s->oom) {
    if (!char_entry(s, &x)) break;
    step(s, &x, 'a', &y);
    if (s->overflow) { /* a cut: the chain is not known past here */
      s->overflow = over;
      break;
    }
    if (y.n == 0 && !y.accept) {
      s->lvz[d] = 1;
      break;
    }
    j++;
    s->lva[d] = j;
    if (y.n == 0) { /* accepting, no top: no further character */
      s->lvz[d] = 1;
      break;
    }
    x = y;
  }
  s->lvk[d] = s->lvz[d] ? INT32_MAX : j;
  s->n_nodes = nn;
  s->n_tops = nt;
}

/* The ASCII chain of level d's set: U_0 = its tops at classes that hold
 * all or none of A (gram_int.h cauni), U_j+1 = the same tops of U_j after
 * one byte of A ('a' stands for all of them).  U_j holds a subset of the
 * stacks after any j bytes of A, so a token of A bytes no longer than
 * laa[d] (the most bytes U survives, up to want) is allowed whatever the
 * other stacks do.  lak[d] = want, what was computed.  Uses the arena
 * above its current end and gives it back. */
static void ascii_chain(coh_grammar_state *s, uint16_t d, int32_t want) {
  const coh_grammar *g = s->g;
  size_t nn = s->n_nodes, nt = s->n_tops;
  gset x = s->lv[d], y;
  int32_t j = 0;
  int over = s->overflow;
  uint32_t q, w;
  /* U_0: the uniform tops of the level, copied above the arena */
  y.at = (uint32_t)s->n_tops;
  y.n = 0;
  y.accept = 0;
  for (q = 0; q < x.n && !s->oom; q++) {
    uint32_t nd = s->tops[x.at + q];
    if (!g->cauni[COH__E_VAL(g->elems[s->nodes[nd].pos])]) continue;
    if (s->n_tops == s->cap_tops) {
      size_t cap = s->cap_tops ? s->cap_tops * 2 : 256;
      uint32_t *p = coh__realloc(s->tops, cap * sizeof *p);
      if (!p) {
        s->oom = 1;
        break;
      }
      s->tops = p;
      s->cap_tops = cap;
    }
    s->tops[s->n_tops++] = nd;
    y.n++;
  }
  x = y;
  while (j < want && x.n && !s->oom) {
    step(s, &x, 'a', &y);
    if (s->overflow) {
      s->overflow = over;
      break;
    }
    if (y.n == 0 && !y.accept) break;
    j++;
    /* keep the uniform tops only (in place) */
    for (q = 0, w = 0; q < y.n; q++) {
      uint32_t nd = s->tops[y.at + q];
      if (g->cauni[COH__E_VAL(g->elems[s->nodes[nd].pos])])
        s->tops[y.at + w++] = nd;
    }
    y.n = w;
    x = y;
  }
  s->laa[d] = j;
  s->lak[d] = want;
  s->n_nodes = nn;
  s->n_tops = nt;
}

/* u := the union of the classes of x's tops (a byte outside it kills
 * every stack). */
static void cls_union(const coh_grammar_state *s, const gset *x, uint32_t *u) {
  uint32_t i, w;
  memset(u, 0, 8 * sizeof *u);
  for (i = 0; i < x->n; i++) {
    const coh__cls *k =
        &s->g->cls[COH__E_VAL(s->g->elems[s->nodes[s->tops[x->at + i]].pos])];
    for (w = 0; w < 8; w++) u[w] |= k->w[w];
  }
}

static void walk(coh_grammar_state *s, uint32_t *mask) {
  const coh_grammar_vocab *v = s->v;
  size_t base_nodes = s->n_nodes, base_tops = s->n_tops;
  uint32_t i = 1, k;
  uint8_t *lvb = s->lvb;
  nc_reset(s);
  s->lv[0] = s->cur;
  s->lvn[0] = base_nodes;
  lvb[0] = (uint8_t)between(s, &s->lv[0]);
  s->lvc[0] = 0;
  s->lvk[0] = -1;
  s->lak[0] = -1;
  cls_union(s, &s->lv[0], s->lvu);
  while (i < v->n_nodes && !s->oom) {
    uint16_t d = v->depth[i];
    gset *o = &s->lv[d];
    const uint32_t *u = s->lvu + (size_t)(d - 1) * 8;
    if (!((u[v->byte[i] >> 5] >> (v->byte[i] & 31)) & 1) &&
        !coh__grammar_slow_masks) {
      i = v->end[i]; /* no stack takes this byte: nothing below is allowed */
      continue;
    }
    /* drop the scratch of deeper levels: lv[d-1] is the last kept */
    /* levels deeper than d-1 are dead: reclaim their nodes and tops */
    s->n_nodes = s->lvn[d - 1];
    s->n_tops = d == 1 ? base_tops : s->lv[d - 1].at + s->lv[d - 1].n;
    if (v->all_safe[i] && lvb[d - 1]) {
      /* every token below i is whole string characters: all allowed */
      for (k = v->tok_off[i]; k < v->tok_off[v->end[i]]; k++) {
        int32_t id = v->ids[k];
        mask[id >> 5] |= 1u << (id & 31);
      }
      i = v->end[i];
      continue;
    }
    if (v->all_safe[i] && s->g->centry && (v->byte[i] & 0xC0) != 0x80 &&
        !s->overflow && !coh__grammar_slow_masks) {
      /* every token below i is whole string-safe characters, and the
       * prefix ends at a character boundary: a token is allowed iff the
       * chain survives its characters after the prefix */
      int32_t pc = s->lvc[d - 1], need = (int32_t)v->max_ch[i] - pc;
      if (s->lvk[d - 1] < 0 || (s->lvk[d - 1] < need && s->lvk[d - 1] != INT32_MAX &&
                                s->lva[d - 1] == s->lvk[d - 1]))
        char_chain(s, (uint16_t)(d - 1), need > 0 ? need : 0);
      if (s->lvz[d - 1] || s->lvk[d - 1] >= need) {
        int32_t lim = s->lva[d - 1] + pc;
        for (k = v->tok_off[i]; k < v->tok_off[v->end[i]]; k++)
          if ((int32_t)v->nch[k] <= lim) {
            int32_t id = v->ids[k];
            mask[id >> 5] |= 1u << (id & 31);
          }
        i = v->end[i];
        continue;
      }
    }
    if (v->all_a[i] && !s->overflow && !coh__grammar_slow_masks) {
      /* every token below i is bytes of A: allowed when the uniform part
       * of the set survives its bytes after the prefix */
      int32_t need = (int32_t)v->max_len[i] - (int32_t)(d - 1);
      if (s->lak[d - 1] < need &&
          (s->lak[d - 1] < 0 || s->laa[d - 1] == s->lak[d - 1]))
        ascii_chain(s, (uint16_t)(d - 1), need); /* (not when it ended) */
      if (s->laa[d - 1] >= need) {
        for (k = v->tok_off[i]; k < v->tok_off[v->end[i]]; k++) {
          int32_t id = v->ids[k];
          mask[id >> 5] |= 1u << (id & 31);
        }
        i = v->end[i];
        continue;
      }
    }
    step(s, &s->lv[d - 1], v->byte[i], o);
    s->lvn[d] = s->n_nodes;
    s->lak[d] = -1;
    lvb[d] = (uint8_t)between(s, o);
    s->lvc[d] = (uint16_t)(s->lvc[d - 1] + ((v->byte[i] & 0xC0) != 0x80));
    s->lvk[d] = -1;
    if (o->n) cls_union(s, o, s->lvu + (size_t)d * 8);
    if (o->n == 0 && !o->accept) {
      i = v->end[i];
      continue;
    }
    if (o->accept || o->n)
      for (k = v->tok_off[i]; k < v->tok_off[i + 1]; k++) {
        int32_t id = v->ids[k];
        mask[id >> 5] |= 1u << (id & 31);
      }
    if (o->n == 0) {
      i = v->end[i];
      continue;
    }
    i++;
  }
  s->n_nodes = base_nodes;
  s->n_tops = base_tops;
}

int coh_grammar_state_mask(coh_grammar_state *s, uint32_t *mask,
                           coh_err *err) {
  uint64_t key;
  int i;
  size_t k;
  if (!s || !mask) return coh__err(err, COH_EINVAL, "grammar mask: NULL argument");
  memset(mask, 0, s->mask_words * sizeof *mask);
  if (s->finished) return COH_OK;
  key = state_key(s);
  for (i = 0; i < CACHE_N && !coh__grammar_slow_masks; i++)
    if (s->key[i] == key && s->cmask[i]) {
      memcpy(mask, s->cmask[i], s->mask_words * sizeof *mask);
      goto eos;
    }
  walk(s, mask);
  if (s->oom) {
    s->oom = 0;
    return coh__err(err, COH_ENOMEM, "grammar mask: out of memory");
  }
  if (!coh__grammar_slow_masks) {
    uint32_t slot = s->next_slot++ % CACHE_N;
    if (!s->cmask[slot])
      s->cmask[slot] = coh__malloc(s->mask_words * sizeof *mask);
    if (s->cmask[slot]) {
      memcpy(s->cmask[slot], mask, s->mask_words * sizeof *mask);
      s->key[slot] = key;
    }
  }
eos:
  if (s->cur.accept)
    for (k = 0; k < s->v->n_eos; k++) {
      int32_t id = s->v->eos[k];
      mask[id >> 5] |= 1u << (id & 31);
    }
  return COH_OK;
}

static void tail_add(coh_grammar_state *s, const char *b, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    if (s->tail_n == sizeof s->tail - 1) {
      memmove(s->tail, s->tail + 1, s->tail_n - 1);
      s->tail_n--;
    }
    s->tail[s->tail_n++] = b[i];
  }
  s->tail[s->tail_n] = 0;
}

int coh_grammar_state_accept(coh_grammar_state *s, int32_t token,
                             coh_err *err) {
  const coh_grammar_vocab *v;
  size_t base_nodes, base_tops, i, n;
  gset a, b;
  const char *bytes;
  if (!s) return coh__err(err, COH_EINVAL, "grammar accept: NULL state");
  v = s->v;
  if (token < 0 || (size_t)token >= v->n_ids)
    return coh__err(err, COH_EINVAL,
                    "grammar accept: token %ld out of range (vocab %zu)",
                    (long)token, v->n_ids);
  if (s->finished)
    return coh__err(err, COH_EINVAL,
                    "grammar accept: token %ld after end of sequence",
                    (long)token);
  if (v->is_eos[token]) {
    if (!s->cur.accept)
      return coh__err(err, COH_EINVAL,
                      "grammar accept: end-of-sequence token %ld before the "
                      "output is complete (text so far ends '%s')",
                      (long)token, s->tail);
    s->finished = 1;
    return COH_OK;
  }
  n = v->blen[token];
  bytes = v->text + v->boff[token];
  if (n == 0)
    return coh__err(err, COH_EINVAL,
                    "grammar accept: token %ld is special or empty and never "
                    "allowed",
                    (long)token);
  base_nodes = s->n_nodes;
  base_tops = s->n_tops;
  nc_reset(s);
  a = s->cur;
  for (i = 0; i < n; i++) {
    step(s, &a, (unsigned char)bytes[i], &b);
    if (s->oom) goto oom;
    if (b.n == 0 && !(b.accept && i + 1 == n)) {
      s->n_nodes = base_nodes;
      s->n_tops = base_tops;
      return coh__err(err, COH_EINVAL,
                      "grammar accept: token %ld ('%.*s') not allowed after "
                      "'%s' (byte %zu of the token)",
                      (long)token, (int)(n < 40 ? n : 40), bytes, s->tail, i);
    }
    a = b;
  }
  if (compact(s, &a)) goto oom;
  s->cur = a;
  s->n_bytes += n;
  tail_add(s, bytes, n);
  return COH_OK;
oom:
  s->oom = 0;
  s->n_nodes = base_nodes;
  s->n_tops = base_tops;
  return coh__err(err, COH_ENOMEM, "grammar accept: out of memory");
}

/* ---- shortest completion (tests: the invariant) ------------------------------ */

typedef struct emit {
  const coh_grammar *g;
  const uint32_t *best; /* rule → elems index of its shortest alternative */
  char *buf;
  size_t cap, n;
  int over;
} emit;

static void emit_from(emit *e, uint32_t pos, int rec) {
  const coh_grammar *g = e->g;
  if (rec > COH__GRAM_MAX_DEPTH) {
    e->over = 1;
    return;
  }
  for (;; pos++) {
    uint32_t x = g->elems[pos];
    if (COH__E_KIND(x) == COH__E_END) return;
    if (COH__E_KIND(x) == COH__E_CLS) {
      const coh__cls *k = &g->cls[COH__E_VAL(x)];
      unsigned c;
      for (c = 0; c < 256; c++)
        if (k->w[c >> 5] & (1u << (c & 31))) break;
      if (e->n >= e->cap) {
        e->over = 1;
        return;
      }
      e->buf[e->n++] = (char)c;
    } else {
      emit_from(e, e->best[COH__E_VAL(x)], rec + 1);
    }
    if (e->over) return;
  }
}

/* cost[r]: the fewest bytes rule r derives (UINT64_MAX: none); best[r]:
 * the elems index of an alternative that derives them (may be NULL).  A
 * fixpoint over the rules; it ends because every change lowers a cost and
 * costs are bounded below. */
static void rule_costs(const coh_grammar *g, uint64_t *cost, uint32_t *best) {
  size_t r;
  int changed;
  for (r = 0; r < g->n_rules; r++) {
    cost[r] = UINT64_MAX;
    if (best) best[r] = 0;
  }
  do {
    changed = 0;
    for (r = 0; r < g->n_rules; r++) {
      uint32_t a;
      for (a = g->alt_off[r]; a < g->alt_off[r + 1]; a++) {
        uint64_t c = 0;
        uint32_t p;
        for (p = g->alts[a]; COH__E_KIND(g->elems[p]) != COH__E_END; p++) {
          uint32_t x = g->elems[p];
          if (COH__E_KIND(x) == COH__E_CLS) c++;
          else if (cost[COH__E_VAL(x)] == UINT64_MAX) { c = UINT64_MAX; break; }
          else c += cost[COH__E_VAL(x)];
        }
        if (c < cost[r]) {
          cost[r] = c;
          if (best) best[r] = g->alts[a];
          changed = 1;
        }
      }
    }
  } while (changed);
}

int coh__grammar_state_shortest(const coh_grammar_state *s, char *buf,
                                size_t cap, size_t *len) {
  const coh_grammar *g = s->g;
  uint64_t *cost = coh__malloc((g->n_rules + 1) * sizeof *cost);
  uint32_t *best = coh__malloc((g->n_rules + 1) * sizeof *best);
  emit e;
  int rc = COH_OK;
  *len = 0;
  if (!cost || !best) {
    coh__free(cost);
    coh__free(best);
    return COH_ENOMEM;
  }
  rule_costs(g, cost, best);
  memset(&e, 0, sizeof e);
  e.g = g;
  e.best = best;
  e.buf = buf;
  e.cap = cap;
  if (!s->cur.accept && s->cur.n) {
    uint32_t x = s->tops[s->cur.at];
    for (; x != NONE && !e.over; x = s->nodes[x].parent)
      emit_from(&e, s->nodes[x].pos, 0);
  } else if (!s->cur.accept) {
    rc = COH_EINVAL; /* a dead state: the invariant is broken */
  }
  if (e.over) rc = COH_ERANGE;
  *len = e.n;
  coh__free(cost);
  coh__free(best);
  return rc;
}

/* ---- checking a text ---------------------------------------------------------- */

int coh_grammar_check_text(const coh_grammar *g, const char *text, size_t len,
                           coh_grammar_check *out, coh_err *err) {
  coh_grammar_state *s = NULL;
  gset a, b;
  size_t i;
  int rc;
  if (!g || !out || (!text && len)) return coh__err(err, COH_EINVAL, "grammar check: NULL argument");
  memset(out, 0, sizeof *out);
  out->rejected_at = -1;
  if ((rc = state_new(g, NULL, &s, err))) return rc;
  a = s->cur;
  for (i = 0; i < len; i++) { /* bounded by len */
    if ((i & 255) == 0) { /* keep the arenas to the live stacks */
      if (compact(s, &a)) goto oom;
    }
    nc_reset(s);
    step(s, &a, (unsigned char)text[i], &b);
    if (s->oom) goto oom;
    if (b.n == 0 && !(b.accept && i + 1 == len)) {
      out->rejected_at = (int64_t)i;
      break;
    }
    a = b;
  }
  if (out->rejected_at < 0) out->complete = len == 0 ? s->cur.accept : a.accept;
  out->accepted = out->rejected_at < 0 && out->complete;
  out->cut = s->overflow;
  coh_grammar_state_free(s);
  return COH_OK;
oom:
  coh_grammar_state_free(s);
  return coh__err(err, COH_ENOMEM, "grammar check: out of memory");
}

/* ---- the token budget ------------------------------------------------------------ */

#define SFX_MAX 0x3fffffffu /* saturation: "more than any budget" */

/* s->sfx[p] = the fewest bytes from position p to the end of its
 * alternative (a class: 1, a reference: the rule's cost). */
static int ensure_sfx(coh_grammar_state *s) {
  const coh_grammar *g = s->g;
  uint64_t *cost;
  size_t p;
  if (s->sfx) return COH_OK;
  cost = coh__malloc((g->n_rules + 1) * sizeof *cost);
  s->sfx = coh__malloc((g->n_elems + 1) * sizeof *s->sfx);
  if (!cost || !s->sfx) {
    coh__free(cost);
    coh__free(s->sfx);
    s->sfx = NULL;
    return COH_ENOMEM;
  }
  rule_costs(g, cost, NULL);
  for (p = g->n_elems; p-- > 0;) {
    uint32_t x = g->elems[p];
    uint64_t c;
    if (COH__E_KIND(x) == COH__E_END) {
      s->sfx[p] = 0;
      continue;
    }
    c = COH__E_KIND(x) == COH__E_CLS ? 1 : cost[COH__E_VAL(x)];
    c = c >= SFX_MAX ? SFX_MAX : c + s->sfx[p + 1];
    s->sfx[p] = (uint32_t)(c >= SFX_MAX ? SFX_MAX : c);
  }
  coh__free(cost);
  return COH_OK;
}

/* The fewest bytes that complete set x: 0 when it accepts, else the least
 * over its stacks of the positions' suffix costs, top to root. */
static uint64_t set_cost(const coh_grammar_state *s, const gset *x) {
  uint64_t best = UINT64_MAX;
  uint32_t i;
  if (x->accept) return 0;
  for (i = 0; i < x->n; i++) {
    uint64_t c = 0;
    uint32_t nd = s->tops[x->at + i];
    while (nd != NONE && c < best) { /* depth is bounded (COH__GRAM_MAX_DEPTH) */
      c += s->sfx[s->nodes[nd].pos];
      nd = s->nodes[nd].parent;
    }
    if (c < best) best = c;
  }
  return best;
}

int coh_grammar_state_min_bytes(coh_grammar_state *s, uint64_t *out, coh_err *err) {
  if (!s || !out) return coh__err(err, COH_EINVAL, "grammar min bytes: NULL argument");
  if (ensure_sfx(s)) return coh__err(err, COH_ENOMEM, "grammar min bytes: out of memory");
  *out = s->finished ? 0 : set_cost(s, &s->cur);
  return COH_OK;
}

/* The cost after token id (not an eos id), UINT64_MAX when the token is not
 * allowed; the arenas are given back. */
static uint64_t token_cost(coh_grammar_state *s, int32_t id) {
  const coh_grammar_vocab *v = s->v;
  size_t base_nodes = s->n_nodes, base_tops = s->n_tops, i, n = v->blen[id];
  const char *bytes = v->text + v->boff[id];
  uint64_t c = UINT64_MAX;
  gset a = s->cur, b;
  if (n == 0) return UINT64_MAX;
  nc_reset(s);
  for (i = 0; i < n && !s->oom; i++) {
    step(s, &a, (unsigned char)bytes[i], &b);
    if (b.n == 0 && !(b.accept && i + 1 == n)) break;
    a = b;
  }
  if (i == n && !s->oom) c = set_cost(s, &a);
  s->n_nodes = base_nodes;
  s->n_tops = base_tops;
  return c;
}

int coh_grammar_state_token_min_bytes(coh_grammar_state *s, int32_t token, uint64_t *out,
                                      coh_err *err) {
  if (!s || !out) return coh__err(err, COH_EINVAL, "grammar token min bytes: NULL argument");
  if (token < 0 || (size_t)token >= s->v->n_ids)
    return coh__err(err, COH_EINVAL, "grammar token min bytes: token %ld out of range",
                    (long)token);
  if (ensure_sfx(s)) return coh__err(err, COH_ENOMEM, "grammar token min bytes: out of memory");
  if (s->finished) {
    *out = UINT64_MAX;
    return COH_OK;
  }
  if (s->v->is_eos[token]) {
    *out = s->cur.accept ? 0 : UINT64_MAX;
    return COH_OK;
  }
  *out = token_cost(s, token);
  if (s->oom) {
    s->oom = 0;
    return coh__err(err, COH_ENOMEM, "grammar token min bytes: out of memory");
  }
  return COH_OK;
}

int coh_grammar_state_budget_mask(coh_grammar_state *s, uint32_t *mask, int64_t max_bytes,
                                  size_t *n_left, coh_err *err) {
  size_t w, left = 0;
  if (!s || !mask) return coh__err(err, COH_EINVAL, "grammar budget mask: NULL argument");
  if (ensure_sfx(s)) return coh__err(err, COH_ENOMEM, "grammar budget mask: out of memory");
  for (w = 0; w < s->mask_words; w++) {
    uint32_t bits = mask[w];
    while (bits) { /* bounded by the vocabulary */
      int b = __builtin_ctz(bits);
      int32_t id = (int32_t)(w * 32 + (size_t)b);
      bits &= bits - 1;
      if (s->v->is_eos[id]) { /* kept exactly when the output is complete */
        if (!s->cur.accept || s->finished) mask[w] &= ~(1u << b);
        else left++;
        continue;
      }
      if (max_bytes < 0 || token_cost(s, id) > (uint64_t)max_bytes) mask[w] &= ~(1u << b);
      else left++;
      if (s->oom) {
        s->oom = 0;
        return coh__err(err, COH_ENOMEM, "grammar budget mask: out of memory");
      }
    }
  }
  if (n_left) *n_left = left;
  return COH_OK;
}
