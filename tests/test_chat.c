/* test_chat.c — the chat-template module: parser and evaluator edge cases,
 * error messages with template:line:column, the bounds (evaluation steps,
 * output size, nesting), raise_exception, strftime_now without a clock,
 * {% raw %}, loading from folders and files, special tokens, and the plain
 * format.  (Byte-for-byte agreement with @huggingface/jinja on real
 * templates is tests/chat_template.sh.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>

#include "cohort/chat.h"
#include "fuzz/fuzz_chat.c"
#include "test.h"
#include "util/util_int.h"

/* Renders src with vars; returns the text (static buffer) or the error
 * message prefixed with "ERR <code>: ". */
static char out_buf[1 << 16];
static const char *render(const char *src, const char *vars) {
  coh_chat_template *t = NULL;
  coh_err err;
  char *text = NULL;
  size_t n = 0;
  int rc = coh_chat_template_parse(src, strlen(src), "t.jinja", &t, &err);
  if (rc) {
    snprintf(out_buf, sizeof out_buf, "ERR %s: %s", coh_err_name(rc), err.msg);
    return out_buf;
  }
  rc = coh_chat_render(t, vars ? vars : "{}", SIZE_MAX, &text, &n, &err);
  if (rc)
    snprintf(out_buf, sizeof out_buf, "ERR %s: %s", coh_err_name(rc), err.msg);
  else {
    CHECK_EQ_INT(n, strlen(text));
    snprintf(out_buf, sizeof out_buf, "%s", text);
  }
  coh_free(text);
  coh_chat_template_free(t);
  return out_buf;
}

static void test_basics(void) {
  CHECK_STR(render("Hello {{ name }}!", "{\"name\": \"W\"}"), "Hello W!");
  CHECK_STR(render("", NULL), "");
  CHECK_STR(render("text only\n", NULL), "text only");   /* final newline dropped */
  CHECK_STR(render("{{ x }}|{{ none }}|{{ true }}|{{ 1.0 }}|{{ 2.5 }}", NULL), "||true|1.0|2.5");
  CHECK_STR(render("{{ 1 ~ 2.0 }} {{ 'a' + 1 }} {{ [1, 'b'] }} {{ {'k': [none]} }}", NULL),
            "12 a1 [1, \"b\"] {\"k\": [null]}");
  CHECK_STR(render("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ 1 / 4 }} {{ 2 ** 3 }} {{ 2 ** -1 }}", NULL),
            "3 -4 1 0.25 8 0.5");
  CHECK_STR(render("{{ 1e3 if false else 0.1 + 0.2 }}", NULL), "ERR COH_EFORMAT: t.jinja:1:5: expected '}}' (at 'e3')");
  CHECK_STR(render("{{ 0.1 + 0.2 }} {{ 100000000000000000000.0 * 10 }} {{ 0.0000001 }}", NULL),
            "0.30000000000000004 1e+21 1e-7");
  CHECK_STR(render("{{ 'a' 'b' }}{{ \"\\n\\t\\x41\\u00e9\" }}", NULL), "ab\n\tAé");
}

