#!/usr/bin/env bash
# serve_openai.sh — `cohort serve` against real clients: the official OpenAI
# Node client (tests/serveref, openai pinned; tests/serve_openai.mjs) and
# curl.  Every server is started on port 0 (the kernel picks a free port,
# read from the server's first stdout line) and waited for with a deadline.
#   - the API: models, chat and completions streamed and not, stop strings,
#     n, logprobs, constrained output, errors as the client's own classes
#   - determinism: 64 seeded requests one at a time, then all 64 at once in
#     two shuffled arrival orders, against --max-batch 1 and --max-batch 64:
#     every response equals its solo run.  On the llama-long-gqa-fp32
#     fixture (GroupQueryAttention, context 2048) and on the default model
#     (models/shakespeare: "concat" attention, int8 weights), whose rows the
#     engine lays out per row (docs/inference.md, "Batch invariance")
#   - SSE framing byte for byte (curl), a disconnect mid-stream and one of a
#     non-streaming request (cancelled, slot freed), 429 when --max-queue is
#     full, --api-key, SIGTERM with
#     requests in flight (drained, exit 0)
#   - --journal: the whole session of the first server (all of the above)
#     replays with `cohort replay` (every result identical), `cohort
#     inspect` shows it, and a result edited and re-chained
#     (journal_rechain.py) is found as a divergence (exit 4)
set -u
BIN=${COH_BIN:?} SRC=${COH_SOURCE_DIR:?} FIX=${COH_FIXTURES:?}
PY=${COH_PYTHON:-/usr/bin/python3}
MODEL_DIR="$SRC/models/shakespeare" MODEL=shakespeare
MJS="$SRC/tests/serve_openai.mjs"
GQA_DIR="$FIX/llama-long-gqa-fp32" GQA=llama-long-gqa-fp32
[ -f "$GQA_DIR/model.onnx" ] || { echo "FAIL: fixture $GQA_DIR is missing (the fixtures_generate test makes it)"; exit 1; }
tmp=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL: $*"; fails=$((fails+1)); }

[ -f "$SRC/tests/serveref/node_modules/openai/package.json" ] ||
  { echo "FAIL: tests/serveref/node_modules/openai is missing (scripts/setup.sh installs it)"; exit 1; }

# start NAME ARGS...: starts a server; sets BASE and SPID (deadline 120 s).
start() {
  local name=$1 i
  shift
  "$BIN" serve --listen 127.0.0.1:0 --threads 2 "$@" \
    >"$tmp/$name.out" 2>"$tmp/$name.err" &
  SPID=$!
  pids+=("$SPID")
  BASE=
  for i in $(seq 1200); do
    if grep -q '^cohort serve: listening on http://' "$tmp/$name.out" 2>/dev/null; then
      BASE=$(sed -n 's/^cohort serve: listening on \(http:[^ ]*\)$/\1/p' "$tmp/$name.out")
      break
    fi
    kill -0 "$SPID" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$BASE" ]; then
    bad "$name: the server did not start: $(cat "$tmp/$name.err")"
    return 1
  fi
  for i in $(seq 600); do
    curl -sf "$BASE/health" >/dev/null && return 0
    sleep 0.1
  done
  bad "$name: /health never answered"
  return 1
}
# stop: SIGTERM, wait for the exit (deadline 300 s: the drain finishes the
# requests in flight, slowly under a sanitizer); sets RC.
stop() {
  local i
  kill -TERM "$SPID"
  for i in $(seq 3000); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$SPID" 2>/dev/null; then
    bad "the server did not stop within 300 s of SIGTERM"
    kill -KILL "$SPID"
  fi
  wait "$SPID"
  RC=$?
}
node_mode() { # MODE ARGS...: runs the client script, its lines become ours
  node "$MJS" "$@" >"$tmp/node.out" 2>&1
  local rc=$?
  cat "$tmp/node.out"
  fails=$((fails + $(grep -c '^FAIL' "$tmp/node.out")))
  [ $rc -eq 0 ] || grep -q '^FAIL' "$tmp/node.out" || bad "node $1 exited $rc"
}

