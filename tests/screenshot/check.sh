#!/bin/bash
# CTest's screenshot test: gradscope's run, sweep and lesson pages rendered in headless Chromium
# and checked for what a reader sees (tests/screenshot/check.py). Exit 77 (skipped) without
# chromium or python3. usage: check.sh GRADSCOPE SOURCE_DIR [--docs DIR]
set -u
command -v python3 >/dev/null || { echo "python3 is not installed: skipped"; exit 77; }
command -v chromium >/dev/null || command -v chromium-browser >/dev/null ||
  { echo "chromium is not installed: skipped"; exit 77; }
gradscope=$1
source_dir=$2
shift 2
work=$(mktemp -d "${TMPDIR:-/tmp}/gradscope-screenshot.XXXXXX")
trap 'rm -rf "$work"' EXIT
python3 "$(dirname "$0")/check.py" "$gradscope" "$source_dir" "$work" "$@"
