#!/usr/bin/env bash
# build-agent.sh — compile a C agent to a cohort WebAssembly module.
#   sdk/build-agent.sh my_agent.c [-o my_agent.wasm] [extra clang flags]
# Needs Debian's clang, lld, wasi-libc and libclang-rt-14-dev-wasm32
# (scripts/setup.sh installs them).  `-msimd128` builds a SIMD agent: cohort
# validates and meters it, but loads it only with a wasm2c that translates
# SIMD, which Debian 12's (wabt 1.0.32) does not (docs/agents.md, "SIMD").
set -euo pipefail
SDK=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -ge 1 ] || { echo "usage: $0 AGENT.c [-o OUT.wasm] [clang flags]" >&2; exit 2; }
src=$1; shift
out="${src%.c}.wasm"
if [ "${1:-}" = "-o" ]; then out=$2; shift 2; fi
exec clang --target=wasm32-wasi --sysroot=/usr -mexec-model=reactor -O2 \
  -Wall -I "$SDK/../include" -I "$SDK" "$@" "$src" -o "$out"
