/*
 * wasm.c — a small WebAssembly binary reader and writer: validates what the
 * runtime relies on (structure, section order and bounds, LEB128 encodings,
 * imports against the ABI, required exports) and rewrites the module for
 * the sandbox:
 *   - injects three mutable globals: fuel (i64), call depth and depth limit
 *     (i32), exported as __coh_fuel, __coh_depth, __coh_depthmax so that the
 *     glue can reach them by name in the wasm2c instance struct;
 *   - exports every original global as __coh_g<i> and table 0 as
 *     __coh_table (for snapshots);
 *   - meters fuel: one unit at every function entry and every loop header,
 *         fuel -= 1; if (fuel < 0) unreachable;
 *     counted in an extra i64 local per function (a register in the
 *     compiled code) that is loaded from the fuel global at entry and after
 *     calls and written back before calls, returns and traps (see
 *     rewrite_body); the runtime tells a fuel trap from a real `unreachable`
 *     by the fuel global being negative, which nothing else can make it;
 *   - drops custom sections (names), so wasm2c's generated names depend only
 *     on what we control.
 * Fixed-width SIMD (the v128 type, the 0xfd opcodes) is decoded and checked
 * (known opcode, lane indices, alignment) and metered like every other
 * instruction; relaxed SIMD is refused.  info->uses_simd tells the compile
 * step that the module needs a SIMD-capable wasm2c.
 * Full type checking is left to wasm2c, which validates the rewritten module
 * before translating it; everything here is what must hold for the rewrite
 * itself to be correct.
 */
#include <stdio.h>
#include <string.h>

#include "agent_int.h"

/* ---- reader --------------------------------------------------------------- */

typedef struct rd {
  const uint8_t *base, *p, *end;
  const char *where; /* section name for messages */
  coh_err *err;
  int failed;
} rd;

static int fail(rd *r, int code, const char *fmt, ...) COH__PRINTF(3, 4);
static int fail(rd *r, int code, const char *fmt, ...) {
  char msg[COH_ERRMSG_MAX - 64];
  va_list ap;
  if (r->failed) return r->failed;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  r->failed = code;
  coh__err(r->err, code, "%s section, offset 0x%zx: %s", r->where,
           (size_t)(r->p - r->base), msg);
  return code;
}

static uint8_t rd_byte(rd *r) {
  if (r->failed) return 0;
  if (r->p >= r->end) {
    fail(r, COH_EFORMAT, "unexpected end of data");
    return 0;
  }
  return *r->p++;
}

/* Unsigned LEB128 of at most `bits` bits: rejects overlong encodings that
 * carry bits past the limit and encodings past the maximum length. */
static uint64_t rd_uleb(rd *r, unsigned bits) {
  uint64_t v = 0;
  unsigned shift = 0;
  for (;;) {
    uint8_t b = rd_byte(r);
    if (r->failed) return 0;
    if (shift + 7 > bits && (b & 0x7f) >> (bits - shift)) {
      fail(r, COH_EFORMAT, "LEB128 value overflows %u bits", bits);
      return 0;
    }
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
    shift += 7;
    if (shift >= bits) {
      fail(r, COH_EFORMAT, "LEB128 encoding too long for %u bits", bits);
      return 0;
    }
  }
}

static uint32_t rd_u32(rd *r) { return (uint32_t)rd_uleb(r, 32); }

/* Signed LEB128 of at most `bits` bits; only skipped (value unused). */
static void rd_sleb_skip(rd *r, unsigned bits) {
  unsigned shift = 0;
  for (;;) {
    uint8_t b = rd_byte(r);
    if (r->failed) return;
    shift += 7;
    if (!(b & 0x80)) return;
    if (shift >= bits) {
      fail(r, COH_EFORMAT, "signed LEB128 encoding too long for %u bits",
           bits);
      return;
    }
  }
}

static const uint8_t *rd_bytes(rd *r, size_t n) {
  const uint8_t *p = r->p;
  if (r->failed) return NULL;
  if ((size_t)(r->end - r->p) < n) {
    fail(r, COH_EFORMAT, "length %zu runs past the end of the section", n);
    return NULL;
  }
  r->p += n;
  return p;
}

/* A name, copied into out (truncated, non-printable bytes as '?') for
 * messages; returns its raw pointer and length. */
