#!/usr/bin/env bash
# One entry point for a fresh Debian 12 machine: installs the Debian packages that are missing,
# builds, and then runs the default diagnosis, the test suite, the report regeneration or the
# benchmark.
#   bash scripts/dev.sh run      # install, build, run the built-in default diagnosis
#   bash scripts/dev.sh test     # install (with python3-torch), build, run the whole test suite
#   bash scripts/dev.sh reports  # install, build, regenerate reports/ from configs/
#   bash scripts/dev.sh bench    # install (with python3-torch), build, run the benchmarks
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# ccache: a second build of the same sources (another clone, a clean build directory) reuses the
# first one's objects; the set-up test builds a fresh copy of the repository inside the suite.
PACKAGES=(g++ cmake make ccache libeigen3-dev libfmt-dev nlohmann-json3-dev libgtest-dev libcli11-dev
          libopenblas-dev libonnx-dev libprotobuf-dev protobuf-compiler)

install_missing() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ -n "${GRADSCOPE_NO_INSTALL:-}" ]; then
    # Set by the test that runs these commands: it must not install, and skips (77) instead.
    echo "dev.sh: missing Debian packages: ${missing[*]} (GRADSCOPE_NO_INSTALL is set)" >&2
    exit 77
  fi
  echo "dev.sh: installing missing Debian packages: ${missing[*]}" >&2
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}

build() {
  # Paths under the checkout are hashed relative to it, so any copy of the repository hits the
  # same cache entries.
  export CCACHE_BASEDIR="$PWD"
  cmake --preset release -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
  cmake --build --preset release
}

cmd="${1:-}"
case "$cmd" in
  run)
    install_missing "${PACKAGES[@]}"
    build
    shift
    ./build/release/gradscope run "$@"
    ;;
  test)
    # The PyTorch cross-check needs torch and numpy (torchvision for ResNet-18 read from ONNX),
    # the fuzz targets clang, the Slurm proof
    # slurm-wlm, the docs test runs the GNU parallel example of docs/scaling-out.md, and the
    # screenshot test renders the pages in headless chromium.
    install_missing "${PACKAGES[@]}" python3-torch python3-torchvision python3-numpy clang \
      libclang-rt-14-dev slurm-wlm munge parallel chromium
    build
    ctest --preset release --timeout 600
    ;;
  reports)
    install_missing "${PACKAGES[@]}"
    build
    for config in configs/*.json; do
      ./build/release/gradscope run "$config" --out reports --format md --quiet
    done
    ./build/release/gradscope lesson why-sigmoid-fails --out reports >/dev/null
    ./build/release/gradscope lesson why-resnets-need-batch-norm --out reports >/dev/null
    # The coordinate checks of docs/coordcheck.md: SP against muP over width, and the residual
    # stream over depth for alpha = 0, 1/2, 1.
    for param in sp mup; do
      ./build/release/gradscope coordcheck configs/coordcheck/mlp.json \
        --widths 64,128,256,512,1024 --param "$param" --out reports/coordcheck --quiet
    done
    for param in sp depth_mup completep; do
      ./build/release/gradscope coordcheck configs/coordcheck/residual-mlp.json \
        --widths 128,256,512 --depths 4,8,16,32 --param "$param" --out reports/coordcheck --quiet
    done
    echo "dev.sh: regenerated $(ls configs/*.json | wc -l) reports and the why-sigmoid-fails lesson in reports/"
    ;;
  bench)
    install_missing "${PACKAGES[@]}" python3-torch python3-numpy
    build
    shift
    bash bench/run.sh "$@"
    ;;
  *)
    echo "usage: bash scripts/dev.sh run|test|reports|bench" >&2
    exit 2
    ;;
esac
