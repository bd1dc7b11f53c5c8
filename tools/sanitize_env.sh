#!/usr/bin/env bash
# Runs a command (usually pytest) against a dlc built with -DDLC_SANITIZE=address,undefined. The Python
# interpreter is not instrumented, so the ASan runtime must be loaded first (LD_PRELOAD); leak checking is off
# because CPython keeps objects alive until exit on purpose; any ASan or UBSan report fails the command.
set -euo pipefail
# libstdc++ is preloaded right after it: ASan's __cxa_throw interceptor must find the real one at start-up,
# or the first C++ exception (an IndexError from a kernel, say) aborts.
ASAN_LIB="$(${CXX:-c++} -print-file-name=libasan.so)"
STDCXX_LIB="$(${CXX:-c++} -print-file-name=libstdc++.so)"
export LD_PRELOAD="$ASAN_LIB:$STDCXX_LIB${LD_PRELOAD:+:$LD_PRELOAD}"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
exec "$@"
