/* chat_lex.c — a template's text to tokens.  First the whitespace
 * preprocessing @huggingface/jinja applies (a final newline dropped,
 * lstrip_blocks, trim_blocks, the transformers {% generation %} tag removed),
 * keeping for each byte its offset in the original so that errors name the
 * original line and column; then the tokens. */
#include <stdio.h>
#include <string.h>

#include "chat_int.h"

typedef struct lexer {
  ch_arena *ar;
  const char *name;
  char *p;       /* preprocessed text */
  size_t *orig;  /* p[i] came from src[orig[i]] */
  size_t n;
  const char *src;
  size_t srclen;
  ch_token *t;
  size_t nt, cap;
  coh_err *err;
  size_t pos_off; /* pos_of's cache */
  uint32_t pos_line, pos_col;
} lexer;

/* Line and column (1-based, in characters) of processed offset off, in the
 * original source.  Tokens ask in increasing order, so the scan resumes
 * from the last answer (linear in the source overall). */
static void pos_of(lexer *L, size_t off, uint32_t *line, uint32_t *col) {
  size_t o = off < L->n ? L->orig[off] : L->srclen, i;
  if (o > L->srclen) o = L->srclen;
  if (o < L->pos_off) {
    L->pos_off = 0;
    L->pos_line = 1;
    L->pos_col = 1;
  }
  for (i = L->pos_off; i < o; i++) {
    if (L->src[i] == '\n') L->pos_line++, L->pos_col = 1;
    else if (((unsigned char)L->src[i] & 0xC0) != 0x80) L->pos_col++;
  }
  L->pos_off = o;
  *line = L->pos_line;
  *col = L->pos_col;
}

static int lex_err(lexer *L, size_t off, const char *what) {
  uint32_t line, col;
  pos_of(L, off, &line, &col);
  return coh__err(L->err, COH_EFORMAT, "%s:%u:%u: %s", L->name,
                  (unsigned)line, (unsigned)col, what);
}

/* Deletes the bytes marked in del[] from L->p / L->orig. */
static void compact(lexer *L, const unsigned char *del) {
  size_t i, j = 0;
  for (i = 0; i < L->n; i++)
    if (!del[i]) {
      L->p[j] = L->p[i];
      L->orig[j] = L->orig[i];
      j++;
    }
  L->n = j;
  L->p[j] = 0;
}

static int is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
         c == '\f';
}

static int preprocess(lexer *L) {
  size_t i, j;
  unsigned char *del = coh__calloc(L->n + 1, 1);
  if (del == NULL) return coh__err(L->err, COH_ENOMEM, "out of memory");
  if (L->n > 0 && L->p[L->n - 1] == '\n') L->p[--L->n] = 0;
  /* lstrip_blocks: /^[ \t]*({[#%-])/gm */
  for (i = 0; i < L->n; i++) {
    if (i == 0 || L->p[i - 1] == '\n' || L->p[i - 1] == '\r') {
      j = i;
      while (j < L->n && (L->p[j] == ' ' || L->p[j] == '\t')) j++;
      if (j + 1 < L->n && L->p[j] == '{' &&
          (L->p[j + 1] == '#' || L->p[j + 1] == '%' || L->p[j + 1] == '-'))
        memset(del + i, 1, j - i);
    }
  }
  compact(L, del);
  memset(del, 0, L->n + 1);
  /* trim_blocks: /([#%-]})\n/g */
  for (i = 0; i + 2 < L->n; i++) {
    if ((L->p[i] == '#' || L->p[i] == '%' || L->p[i] == '-') &&
        L->p[i + 1] == '}' && L->p[i + 2] == '\n') {
      del[i + 2] = 1;
      i += 2;
    }
  }
  compact(L, del);
  memset(del, 0, L->n + 1);
  /* /(\s*){%(-?)\s*(?:end)?generation\s*(-?)%}(\s*)/gs: the tag goes, and
   * the whitespace around it where the tag has '-' on that side. */
  for (i = 0; i + 1 < L->n; i++) {
    size_t k, ws0;
    int ls = 0, rs = 0;
    if (del[i] || L->p[i] != '{' || L->p[i + 1] != '%') continue;
    k = i + 2;
    if (k < L->n && L->p[k] == '-') ls = 1, k++;
    while (k < L->n && is_ws(L->p[k])) k++;
    if (k + 3 <= L->n && !strncmp(L->p + k, "end", 3) &&
        k + 13 <= L->n && !strncmp(L->p + k + 3, "generation", 10))
      k += 13;
    else if (k + 10 <= L->n && !strncmp(L->p + k, "generation", 10))
      k += 10;
    else
      continue;
    while (k < L->n && is_ws(L->p[k])) k++;
    if (k < L->n && L->p[k] == '-') rs = 1, k++;
    if (!(k + 1 < L->n && L->p[k] == '%' && L->p[k + 1] == '}')) continue;
    k += 2;
    ws0 = i;
    while (ws0 > 0 && is_ws(L->p[ws0 - 1]) && !del[ws0 - 1]) ws0--;
    if (ls) memset(del + ws0, 1, i - ws0);
    memset(del + i, 1, k - i);
    if (rs)
      while (k < L->n && is_ws(L->p[k])) del[k++] = 1;
    i = k - 1;
  }
  compact(L, del);
  coh__free(del);
  return 0;
}

