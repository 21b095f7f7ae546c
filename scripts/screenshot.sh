#!/usr/bin/env bash
# Renders gradscope HTML or SVG files in headless Chromium and saves PNG screenshots, so a person
# (or a reviewer) can look at the pictures as a browser shows them. Installs Debian's chromium
# when it is missing.
#
#   bash scripts/screenshot.sh reports/why-sigmoid-fails.html [more files...]
#   -> reports/why-sigmoid-fails.png beside each file (SCREENSHOT_DIR=dir puts them elsewhere)
set -euo pipefail

if [ "$#" -eq 0 ]; then
  echo "usage: bash scripts/screenshot.sh FILE.html|FILE.svg [...]" >&2
  exit 2
fi

if ! command -v chromium >/dev/null 2>&1; then
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  echo "screenshot.sh: installing Debian's chromium" >&2
  $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
fi

width="${SCREENSHOT_WIDTH:-1100}"
height="${SCREENSHOT_HEIGHT:-2600}"
for file in "$@"; do
  if [ ! -f "$file" ]; then
    echo "screenshot.sh: $file: no such file" >&2
    exit 2
  fi
  abs="$(cd "$(dirname "$file")" && pwd)/$(basename "$file")"
  out_dir="${SCREENSHOT_DIR:-$(dirname "$abs")}"
  mkdir -p "$out_dir"
  png="$out_dir/$(basename "${file%.*}").png"
  # --no-sandbox: CI containers run as root, where Chromium's sandbox refuses to start.
  chromium --headless --disable-gpu --no-sandbox --hide-scrollbars \
    --window-size="$width,$height" --screenshot="$png" "file://$abs" >/dev/null 2>&1
  echo "screenshot.sh: wrote $png"
done
