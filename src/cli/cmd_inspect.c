/*
 * cmd_inspect.c — `cohort inspect RUN.db`: print a run journal's transcript
 * (optionally one agent's, over a tick range), as text or JSON lines, or
 * print its verified digest.  Every mode verifies the whole chain first and
 * refuses a journal that fails (exit 1, naming the first bad record).
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli_int.h"
#include "cohort/journal.h"
#include "util/util_int.h"

static const char usage[] =
    "usage: cohort inspect RUN.db [--agent ID] [--tick A..B] [--json] [--verify]\n"
    "       cohort inspect RUN.db --digest\n"
    "       cohort inspect RUN.db --ui ADDR:PORT [--ui-token T]\n"
    "First verifies the journal's whole hash chain (exit 1 naming the first bad\n"
    "record: table, row, tick).  Then prints its events in commit order, one line each:\n"
    "  TICK SEQ KIND SOURCE -> TARGET  PAYLOAD\n"
    "Payloads are shown as text (escaped, truncated at 160 bytes) or, if not\n"
    "UTF-8, as the first bytes in hex.\n"
    "  --agent ID   only events whose source or target is ID\n"
    "  --tick R     only ticks in R: A..B, A.., ..B or N\n"
    "  --json       one JSON object per event, with the whole payload\n"
    "               (\"payload\" if UTF-8, else \"payload_hex\") and its chain\n"
    "  --verify     print what was verified and the run digest\n"
    "  --digest     print only the run digest (to compare with one kept\n"
    "               elsewhere: a chain cannot show that a journal was rebuilt\n"
    "               from scratch or cut at a tick boundary; docs/journal.md)\n"
    "  --ui ADDR:PORT  serve the monitor dashboard, /metrics and /trace for\n"
    "               this journal (PORT alone: 127.0.0.1) until Ctrl-C\n"
    "  --ui-token T required as Bearer or ?token= (generated when ADDR is not\n"
    "               loopback and no token is given)\n";

#define TEXT_MAX 160


static int is_utf8(const unsigned char *p, size_t n) {
  size_t i = 0, k;
  while (i < n) {
    k = coh__utf8_seq(p + i, n - i);
    if (k == 0) return 0;
    i += k;
  }
  return 1;
}

/* Payload as one line of text: control characters escaped, truncated at a
 * character boundary; binary as a hex preview. */
static void print_payload(const unsigned char *p, size_t n) {
  size_t i = 0, shown = 0;
  if (n == 0) {
    fputs("(empty)", stdout);
    return;
  }
  if (!is_utf8(p, n)) {
    fprintf(stdout, "<%zu bytes:", n);
    for (i = 0; i < n && i < 16; i++) fprintf(stdout, " %02x", p[i]);
    fputs(i < n ? " ...>" : ">", stdout);
    return;
  }
  while (i < n && shown < TEXT_MAX) {
    size_t k = coh__utf8_seq(p + i, n - i);
    unsigned char c = p[i];
    if (c == '\n') fputs("\\n", stdout);
    else if (c == '\t') fputs("\\t", stdout);
    else if (c == '\r') fputs("\\r", stdout);
    else if (c == '\\') fputs("\\\\", stdout);
    else if (c < 0x20 || c == 0x7f) fprintf(stdout, "\\x%02x", c);
    else fwrite(p + i, 1, k, stdout);
    i += k;
    shown += k;
  }
  if (i < n) fprintf(stdout, " ... (+%zu bytes)", n - i);
}

typedef struct walk {
  int json;
  int64_t n;
  int failed; /* output error (e.g. out of memory in jansson) */
} walk;

static void hex_of(const uint8_t *p, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  size_t i;
  for (i = 0; i < n; i++) {
    out[2 * i] = digits[p[i] >> 4];
    out[2 * i + 1] = digits[p[i] & 15];
  }
  out[2 * n] = '\0';
}