static const uint8_t *rd_name(rd *r, uint32_t *len, char *out, size_t cap) {
  const uint8_t *p;
  uint32_t n = rd_u32(r), i;
  p = rd_bytes(r, n);
  if (p == NULL) return NULL;
  for (i = 0; i < n && i + 1 < cap; i++)
    out[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
  out[i < cap ? i : cap - 1] = '\0';
  *len = n;
  return p;
}

static int is_valtype(uint8_t t) {
  return t == 0x7f || t == 0x7e || t == 0x7d || t == 0x7c || t == 0x7b ||
         t == 0x70 || t == 0x6f;
}

/* ---- the ABI's allowed imports -------------------------------------------- */

typedef struct abi_import {
  const char *module, *name;
  const char *params, *results; /* 'i' = i32, 'I' = i64 */
} abi_import;

static const abi_import abi_imports[] = {
    {"cohort", "emit", "ii", ""},
    {"cohort", "send", "iiii", "i"},
    {"cohort", "log", "iii", ""},
    {"cohort", "llm", "ii", "I"},
    {"cohort", "now", "", "I"},
    {"cohort", "random", "ii", ""},
    {"cohort", "timer", "I", "I"},
    {"cohort", "state_get", "iiii", "i"},
    {"cohort", "state_put", "iiii", "i"},
    {"cohort", "spawn", "ii", "i"},
    {"wasi_snapshot_preview1", "fd_write", "iiii", "i"},
    {"wasi_snapshot_preview1", "fd_close", "i", "i"},
    {"wasi_snapshot_preview1", "fd_seek", "iIii", "i"},
    {"wasi_snapshot_preview1", "fd_fdstat_get", "ii", "i"},
    {"wasi_snapshot_preview1", "fd_prestat_get", "ii", "i"},
    {"wasi_snapshot_preview1", "fd_prestat_dir_name", "iii", "i"},
    {"wasi_snapshot_preview1", "proc_exit", "i", ""},
    {"wasi_snapshot_preview1", "environ_sizes_get", "ii", "i"},
    {"wasi_snapshot_preview1", "environ_get", "ii", "i"},
    {"wasi_snapshot_preview1", "args_sizes_get", "ii", "i"},
    {"wasi_snapshot_preview1", "args_get", "ii", "i"},
    {"wasi_snapshot_preview1", "clock_time_get", "iIi", "i"},
    {"wasi_snapshot_preview1", "random_get", "ii", "i"},
};

typedef struct functype {
  uint32_t np, nr;
  const uint8_t *p, *r;
} functype;

static int sig_matches(const functype *t, const char *params,
                       const char *results) {
  uint32_t i;
  if (t->np != strlen(params) || t->nr != strlen(results)) return 0;
  for (i = 0; i < t->np; i++)
    if (t->p[i] != (params[i] == 'i' ? 0x7f : 0x7e)) return 0;
  for (i = 0; i < t->nr; i++)
    if (t->r[i] != (results[i] == 'i' ? 0x7f : 0x7e)) return 0;
  return 1;
}

static void sig_text(const functype *t, char *out, size_t cap) {
  size_t n = 0;
  uint32_t i;
  static const char *names[] = {"v128", "f64", "f32", "i64", "i32"};
#define TNAME(b) \
  ((b) >= 0x7b && (b) <= 0x7f ? names[(b)-0x7b + 0] : (b) == 0x70 ? "funcref" \
                                                                  : "externref")
  n += (size_t)snprintf(out + n, cap - n, "(");
  for (i = 0; i < t->np && n < cap; i++)
    n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? " " : "",
                          TNAME(t->p[i]));
  if (n < cap) n += (size_t)snprintf(out + n, cap - n, ") -> (");
  for (i = 0; i < t->nr && n < cap; i++)
    n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? " " : "",
                          TNAME(t->r[i]));
  if (n < cap) snprintf(out + n, cap - n, ")");
#undef TNAME
}

/* ---- instrumenter ---------------------------------------------------------- */

typedef struct inst {
  rd r;
  int fuel;
  coh__wasm_info *info;
  functype *types;
  uint32_t ntypes;
  uint32_t nfunc_imports;
  uint32_t *func_type; /* type of every function, imports first */
  uint32_t nfuncs;     /* total */
  uint32_t nfunc_decl; /* declared in the function section */
  uint32_t ntables;
  int has_memory;
  uint32_t nglobals;
  int wrote_globals, wrote_exports;
  uint32_t fl; /* index of the fuel local in the function being rewritten */
  coh__buf out;
} inst;

/* Section ids in their required order (custom sections aside). */
static int section_rank(uint8_t id) {
  switch (id) {
    case 1: return 1;   /* type */
    case 2: return 2;   /* import */
    case 3: return 3;   /* function */
    case 4: return 4;   /* table */
    case 5: return 5;   /* memory */
    case 6: return 6;   /* global */
    case 7: return 7;   /* export */
    case 8: return 8;   /* start */
    case 9: return 9;   /* element */
    case 12: return 10; /* data count */
    case 10: return 11; /* code */
    case 11: return 12; /* data */
  }
  return -1;
}

static const char *section_name(uint8_t id) {
  static const char *n[] = {"custom", "type",  "import", "function",
                            "table",  "memory", "global", "export",
                            "start",  "element", "code",  "data",
                            "data count"};
  return id <= 12 ? n[id] : "unknown";
}

static void put_section(inst *s, uint8_t id, const coh__buf *body) {
  coh__buf_addc(&s->out, id);
  coh__buf_uleb(&s->out, body->n);
  coh__buf_add(&s->out, body->p, body->n);
  if (body->oom) s->out.oom = 1;
}

static void parse_types(inst *s) {
  rd *r = &s->r;
  uint32_t n = rd_u32(r), i, j;
  if (r->failed) return;
  if (n > (uint32_t)(r->end - r->p)) {
    fail(r, COH_EFORMAT, "type count %u larger than the section", n);
    return;
  }
  s->types = coh__calloc(n ? n : 1, sizeof *s->types);
  if (s->types == NULL) {
    fail(r, COH_ENOMEM, "out of memory");
    return;
  }
  s->ntypes = n;
  for (i = 0; i < n && !r->failed; i++) {
    functype *t = &s->types[i];
    if (rd_byte(r) != 0x60) {
      fail(r, COH_EUNSUPPORTED, "type %u is not a function type", i);
      return;
    }
    t->np = rd_u32(r);
    t->p = rd_bytes(r, t->np);
    t->nr = rd_u32(r);
    t->r = rd_bytes(r, t->nr);
    if (r->failed) return;
    for (j = 0; j < t->np; j++) {
      if (!is_valtype(t->p[j])) fail(r, COH_EFORMAT, "bad value type");
      if (t->p[j] == 0x7b) s->info->uses_simd = 1;
    }
    for (j = 0; j < t->nr; j++) {
      if (!is_valtype(t->r[j])) fail(r, COH_EFORMAT, "bad value type");
      if (t->r[j] == 0x7b) s->info->uses_simd = 1;
    }
    if (t->np + t->nr > s->info->max_sig) s->info->max_sig = t->np + t->nr;
  }
  s->info->ntypes = n;
}