static void test_control(void) {
  CHECK_STR(render("{% if a %}A{% elif b %}B{% else %}C{% endif %}", "{\"b\": 1}"), "B");
  CHECK_STR(render("{% for x in xs %}{{ loop.index0 }}{{ loop.index }}{{ loop.revindex }}"
                   "{{ loop.first }}{{ loop.last }}{{ loop.length }};{% else %}empty{% endfor %}",
                   "{\"xs\": [\"a\", \"b\"]}"),
            "012truefalse2;121falsetrue2;");
  CHECK_STR(render("{% for x in xs %}{{ x }}{% else %}empty{% endfor %}", "{\"xs\": []}"), "empty");
  CHECK_STR(render("{% for k, v in d.items() %}{{ k }}{{ v }}{% endfor %}", "{\"d\": {\"b\": 1, \"a\": 2}}"),
            "b1a2");
  CHECK_STR(render("{% for k in d %}{{ k }}{% endfor %}", "{\"d\": {\"z\": 1, \"y\": 2}}"), "zy");
  CHECK_STR(render("{% for x in [1, 2, 3, 4] if x is even %}{{ x }}{% endfor %}", NULL), "24");
  CHECK_STR(render("{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}"
                   "{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}", NULL), "013");
  /* a for loop's sets stay in the loop; a namespace carries them out */
  CHECK_STR(render("{% set n = 0 %}{% set ns = namespace(n=0) %}{% for x in [1, 2] %}"
                   "{% set n = n + x %}{% set ns.n = ns.n + x %}{% endfor %}{{ n }} {{ ns.n }}", NULL),
            "0 3");
  CHECK_STR(render("{% set a, b = [1, 2] %}{{ b }}{{ a }}", NULL), "21");
  CHECK_STR(render("{% set s %}in {{ 1 + 1 }}{% endset %}[{{ s }}]", NULL), "[in 2]");
  CHECK_STR(render("{% macro m(a, b='d', c=a ~ '!') %}{{ a }}{{ b }}{{ c }}{% endmacro %}"
                   "{{ m(1) }} {{ m(1, 2, 3) }} {{ m(b='x', a='y') }}", NULL),
            "1d1! 123 yxy!");
  CHECK_STR(render("{% macro m() %}{{ varargs | length }}{{ kwargs.k }}{% endmacro %}{{ m(1, 2, k=3) }}",
                   NULL), "23");
  CHECK_STR(render("{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}", NULL),
            "ERR COH_EFORMAT: t.jinja:1:41: macro m takes not more than 1 argument(s)");
  CHECK_STR(render("{% macro w(t) %}<{{ t }}>{{ caller() }}</{{ t }}>{% endmacro %}"
                   "{% call w('b') %}bold{% endcall %}", NULL), "<b>bold</b>");
  CHECK_STR(render("{% filter upper %}abc{{ 'd' }}{% endfilter %}", NULL), "ABCD");
  CHECK_STR(render("{{ 'yes' if x is defined else 'no' }}|{{ x if x }}|", NULL), "no||");
}

static void test_whitespace(void) {
  /* trim_blocks and lstrip_blocks, as transformers renders */
  CHECK_STR(render("a\n  {% if true %}\n  b\n  {% endif %}\nc", NULL), "a\n  b\nc");
  CHECK_STR(render("a  {%- if true -%}  b  {%- endif -%}  c", NULL), "abc");
  CHECK_STR(render("a \n {{- 'x' -}} \n b", NULL), "axb");
  CHECK_STR(render("a {#- c -#} b {# keep #} c", NULL), "ab  c");
  CHECK_STR(render("x\n{# comment #}\ny", NULL), "x\ny");
  CHECK_STR(render("{% generation %}g{% endgeneration %} {%- generation -%} h", NULL), "gh");
  /* {% raw %} keeps its text (an extension: @huggingface/jinja has none) */
  CHECK_STR(render("a{% raw %}{{ x }}{% if %}{% endraw %}b", NULL), "a{{ x }}{% if %}b");
  CHECK_STR(render("a {%- raw -%}  {{ x }}  {%- endraw -%} b", NULL), "a{{ x }}b");
  CHECK_STR(render("{% raw %}never closed", NULL),
            "ERR COH_EFORMAT: t.jinja:1:4: raw block without endraw");
}

