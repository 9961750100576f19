/*
 * chat_int.h — internals of the chat-template module (src/chat/).
 *
 *   chat_lex.c     preprocessing (trim_blocks, lstrip_blocks, '-') and tokens
 *   chat_parse.c   tokens -> syntax tree
 *   chat_value.c   the value type, the render arena, printing and tojson
 *   chat_eval.c    the evaluator (statements, expressions, scopes, bounds)
 *   chat_filter.c  filters, tests, string/dict methods, global functions
 *   chat_load.c    loading from a model folder or file; the public API
 *
 * The dialect is the one @huggingface/jinja implements (what transformers.js
 * renders with), which the tests compare against byte for byte: the same
 * whitespace preprocessing, the same operator precedence, the same printing
 * of values (true/false, 1.0, tojson's separators).  See docs/inference.md.
 */
#ifndef COH_CHAT_INT_H
#define COH_CHAT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "cohort/chat.h"
#include "util/util_int.h"

#define COH__CHAT_SRC_MAX ((size_t)1 << 20)  /* template source */
#define COH__CHAT_DEPTH_MAX 64               /* nesting: parse and calls */
#ifndef COH__CHAT_STEPS_MAX /* the fuzz harness sets a lower one */
#define COH__CHAT_STEPS_MAX 10000000ull      /* evaluation steps per render */
#endif
#define COH__CHAT_OUT_MAX ((size_t)4 << 20)  /* any rendered text */
#define COH__CHAT_MEM_MAX ((size_t)256 << 20) /* render arena */

/* ---- arena ---------------------------------------------------------------- */
typedef struct ch_chunk ch_chunk;
typedef struct ch_arena {
  ch_chunk *head;
  size_t total;
  int oom;   /* allocation failed or over COH__CHAT_MEM_MAX */
  int over;  /* ... because of COH__CHAT_MEM_MAX */
} ch_arena;
void *coh__ch_alloc(ch_arena *a, size_t n); /* zeroed; NULL sets oom */
char *coh__ch_strdup(ch_arena *a, const char *s, size_t n);
void coh__ch_arena_free(ch_arena *a);

/* ---- tokens ---------------------------------------------------------------- */
enum {
  TK_TEXT, TK_NUM, TK_STR, TK_IDENT, TK_EQUALS, TK_LPAREN, TK_RPAREN,
  TK_OPEN_STMT, TK_CLOSE_STMT, TK_OPEN_EXPR, TK_CLOSE_EXPR, TK_LBRACKET,
  TK_RBRACKET, TK_LBRACE, TK_RBRACE, TK_COMMA, TK_DOT, TK_COLON, TK_PIPE,
  TK_ADD, TK_MUL, TK_POW, TK_CMP, TK_UNARY, TK_COMMENT, TK_RAW
};
typedef struct ch_token {
  int type;
  const char *s; /* value (arena), NUL-terminated */
  size_t n;
  uint32_t line, col; /* in the original source */
} ch_token;

/* ---- syntax tree ---------------------------------------------------------- */
enum {
  /* statements */
  N_TEXT, N_IF, N_FOR, N_SET, N_MACRO, N_CALLBLOCK, N_BREAK, N_CONTINUE,
  N_FILTERBLOCK, N_COMMENT,
  /* expressions */
  N_INT, N_FLOAT, N_STR, N_IDENT, N_ARRAY, N_TUPLE, N_OBJECT, N_MEMBER,
  N_SLICE, N_CALL, N_UNARY, N_BINARY, N_FILTER, N_TEST, N_SELECT, N_TERNARY,
  N_KWARG, N_SPREAD, N_KWSPREAD
};
/* binary/unary operators */
enum {
  OP_AND, OP_OR, OP_EQ, OP_NE, OP_LT, OP_GT, OP_LE, OP_GE, OP_IN, OP_NOTIN,
  OP_ADD, OP_SUB, OP_CAT, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW, OP_NOT,
  OP_NEG, OP_POS
};
typedef struct ch_node ch_node;
typedef struct ch_list {
  ch_node **v;
  size_t n;
} ch_list;
struct ch_node {
  int kind, op, flag; /* flag: member computed; test negated; macro uses
                         kwargs (1) / varargs (2) */
  uint32_t line, col;
  ch_node *a, *b, *c;   /* operands, test/body owner, ... */
  ch_list l1, l2, l3;   /* bodies, argument lists, object keys/values */
  const char *s;        /* text, identifier, string literal */
  size_t sn;
  int64_t i;
  double f;
};

struct coh_chat_template {
  ch_arena ar;      /* tokens, tree, names */
  char *name;
  ch_list body;
  size_t nspecial;
  char **special_names, **special_values;
};

/* Lexes src into tokens (arena).  Errors: COH_EFORMAT "NAME:L:C: what". */
int coh__ch_lex(ch_arena *ar, const char *name, const char *src, size_t len,
                ch_token **toks, size_t *ntoks, coh_err *err);
int coh__ch_parse(ch_arena *ar, const char *name, const ch_token *toks,
                  size_t n, ch_list *body, coh_err *err);

/* ---- values ----------------------------------------------------------------- */
enum { V_UNDEF, V_NULL, V_BOOL, V_INT, V_FLOAT, V_STR, V_ARR, V_TUPLE, V_OBJ,
       V_KWARGS, V_NS, V_FUNC };