static void parse_imports(inst *s) {
  rd *r = &s->r;
  uint32_t n = rd_u32(r), i;
  if (r->failed) return;
  if (n > (uint32_t)(r->end - r->p)) {
    fail(r, COH_EFORMAT, "import count %u larger than the section", n);
    return;
  }
  s->func_type = coh__calloc(n ? n : 1, sizeof *s->func_type);
  if (s->func_type == NULL) {
    fail(r, COH_ENOMEM, "out of memory");
    return;
  }
  for (i = 0; i < n && !r->failed; i++) {
    char mod[64], name[64], sig[128];
    uint32_t ml, nl = 0, k, ti;
    const uint8_t *mp = rd_name(r, &ml, mod, sizeof mod);
    const uint8_t *np = rd_name(r, &nl, name, sizeof name);
    uint8_t kind = rd_byte(r);
    const abi_import *found = NULL;
    if (r->failed) return;
    if (kind != 0) {
      fail(r, COH_EUNSUPPORTED,
           "import '%s'.'%s' is a %s; only function imports are supported",
           mod, name,
           kind == 1 ? "table" : kind == 2 ? "memory" : kind == 3 ? "global"
                                                                  : "tag");
      return;
    }
    ti = rd_u32(r);
    if (r->failed) return;
    if (ti >= s->ntypes) {
      fail(r, COH_EFORMAT, "import '%s'.'%s' uses type %u of %u", mod, name,
           ti, s->ntypes);
      return;
    }
    for (k = 0; k < sizeof abi_imports / sizeof abi_imports[0]; k++) {
      const abi_import *a = &abi_imports[k];
      if (strlen(a->module) == ml && !memcmp(a->module, mp, ml) &&
          strlen(a->name) == nl && !memcmp(a->name, np, nl)) {
        found = a;
        break;
      }
    }
    if (found == NULL) {
      fail(r, COH_EUNSUPPORTED,
           "unknown import '%s'.'%s' (only the cohort ABI and the WASI subset "
           "in cohort/abi.h are provided)",
           mod, name);
      return;
    }
    if (!sig_matches(&s->types[ti], found->params, found->results)) {
      sig_text(&s->types[ti], sig, sizeof sig);
      fail(r, COH_EUNSUPPORTED,
           "import '%s'.'%s' has type %s, which does not match the ABI", mod,
           name, sig);
      return;
    }
    if (found->module[0] == 'c')
      s->info->imports_cohort = 1;
    else
      s->info->imports_wasi = 1;
    s->func_type[i] = ti;
  }
  s->nfunc_imports = n;
}

static void parse_functions(inst *s) {
  rd *r = &s->r;
  uint32_t n = rd_u32(r), i;
  uint32_t *ft;
  if (r->failed) return;
  if (n > (uint32_t)(r->end - r->p)) {
    fail(r, COH_EFORMAT, "function count %u larger than the section", n);
    return;
  }
  ft = coh__realloc(s->func_type, ((size_t)s->nfunc_imports + n + 1) *
                                      sizeof *ft);
  if (ft == NULL) {
    fail(r, COH_ENOMEM, "out of memory");
    return;
  }
  s->func_type = ft;
  for (i = 0; i < n && !r->failed; i++) {
    uint32_t t = rd_u32(r);
    if (!r->failed && t >= s->ntypes)
      fail(r, COH_EFORMAT, "function %u uses type %u of %u", i, t, s->ntypes);
    ft[s->nfunc_imports + i] = t;
  }
  s->nfunc_decl = n;
  s->nfuncs = s->nfunc_imports + n;
}

static void parse_limits(inst *s, const char *what, uint32_t *min,
                         uint32_t *max) {
  rd *r = &s->r;
  uint8_t flags = rd_byte(r);
  if (r->failed) return;
  if (flags > 1) {
    fail(r, COH_EUNSUPPORTED, "%s limits flag 0x%x (shared or 64-bit)", what,
         flags);
    return;
  }
  *min = rd_u32(r);
  *max = flags ? rd_u32(r) : UINT32_MAX;
  if (!r->failed && flags && *max < *min)
    fail(r, COH_EFORMAT, "%s maximum %u below its minimum %u", what, *max,
         *min);
}

static void parse_tables(inst *s) {
  rd *r = &s->r;
  uint32_t n = rd_u32(r), min, max;
  if (r->failed) return;
  if (n > 1) {
    fail(r, COH_EUNSUPPORTED, "%u tables; at most one is supported", n);
    return;
  }
  if (n == 1) {
    uint8_t t = rd_byte(r);
    if (!r->failed && t != 0x70) {
      fail(r, COH_EUNSUPPORTED, "only funcref tables are supported");
      return;
    }
    parse_limits(s, "table", &min, &max);
    s->ntables = 1;
    s->info->has_table = 1;
  }
}

static void parse_memories(inst *s) {
  rd *r = &s->r;
  uint32_t n = rd_u32(r), min, max;
  if (r->failed) return;
  if (n > 1) {
    fail(r, COH_EUNSUPPORTED, "%u memories; at most one is supported", n);
    return;
  }
  if (n == 1) {
    parse_limits(s, "memory", &min, &max);
    if (!r->failed && min > 65535)
      fail(r, COH_EUNSUPPORTED, "initial memory of %u pages (max 65535)", min);
    s->has_memory = 1;
  }
}

/* A constant expression (global initialiser, segment offset). */
static void skip_const_expr(inst *s) {
  rd *r = &s->r;
  for (;;) {
    uint8_t op = rd_byte(r);
    if (r->failed) return;
    switch (op) {
      case 0x0b: return;
      case 0x41: rd_sleb_skip(r, 32); break;
      case 0x42: rd_sleb_skip(r, 64); break;
      case 0x43: rd_bytes(r, 4); break;
      case 0x44: rd_bytes(r, 8); break;
      case 0x23: {
        uint32_t g = rd_u32(r);
        if (!r->failed && g >= s->nglobals)
          fail(r, COH_EFORMAT, "global.get %u in a constant expression", g);
        break;
      }
      case 0xd0: rd_byte(r); break;
      case 0xd2: rd_u32(r); break;
      case 0xfd: {
        uint32_t sub = rd_u32(r);
        if (!r->failed && sub != 0x0c) {
          fail(r, COH_EUNSUPPORTED,
               "SIMD opcode 0xfd 0x%02x in a constant expression", sub);
          return;
        }
        rd_bytes(r, 16); /* v128.const */
        s->info->uses_simd = 1;
        break;
      }
      default:
        fail(r, COH_EUNSUPPORTED, "opcode 0x%02x in a constant expression",
             op);
        return;
    }
  }
}