static int push(lexer *L, int type, const char *s, size_t n, size_t off) {
  ch_token *t;
  if (L->nt == L->cap) {
    size_t nc = L->cap ? L->cap * 2 : 64;
    ch_token *nt = coh__ch_alloc(L->ar, nc * sizeof *nt);
    if (nt == NULL) return coh__err(L->err, COH_ENOMEM, "out of memory");
    if (L->nt) memcpy(nt, L->t, L->nt * sizeof *nt);
    L->t = nt;
    L->cap = nc;
  }
  t = &L->t[L->nt++];
  t->type = type;
  t->s = coh__ch_strdup(L->ar, s, n);
  if (t->s == NULL) return coh__err(L->err, COH_ENOMEM, "out of memory");
  t->n = n;
  pos_of(L, off, &t->line, &t->col);
  return 0;
}

static int last_type(const lexer *L) {
  return L->nt ? L->t[L->nt - 1].type : -1;
}

/* JavaScript's trimEnd on the last text token (ASCII whitespace and the
 * Unicode spaces JavaScript strips). */
static size_t js_ws_before(const char *p, size_t n);
static size_t js_ws_at(const char *p, size_t n);

static void strip_trailing(lexer *L) {
  ch_token *t;
  if (!L->nt || L->t[L->nt - 1].type != TK_TEXT) return;
  t = &L->t[L->nt - 1];
  for (;;) {
    size_t k = js_ws_before(t->s, t->n);
    if (!k) break;
    t->n -= k;
  }
  ((char *)t->s)[t->n] = 0;
  if (t->n == 0) L->nt--;
}

/* Bytes of a JavaScript whitespace character at p (0 if none). */
static size_t js_ws_at(const char *p, size_t n) {
  const unsigned char *u = (const unsigned char *)p;
  if (n >= 1 && (is_ws(p[0]))) return 1;
  if (n >= 2 && u[0] == 0xC2 && u[1] == 0xA0) return 2;
  if (n >= 3 && u[0] == 0xE1 && u[1] == 0x9A && u[2] == 0x80) return 3;
  if (n >= 3 && u[0] == 0xE2 && u[1] == 0x80 &&
      ((u[2] >= 0x80 && u[2] <= 0x8A) || u[2] == 0xA8 || u[2] == 0xA9 ||
       u[2] == 0xAF))
    return 3;
  if (n >= 3 && u[0] == 0xE2 && u[1] == 0x81 && u[2] == 0x9F) return 3;
  if (n >= 3 && u[0] == 0xE3 && u[1] == 0x80 && u[2] == 0x80) return 3;
  if (n >= 3 && u[0] == 0xEF && u[1] == 0xBB && u[2] == 0xBF) return 3;
  return 0;
}
static size_t js_ws_before(const char *p, size_t n) {
  size_t k;
  for (k = 1; k <= 3 && k <= n; k++)
    if (js_ws_at(p + n - k, k) == k) return k;
  return 0;
}
size_t coh__ch_js_ws_at(const char *p, size_t n) { return js_ws_at(p, n); }
size_t coh__ch_js_ws_before(const char *p, size_t n) {
  return js_ws_before(p, n);
}

