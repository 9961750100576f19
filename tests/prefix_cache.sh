#!/usr/bin/env bash
# prefix_cache.sh — the prefix cache cannot change a result (docs/inference.md,
# "Prefix cache"): `cohort run` of a scenario whose prompt agents share long
# system prompts gives the same digest with the cache off, on (default
# budget) and on with a budget of a few blocks (evictions), on every test
# fixture and on the third-party ONNX Runtime GenAI export; on fixtures that
# continue a prefill the cache must hit, under the small budget it must
# evict, its statistics are the same for 1 and 3 workers, and a journal
# written with the cache replays with it off.  On the GenAI export, which
# cannot continue a prefill, the cache is never consulted (no lookups).
set -u
BIN=${COH_BIN:?} BUILD=${COH_BUILD_DIR:?} FIX=${COH_FIXTURES:?} SRC=${COH_SOURCE_DIR:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
CACHE="$BUILD/test-module-cache"
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL: $*"; fails=$((fails+1)); }
digest_of() { sed -n 's/^digest: //p' "$1" | tail -n 1; }
# "prefix cache: H of L prompt chunks loaded, E blocks evicted" -> "H L E"
pstats() { sed -n 's/^prefix cache: \([0-9]*\) of \([0-9]*\) prompt chunks loaded, \([0-9]*\) blocks evicted$/\1 \2 \3/p' "$1"; }

# every fixture of tools/mkfixture.py's "tests" suite (tests/fixtures_tool.sh)
MODELS=(llama-tiny-plain-fp32 llama-tiny-gqa-fp32 llama-tiny-plain-fp16 llama-tiny-optimum-fp32
        llama-long-plain-fp32 llama-long-gqa-fp32 llama-long-plain-fp16 llama-long-optimum-fp32
        llama-json-plain-fp32
        llama-tiny-plain-int8 llama-tiny-plain-int4 llama-tiny-gqa-int4 llama-tiny-plain-int4-acc4
        llama-tiny-plain-int8-acc4)
# sanitizer builds (tests/CMakeLists.txt) name fewer, for time
[ -n "${PCACHE_MODELS:-}" ] && read -r -a MODELS <<<"$PCACHE_MODELS"
TP="$SRC/tests/data/models/ortgenai-tiny-llama-fp16"

P1="A council chamber in the old city. The seven elders of the river towns sit around a long oak table, with maps of the valley spread before them, and argue about the dam, the harvest, the floods of last spring, and the tolls the northern barons demand for passage through the gorge. Each speaks in turn and briefly."
P2="A ship's deck at night, far out on a grey and restless sea. The crew of the merchant vessel gather by the mast with lanterns and speak in low voices about the storm that is coming, the cargo of salt and wine below, and the captain who has not left his cabin for three days. Each sailor speaks in turn."

# scenario: 8 prompt agents in two groups sharing a system prompt each;
# sampled, so that a wrong logit would change tokens.  $1 model dir, $2 chunk
scenario() {
  cat <<YAML
name: pcache
seed: 11
models:
  - {name: m, path: $1, device: cpu, max_batch: 4, threads: 1, prefill_chunk: $2}
policy: {kind: round_robin, quantum: 1}
stop: {max_ticks: 600, quiescence: true}
agents:
  - id: a
    kind: prompt
    count: 4
    config: {system: "$P1", model: m, max_tokens: 6, temperature: 0.8}
  - id: b
    kind: prompt
    count: 4
    config: {system: "$P2", model: m, max_tokens: 6, temperature: 0.8}
messages:
  - {to: a-0, body: "What of the dam?"}
  - {to: b-0, body: "Is the storm near?"}
  - {to: a-1, body: "And the harvest, friend?"}
  - {to: b-1, body: "Where is the captain?"}
  - {to: a-2, body: "Speak of the floods."}
  - {to: b-2, body: "The salt is wet."}
  - {to: a-3, body: "The tolls are too high."}
  - {to: b-3, body: "Trim the sails."}
  - {to: a-0, body: "Who pays the barons?", tick: 3}
  - {to: b-0, body: "Sing us a song.", tick: 5}
YAML
}

run() { # name yaml extra-args... ; output in $tmp/NAME.out
  local name=$1 yaml=$2
  shift 2
  "$BIN" run "$yaml" --journal "$tmp/$name.db" --cache-dir "$CACHE" --quiet "$@" \
    >"$tmp/$name.out" 2>"$tmp/$name.err" || { bad "$name: run failed: $(tail -n 3 "$tmp/$name.err")"; return 1; }
}

check_model() { # label dir chunk small-budget expect(min hits|none)
  local label=$1 dir=$2 chunk=$3 small=$4 expect=$5
  local y="$tmp/$label.yaml"
  scenario "$dir" "$chunk" >"$y"
  run "$label-off" "$y" --prefix-cache 0 || return
  run "$label-on" "$y" --workers 1 || return
  run "$label-on3" "$y" --workers 3 || return
  run "$label-small" "$y" --prefix-cache "$small" || return
  local d0 d1 d3 ds
  d0=$(digest_of "$tmp/$label-off.out"); d1=$(digest_of "$tmp/$label-on.out")
  d3=$(digest_of "$tmp/$label-on3.out"); ds=$(digest_of "$tmp/$label-small.out")
  if [ -n "$d0" ] && [ "$d0" = "$d1" ] && [ "$d0" = "$d3" ] && [ "$d0" = "$ds" ]; then
    ok "$label: digest equal with the cache off / on / on x3 workers / $small ($d0)"
  else
    bad "$label: digests differ: off $d0, on $d1, on x3 $d3, $small $ds"
  fi
  # the transcripts too (wall-clock lines aside)
  grep -v '^wall:\|tokens/s\|^prefix cache:' "$tmp/$label-off.out" >"$tmp/t0"
  grep -v '^wall:\|tokens/s\|^prefix cache:' "$tmp/$label-small.out" >"$tmp/t1"
  cmp -s "$tmp/t0" "$tmp/t1" && ok "$label: transcripts identical" || bad "$label: transcripts differ"
  [ -z "$(pstats "$tmp/$label-off.out")" ] && ok "$label: cache off: no lookups" ||
    bad "$label: cache off still looked up: $(pstats "$tmp/$label-off.out")"
  local on on3 sm
  on=$(pstats "$tmp/$label-on.out"); on3=$(pstats "$tmp/$label-on3.out"); sm=$(pstats "$tmp/$label-small.out")
  if [ "$expect" = none ]; then
    [ -z "$on" ] && [ -z "$sm" ] && ok "$label: cannot continue a prefill: the cache is never consulted" ||
      bad "$label: a model that cannot continue used the cache: '$on' / '$sm'"
    return
  fi
  [ "$on" = "$on3" ] && ok "$label: cache statistics equal for 1 and 3 workers ($on)" ||
    bad "$label: cache statistics differ across workers: '$on' / '$on3'"
  read -r h l e <<<"${on:-0 0 0}"
  # 8 prompts in two groups of 4: each group's later 3 prompts load at least
  # the blocks of their shared system prompt (2 blocks of 32 tokens, 1 of 64)
  if [ "$h" -ge "$expect" ] && [ "$h" -le "$l" ] && [ "$e" -eq 0 ]; then
    ok "$label: hits $h of $l lookups, no evictions under the default budget"
  else
    bad "$label: expected >= $expect hits and no evictions, got '$on'"
  fi
  read -r h l e <<<"${sm:-0 0 0}"
  [ "$e" -gt 0 ] && ok "$label: $small budget evicts ($sm) and keeps the digest" ||
    bad "$label: $small budget did not evict: '$sm'"
}

for m in "${MODELS[@]}"; do
  [ -d "$FIX/$m" ] || { bad "fixture $m missing (run fixtures_generate)"; continue; }
  # the tiny fixtures: blocks of 32 tokens (16 KiB fp32), budget for three
  check_model "$m" "$FIX/$m" 32 52K 12
done
# a bigger block on one fixture: 64 tokens
check_model "long-chunk64" "$FIX/llama-long-plain-fp32" 64 40K 6
# the third-party export cannot continue a prefill (docs/inference.md,
# "Long prompts"): every prompt runs whole; the cache stays out of the way
check_model "ortgenai" "$TP" 32 52K none

# a journal written with the cache replays with it off, and the reverse
y="$tmp/llama-tiny-plain-fp32.yaml"
if "$BIN" replay "$tmp/llama-tiny-plain-fp32-on.db" --prefix-cache 0 --cache-dir "$CACHE" \
     >"$tmp/rep.out" 2>&1 && grep -q '^replay matches' "$tmp/rep.out"; then
  ok "journal written with the cache replays with it off"
else bad "replay with the cache off: $(tail -n 3 "$tmp/rep.out")"; fi
if "$BIN" replay "$tmp/llama-tiny-plain-fp32-off.db" --cache-dir "$CACHE" \
     >"$tmp/rep2.out" 2>&1 && grep -q '^replay matches' "$tmp/rep2.out"; then
  ok "journal written without the cache replays with it on"
else bad "replay with the cache on: $(tail -n 3 "$tmp/rep2.out")"; fi

# bad values are refused, naming the flag
for v in -1 abc 2000000 1K5; do
  if "$BIN" run "$y" --prefix-cache "$v" >/dev/null 2>"$tmp/e"; then bad "--prefix-cache $v accepted"
  elif grep -q -- '--prefix-cache' "$tmp/e"; then ok "--prefix-cache $v refused"
  else bad "--prefix-cache $v: message does not name the flag: $(cat "$tmp/e")"; fi
done
sed 's/prefill_chunk: 32/prefill_chunk: 0/' "$y" >"$tmp/bad.yaml"
if "$BIN" run "$tmp/bad.yaml" --journal "$tmp/bad.db" >/dev/null 2>"$tmp/e"; then bad "prefill_chunk 0 accepted"
elif grep -q 'models\[0\].prefill_chunk' "$tmp/e"; then ok "prefill_chunk 0 refused, naming the field"
else bad "prefill_chunk 0: $(cat "$tmp/e")"; fi

[ "$fails" -eq 0 ] && echo "prefix_cache: all passed" || echo "prefix_cache: $fails failed"
[ "$fails" -eq 0 ]