/* The three injected globals, appended after the module's own. */
static void put_injected_globals(coh__buf *b) {
  static const uint8_t g[] = {
      0x7e, 0x01, 0x42, 0x00, 0x0b, /* fuel: mut i64 = 0 */
      0x7f, 0x01, 0x41, 0x00, 0x0b, /* depth: mut i32 = 0 */
      0x7f, 0x01, 0x41, 0x00, 0x0b, /* depth limit: mut i32 = 0 */
  };
  coh__buf_add(b, g, sizeof g);
}

static void write_globals(inst *s, const uint8_t *own, size_t own_len) {
  coh__buf body = {0};
  coh__buf_uleb(&body, (uint64_t)s->nglobals + 3);
  coh__buf_add(&body, own, own_len);
  put_injected_globals(&body);
  put_section(s, 6, &body);
  coh__buf_free(&body);
  s->wrote_globals = 1;
  s->info->nglobals = s->nglobals;
  s->info->fuel_global = s->nglobals;
}

static void parse_globals(inst *s) {
  rd *r = &s->r;
  uint32_t n = rd_u32(r), i;
  const uint8_t *start;
  if (r->failed) return;
  if (n > (uint32_t)(r->end - r->p)) {
    fail(r, COH_EFORMAT, "global count %u larger than the section", n);
    return;
  }
  s->info->global_types = coh__malloc(n ? n : 1);
  if (s->info->global_types == NULL) {
    fail(r, COH_ENOMEM, "out of memory");
    return;
  }
  start = r->p;
  for (i = 0; i < n && !r->failed; i++) {
    uint8_t t = rd_byte(r);
    uint8_t mut = rd_byte(r);
    if (r->failed) return;
    if (t != 0x7f && t != 0x7e && t != 0x7d && t != 0x7c) {
      fail(r, COH_EUNSUPPORTED, "global %u has type 0x%02x (only i32, i64, "
           "f32, f64 globals are supported)", i, t);
      return;
    }
    if (mut > 1) {
      fail(r, COH_EFORMAT, "global %u mutability %u", i, mut);
      return;
    }
    s->info->global_types[i] = t;
    s->nglobals = i; /* only earlier globals may be referenced */
    skip_const_expr(s);
  }
  s->nglobals = n;
  if (r->p != r->end) fail(r, COH_EFORMAT, "trailing bytes");
  if (!r->failed) write_globals(s, start, (size_t)(r->p - start));
}

static int reserved_export_name(const uint8_t *p, uint32_t n) {
  /* wasm2c maps characters outside [A-Za-z0-9_] to '_' in struct field
   * names; refuse any export that would land in our "__coh" namespace. */
  static const char pre[] = "__coh";
  uint32_t i;
  if (n < 5) return 0;
  for (i = 0; i < 5; i++) {
    char c = (char)p[i];
    int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                (c >= '0' && c <= '9') || c == '_';
    if ((alnum ? c : '_') != pre[i]) return 0;
  }
  return 1;
}

static void put_export(coh__buf *b, const char *name, uint8_t kind,
                       uint32_t idx) {
  coh__buf_uleb(b, strlen(name));
  coh__buf_add(b, name, strlen(name));
  coh__buf_addc(b, kind);
  coh__buf_uleb(b, idx);
}

static void write_exports(inst *s, const uint8_t *own, size_t own_len,
                          uint32_t own_n) {
  coh__buf body = {0};
  uint32_t i;
  char nm[32];
  uint32_t extra = s->nglobals + 3 + (s->ntables ? 1 : 0);
  coh__buf_uleb(&body, (uint64_t)own_n + extra);
  coh__buf_add(&body, own, own_len);
  for (i = 0; i < s->nglobals; i++) {
    snprintf(nm, sizeof nm, "__coh_g%u", i);
    put_export(&body, nm, 3, i);
  }
  put_export(&body, "__coh_fuel", 3, s->nglobals);
  put_export(&body, "__coh_depth", 3, s->nglobals + 1);
  put_export(&body, "__coh_depthmax", 3, s->nglobals + 2);
  if (s->ntables) put_export(&body, "__coh_table", 1, 0);
  put_section(s, 7, &body);
  coh__buf_free(&body);
  s->wrote_exports = 1;
}

static const functype *ftype(inst *s, uint32_t f) {
  return &s->types[s->func_type[f]];
}