static int print_json(walk *w, const coh_jevent *ev) {
  json_t *o = json_object();
  json_t *pl;
  char chain[65], *line, *hex;
  int rc = 0;
  if (o == NULL) return -1;
  coh__hex32(ev->chain, chain);
  json_object_set_new(o, "seq", json_integer(ev->seq));
  json_object_set_new(o, "tick", json_integer(ev->tick));
  json_object_set_new(o, "kind", json_string(ev->kind));
  json_object_set_new(o, "source", json_string(ev->source));
  json_object_set_new(o, "target", json_string(ev->target));
  pl = json_stringn((const char *)ev->payload, ev->payload_len);
  if (pl != NULL) {
    json_object_set_new(o, "payload", pl);
  } else {
    /* not UTF-8: hex keeps every byte */
    hex = coh__malloc(ev->payload_len * 2 + 1);
    if (hex == NULL) {
      json_decref(o);
      return -1;
    }
    hex_of(ev->payload, ev->payload_len, hex);
    json_object_set_new(o, "payload_hex", json_string(hex));
    coh__free(hex);
  }
  json_object_set_new(o, "payload_len", json_integer((json_int_t)ev->payload_len));
  json_object_set_new(o, "wall_us", json_integer(ev->wall_us));
  json_object_set_new(o, "chain", json_string(chain));
  /* a non-UTF-8 kind/source/target (a damaged file) makes json_string
   * return NULL and the key is absent: report instead of printing less */
  if (json_object_size(o) != 9) rc = -1;
  line = rc ? NULL : json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
  if (line == NULL) rc = -1;
  else {
    puts(line);
    free(line);
  }
  json_decref(o);
  (void)w;
  return rc;
}

static int on_event(void *ud, const coh_jevent *ev) {
  walk *w = ud;
  w->n++;
  if (w->json) {
    if (print_json(w, ev)) {
      w->failed = 1;
      return 1;
    }
    return 0;
  }
  printf("%6" PRId64 " %7" PRId64 "  %-11s %s", ev->tick, ev->seq, ev->kind,
         ev->source);
  if (ev->target[0]) printf(" -> %s", ev->target);
  fputs("  ", stdout);
  print_payload(ev->payload, ev->payload_len);
  fputc('\n', stdout);
  return 0;
}

/* A..B, A.., ..B or N; ticks are non-negative. */
static int parse_ticks(const char *s, int64_t *from, int64_t *to) {
  const char *dots = strstr(s, "..");
  char a[32];
  size_t alen;
  if (dots == NULL) {
    if (coh__parse_i64(s, 0, INT64_MAX, from)) return -1;
    *to = *from;
    return 0;
  }
  alen = (size_t)(dots - s);
  if (alen >= sizeof a || (alen == 0 && dots[2] == '\0')) return -1;
  memcpy(a, s, alen);
  a[alen] = '\0';
  *from = INT64_MIN;
  *to = INT64_MAX;
  if (alen > 0 && coh__parse_i64(a, 0, INT64_MAX, from)) return -1;
  if (dots[2] != '\0' && coh__parse_i64(dots + 2, 0, INT64_MAX, to)) return -1;
  if (*from > *to) return -1;
  return 0;
}