static void test_filters_methods(void) {
  CHECK_STR(render("{{ xs | map(attribute='a.b') | join(',') }}",
                   "{\"xs\": [{\"a\": {\"b\": 1}}, {\"a\": {\"b\": 2}}]}"), "1,2");
  CHECK_STR(render("{{ xs | selectattr('r', 'equalto', 'u') | list | length }}"
                   "{{ xs | rejectattr('r') | list | length }}",
                   "{\"xs\": [{\"r\": \"u\"}, {\"r\": \"a\"}, {\"r\": \"\"}]}"), "11");
  CHECK_STR(render("{{ d | tojson(indent=2) }}", "{\"d\": {\"a\": [1, {\"b\": null}], \"c\": {}}}"),
            "{\n  \"a\": [\n    1,\n    {\n      \"b\": null\n    }\n  ],\n  \"c\": {}\n}");
  CHECK_STR(render("{{ d | tojson }}|{{ d | tojson(separators=(',', ':'), sort_keys=true) }}",
                   "{\"d\": {\"z\": \"\\u00e9\\n\", \"a\": 1.5}}"),
            "{\"z\": \"é\\n\", \"a\": 1.5}|{\"a\":1.5,\"z\":\"é\\n\"}");
  CHECK_STR(render("{{ 'Straße ΣΑΣ' | upper }} {{ 'ΣΑΣ ÉA' | lower }} {{ 'ünï' | capitalize }} {{ 'ab cd' | title }}", NULL),
            "STRASSE ΣΑΣ σας éa Ünï Ab Cd");
  CHECK_STR(render("{{ ' x '.strip() }}|{{ ' x '.lstrip() }}|{{ ' x '.rstrip() }}|{{ 'a,b,c'.split(',', 1) }}"
                   "|{{ 'a  b'.split() }}|{{ 'aXbX'.replace('X', '-', 1) }}", NULL),
            "x|x | x|[\"a\", \"b,c\"]|[\"a\", \"b\"]|a-bX");
  CHECK_STR(render("{{ 'abc'.startswith(('x', 'a')) }}{{ 'abc'.endswith('bc') }}{{ 'abc'[::-1] }}"
                   "{{ 'abcdef'[1:-1:2] }}{{ [1, 2, 3][-2:] }}{{ 'héé'[1] }}", NULL),
            "truetruecbabd[2, 3]é");
  CHECK_STR(render("{{ d.get('a') }}{{ d.get('x', 'y') }}{{ d.keys() | list }}{{ d.values() | list }}"
                   "{{ d | dictsort }}", "{\"d\": {\"b\": 2, \"a\": 1}}"),
            "1y[\"b\", \"a\"][2, 1][[\"a\", 1], [\"b\", 2]]");
  CHECK_STR(render("{{ x | default('d') }}{{ '' | default('e', true) }}{{ '3x' | int }}{{ '2.5' | float }}"
                   "{{ 3.7 | int }}{{ 5 | string }}{{ [1, 1, 2] | unique | list }}{{ [3, 1] | sort }}"
                   "{{ 'a\\nb' | indent(2) }}", NULL),
            "de32.535[1, 2][1, 3]a\n  b");
  CHECK_STR(render("{{ 'x' in ['x'] }}{{ 1 in [1.0] }}{{ 'a' not in 'abc' }}{{ 'k' in {'k': 1} }}{{ x in y }}",
                   NULL), "truetruefalsetruefalse");
  CHECK_STR(render("{{ x is none }}{{ 1 is string }}{{ {} is mapping }}{{ 'a' is iterable }}{{ [] is sequence }}"
                   "{{ 1 is number }}{{ true is boolean }}{{ y is undefined }}", "{\"x\": null}"),
            "truefalsetruetruetruetruetruetrue");
}

static void test_errors(void) {
  /* syntax errors name the template and line:column */
  CHECK_STR(render("line1\n{% if x %}\n{{ y | nope }}\n{% endif %}", NULL),
            "ERR COH_EFORMAT: t.jinja:3:8: unknown filter 'nope'");
  CHECK_STR(render("{{ x is frob }}", NULL), "ERR COH_EFORMAT: t.jinja:1:9: unknown test 'frob'");
  CHECK_STR(render("{% for x in y %}", NULL),
            "ERR COH_EFORMAT: t.jinja:1:15: unclosed block: expected {% end... %} (at the end)");
  CHECK_STR(render("ok\n  {% frobnicate %}", NULL),
            "ERR COH_EFORMAT: t.jinja:2:6: unknown statement (at 'frobnicate')");
  CHECK_STR(render("{{ 'unterminated }}", NULL), "ERR COH_EFORMAT: t.jinja:1:4: unterminated string");
  CHECK_STR(render("{{ a $ b }}", NULL), "ERR COH_EFORMAT: t.jinja:1:6: unexpected character");
  CHECK_STR(render("{{ (1 }}", NULL), "ERR COH_EFORMAT: t.jinja:1:7: expected ')' (at '}}')");
  /* runtime errors too */
  CHECK_STR(render("\n\n   {{ x.y() }}", NULL),
            "ERR COH_EFORMAT: t.jinja:3:7: cannot call a undefined: it is not a function");
  CHECK_STR(render("{{ 'a' ~ none }}", NULL),
            "ERR COH_EFORMAT: t.jinja:1:8: cannot apply an operator to none");
  CHECK_STR(render("{% for x in 5 %}{% endfor %}", NULL),
            "ERR COH_EFORMAT: t.jinja:1:1: for loop over a integer (expected a list or a mapping)");
  CHECK_STR(render("{{ (1, 2) | tojson }}", NULL),
            "ERR COH_EFORMAT: t.jinja:1:13: cannot convert a tuple to JSON");
  /* raise_exception: COH_ERAISED with the message as given */
  CHECK_STR(render("a{{ raise_exception('Bad role: ' ~ r) }}", "{\"r\": \"x\"}"),
            "ERR COH_ERAISED: Bad role: x");
  /* bad variables */
  CHECK_STR(render("x", "[1]"), "ERR COH_EFORMAT: t.jinja: variables: expected a JSON object");
  CHECK_STR(render("x", "{\"range\": 1}"), "ERR COH_EFORMAT: t.jinja: variables: 'range' is a built-in name");
  CHECK(strstr(render("x", "{bad"), "ERR COH_EFORMAT: t.jinja: variables: JSON error at 1:") != NULL);
}