# ---- usage errors ------------------------------------------------------------------
"$BIN" serve --model "$MODEL_DIR" --listen 0.0.0.0:0 >/dev/null 2>"$tmp/e1"
rc=$?
[ $rc -eq 2 ] && grep -q 'not a loopback address: give --api-key' "$tmp/e1" &&
  ok "non-loopback --listen without --api-key: exit 2" || bad "non-loopback without key: rc $rc $(cat "$tmp/e1")"
"$BIN" serve >/dev/null 2>"$tmp/e2"
[ $? -eq 2 ] && grep -q 'give at least one --model' "$tmp/e2" && ok "no --model: exit 2" || bad "no --model: $(cat "$tmp/e2")"
"$BIN" serve --model "$MODEL_DIR" --max-batch 0 >/dev/null 2>"$tmp/e3"
[ $? -eq 2 ] && grep -q -- '--max-batch' "$tmp/e3" && ok "--max-batch 0: exit 2" || bad "--max-batch 0: $(cat "$tmp/e3")"
"$BIN" serve --model "$tmp/nothing" --listen 127.0.0.1:0 >/dev/null 2>"$tmp/e4"
[ $? -eq 1 ] && grep -q "$tmp/nothing" "$tmp/e4" && ok "missing model folder: exit 1 naming it" || bad "missing model: $(cat "$tmp/e4")"

# ---- the API, and the solo runs (--max-batch 64) -----------------------------------------
if start big --model "$MODEL_DIR" --model "$GQA_DIR" --max-batch 64 --max-queue 64 --journal "$tmp/big.db"; then
  node_mode api "$BASE" "$MODEL"
  node_mode solo "$BASE" "$GQA" "$tmp/solo.json"
  node_mode concurrent "$BASE" "$GQA" "$tmp/solo.json" 1
  node_mode concurrent "$BASE" "$GQA" "$tmp/solo.json" 2
  node_mode solo "$BASE" "$MODEL" "$tmp/solo-default.json"
  node_mode concurrent "$BASE" "$MODEL" "$tmp/solo-default.json" 3
  mb=$(curl -s "$BASE/metrics" | sed -n 's/^cohort_serve_batch_max_decode \([0-9]*\)$/\1/p')
  [ "${mb:-0}" -ge 8 ] && ok "--max-batch 64: requests were batched (largest decode batch $mb)" ||
    bad "--max-batch 64: largest decode batch ${mb:-?}, expected >= 8"
  # long requests on the GQA fixture (1900 tokens): they cannot finish
  # before the client's abort or the 429, whatever the machine's speed
  node_mode disconnect "$BASE" "$GQA"

  # SSE framing byte for byte: every event is "data: " + compact JSON + a
  # blank line, the last one "data: [DONE]"; headers say text/event-stream
  curl -sN -D "$tmp/sse.h" "$BASE/v1/chat/completions" -H 'Content-Type: application/json' \
    -d "{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"Hail!\"}],\"max_tokens\":6,\"seed\":11,\"stream\":true,\"stream_options\":{\"include_usage\":true}}" \
    >"$tmp/sse.body"
  if "$PY" - "$tmp/sse.h" "$tmp/sse.body" <<'PY'
import json, sys
h = open(sys.argv[1], 'rb').read().decode()
b = open(sys.argv[2], 'rb').read()
assert h.startswith('HTTP/1.1 200 OK\r\n'), h
assert 'Content-Type: text/event-stream; charset=utf-8\r\n' in h, h
assert 'x-cohort-seed: 11\r\n' in h, h
assert b.endswith(b'data: [DONE]\n\n'), b[-40:]
events = b.split(b'\n\n')
assert events[-1] == b'' and events[-2] == b'data: [DONE]'
objs = []
for e in events[:-2]:
    assert e.startswith(b'data: ') and b'\n' not in e, e
    o = json.loads(e[6:])
    # the exact bytes: compact JSON, UTF-8, keys in the order sent
    assert json.dumps(o, separators=(',', ':'), ensure_ascii=False).encode() == e[6:], e
    objs.append(o)
