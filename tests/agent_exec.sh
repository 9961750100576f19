#!/usr/bin/env bash
# agent_exec.sh — `cohort exec` end to end: the example agents, the stock
# prompt agent without a model, traps (exit 3), refused modules (exit 1),
# usage errors (exit 2), and a cache hit on the second run.  exec is a
# one-agent scenario on the tick machine: the scenario keys it relies on
# (outside, default_model, no_model_error) are checked in a run too.
set -u
BIN=${COH_BIN:-build/cohort}
B=${COH_BUILD_DIR:-build}
A="$B/agents"
CACHE=$(mktemp -d /tmp/coh-agent-exec-XXXXXX)
trap 'rm -rf "$CACHE"' EXIT
fail=0
check() { # name, expected exit, expected substring of stdout+stderr, cmd...
  local name=$1 want=$2 sub=$3; shift 3
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ "$rc" != "$want" ] || ! grep -qF -- "$sub" <<<"$out"; then
    echo "FAIL $name: exit $rc (want $want), output:"; echo "$out"; fail=1
  else
    echo "ok   $name"
  fi
}
X=("$BIN" exec --cache-dir "$CACHE")
check echo 0 '{"type":"send","to":"exec","data":"echo: \"hi\""}' \
  "${X[@]}" "$A/echo.wasm" --input '"hi"'
check echo_status 0 '{"status":"ok"}' "${X[@]}" "$A/echo.wasm" --input '1'
check counter 0 '{"type":"emit","data":"total=6"}' \
  "${X[@]}" "$A/counter.wasm" --input '"a"' --input '"b"' --input '"c"' \
  --input '"total"'
# same seed, same output; the random byte differs with another seed
o1=$("${X[@]}" "$A/counter.wasm" --seed 5 --input 1 --input 2)
o2=$("${X[@]}" "$A/counter.wasm" --seed 5 --input 1 --input 2)
o3=$("${X[@]}" "$A/counter.wasm" --seed 6 --input 1 --input 2)
if [ "$o1" != "$o2" ] || [ "$o1" = "$o3" ]; then
  echo "FAIL determinism: $o1 / $o2 / $o3"; fail=1
else echo "ok   determinism"; fi
# exec seeds like run: a one-agent scenario with the same seed and the same
# two messages emits the same lines, random bytes included
cat >"$CACHE/one.yaml" <<YAML
name: one
seed: 5
stop: {max_ticks: 10, quiescence: true}
agents:
  - {id: c, module: $(cd "$A" && pwd)/counter.wasm}
messages:
  - {from: user, to: c, body: "1", tick: 1}
  - {from: user, to: c, body: "2", tick: 2}
YAML
from_run=$("$BIN" run "$CACHE/one.yaml" --cache-dir "$CACHE" --journal "$CACHE/one.db" 2>&1 |
  sed -n 's/^\[[0-9]*\] c: //p')
from_exec=$(sed -n 's/^{"type":"emit","data":"\(.*\)"}$/\1/p' <<<"$o1")
if [ -z "$from_exec" ] || [ "$(wc -l <<<"$from_exec")" != 2 ] || [ "$from_run" != "$from_exec" ]; then
  echo "FAIL exec_seeds_like_run: run emitted [$from_run], exec [$from_exec]"; fail=1
else echo "ok   exec_seeds_like_run"; fi
# exec is a one-agent scenario with outside: ["*"]: a send to any name that
# is not the agent's succeeds and is printed (relay forwards to the id it is
# given)
check send_any_name 0 '{"type":"send","to":"1","data":""}' "${X[@]}" "$A/relay.wasm" --input 1
# the same scenario keys in a run: a reply to a name in `outside` is a
# journaled message (not refused), a send to any other unknown name is
# refused, and no_model_error is the error result of a request that names
# no model of the scenario
cat >"$CACHE/outside.yaml" <<YAML
outside: [user]
no_model_error: get a model
agents:
  - {id: e, module: $(cd "$A" && pwd)/echo.wasm}
  - {id: p, module: $(cd "$A" && pwd)/prompt.wasm, config: {role: r, model: m}}
  - {id: f, module: $(cd "$A" && pwd)/echo.wasm}
messages:
  - {from: user, to: e, body: '"hi"'}
  - {from: user, to: p, body: '"q"'}
  - {from: stranger, to: f, body: '"x"'}