static size_t skip_ws(const lexer *L, size_t i) {
  size_t k;
  while (i < L->n && (k = js_ws_at(L->p + i, L->n - i)) > 0) i += k;
  return i;
}

static const struct { const char *s; int type; } table[] = {
    {"{%", TK_OPEN_STMT}, {"%}", TK_CLOSE_STMT}, {"{{", TK_OPEN_EXPR},
    {"}}", TK_CLOSE_EXPR}, {"(", TK_LPAREN},     {")", TK_RPAREN},
    {"{", TK_LBRACE},      {"}", TK_RBRACE},      {"[", TK_LBRACKET},
    {"]", TK_RBRACKET},    {",", TK_COMMA},       {".", TK_DOT},
    {":", TK_COLON},       {"|", TK_PIPE},        {"<=", TK_CMP},
    {">=", TK_CMP},        {"==", TK_CMP},        {"!=", TK_CMP},
    {"<", TK_CMP},         {">", TK_CMP},         {"+", TK_ADD},
    {"-", TK_ADD},         {"~", TK_ADD},         {"**", TK_POW},
    {"*", TK_MUL},         {"//", TK_MUL},        {"/", TK_MUL},
    {"%", TK_MUL},         {"=", TK_EQUALS}};

static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_word(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         c == '_';
}

/* A string literal's body up to the quote q, with JavaScript escapes. */
static int lex_string(lexer *L, size_t *pi, char q) {
  size_t i = *pi, start = i;
  coh__buf b = {0};
  int rc = 0;
  while (i < L->n && L->p[i] != q) {
    if (L->p[i] == '\\') {
      char e;
      if (++i >= L->n) { rc = lex_err(L, i, "unexpected end of input"); goto out; }
      e = L->p[i++];
      if (e == 'x' || e == 'u') {
        size_t len = e == 'x' ? 2 : 4, k;
        uint32_t cp = 0;
        for (k = 0; k < len; k++) {
          char h = i + k < L->n ? L->p[i + k] : 0;
          int d = is_digit(h) ? h - '0'
                  : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                  : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
          if (d < 0) { rc = lex_err(L, i, "invalid hexadecimal escape sequence"); goto out; }
          cp = cp * 16 + (uint32_t)d;
        }
        i += len;
        coh__buf_add_cp(&b, cp >= 0xD800 && cp < 0xE000 ? 0xFFFD : cp);
        continue;
      }
      switch (e) {
        case 'n': coh__buf_addc(&b, '\n'); break;
        case 't': coh__buf_addc(&b, '\t'); break;
        case 'r': coh__buf_addc(&b, '\r'); break;
        case 'b': coh__buf_addc(&b, '\b'); break;
        case 'f': coh__buf_addc(&b, '\f'); break;
        case 'v': coh__buf_addc(&b, '\v'); break;
        case '\'': case '"': case '\\': coh__buf_addc(&b, e); break;
        default: rc = lex_err(L, i - 1, "unexpected escaped character"); goto out;
      }
      continue;
    }
    coh__buf_addc(&b, L->p[i++]);
    if (i >= L->n) { rc = lex_err(L, start - 1, "unterminated string"); goto out; }
  }
  if (i >= L->n) { rc = lex_err(L, start - 1, "unterminated string"); goto out; }
  if (b.oom) { rc = coh__err(L->err, COH_ENOMEM, "out of memory"); goto out; }
  rc = push(L, TK_STR, b.p ? b.p : "", b.n, start - 1);
  *pi = i + 1;
out:
  coh__buf_free(&b);
  return rc;
}