static void parse_exports(inst *s) {
  rd *r = &s->r;
  uint32_t n = rd_u32(r), i;
  const uint8_t *start;
  int memory_ok = 0;
  if (r->failed) return;
  start = r->p;
  for (i = 0; i < n && !r->failed; i++) {
    char name[64], sig[128];
    uint32_t nl = 0, idx;
    const uint8_t *np = rd_name(r, &nl, name, sizeof name);
    uint8_t kind = rd_byte(r);
    idx = rd_u32(r);
    if (r->failed) return;
    if (reserved_export_name(np, nl)) {
      fail(r, COH_EUNSUPPORTED, "export '%s' uses the reserved prefix __coh",
           name);
      return;
    }
#define IS(lit) (nl == sizeof(lit) - 1 && !memcmp(np, lit, nl))
    if (kind == 0) {
      const functype *t;
      if (idx >= s->nfuncs) {
        fail(r, COH_EFORMAT, "export '%s' names function %u of %u", name, idx,
             s->nfuncs);
        return;
      }
      t = ftype(s, idx);
      sig_text(t, sig, sizeof sig);
      if (IS("cohort_alloc")) {
        if (!sig_matches(t, "i", "i"))
          fail(r, COH_EUNSUPPORTED,
               "export cohort_alloc has type %s, expected (i32) -> (i32)",
               sig);
        s->info->has_alloc = 1;
      } else if (IS("cohort_init")) {
        if (!sig_matches(t, "ii", "i"))
          fail(r, COH_EUNSUPPORTED,
               "export cohort_init has type %s, expected (i32 i32) -> (i32)",
               sig);
        s->info->has_init = 1;
      } else if (IS("cohort_on_event")) {
        if (!sig_matches(t, "iii", "i"))
          fail(r, COH_EUNSUPPORTED,
               "export cohort_on_event has type %s, expected "
               "(i32 i32 i32) -> (i32)", sig);
        s->info->has_on_event = 1;
      } else if (IS("_initialize")) {
        if (!sig_matches(t, "", ""))
          fail(r, COH_EUNSUPPORTED,
               "export _initialize has type %s, expected () -> ()", sig);
        s->info->has_initialize = 1;
      }
    } else if (kind == 2) {
      if (!s->has_memory || idx != 0) {
        fail(r, COH_EFORMAT, "export '%s' names memory %u", name, idx);
        return;
      }
      if (IS("memory")) memory_ok = 1;
    } else if (kind == 1) {
      if (idx >= s->ntables) {
        fail(r, COH_EFORMAT, "export '%s' names table %u", name, idx);
        return;
      }
    } else if (kind == 3) {
      if (idx >= s->nglobals) {
        fail(r, COH_EFORMAT, "export '%s' names global %u", name, idx);
        return;
      }
    } else {
      fail(r, COH_EUNSUPPORTED, "export '%s' of kind %u", name, kind);
      return;
    }
#undef IS
  }
  if (r->failed) return;
  if (r->p != r->end) {
    fail(r, COH_EFORMAT, "trailing bytes");
    return;
  }
  if (!memory_ok) {
    fail(r, COH_EUNSUPPORTED, "the module does not export its memory as "
         "'memory'");
    return;
  }
  if (!s->info->has_alloc) {
    fail(r, COH_EUNSUPPORTED, "the module does not export cohort_alloc");
    return;
  }
  if (!s->info->has_on_event) {
    fail(r, COH_EUNSUPPORTED, "the module does not export cohort_on_event");
    return;
  }
  write_exports(s, start, (size_t)(r->p - start), n);
}

/* The fuel counter lives in a local of every function (index s->fl): the
 * C compiler can keep a local in a register, whereas the global is a field
 * of the instance struct that every linear-memory store may alias, so
 * counting in the global costs a load and a store per loop iteration.  The
 * global stays the value the host sees: the local is loaded from it at
 * entry and after every call, and written back before every call, every
 * way out of the function and every trap the instrumentation raises. */

/* One unit: local = (entry ? global : local) - 1;
 *           if (local < 0) { global = local; unreachable } */
static void put_fuel_charge(inst *s, coh__buf *b, int entry) {
  if (entry) {
    coh__buf_addc(b, 0x23); coh__buf_uleb(b, s->nglobals); /* global.get */
  } else {
    coh__buf_addc(b, 0x20); coh__buf_uleb(b, s->fl);       /* local.get */
  }
  coh__buf_addc(b, 0x42); coh__buf_addc(b, 0x01);        /* i64.const 1 */
  coh__buf_addc(b, 0x7d);                                /* i64.sub */
  coh__buf_addc(b, 0x22); coh__buf_uleb(b, s->fl);       /* local.tee */
  coh__buf_addc(b, 0x42); coh__buf_addc(b, 0x00);        /* i64.const 0 */
  coh__buf_addc(b, 0x53);                                /* i64.lt_s */
  coh__buf_addc(b, 0x04); coh__buf_addc(b, 0x40);        /* if */
  coh__buf_addc(b, 0x20); coh__buf_uleb(b, s->fl);       /* local.get */
  coh__buf_addc(b, 0x24); coh__buf_uleb(b, s->nglobals); /* global.set */
  coh__buf_addc(b, 0x00);                                /* unreachable */
  coh__buf_addc(b, 0x0b);                                /* end */
}

/* global = local (stack-neutral, so it may precede any instruction) */
static void put_fuel_store(inst *s, coh__buf *b) {
  coh__buf_addc(b, 0x20); coh__buf_uleb(b, s->fl);       /* local.get */
  coh__buf_addc(b, 0x24); coh__buf_uleb(b, s->nglobals); /* global.set */
}

/* local = global (stack-neutral) */
static void put_fuel_load(inst *s, coh__buf *b) {
  coh__buf_addc(b, 0x23); coh__buf_uleb(b, s->nglobals); /* global.get */
  coh__buf_addc(b, 0x21); coh__buf_uleb(b, s->fl);       /* local.set */
}

static void skip_blocktype(rd *r) {
  uint8_t b;
  if (r->p >= r->end) {
    fail(r, COH_EFORMAT, "unexpected end of data");
    return;
  }
  b = *r->p;
  if (b == 0x40 || is_valtype(b)) {
    r->p++;
    return;
  }
  rd_sleb_skip(r, 33);
}

static void memarg(rd *r) {
  rd_u32(r);
  rd_u32(r);
}

/* ---- fixed-width SIMD (the 0xfd prefix) ---------------------------------- */

/* Opcodes 0x00-0xff with no instruction assigned in the SIMD proposal. */
static int simd_unassigned(uint32_t sub) {
  switch (sub) {
    case 0x9a: case 0xa2: case 0xa5: case 0xa6: case 0xaf: case 0xb0:
    case 0xb2: case 0xb3: case 0xb4: case 0xbb: case 0xc2: case 0xc5:
    case 0xc6: case 0xcf: case 0xd0: case 0xd2: case 0xd3: case 0xd4:
    case 0xe2: case 0xee:
      return 1;
  }
  return 0;
}