YAML
"$BIN" run "$CACHE/outside.yaml" --cache-dir "$CACHE" --journal "$CACHE/outside.db" >/dev/null 2>&1
ev=$("$BIN" inspect "$CACHE/outside.db" --json 2>&1)
if ! grep -q '"kind":"message","source":"e","target":"user","payload":"echo: \\"hi\\""' <<<"$ev"; then
  echo "FAIL run_outside: no message from e to user in the journal: $ev"; fail=1
elif grep -q '"kind":"refused","source":"e"' <<<"$ev"; then
  echo "FAIL run_outside: the reply to user was refused: $ev"; fail=1
elif ! grep -q '"kind":"refused","source":"f".*no_such_agent' <<<"$ev"; then
  echo "FAIL run_outside: the reply to stranger (not outside) was not refused: $ev"; fail=1
elif ! grep -q '"kind":"llm_result","source":"","target":"p","payload":"{\\"id\\":1,\\"error\\":\\"get a model\\"}"' <<<"$ev"; then
  echo "FAIL run_no_model_error: $ev"; fail=1
else echo "ok   run_outside_no_model_error"; fi
check prompt_no_model 0 '{"type":"error","id":1,"message":"no model: pass --model DIR"}' \
  "${X[@]}" "$A/prompt.wasm" --config '{"role":"r","model":"m"}' --input '"q"'
check prompt_error_event 0 '[llm error] no model: pass --model DIR' \
  "${X[@]}" "$A/prompt.wasm" --config '{"role":"r"}' --input '"q"'
check trap_oob 3 '{"status":"trap","kind":"oob"' "${X[@]}" "$A/hostile.wasm" --input 1
# an endless loop that only fuel stops: the deadline turns a metering bug
# (loop headers not charged) into a failure instead of a hang
check trap_fuel 3 '{"status":"trap","kind":"fuel","message":"fuel exhausted (budget 1000)"}' \
  timeout 120 "${X[@]}" "$A/bymsg.wasm" --fuel 1000 --input '"x"' --input '"f"'
check trap_stack 3 '"kind":"stack_exhausted"' "${X[@]}" "$A/bymsg.wasm" --input '"s"'
check trap_div 3 '"kind":"div_by_zero"' "${X[@]}" "$A/bymsg.wasm" --input '"d"'
check trap_oob2 3 '"kind":"oob"' "${X[@]}" "$A/bymsg.wasm" --input '"x"' --input '"o"'
check memory_cap 1 'exceeds the cap of 1024 pages' "${X[@]}" "$A/big_memory.wasm" --memory-mb 64
check memory_cap_ok 0 '{"status":"ok"}' "${X[@]}" "$A/big_memory.wasm" --memory-mb 200
check unknown_import 1 "unknown import 'env'.'system'" "${X[@]}" "$A/unknown_import.wasm"
check not_wasm 1 'not a WebAssembly module' "${X[@]}" /etc/hostname
check missing 1 'No such file' "${X[@]}" /nonexistent.wasm
# modules must be regular files of at most 64 MiB: devices, FIFOs and
# folders are refused without reading (these used to hang)
check module_dev_zero 1 '/dev/zero: is a character device; expected a regular file' \
  "${X[@]}" /dev/zero
check module_dev_urandom 1 '/dev/urandom: is a character device' "${X[@]}" /dev/urandom
check module_folder 1 ': is a folder; expected a regular file' "${X[@]}" "$CACHE"
mkfifo "$CACHE/fifo.wasm"
check module_fifo 1 'fifo.wasm: is a FIFO; expected a regular file' "${X[@]}" "$CACHE/fifo.wasm"
truncate -s $((64 * 1024 * 1024 + 1)) "$CACHE/huge.wasm"   # sparse: no disk used
check module_too_big 1 'huge.wasm: file is 67108865 bytes; expected at most 67108864 bytes' \
  "${X[@]}" "$CACHE/huge.wasm"
rm -f "$CACHE/huge.wasm" "$CACHE/fifo.wasm"
# the same through a scenario: cohort run names the scenario line and agent
printf 'agents:\n  - id: z\n    module: /dev/zero\n' > "$CACHE/zero.yaml"
check run_module_dev_zero 1 "zero.yaml:2: agent 'z': module: /dev/zero: is a character device" \
  "$BIN" run "$CACHE/zero.yaml" --journal "$CACHE/zero.db"
printf 'agents:\n  - id: p\n    kind: prompt\n    config: {max_tokens: -5}\n' > "$CACHE/p.yaml"
check run_prompt_max_tokens 1 "p.yaml:4:26: agent 'p': config.max_tokens is -5, out of range" \
  "$BIN" run "$CACHE/p.yaml" --journal "$CACHE/p.db"
