#!/usr/bin/env bash
# Builds the libFuzzer targets with clang++ in build/fuzz and runs each for SECONDS seconds on a
# copy of its seed corpus; fails on any crash, sanitizer report, leak, timeout or broken promise.
#   bash fuzz/run.sh 10      # what ctest runs (fuzz_readers)
#   bash fuzz/run.sh 600     # a longer hunt
# Targets: config, safetensors, npy, csv, and onnx when libonnx-dev and libprotobuf-dev are
# installed.
# Exit 77 (ctest: skipped) when clang++ with libFuzzer is missing and cannot be installed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: bash fuzz/run.sh SECONDS (seconds per target, a positive integer)" >&2
  exit 2
fi
# The set-up test (tests/setup/readme_two_commands.sh) runs the whole suite a second time inside
# itself, this script included; there each target runs 2 seconds, enough to show that it builds
# and runs, so that the nested suite stays within CI's time budget.
if [ -n "${GRADSCOPE_SETUP_INNER:-}" ]; then
  seconds=2
fi
TARGETS=(config safetensors npy csv onnx)
build_dir=build/fuzz

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# True when clang++ can build and link a libFuzzer target.
fuzzer_toolchain_works() {
  command -v clang++ >/dev/null 2>&1 || return 1
  printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' \
    >"$scratch/probe.cpp"
  clang++ -fsanitize=fuzzer,address,undefined "$scratch/probe.cpp" -o "$scratch/probe" \
    >/dev/null 2>&1
}

# The same Debian packages scripts/dev.sh installs for `test`; 77 when that is impossible.
install_toolchain() {
  command -v apt-get >/dev/null 2>&1 || return 1
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || return 1
    sudo=(sudo -n)
  fi
  echo "fuzz/run.sh: installing clang and libclang-rt-14-dev" >&2
  "${sudo[@]}" apt-get update -q >&2 || return 1
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends \
    clang libclang-rt-14-dev >&2 || return 1
}

if ! fuzzer_toolchain_works; then
  if ! install_toolchain || ! fuzzer_toolchain_works; then
    echo "fuzz/run.sh: SKIPPED: clang++ with libFuzzer (clang, libclang-rt-14-dev) is missing" \
      "and cannot be installed" >&2
    exit 77
  fi
fi

# Debug: no -DNDEBUG, so asserts stay on; fuzz/CMakeLists.txt adds -O1. Only the fuzz targets
# are built, so OpenBLAS, the ONNX library, tests and benchmarks are left out of the configuration
# (fuzz_onnx compiles the ONNX reader itself, instrumented).
# Through ccache when it is there (scripts/dev.sh installs it), so another copy of the repository
# reuses these objects; the debug info then names the first copy's paths, which the fuzzers never
# read.
launcher=()
if command -v ccache >/dev/null 2>&1; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
fi
cmake -S . -B "$build_dir" "${launcher[@]}" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug \
  -DGRADSCOPE_BUILD_FUZZ=ON -DGRADSCOPE_BUILD_TESTS=OFF -DGRADSCOPE_BUILD_BENCH=OFF \
  -DGRADSCOPE_USE_OPENBLAS=OFF -DGRADSCOPE_WITH_ONNX=OFF >"$scratch/configure.log" 2>&1 || {
  cat "$scratch/configure.log" >&2
  exit 1
}
# fuzz/CMakeLists.txt leaves fuzz_onnx out, and says so, without libonnx-dev and protobuf.
if grep -q "fuzz_onnx left out" "$scratch/configure.log"; then
  echo "fuzz/run.sh: fuzz_onnx left out (libonnx-dev or libprotobuf-dev missing)" >&2
  TARGETS=(config safetensors npy csv)
fi
cmake --build "$build_dir" --parallel 2 --target "${TARGETS[@]/#/fuzz_}"

mkdir -p "$build_dir/artifacts" "$build_dir/logs"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
failed=()
for t in "${TARGETS[@]}"; do
  # A copy, so that what the fuzzer adds to its corpus stays out of the committed seeds.
  mkdir -p "$scratch/corpus-$t"
  cp fuzz/corpus/"$t"/* "$scratch/corpus-$t/"
  log="$build_dir/logs/$t.log"
  echo "fuzz/run.sh: fuzz_$t for ${seconds}s (log: $log)"
  rc=0
  # -malloc_limit_mb: any single allocation over 512 MiB is a finding (the targets' own hooks
  # already hold allocations to what the input justifies; this also covers uninstrumented code).
  "$build_dir/fuzz/fuzz_$t" "$scratch/corpus-$t" -max_total_time="$seconds" -rss_limit_mb=2048 \
    -malloc_limit_mb=512 -timeout=10 -dict="fuzz/$t.dict" -artifact_prefix="$build_dir/artifacts/$t-" \
    -print_final_stats=1 >"$log" 2>&1 || rc=$?
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)' "$log" | sed 's/^/  /' || true
  # libFuzzer's own error exit code is 77, which ctest would read as "skipped": any non-zero
  # status is a failure here.
  if [ "$rc" -ne 0 ]; then
    echo "fuzz/run.sh: fuzz_$t FAILED (exit $rc); the input is in $build_dir/artifacts/:" >&2
    tail -n 60 "$log" >&2
    failed+=("$t")
  fi
done

if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzz/run.sh: failed: ${failed[*]}; reproduce with $build_dir/fuzz/fuzz_NAME ARTIFACT" >&2
  exit 1
fi
echo "fuzz/run.sh: all ${#TARGETS[@]} targets ran ${seconds}s each without a finding"