static void test_bounds(void) {
  char *src;
  size_t i;
  /* steps: a loop that would run for ever in spirit */
  {
    /* steps: 27 million iterations over a 300-item list */
    char vars[2000];
    size_t k;
    strcpy(vars, "{\"xs\": [0");
    for (k = 1; k < 300; k++) strcat(vars, ",0");
    strcat(vars, "]}");
    CHECK(strstr(render("{% for i in xs %}{% for j in xs %}{% for k in xs %}{% endfor %}{% endfor %}{% endfor %}",
                        vars), "ERR COH_ERANGE: t.jinja:") != NULL);
    CHECK(strstr(out_buf, "over 10000000 evaluation steps") != NULL);
  }
  /* memory: 4 MiB strings made again and again */
  CHECK(strstr(render("{% set ns = namespace(s='ab') %}{% for i in range(21) %}{% set ns.s = ns.s ~ ns.s %}"
                      "{% endfor %}{% for i in range(100) %}{% set t = ns.s ~ '' %}{% endfor %}", NULL),
               "render memory over 256 MiB") != NULL);
  CHECK(strncmp(out_buf, "ERR COH_ERANGE", 14) == 0);
  /* output: 4 MiB */
  CHECK(strstr(render("{% set s = 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' %}"
                      "{% for i in range(100000) %}{{ s }}{% endfor %}", NULL),
               "rendered text over 4194304 bytes") != NULL);
  CHECK(strncmp(out_buf, "ERR COH_ERANGE", 14) == 0);
  /* string doubling hits the output bound, not memory */
  CHECK(strstr(render("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
                      "{% endfor %}", NULL), "ERR COH_ERANGE") != NULL);
  /* nesting over 64: statements, parentheses, macro recursion */
  src = malloc(100000);
  REQUIRE(src != NULL);
  src[0] = 0;
  for (i = 0; i < 70; i++) strcat(src, "{% if true %}");
  for (i = 0; i < 70; i++) strcat(src, "{% endif %}");
  CHECK(strstr(render(src, NULL), "ERR COH_ERANGE: t.jinja:1:") != NULL);
  CHECK(strstr(out_buf, "nesting deeper than 64") != NULL);
  strcpy(src, "{{ ");
  for (i = 0; i < 5000; i++) strcat(src, "(");
  CHECK(strstr(render(src, NULL), "ERR COH_ERANGE") != NULL);
  strcpy(src, "{{ ");
  for (i = 0; i < 5000; i++) strcat(src, "not ");
  strcat(src, "x }}");
  CHECK(strstr(render(src, NULL), "ERR COH_ERANGE") != NULL);
  free(src);
  CHECK(strstr(render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", NULL),
               "macro calls nested deeper than 64") != NULL);
  {
    /* a variables object of 200,000 keys: loads in linear time, and the
     * lookups count as steps (the loop ends at the bound) */
    size_t n = 200000, k;
    char *vars = malloc(n * 24 + 64), *p;
    REQUIRE(vars != NULL);
    p = vars + sprintf(vars, "{\"d\": {");
    for (k = 0; k < n; k++) p += sprintf(p, "%s\"k%zu\": %zu", k ? ", " : "", k, k);
    strcpy(p, "}}");
    CHECK(strstr(render("{{ d | length }}{% for k in d %}{{ d[k] }}{% endfor %}", vars),
                 "over 10000000 evaluation steps") != NULL);
    CHECK_STR(render("{{ d | length }} {{ d.k199999 }} {{ 'k5' in d }}", vars), "200000 199999 true");
    free(vars);
  }
  {
    /* a template of nearly 1 MiB parses (positions are found in linear
     * time) and its errors still say where */
    size_t n = (1u << 20) - 64, k;
    char *big = malloc(n + 64);
    REQUIRE(big != NULL);
    for (k = 0; k + 8 <= n; k += 8) memcpy(big + k, "{{ x }}\n", 8);
    strcpy(big + k, "{{ ) }}");
    CHECK(strstr(render(big, NULL), "ERR COH_EFORMAT: t.jinja:131065:4: unexpected token") != NULL);
    free(big);
  }
  /* source over 1 MiB */
  {
    size_t n = (1u << 20) + 1;
    coh_chat_template *t = NULL;
    coh_err err;
    char *big = malloc(n);
    REQUIRE(big != NULL);
    memset(big, 'a', n);
    CHECK_EQ_INT(coh_chat_template_parse(big, n, "big", &t, &err), COH_ERANGE);
    CHECK(t == NULL);
    free(big);
  }
}