int coh__cmd_inspect(int argc, char **argv) {
  const char *path = NULL, *agent = NULL, *ui = NULL, *ui_token = NULL;
  int64_t from = INT64_MIN, to = INT64_MAX, tick, n_events;
  int json = 0, verify = 0, digest = 0, have_tick = 0, i, rc, status = COH_EXIT_OK;
  coh_journal *j = NULL;
  coh_err err;
  char hex[65];
  walk w;

  for (i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      fputs(usage, stdout);
      return COH_EXIT_OK;
    } else if (!strcmp(argv[i], "--json")) {
      json = 1;
    } else if (!strcmp(argv[i], "--verify")) {
      verify = 1;
    } else if (!strcmp(argv[i], "--digest")) {
      digest = 1;
    } else if (!strcmp(argv[i], "--ui")) {
      if (i + 1 >= argc || argv[i + 1][0] == '\0')
        return coh__usage_error("inspect", "--ui needs ADDR:PORT or PORT");
      ui = argv[++i];
    } else if (!strcmp(argv[i], "--ui-token")) {
      if (i + 1 >= argc || argv[i + 1][0] == '\0')
        return coh__usage_error("inspect", "--ui-token needs a token");
      ui_token = argv[++i];
    } else if (!strcmp(argv[i], "--agent")) {
      if (i + 1 >= argc || argv[i + 1][0] == '\0')
        return coh__usage_error("inspect", "--agent needs an agent id");
      agent = argv[++i];
    } else if (!strcmp(argv[i], "--tick")) {
      if (i + 1 >= argc || parse_ticks(argv[i + 1], &from, &to))
        return coh__usage_error("inspect",
                                "--tick takes A..B, A.., ..B or N (ticks >= 0, "
                                "A <= B)%s%s%s", i + 1 < argc ? ", not '" : "",
                                i + 1 < argc ? argv[i + 1] : "",
                                i + 1 < argc ? "'" : "");
      have_tick = 1;
      i++;
    } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
      return coh__usage_error("inspect", "unknown option '%s' (see --help)",
                              argv[i]);
    } else if (path == NULL) {
      path = argv[i];
    } else {
      return coh__usage_error("inspect", "give exactly one journal file");
    }
  }
  if (path == NULL)
    return coh__usage_error("inspect", "give a journal file (see --help)");
  if (verify && (agent || have_tick))
    return coh__usage_error("inspect", "--verify checks the whole journal; "
                                       "drop --agent and --tick");
  if (digest && (verify || json || agent || have_tick || ui))
    return coh__usage_error("inspect", "--digest prints only the digest; drop "
                                       "--verify, --json, --agent, --tick and --ui");

  if (ui_token && !ui)
    return coh__usage_error("inspect", "--ui-token goes with --ui");
  if (ui && (verify || json || agent || have_tick))
    return coh__usage_error("inspect", "--ui serves the whole journal; drop "
                                       "--verify, --json, --agent and --tick");
  /* Nothing is shown from a journal whose chain does not verify. */
  if ((status = coh__journal_open_verified("inspect", path, &j))) return status;
  if (digest) {
    coh_journal_digest(j, hex);
    printf("%s\n", hex);
    goto done;
  }
  if (ui) {
    status = coh__inspect_ui(path, j, ui, ui_token);
    goto done;
  }
  if (verify) {
    rc = coh_journal_last_tick(j, &tick, &n_events, &err);
    if (rc) {
      status = coh__runtime_error("inspect", "%s", err.msg);
      goto done;
    }
    coh_journal_digest(j, hex);
    if (json)
      printf("{\"verified\": true, \"events\": %" PRId64 ", \"last_tick\": %" PRId64
             ", \"digest\": \"%s\"}\n", n_events, tick, hex);
    else
      printf("verified: %" PRId64 " events, last tick %" PRId64 "\ndigest: %s\n",
             n_events, tick, hex);
    goto done;
  }
  memset(&w, 0, sizeof w);
  w.json = json;
  rc = coh_journal_events(j, from, to, agent, on_event, &w, &err);
  if (w.failed) {
    status = coh__runtime_error("inspect", "%s: cannot write event %" PRId64
                                " as JSON (out of memory or not UTF-8)",
                                path, w.n);
    goto done;
  }
  if (rc) {
    status = coh__runtime_error("inspect", "%s", err.msg);
    goto done;
  }
  if (!json) {
    if (coh_journal_last_tick(j, &tick, &n_events, &err)) {
      status = coh__runtime_error("inspect", "%s", err.msg);
      goto done;
    }
    printf("# %" PRId64 " of %" PRId64 " events shown; last tick %" PRId64 "\n",
           w.n, n_events, tick);
  }
done:
  coh_journal_close(j);
  if (fflush(stdout) != 0 && status == COH_EXIT_OK)
    status = coh__runtime_error("inspect", "writing the output failed");
  return status;
}