keys = ['id', 'object', 'created', 'model', 'system_fingerprint', 'choices', 'usage']
assert all(list(o) == keys for o in objs), [list(o) for o in objs]
assert len({o['id'] for o in objs}) == 1 and objs[0]['id'].startswith('chatcmpl-')
assert all(o['object'] == 'chat.completion.chunk' for o in objs)
assert objs[0]['choices'] == [{'index': 0, 'delta': {'role': 'assistant', 'content': ''}, 'logprobs': None, 'finish_reason': None}], objs[0]
mid = objs[1:-2]
assert mid and all(list(o['choices'][0]['delta']) == ['content'] and o['choices'][0]['finish_reason'] is None and o['usage'] is None for o in mid)
assert objs[-2]['choices'][0]['delta'] == {} and objs[-2]['choices'][0]['finish_reason'] in ('stop', 'length')
assert objs[-1]['choices'] == [] and objs[-1]['usage']['completion_tokens'] >= 1, objs[-1]
PY
  then ok "SSE framing byte for byte (curl)"; else bad "SSE framing: $(head -c 600 "$tmp/sse.body")"; fi
  # a completions stream ends the same way
  curl -sN "$BASE/v1/completions" -d "{\"model\":\"$MODEL\",\"prompt\":\"ROMEO:\",\"max_tokens\":3,\"seed\":1,\"stream\":true}" >"$tmp/sse2.body"
  [ "$(tail -c 14 "$tmp/sse2.body")" = "$(printf 'data: [DONE]\n\n')" ] && grep -q '"object":"text_completion"' "$tmp/sse2.body" &&
    ok "completions SSE ends with data: [DONE]" || bad "completions SSE: $(cat "$tmp/sse2.body")"
  # error body shape from curl
  code=$(curl -s -o "$tmp/err.json" -w '%{http_code}' "$BASE/v1/chat/completions" -d '{"model":"shakespeare","messages":[],"seed":"x"}')
  [ "$code" = 400 ] && "$PY" -c 'import json,sys; e=json.load(open(sys.argv[1]))["error"]; assert sorted(e)==["code","message","param","type"] and e["param"] in ("messages","seed"), e' "$tmp/err.json" &&
    ok "error body {error: {message, type, param, code}}" || bad "error body: $code $(cat "$tmp/err.json")"

  # SIGTERM with requests in flight: each stream completes, exit 0
  for i in 1 2 3; do
    curl -sN "$BASE/v1/completions" -d "{\"model\":\"$GQA\",\"prompt\":\"KING $i:\",\"max_tokens\":1900,\"ignore_eos\":true,\"seed\":$i,\"stream\":true}" >"$tmp/term$i.body" &
    pids+=("$!")
  done
  for i in $(seq 600); do
    n=$(curl -s "$BASE/metrics" | sed -n 's/^cohort_serve_requests_open \([0-9]*\)$/\1/p')
    [ "${n:-0}" -ge 3 ] && break
    sleep 0.05
  done
  stop
  [ $RC -eq 0 ] && ok "SIGTERM with 3 requests in flight: exit 0" || bad "SIGTERM: exit $RC $(cat "$tmp/big.err")"
  grep -q 'drained and stopped' "$tmp/big.err" && ok "SIGTERM: drained" || bad "SIGTERM: no drain line: $(cat "$tmp/big.err")"
  wait
  for i in 1 2 3; do
    [ "$(tail -c 14 "$tmp/term$i.body")" = "$(printf 'data: [DONE]\n\n')" ] &&
      grep -q '"finish_reason":"length"' "$tmp/term$i.body" &&
      ok "SIGTERM: stream $i ran to max_tokens and [DONE]" || bad "SIGTERM: stream $i cut short: $(tail -c 300 "$tmp/term$i.body")"
  done
fi

