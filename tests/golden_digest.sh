#!/usr/bin/env bash
# golden_digest.sh — pinned run digests and event counts of every LLM-free
# example scenario and of the golden scenarios in tests/data/golden/ (see
# tests/golden_digest.py for what is pinned, when a pin is not comparable,
# and how to re-pin).  A pinned digest changes only with a commit that says
# why.
set -u
exec "${COH_PYTHON:-/usr/bin/python3}" "${COH_SOURCE_DIR:?}/tests/golden_digest.py"