static void test_strftime(void) {
  const char *tpl = "{{ strftime_now('%d %b %Y %B %H:%M %m %% %j') }}";
  CHECK_STR(render(tpl, NULL), "01 Jan 1970 January 00:00 01 % %j");
  CHECK_STR(render(tpl, "{\"date_time\": \"2024-07-26T10:30:00Z\"}"), "26 Jul 2024 July 10:30 07 % %j");
  CHECK(strstr(render(tpl, "{\"date_time\": \"yesterday\"}"), "is not an RFC 3339 date") != NULL);
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (f) {
    fputs(text, f);
    fclose(f);
  }
}

static void test_load(void) {
  char dir[] = "/tmp/coh_chat_XXXXXX", p[256], p2[256];
  coh_chat_template *t = NULL;
  coh_err err;
  char *text = NULL;
  REQUIRE(mkdtemp(dir) != NULL);
  /* an empty folder has no template: NULL and COH_OK */
  CHECK_EQ_INT(coh_chat_template_load_dir(dir, &t, &err), 0);
  CHECK(t == NULL);
  snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
  write_file(p, "{\"bos_token\": \"<s>\", \"eos_token\": {\"content\": \"</s>\", \"lstrip\": false},"
                " \"add_bos_token\": true, \"chat_template\": \"{{ bos_token }}{{ messages[0].content }}{{ eos_token }}\"}");
  REQUIRE(coh_chat_template_load_dir(dir, &t, &err) == 0 && t != NULL);
  CHECK_STR(coh_chat_template_special(t, "bos_token"), "<s>");
  CHECK_STR(coh_chat_template_special(t, "eos_token"), "</s>");
  CHECK(coh_chat_template_special(t, "add_bos_token") == NULL);
  CHECK_EQ_INT(coh_chat_render(t, "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", SIZE_MAX,
                               &text, NULL, &err), 0);
  CHECK_STR(text, "<s>hi</s>");
  coh_free(text);
  /* a variable of the same name wins */
  CHECK_EQ_INT(coh_chat_render(t, "{\"messages\": [{\"content\": \"x\"}], \"bos_token\": \"B\"}", SIZE_MAX,
                               &text, NULL, &err), 0);
  CHECK_STR(text, "Bx</s>");
  coh_free(text);
  coh_chat_template_free(t);
  /* a template error names the file and field */
  write_file(p, "{\"chat_template\": \"ok\\n{% if %}\"}");
  CHECK_EQ_INT(coh_chat_template_load_dir(dir, &t, &err), COH_EFORMAT);
  CHECK(t == NULL);
  CHECK(strstr(err.msg, "tokenizer_config.json:chat_template:2:7: ") != NULL);
  /* no chat_template there: chat_template.jinja, with the config's tokens */
  write_file(p, "{\"eos_token\": \"E\"}");
  snprintf(p2, sizeof p2, "%s/chat_template.jinja", dir);
  write_file(p2, "J{{ eos_token }}\n");
  REQUIRE(coh_chat_template_load_dir(dir, &t, &err) == 0 && t != NULL);
  CHECK_EQ_INT(coh_chat_render(t, NULL, 0, &text, NULL, &err), 0);
  CHECK_STR(text, "JE");
  coh_free(text);
  coh_chat_template_free(t);
  unlink(p2);
  /* then chat_template.json */
  snprintf(p2, sizeof p2, "%s/chat_template.json", dir);
  write_file(p2, "{\"chat_template\": \"N\"}");
  REQUIRE(coh_chat_template_load_dir(dir, &t, &err) == 0 && t != NULL);
  coh_chat_template_free(t);
  /* load_file with a separate config */
  CHECK_EQ_INT(coh_chat_template_load_file(p2, p, &t, &err), 0);
  CHECK_STR(coh_chat_template_special(t, "eos_token"), "E");
  coh_chat_template_free(t);
  write_file(p2, "{\"chat_template\": [{\"name\": \"rag\", \"template\": \"R\"}, {\"name\": \"x\"}]}");
  CHECK_EQ_INT(coh_chat_template_load_file(p2, NULL, &t, &err), COH_EFORMAT);
  CHECK(strstr(err.msg, "chat_template[1]") != NULL);
  write_file(p2, "[1]");
  CHECK_EQ_INT(coh_chat_template_load_file(p2, NULL, &t, &err), COH_EFORMAT);
  CHECK(strstr(err.msg, "expected a JSON object") != NULL);
  unlink(p2);
  unlink(p);
  snprintf(p, sizeof p, "%s/none.jinja", dir);
  CHECK_EQ_INT(coh_chat_template_load_file(p, NULL, &t, &err), COH_ENOENT);
  rmdir(dir);
}

