#!/usr/bin/env bash
# `make sanitize`: the C extension built with AddressSanitizer + UndefinedBehaviorSanitizer runs
# the C-core tests (C vs NumPy on many random inputs) and a few hundred real completions with
# every feature. Any sanitizer report aborts the run (exit status != 0).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
OUT=build/sanitize
rm -rf "$OUT" && mkdir -p "$OUT"
EDGECOMPLETE_SANITIZE=1 "$BIN/python" csrc/build_ffi.py "$OUT" > "$OUT/build.log" 2>&1
export EDGECOMPLETE_SANITIZED_NATIVE="$(realpath "$OUT"/edgecomplete/_native*.so)"
export LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1  # Python's own allocations are not ours to judge
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
"$BIN/python" -m pytest -p tests.hardening.sanitized_native -p no:cacheprovider -q \
    tests/core tests/hardening/test_sanitized_completions.py tests/hardening/test_llama_thread.py "$@"