/* Names of the relaxed-SIMD opcodes 0x100-0x113, for the refusal. */
static const char *const relaxed_names[] = {
    "i8x16.relaxed_swizzle", "i32x4.relaxed_trunc_f32x4_s",
    "i32x4.relaxed_trunc_f32x4_u", "i32x4.relaxed_trunc_f64x2_s_zero",
    "i32x4.relaxed_trunc_f64x2_u_zero", "f32x4.relaxed_madd",
    "f32x4.relaxed_nmadd", "f64x2.relaxed_madd", "f64x2.relaxed_nmadd",
    "i8x16.relaxed_laneselect", "i16x8.relaxed_laneselect",
    "i32x4.relaxed_laneselect", "i64x2.relaxed_laneselect",
    "f32x4.relaxed_min", "f32x4.relaxed_max", "f64x2.relaxed_min",
    "f64x2.relaxed_max", "i16x8.relaxed_q15mulr_s",
    "i16x8.relaxed_dot_i8x16_i7x16_s", "i32x4.relaxed_dot_i8x16_i7x16_add_s"};

/* A SIMD memory argument: the alignment may not exceed the access's
 * natural alignment (2^max_align bytes). */
static void simd_memarg(rd *r, uint32_t sub, unsigned max_align,
                        uint32_t fi) {
  uint32_t align = rd_u32(r);
  rd_u32(r); /* offset */
  if (!r->failed && align > max_align)
    fail(r, COH_EFORMAT,
         "function %u: SIMD opcode 0xfd 0x%02x has alignment 2^%u, above "
         "its natural 2^%u", fi, sub, align, max_align);
}

/* A lane index immediate below `lanes`. */
static void simd_lane(rd *r, uint32_t sub, unsigned lanes, uint32_t fi) {
  uint8_t l = rd_byte(r);
  if (!r->failed && l >= lanes)
    fail(r, COH_EFORMAT,
         "function %u: SIMD opcode 0xfd 0x%02x names lane %u of %u", fi, sub,
         l, lanes);
}

/* Reads the rest of a 0xfd instruction (the sub-opcode and immediates).
 * Stack types are wasm2c's to check; what is checked here is what the
 * decoder needs to find the next instruction, plus immediates that no
 * valid module can hold (lane indices, alignment). */
static void simd_instr(rd *r, uint32_t fi) {
  uint32_t sub = rd_u32(r);
  if (r->failed) return;
  if (sub <= 0x0b) { /* v128.load*, v128.store */
    static const uint8_t nat[12] = {4, 3, 3, 3, 3, 3, 3, 0, 1, 2, 3, 4};
    simd_memarg(r, sub, nat[sub], fi);
  } else if (sub == 0x0c) { /* v128.const */
    rd_bytes(r, 16);
  } else if (sub == 0x0d) { /* i8x16.shuffle */
    unsigned i;
    for (i = 0; i < 16 && !r->failed; i++) {
      uint8_t l = rd_byte(r);
      if (!r->failed && l >= 32)
        fail(r, COH_EFORMAT,
             "function %u: i8x16.shuffle lane index %u (of 32)", fi, l);
    }
  } else if (sub >= 0x15 && sub <= 0x22) { /* extract_lane, replace_lane */
    static const uint8_t lanes[14] = {16, 16, 16, 8, 8, 8, 4,
                                      4,  2,  2,  4, 4, 2, 2};
    simd_lane(r, sub, lanes[sub - 0x15], fi);
  } else if (sub >= 0x54 && sub <= 0x5b) { /* load/store lane */
    unsigned sz = (sub - 0x54) & 3; /* 8, 16, 32, 64 bits */
    simd_memarg(r, sub, sz, fi);
    simd_lane(r, sub, 16u >> sz, fi);
  } else if (sub == 0x5c || sub == 0x5d) { /* v128.load32/64_zero */
    simd_memarg(r, sub, sub == 0x5c ? 2 : 3, fi);
  } else if (sub <= 0xff) {
    if (simd_unassigned(sub))
      fail(r, COH_EFORMAT, "function %u: unknown SIMD opcode 0xfd 0x%02x",
           fi, sub);
    /* everything else: no immediates */
  } else if (sub <= 0x113) {
    fail(r, COH_EUNSUPPORTED,
         "function %u: relaxed SIMD opcode 0xfd 0x%x (%s) is not supported "
         "(its results may differ between machines; only fixed-width SIMD "
         "is)", fi, sub, relaxed_names[sub - 0x100]);
  } else {
    fail(r, COH_EFORMAT, "function %u: unknown SIMD opcode 0xfd 0x%x", fi,
         sub);
  }
}

/* Copies one function body's instructions from r to b, inserting the fuel
 * code (when s->fuel): the entry charge after the locals, a charge after
 * every loop header, a write-back before every call, return, branch to the
 * function's own label, `unreachable` and the final end, and a reload after
 * every call. */