static int lex_tokens(lexer *L) {
  size_t i = 0, k;
  int depth = 0, lt, rc;
  while (i < L->n) {
    lt = last_type(L);
    if (lt < 0 || lt == TK_CLOSE_STMT || lt == TK_CLOSE_EXPR ||
        lt == TK_COMMENT || lt == TK_RAW) {
      size_t s = i;
      while (i < L->n && !(L->p[i] == '{' && i + 1 < L->n &&
                           (L->p[i + 1] == '%' || L->p[i + 1] == '{' ||
                            L->p[i + 1] == '#')))
        i++;
      if (i > s) {
        if ((rc = push(L, TK_TEXT, L->p + s, i - s, s))) return rc;
        continue;
      }
    }
    if (L->p[i] == '{' && i + 1 < L->n && L->p[i + 1] == '#') {
      size_t s = i, cs, ce;
      int before, after;
      i += 2;
      before = i < L->n && L->p[i] == '-';
      if (before) i++;
      cs = i;
      while (!(i + 1 < L->n && L->p[i] == '#' && L->p[i + 1] == '}')) {
        if (i + 2 >= L->n) return lex_err(L, s, "missing end of comment tag");
        i++;
      }
      ce = i;
      after = ce > cs && L->p[ce - 1] == '-';
      if (before) strip_trailing(L);
      if ((rc = push(L, TK_COMMENT, L->p + cs, ce - cs - (after ? 1 : 0), s)))
        return rc;
      i += 2;
      if (after) i = skip_ws(L, i);
      continue;
    }
    if (i + 3 <= L->n && !strncmp(L->p + i, "{%-", 3)) {
      strip_trailing(L);
      if ((rc = push(L, TK_OPEN_STMT, "{%", 2, i))) return rc;
      i += 3;
      continue;
    }
    if (i + 3 <= L->n && !strncmp(L->p + i, "{{-", 3)) {
      strip_trailing(L);
      if ((rc = push(L, TK_OPEN_EXPR, "{{", 2, i))) return rc;
      depth = 0;
      i += 3;
      continue;
    }
    /* whitespace inside a tag: running into the end is an error */
    while (i < L->n && (k = js_ws_at(L->p + i, L->n - i)) > 0) {
      i += k;
      if (i >= L->n) return lex_err(L, i, "unexpected end of input");
    }
    if (i + 3 <= L->n && !strncmp(L->p + i, "-%}", 3)) {
      if ((rc = push(L, TK_CLOSE_STMT, "%}", 2, i))) return rc;
      i = skip_ws(L, i + 3);
      continue;
    }
    if (i + 3 <= L->n && !strncmp(L->p + i, "-}}", 3)) {
      if ((rc = push(L, TK_CLOSE_EXPR, "}}", 2, i))) return rc;
      i = skip_ws(L, i + 3);
      continue;
    }
    {
      char c = L->p[i];
      size_t t;
      if (c == '-' || c == '+') {
        lt = last_type(L);
        if (lt == TK_TEXT || lt < 0) return lex_err(L, i, "unexpected character");
        if (!(lt == TK_IDENT || lt == TK_NUM || lt == TK_STR ||
              lt == TK_RPAREN || lt == TK_RBRACKET)) {
          size_t s = i++, d = i;
          while (i < L->n && is_digit(L->p[i])) i++;
          if (i > d && i + 1 < L->n && L->p[i] == '.' && is_digit(L->p[i + 1])) {
            i++;
            while (i < L->n && is_digit(L->p[i])) i++;
          }
          if ((rc = push(L, i > d ? TK_NUM : TK_UNARY, L->p + s, i - s, s)))
            return rc;
          continue;
        }
      }
      for (t = 0; t < sizeof table / sizeof table[0]; t++) {
        size_t sl = strlen(table[t].s);
        if (table[t].type == TK_CLOSE_EXPR && depth > 0) continue;
        if (i + sl <= L->n && !strncmp(L->p + i, table[t].s, sl)) {
          if ((rc = push(L, table[t].type, table[t].s, sl, i))) return rc;
          if (table[t].type == TK_OPEN_EXPR) depth = 0;
          else if (table[t].type == TK_LBRACE) depth++;
          else if (table[t].type == TK_RBRACE) depth--;
          i += sl;
          break;
        }
      }
      if (t < sizeof table / sizeof table[0]) continue;
      if (c == '\'' || c == '"') {
        i++;
        if ((rc = lex_string(L, &i, c))) return rc;
        continue;
      }
      if (is_digit(c)) {
        size_t s = i;
        while (i < L->n && is_digit(L->p[i])) i++;
        if (last_type(L) != TK_DOT && i + 1 < L->n && L->p[i] == '.' &&
            is_digit(L->p[i + 1])) {
          i++;
          while (i < L->n && is_digit(L->p[i])) i++;
        }
        if ((rc = push(L, TK_NUM, L->p + s, i - s, s))) return rc;
        continue;
      }
      if (is_word(c)) {
        size_t s = i;
        while (i < L->n && is_word(L->p[i])) i++;
        if ((rc = push(L, TK_IDENT, L->p + s, i - s, s))) return rc;
        /* {% raw %}...{% endraw %}: the text between, verbatim (an
         * extension: @huggingface/jinja has no raw blocks) */
        if (i - s == 3 && !strncmp(L->p + s, "raw", 3) && L->nt >= 2 &&
            L->t[L->nt - 2].type == TK_OPEN_STMT) {
          size_t j = skip_ws(L, i), body, e;
          if (j + 3 <= L->n && !strncmp(L->p + j, "-%}", 3)) j = skip_ws(L, j + 3);
          else if (j + 2 <= L->n && !strncmp(L->p + j, "%}", 2)) j += 2;
          else return lex_err(L, j, "expected '%}' after raw");
          body = j;
          for (e = body; e + 1 < L->n; e++) {
            size_t q;
            if (L->p[e] != '{' || L->p[e + 1] != '%') continue;
            q = e + 2;
            if (q < L->n && L->p[q] == '-') q++;
            q = skip_ws(L, q);
            if (q + 6 <= L->n && !strncmp(L->p + q, "endraw", 6)) break;
          }
          if (e + 1 >= L->n) return lex_err(L, s, "raw block without endraw");
          {
            size_t bl = e - body, q = e + 2;
            int strip = q < L->n && L->p[q] == '-';
            if (strip)
              while (bl > 0 && js_ws_before(L->p + body, bl))
                bl -= js_ws_before(L->p + body, bl);
            L->nt -= 2; /* the {% raw */
            if ((rc = push(L, TK_RAW, L->p + body, bl, body))) return rc;
            q = skip_ws(L, q + (strip ? 1 : 0)) + 6;
            q = skip_ws(L, q);
            if (q + 3 <= L->n && !strncmp(L->p + q, "-%}", 3)) i = skip_ws(L, q + 3);
            else if (q + 2 <= L->n && !strncmp(L->p + q, "%}", 2)) i = q + 2;
            else return lex_err(L, q, "expected '%}' after endraw");
          }
        }
        continue;
      }
      return lex_err(L, i, "unexpected character");
    }
  }
  return 0;
}