# ---- the journal of that session replays ----------------------------------------------------
if [ -f "$tmp/big.db" ]; then
  "$BIN" inspect "$tmp/big.db" >"$tmp/insp.out" 2>"$tmp/insp.err"
  nreq=$(grep -c ' serve_request ' "$tmp/insp.out")
  nres=$(grep -c ' serve_result ' "$tmp/insp.out")
  ncan=$(grep -c ' serve_cancel ' "$tmp/insp.out")
  [ "$nreq" -ge 150 ] && [ "$nres" = "$nreq" ] && [ "$ncan" -ge 1 ] &&
    ok "inspect: $nreq requests, $nres results, $ncan cancellation(s) journaled" ||
    bad "inspect: $nreq requests, $nres results, $ncan cancels: $(head -c 300 "$tmp/insp.err")"
  "$BIN" replay "$tmp/big.db" --threads 2 >"$tmp/rep.out" 2>"$tmp/rep.err"
  rc=$?
  [ $rc -eq 0 ] && grep -q "^replayed $nreq request(s), $nres result(s) identical$" "$tmp/rep.out" &&
    ok "replay of the served session: every result reproduced ($(cat "$tmp/rep.out"))" ||
    bad "replay: rc $rc $(cat "$tmp/rep.out") $(tail -3 "$tmp/rep.err")"
  # an edited result, re-chained so that the chain verifies: replay finds it
  cp "$tmp/big.db" "$tmp/edit.db"
  "$PY" - "$tmp/edit.db" <<'PY'
import os, sqlite3, sys
sys.path.insert(0, os.path.join(os.environ["COH_SOURCE_DIR"], "tests"))
import journal_rechain as jr
db = sqlite3.connect(sys.argv[1])
e = [e for e in jr.events(db) if e.kind == "serve_result"][5]
seq, p = e.seq, e.payload.decode()
i = p.index('"tokens":[') + len('"tokens":[')
j = p.index(',', i)
p = p[:i] + str(int(p[i:j]) ^ 1) + p[j:]
jr.set_event_payload(db, seq, p.encode())
db.commit()
PY
  "$PY" "$SRC/tests/journal_rechain.py" "$tmp/edit.db" >/dev/null 2>&1
  "$BIN" replay "$tmp/edit.db" --threads 2 >"$tmp/rep2.out" 2>"$tmp/rep2.err"
  rc=$?
  [ $rc -eq 4 ] && grep -q '^diverged at tick [0-9]*, request [0-9]*: journal: ' "$tmp/rep2.out" &&
    ok "replay of an edited, re-chained journal: divergence found (exit 4)" ||
    bad "edited journal: rc $rc $(cat "$tmp/rep2.out") $(tail -3 "$tmp/rep2.err")"
fi

# ---- --max-batch 1: the same 64 concurrent requests give the same bytes --------------------
if start one --model "$GQA_DIR" --max-batch 1 --max-queue 64; then
  node_mode concurrent "$BASE" "$GQA" "$tmp/solo.json" 3
  mb=$(curl -s "$BASE/metrics" | sed -n 's/^cohort_serve_batch_max_decode \([0-9]*\)$/\1/p')
  [ "${mb:-0}" = 1 ] && ok "--max-batch 1: one request at a time" || bad "--max-batch 1: largest decode batch ${mb:-?}"
  stop
  [ $RC -eq 0 ] && ok "--max-batch 1 server: exit 0" || bad "--max-batch 1 server: exit $RC"
fi

# ---- --max-queue 1: 429 at once --------------------------------------------------------------
if start queue --model "$GQA_DIR" --max-batch 1 --max-queue 1; then
  node_mode queue "$BASE" "$GQA"
  stop
fi

# ---- --api-key: Bearer token; a non-loopback address is allowed with it -----------------------
if start auth --model "$MODEL_DIR" --api-key s3cret-key; then
  node_mode auth "$BASE" "$MODEL" s3cret-key
  code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/metrics")
  [ "$code" = 401 ] && ok "/metrics needs the key" || bad "/metrics without key: $code"
  stop
fi

echo "serve_openai: $fails failure(s)"
[ $fails -eq 0 ]