static void rewrite_body(inst *s, rd *r, coh__buf *b, uint32_t fi) {
  uint32_t depth = 1;
  const uint8_t *copied = r->p, *op_start;
#define FLUSH_TO(ptr)                                   \
  do {                                                  \
    coh__buf_add(b, copied, (size_t)((ptr) - copied));  \
    copied = (ptr);                                     \
  } while (0)
#define FLUSH() FLUSH_TO(r->p)
  if (s->fuel) put_fuel_charge(s, b, 1);
  while (depth > 0 && !r->failed) {
    uint8_t op;
    op_start = r->p;
    op = rd_byte(r);
    if (r->failed) break;
    switch (op) {
      case 0x00: case 0x0f: /* unreachable, return */
        if (s->fuel) {
          FLUSH_TO(op_start);
          put_fuel_store(s, b);
        }
        break;
      case 0x01: case 0x1a: case 0x1b: case 0xd1:
      case 0x05:
        break;
      case 0x02: case 0x04:
        skip_blocktype(r);
        depth++;
        break;
      case 0x03:
        skip_blocktype(r);
        depth++;
        if (s->fuel && !r->failed) {
          FLUSH();
          put_fuel_charge(s, b, 0);
        }
        break;
      case 0x0b:
        depth--;
        if (s->fuel && depth == 0) { /* the function's end */
          FLUSH_TO(op_start);
          put_fuel_store(s, b);
        }
        break;
      case 0x0c: case 0x0d: {
        uint32_t l = rd_u32(r);
        /* a branch to the function's label returns */
        if (s->fuel && !r->failed && l == depth - 1) {
          FLUSH_TO(op_start);
          put_fuel_store(s, b);
        }
        break;
      }
      case 0x0e: {
        uint32_t n = rd_u32(r), i;
        int ret = 0;
        if (!r->failed && n > (uint32_t)(r->end - r->p)) {
          fail(r, COH_EFORMAT, "br_table of %u entries", n);
          break;
        }
        for (i = 0; i <= n && !r->failed; i++)
          if (rd_u32(r) == depth - 1) ret = 1;
        if (s->fuel && ret && !r->failed) {
          FLUSH_TO(op_start);
          put_fuel_store(s, b);
        }
        break;
      }
      case 0x10: case 0x11: {
        if (op == 0x10) {
          uint32_t f = rd_u32(r);
          if (!r->failed && f >= s->nfuncs)
            fail(r, COH_EFORMAT, "call to function %u of %u", f, s->nfuncs);
        } else {
          uint32_t t = rd_u32(r), tb = rd_u32(r);
          if (!r->failed && (t >= s->ntypes || tb >= s->ntables))
            fail(r, COH_EFORMAT, "call_indirect type %u table %u", t, tb);
        }
        if (s->fuel && !r->failed) {
          /* the callee counts from the global; a host import may trap
           * (proc_exit), and fuel_used must then be exact */
          FLUSH_TO(op_start);
          put_fuel_store(s, b);
          FLUSH();
          put_fuel_load(s, b);
        }
        break;
      }
      case 0x1c: {
        uint32_t n = rd_u32(r);
        rd_bytes(r, n);
        break;
      }
      case 0x20: case 0x21: case 0x22:
        rd_u32(r);
        break;
      case 0x23: case 0x24: {
        uint32_t g = rd_u32(r);
        /* the injected globals must stay out of the agent's reach */
        if (!r->failed && g >= s->nglobals)
          fail(r, COH_EFORMAT, "global %u of %u", g, s->nglobals);
        break;
      }
      case 0x25: case 0x26:
        rd_u32(r);
        break;
      case 0x3f: case 0x40:
        rd_byte(r);
        break;
      case 0x41: rd_sleb_skip(r, 32); break;
      case 0x42: rd_sleb_skip(r, 64); break;
      case 0x43: rd_bytes(r, 4); break;
      case 0x44: rd_bytes(r, 8); break;
      case 0xd0: rd_byte(r); break;
      case 0xd2: rd_u32(r); break;
      case 0xfc: {
        uint32_t sub = rd_u32(r);
        if (r->failed) break;
        if (sub <= 7) break;
        switch (sub) {
          case 8: rd_u32(r); rd_byte(r); break;
          case 9: rd_u32(r); break;
          case 10: rd_byte(r); rd_byte(r); break;
          case 11: rd_byte(r); break;
          case 12: case 14: rd_u32(r); rd_u32(r); break;
          case 13: case 15: case 16: case 17: rd_u32(r); break;
          default:
            fail(r, COH_EUNSUPPORTED, "opcode 0xfc %u in function %u", sub,
                 fi);
        }
        break;
      }
      default:
        if (op >= 0x28 && op <= 0x3e) {
          memarg(r);
        } else if (op >= 0x45 && op <= 0xc4) {
          /* numeric, no immediates */
        } else if (op == 0xfd) {
          /* fixed-width SIMD: straight-line code, metered like any other
           * instruction (fuel is charged at function entry and loop
           * headers; a SIMD instruction is neither) */
          simd_instr(r, fi);
          s->info->uses_simd = 1;
        } else {
          fail(r, COH_EUNSUPPORTED, "opcode 0x%02x in function %u "
               "(exceptions, tail calls, threads are not supported)", op, fi);
        }
    }
  }
  FLUSH();
#undef FLUSH
#undef FLUSH_TO
  if (!r->failed && r->p != r->end)
    fail(r, COH_EFORMAT, "function %u: code after the final end", fi);
}