static void test_plain(void) {
  char *text = NULL;
  size_t n = 0;
  coh_err err;
  CHECK_EQ_INT(coh_chat_render_plain("[{\"role\": \"system\", \"content\": \"Be brief.\"},"
                                     " {\"role\": \"user\", \"name\": \"ann\", \"content\": \"hi\"},"
                                     " {\"role\": \"assistant\", \"content\": null}]",
                                     SIZE_MAX, 1, &text, &n, &err), 0);
  CHECK_STR(text, "SYSTEM: Be brief.\nann (USER): hi\nASSISTANT: \nASSISTANT: ");
  CHECK_EQ_INT(n, strlen(text));
  coh_free(text);
  CHECK_EQ_INT(coh_chat_render_plain("[{\"content\": \"x\"}]", SIZE_MAX, 0, &text, &n, &err), COH_EFORMAT);
  CHECK_STR(err.msg, "messages[0]: field 'role' missing or not a string");
  CHECK_EQ_INT(coh_chat_render_plain("{}", SIZE_MAX, 0, &text, &n, &err), COH_EFORMAT);
}

/* A parsed template is immutable: renders from several threads agree (run
 * under TSan by scripts/test.sh). */
#include <pthread.h>
static coh_chat_template *shared_t;
static void *render_thread(void *arg) {
  int i;
  (void)arg;
  for (i = 0; i < 50; i++) {
    char *text = NULL;
    coh_err err;
    if (coh_chat_render(shared_t, "{\"xs\": [1, 2, 3]}", SIZE_MAX, &text, NULL, &err) ||
        strcmp(text, "1,2,3")) {
      coh_free(text);
      return (void *)1;
    }
    coh_free(text);
  }
  return NULL;
}
static void test_threads(void) {
  pthread_t th[4];
  int i;
  void *res;
  coh_err err;
  const char *src = "{{ xs | join(',') }}";
  REQUIRE(coh_chat_template_parse(src, strlen(src), "t", &shared_t, &err) == 0);
  for (i = 0; i < 4; i++) REQUIRE(pthread_create(&th[i], NULL, render_thread, NULL) == 0);
  for (i = 0; i < 4; i++) {
    pthread_join(th[i], &res);
    CHECK(res == NULL);
  }
  coh_chat_template_free(shared_t);
}

/* Replays the fuzz corpus (seeds and any crash regressions) through the
 * fuzz harness, which aborts on a violated property. */
static void test_fuzz_corpus(void) {
  const char *dirs[2] = {COH_TEST_DATA "/../fuzz/corpus/chat",
                         COH_TEST_DATA "/../fuzz/regressions/chat"};
  int n = 0, k;
  for (k = 0; k < 2; k++) {
    DIR *d = opendir(dirs[k]);
    struct dirent *e;
    if (d == NULL) continue;
    while ((e = readdir(d)) != NULL) {
      char path[1024];
      char *buf = NULL;
      size_t len = 0;
      coh_err err;
      if (e->d_name[0] == '.') continue;
      snprintf(path, sizeof path, "%s/%s", dirs[k], e->d_name);
      if (coh__read_file(path, &buf, &len, &err) != COH_OK) continue;
      coh__fuzz_chat_one((const uint8_t *)buf, len);
      coh__free(buf);
      n++;
    }
    closedir(d);
  }
  fprintf(stderr, "  %d corpus files replayed\n", n);
  CHECK(n >= 20);
}

int main(int argc, char **argv) {
  TEST_MAIN_BEGIN(argc, argv);
  RUN(test_basics);
  RUN(test_control);
  RUN(test_whitespace);
  RUN(test_filters_methods);
  RUN(test_errors);
  RUN(test_bounds);
  RUN(test_strftime);
  RUN(test_load);
  RUN(test_plain);
  RUN(test_threads);
  RUN(test_fuzz_corpus);
  return TEST_MAIN_END();
}