# the stock prompt agent refuses a bad max_tokens or an over-long field at init
check prompt_max_tokens_negative 1 "config field 'max_tokens' must be an integer in [0, 1048576]" \
  "${X[@]}" "$A/prompt.wasm" --config '{"max_tokens":-5}' --input '"q"'
check prompt_max_tokens_string 1 "config field 'max_tokens' must be an integer" \
  "${X[@]}" "$A/prompt.wasm" --config '{"max_tokens":"x"}' --input '"q"'
check prompt_role_not_string 1 "config field 'role' must be a string of at most 1023 bytes" \
  "${X[@]}" "$A/prompt.wasm" --config '{"role":5}' --input '"q"'
check usage_nomod 2 'no module given' "${X[@]}"
check usage_json 2 'invalid JSON' "${X[@]}" "$A/echo.wasm" --input '{'
check usage_flag 2 "unknown flag '--bogus'" "${X[@]}" "$A/echo.wasm" --bogus 1
check model_bad_folder 1 'not a model folder' "${X[@]}" "$A/echo.wasm" --model /tmp
# the stock prompt agent answered by the inference engine (tiny fixture model)
TINY="${COH_FIXTURES:?}/llama-tiny-plain-fp32"
PCFG='{"role":"You are a poet.","prompt":"{role}\nUser: {input}\nPoet:","max_tokens":8}'
check prompt_with_model 0 '{"status":"ok"}' \
  "${X[@]}" "$A/prompt.wasm" --config "$PCFG" --input '"Tell me of the sea"' --model "$TINY"
p1=$("${X[@]}" "$A/prompt.wasm" --config "$PCFG" --input '"Tell me of the sea"' --model "$TINY" 2>/dev/null)
p2=$("${X[@]}" "$A/prompt.wasm" --config "$PCFG" --input '"Tell me of the sea"' --model "$TINY" 2>/dev/null)
if ! printf '%s\n' "$p1" | grep -q '"type":"emit","data":"[^"]'; then
  echo "FAIL prompt_with_model: no generated text emitted: $p1"; fail=1
elif printf '%s\n' "$p1" | grep -q '"type":"error"'; then
  echo "FAIL prompt_with_model: error event: $p1"; fail=1
elif [ "$p1" != "$p2" ]; then
  echo "FAIL prompt_with_model: two runs differ"; fail=1
else echo "ok   prompt_with_model_text_deterministic"; fi
# default_model: exec's one model answers a request that names another
p3=$("${X[@]}" "$A/prompt.wasm" --config '{"role":"r","model":"other","max_tokens":4}' --input '"q"' --model "$TINY" 2>/dev/null)
if ! printf '%s\n' "$p3" | grep -q '"type":"emit","data":"[^"]' ||
   printf '%s\n' "$p3" | grep -q '"type":"error"'; then
  echo "FAIL default_model: a request naming another model was not answered: $p3"; fail=1
else echo "ok   default_model"; fi
# cache hit: a recompile publishes a new object by rename(2) over the old
# name, so the file count cannot tell; its inode and change time can.  The
# control (a damaged checksum forces a recompile) shows the check can fail.
C2=$CACHE/hit
"$BIN" exec --cache-dir "$C2" "$A/echo.wasm" --input 1 >/dev/null 2>&1
so=$(ls "$C2"/*.so 2>/dev/null)
if [ "$(printf '%s\n' "$so" | grep -c '\.so$')" != 1 ]; then
  echo "FAIL cache: expected one compiled object in $C2, found: $so"; fail=1
else
  id1=$(stat -c '%i %z' "$so")
  "$BIN" exec --cache-dir "$C2" "$A/echo.wasm" --input 1 >/dev/null 2>&1
  id2=$(stat -c '%i %z' "$so")
  printf 'x' >"${so%.so}.sum"
  "$BIN" exec --cache-dir "$C2" "$A/echo.wasm" --input 1 >/dev/null 2>&1
  id3=$(stat -c '%i %z' "$so")
  if [ "$id1" != "$id2" ]; then echo "FAIL cache: the second run recompiled ($id1 -> $id2)"; fail=1
  elif [ "$id2" = "$id3" ]; then echo "FAIL cache: a damaged checksum did not force a recompile"; fail=1
  else echo "ok   cache_hit (same object; a damaged checksum recompiles)"; fi
fi
exit $fail