typedef struct ch_arr ch_arr;
typedef struct ch_obj ch_obj;
typedef struct ch_fn ch_fn;
typedef struct ch_val {
  int t;
  union {
    int b;
    int64_t i;
    double f;
    struct { const char *p; size_t n; } s;
    ch_arr *a;
    ch_obj *o;
    ch_fn *fn;
  } u;
} ch_val;
struct ch_arr { ch_val *v; size_t n, cap; };
struct ch_obj { const char **k; size_t *kn; ch_val *v; size_t n, cap; };

typedef struct ch_render ch_render;
ch_val coh__ch_str(const char *p, size_t n);
ch_val coh__ch_int(int64_t i);
ch_val coh__ch_bool(int b);
ch_val coh__ch_undef(void);
ch_val coh__ch_null(void);
ch_arr *coh__ch_arr_new(ch_render *r, size_t cap);
int coh__ch_arr_push(ch_render *r, ch_arr *a, ch_val v);
ch_obj *coh__ch_obj_new(ch_render *r);
ch_val *coh__ch_obj_get(const ch_obj *o, const char *k, size_t kn);
int coh__ch_obj_set(ch_render *r, ch_obj *o, const char *k, size_t kn,
                    ch_val v);
/* Appends a key known not to be in o. */
int coh__ch_obj_append(ch_render *r, ch_obj *o, const char *k, size_t kn,
                       ch_val v);
int coh__ch_truthy(ch_val v);
/* The text a value prints as ({{ v }}), into b. */
int coh__ch_print(ch_render *r, coh__buf *b, ch_val v);
/* The text JavaScript's String(v.value) gives (for '~' and '+'). */
int coh__ch_jsstr(ch_render *r, coh__buf *b, ch_val v);
void coh__ch_num(coh__buf *b, double d); /* JS Number#toString */
typedef struct ch_json_opt {
  int64_t indent; /* 0: none */
  int ensure_ascii, sort_keys, undef_null;
  const char *item_sep, *key_sep;
} ch_json_opt;
int coh__ch_tojson(ch_render *r, coh__buf *b, ch_val v, const ch_json_opt *o,
                   int depth);
void coh__ch_json_str(coh__buf *b, const char *p, size_t n, int ascii);
/* JSON text (jansson) -> value. */
struct json_t;
int coh__ch_from_json(ch_render *r, struct json_t *j, ch_val *out, int depth);
const char *coh__ch_type_name(int t);
int coh__ch_loose_eq(ch_val a, ch_val b);
int coh__ch_strict_eq(ch_val a, ch_val b);
size_t coh__ch_utf16_len(const char *p, size_t n);

/* ---- render state ----------------------------------------------------------- */
typedef struct ch_env ch_env;
struct ch_env {
  ch_env *parent;
  ch_obj vars;
};
struct ch_fn {
  int kind;          /* FN_* */
  const ch_node *node; /* macro / call block */
  ch_env *env;       /* call block: its defining scope */
  ch_val self;       /* bound method */
  const char *name;
};
enum { FN_MACRO, FN_CALLER, FN_NAMESPACE, FN_RANGE, FN_RAISE, FN_STRFTIME,
       FN_METHOD };

struct ch_render {
  const coh_chat_template *t;
  ch_arena ar;
  uint64_t steps;
  int depth;
  coh_err *err;
  int failed;
  const ch_node *at; /* node being evaluated, for error positions */
  const char *date_time; size_t date_time_n;
};
/* Records a runtime error at r->at ("NAME:L:C: what"); returns -1. */
int coh__ch_fail(ch_render *r, int code, const char *fmt, ...)
    COH__PRINTF(3, 4);
/* Counts one evaluation step; -1 past the bound. */
int coh__ch_step(ch_render *r, uint64_t n);
int coh__ch_eval(ch_render *r, ch_env *env, const ch_node *n, ch_val *out);
int coh__ch_call(ch_render *r, ch_env *env, ch_val fn, ch_val *args,
                 size_t nargs, ch_val *out);
/* Filters and tests (chat_filter.c). */
int coh__ch_filter_known(const char *name);
int coh__ch_test_known(const char *name);
int coh__ch_apply_filter(ch_render *r, ch_env *env, ch_val v,
                         const ch_node *f, ch_val *out);
int coh__ch_apply_test(ch_render *r, const char *name, ch_val v, ch_val arg,
                       int has_arg, int *res);
/* v.prop for strings, arrays and objects (methods and length). */
int coh__ch_builtin(ch_render *r, ch_val self, const char *name, size_t n,
                    ch_val *out);
int coh__ch_call_builtin(ch_render *r, ch_fn *fn, ch_val *args, size_t nargs,
                         ch_val *out);
int coh__ch_output_check(ch_render *r, const coh__buf *b);
int coh__ch_run(ch_render *r, ch_env *global, coh__buf *out);
ch_env *coh__ch_env_new(ch_render *r, ch_env *parent);
int coh__ch_setvar(ch_render *r, ch_env *e, const char *name, size_t n,
                   ch_val v);
int coh__ch_eval_args(ch_render *r, ch_env *env, const ch_list *l,
                      ch_val **out, size_t *n, ch_obj **kw);
/* JavaScript whitespace (what trim() strips): its byte length at p / just
 * before p + n, 0 if none. */
size_t coh__ch_js_ws_at(const char *p, size_t n);
size_t coh__ch_js_ws_before(const char *p, size_t n);

#endif /* COH_CHAT_INT_H */