static void parse_code(inst *s) {
  rd *r = &s->r;
  uint32_t n = rd_u32(r), i;
  coh__buf body = {0};
  if (r->failed) return;
  if (n != s->nfunc_decl) {
    fail(r, COH_EFORMAT, "%u bodies for %u declared functions", n,
         s->nfunc_decl);
    return;
  }
  coh__buf_uleb(&body, n);
  for (i = 0; i < n && !r->failed; i++) {
    uint32_t size = rd_u32(r), ngroups, g;
    uint64_t nlocals = 0;
    const uint8_t *fstart, *groups;
    rd fr;
    coh__buf fb = {0};
    fstart = rd_bytes(r, size);
    if (fstart == NULL) break;
    fr = *r;
    fr.p = fstart;
    fr.end = fstart + size;
    ngroups = rd_u32(&fr);
    groups = fr.p;
    for (g = 0; g < ngroups && !fr.failed; g++) {
      uint8_t lt;
      nlocals += rd_u32(&fr);
      lt = rd_byte(&fr);
      if (!is_valtype(lt)) fail(&fr, COH_EFORMAT, "bad local type");
      if (lt == 0x7b) s->info->uses_simd = 1;
      if (nlocals > 50000)
        fail(&fr, COH_EUNSUPPORTED, "function %u has over 50000 locals", i);
    }
    if (!fr.failed) {
      if (s->fuel) {
        /* one more local group: the i64 fuel counter, after all others */
        s->fl = ftype(s, s->nfunc_imports + i)->np + (uint32_t)nlocals;
        coh__buf_uleb(&fb, (uint64_t)ngroups + 1);
        coh__buf_add(&fb, groups, (size_t)(fr.p - groups));
        coh__buf_addc(&fb, 0x01);
        coh__buf_addc(&fb, 0x7e);
      } else {
        coh__buf_add(&fb, fstart, (size_t)(fr.p - fstart));
      }
      rewrite_body(s, &fr, &fb, s->nfunc_imports + i);
    }
    if (fr.failed) {
      r->failed = fr.failed;
      coh__buf_free(&fb);
      break;
    }
    coh__buf_uleb(&body, fb.n);
    coh__buf_add(&body, fb.p, fb.n);
    if (fb.oom) body.oom = 1;
    coh__buf_free(&fb);
  }
  if (!r->failed && r->p != r->end) fail(r, COH_EFORMAT, "trailing bytes");
  if (!r->failed) put_section(s, 10, &body);
  coh__buf_free(&body);
}

int coh__wasm_instrument(const uint8_t *in, size_t len, int fuel,
                         coh__wasm_info *info, coh__buf *out, coh_err *err) {
  inst s;
  rd top;
  int last_rank = 0, rc;
  static const uint8_t hdr[8] = {0, 'a', 's', 'm', 1, 0, 0, 0};
  memset(&s, 0, sizeof s);
  memset(info, 0, sizeof *info);
  memset(out, 0, sizeof *out);
  s.info = info;
  s.fuel = fuel;
  if (len < 8 || memcmp(in, hdr, 4) != 0)
    return coh__err(err, COH_EFORMAT,
                    "not a WebAssembly module (no \\0asm magic)");
  if (memcmp(in + 4, hdr + 4, 4) != 0)
    return coh__err(err, COH_EFORMAT,
                    "unsupported WebAssembly version %u (expected 1)",
                    (unsigned)(in[4] | in[5] << 8 | in[6] << 16 |
                               (uint32_t)in[7] << 24));
  memset(&top, 0, sizeof top);
  top.base = in;
  top.p = in + 8;
  top.end = in + len;
  top.where = "module";
  top.err = err;
  coh__buf_add(&s.out, hdr, 8);
  while (top.p < top.end && !top.failed) {
    const uint8_t *sec_start = top.p;
    uint8_t id = rd_byte(&top);
    uint32_t size = rd_u32(&top);
    const uint8_t *body;
    int rank;
    if (top.failed) break;
    body = rd_bytes(&top, size);
    if (body == NULL) {
      top.p = sec_start;
      top.failed = 0;
      fail(&top, COH_EFORMAT, "section id %u of %u bytes runs past the end "
           "of the module", id, size);
      break;
    }
    if (id == 0) continue; /* custom sections are dropped */
    rank = section_rank(id);
    if (rank < 0) {
      top.p = sec_start;
      fail(&top, COH_EFORMAT, "unknown section id %u", id);
      break;
    }
    if (rank <= last_rank) {
      top.p = sec_start;
      fail(&top, COH_EFORMAT, "section %s out of order or repeated",
           section_name(id));
      break;
    }
    last_rank = rank;
    /* Insert the global section if the module has none. */
    if (rank > 6 && !s.wrote_globals) write_globals(&s, NULL, 0);
    if (rank > 7 && !s.wrote_exports) {
      top.p = sec_start;
      fail(&top, COH_EUNSUPPORTED,
           "the module has no exports (needs memory, cohort_alloc, "
           "cohort_on_event)");
      break;
    }
    s.r = top;
    s.r.p = body;
    s.r.end = body + size;
    s.r.where = section_name(id);
    switch (id) {
      case 1: parse_types(&s); break;
      case 2: parse_imports(&s); break;
      case 3: parse_functions(&s); break;
      case 4: parse_tables(&s); break;
      case 5: parse_memories(&s); break;
      case 6: parse_globals(&s); break;
      case 7: parse_exports(&s); break;
      case 10: parse_code(&s); break;
      default: break; /* start, element, data count, data: copied */
    }
    if (!s.r.failed && id != 6 && id != 7 && id != 10) {
      if (id != 2 && id != 3 && id != 4 && id != 5 && id != 1) {
        /* copied verbatim without inspection: wasm2c validates them */
      } else if (s.r.p != s.r.end) {
        fail(&s.r, COH_EFORMAT, "trailing bytes");
      }
      if (!s.r.failed) {
        coh__buf_addc(&s.out, id);
        coh__buf_uleb(&s.out, size);
        coh__buf_add(&s.out, body, size);
      }
    }
    if (s.r.failed) {
      top.failed = s.r.failed;
      break;
    }
  }
  if (!top.failed && !s.wrote_exports) {
    top.failed = COH_EUNSUPPORTED;
    coh__err(err, COH_EUNSUPPORTED,
             "the module has no exports (needs memory, cohort_alloc, "
             "cohort_on_event)");
  }
  if (!top.failed && s.nfunc_decl && !last_rank) top.failed = COH_EFORMAT;
  if (!top.failed && s.out.oom) {
    top.failed = COH_ENOMEM;
    coh__err(err, COH_ENOMEM, "out of memory instrumenting the module");
  }
  rc = top.failed;
  coh__free(s.types);
  coh__free(s.func_type);
  if (rc) {
    coh__buf_free(&s.out);
    coh__wasm_info_free(info);
    return rc;
  }
  *out = s.out;
  return COH_OK;
}

void coh__wasm_info_free(coh__wasm_info *info) {
  coh__free(info->global_types);
  info->global_types = NULL;
}