int coh__ch_lex(ch_arena *ar, const char *name, const char *src, size_t len,
                ch_token **toks, size_t *ntoks, coh_err *err) {
  lexer L;
  size_t i;
  int rc;
  memset(&L, 0, sizeof L);
  L.ar = ar;
  L.name = name;
  L.src = src;
  L.srclen = len;
  L.err = err;
  L.pos_line = L.pos_col = 1;
  if (len > COH__CHAT_SRC_MAX)
    return coh__err(err, COH_ERANGE, "%s: template is %zu bytes, over the %zu limit",
                    name, len, COH__CHAT_SRC_MAX);
  L.p = coh__malloc(len + 1);
  L.orig = coh__malloc((len + 1) * sizeof *L.orig);
  if (L.p == NULL || L.orig == NULL) {
    rc = coh__err(err, COH_ENOMEM, "out of memory");
    goto out;
  }
  memcpy(L.p, src, len);
  L.p[len] = 0;
  for (i = 0; i <= len; i++) L.orig[i] = i;
  L.n = len;
  if ((rc = preprocess(&L))) goto out;
  if ((rc = lex_tokens(&L))) goto out;
  *toks = L.t;
  *ntoks = L.nt;
out:
  coh__free(L.p);
  coh__free(L.orig);
  return rc;
}
