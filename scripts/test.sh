#!/usr/bin/env bash
# One command from a fresh clone to a tested picker: installs what is needed,
# builds everything under AddressSanitizer and UndefinedBehaviorSanitizer, and
# runs the whole suite with CTest: unit tests of the core, integration tests
# against the real picker-server binary, and end-to-end tests with buf curl,
# Python grpcio and Prometheus. Then, so that a failure of the main suite shows
# first, two smaller builds: the core's concurrency tests under
# ThreadSanitizer, and a short libFuzzer run of every fuzz target.
#
# Cost of those two stages on the 2-core machine from empty build directories,
# measured while other builds kept the load average at 6-8: 7 min 40 s wall
# (TSan build and tests 1 min 45 s; fuzz build 5 min 25 s, runs 30 s), 5.4
# CPU-minutes in all, so about 3-4 min on an otherwise idle machine. This is
# on top of the main build (~7 min) and suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --tests
build=${PICKER_TEST_BUILD_DIR:-build-test}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPICKER_SANITIZE=address,undefined
cmake --build "$build" -j2
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir "$build" --output-on-failure -j2 --timeout 300

# ThreadSanitizer: picks, releases, lease expiry and snapshot swaps at once.
# Only core test targets are built: Debian's gRPC and abseil libraries are not
# TSan-instrumented and would drown real reports in false ones, and the core
# links no gRPC (configuring still finds the whole tree's dependencies).
tsan=${PICKER_TSAN_BUILD_DIR:-build-tsan}
tsan_tests=(concurrency_test planes_test)
cmake -S . -B "$tsan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPICKER_SANITIZE=thread \
  -DPICKER_BUILD_BENCH=OFF
cmake --build "$tsan" -j2 --target "${tsan_tests[@]}"
for t in "${tsan_tests[@]}"; do
  echo "tsan: $t"
  TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1 suppressions=$PWD/scripts/tsan.supp} \
    "$tsan/$t" --gtest_brief=1
done

# libFuzzer: each target for a bounded time on a copy of its seed corpus (the
# repository's corpus stays as committed; new inputs are thrown away). ASan and
# UBSan make memory errors crash instead of passing silently. A crash fails
# the script; the input is kept as $fuzz/<name>-crash-* for a regression seed.
fuzz=${PICKER_FUZZ_BUILD_DIR:-build-fuzz}
fuzz_seconds=${PICKER_FUZZ_SECONDS:-30}
fuzzers=(validate config hash_policy store services)
# -O1 without debug info: what libFuzzer recommends, and the quickest build
# of the generated gRPC code the validate fuzzer links.
CC=clang CXX=clang++ cmake -S . -B "$fuzz" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG=-O1 \
  -DCMAKE_CXX_FLAGS_DEBUG=-O1 -DPICKER_FUZZ=ON \
  -DPICKER_BUILD_TESTS=OFF -DPICKER_BUILD_BENCH=OFF -DPICKER_SANITIZE=address,undefined
cmake --build "$fuzz" -j2 --target "${fuzzers[@]/%/_fuzzer}"
# They run side by side: one wall-clock budget for all of them.
pids=()
for name in "${fuzzers[@]}"; do
  work="$fuzz/corpus-run/$name"
  rm -rf "$work" && mkdir -p "$work" && cp tests/fuzz/corpus/"$name"/* "$work"/
  "$fuzz/${name}_fuzzer" -max_total_time="$fuzz_seconds" -print_final_stats=1 \
    -artifact_prefix="$fuzz/$name-" "$work" > "$fuzz/$name.log" 2>&1 &
  pids+=($!)
done
failed=()
for i in "${!fuzzers[@]}"; do
  name=${fuzzers[$i]}
  if wait "${pids[$i]}"; then
    echo "fuzz: ${name}_fuzzer ok, $(grep -m1 -o 'stat::number_of_executed_units: [0-9]*' \
      "$fuzz/$name.log" | grep -o '[0-9]*$') runs in ${fuzz_seconds}s"
  else
    # The validate fuzzer's log is mostly protobuf's complaints about invalid
    # UTF-8; the report is at the end.
    tail -n 60 "$fuzz/$name.log"
    echo "fuzz: ${name}_fuzzer failed; input kept as $fuzz/$name-*" >&2
    failed+=("$name")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then exit 1; fi
