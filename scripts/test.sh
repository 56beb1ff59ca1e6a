#!/usr/bin/env bash
# One command from a fresh clone to a tested picker: installs what is needed,
# builds everything under AddressSanitizer and UndefinedBehaviorSanitizer, and
# runs the whole suite with CTest: unit tests of the core, integration tests
# against the real picker-server binary, and end-to-end tests with buf curl,
# Python grpcio and Prometheus.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
build=${PICKER_TEST_BUILD_DIR:-build-test}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPICKER_SANITIZE=address,undefined
cmake --build "$build" -j2
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$build"
ctest --output-on-failure -j2 --timeout 300
