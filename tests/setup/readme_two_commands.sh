#!/usr/bin/env bash
# The README's two set-up commands, run as a newcomer runs them, in both orders, on a fresh copy of
# the repository: `dev.sh run` then `dev.sh test` (the order that once failed, when the default
# run's reports/default.* tripped a test), then `dev.sh run` again (test, then run). The commands
# are read from the README, so the test follows it. Afterwards the copy must be as clean as a
# clone: the two commands change no tracked file and leave nothing untracked that is not ignored.
#   bash tests/setup/readme_two_commands.sh REPO_ROOT
# Exit 77 (ctest: skipped) inside the suite it starts, and when a Debian package is missing (the
# test never installs anything).
set -euo pipefail

if [ -n "${GRADSCOPE_SETUP_INNER:-}" ]; then
  echo "readme_two_commands: skipped inside the suite it runs"
  exit 77
fi
root="$(cd "$1" && pwd)"

# The README's set-up block: exactly the two commands, `run` first.
mapfile -t commands < <(grep -E '^bash scripts/dev\.sh (run|test)( |$)' "$root/README.md" | sed 's/ *#.*//')
if [ "${#commands[@]}" -ne 2 ] || [ "${commands[0]}" != "bash scripts/dev.sh run" ] ||
   [ "${commands[1]}" != "bash scripts/dev.sh test" ]; then
  echo "FAIL: the README's set-up block is not 'bash scripts/dev.sh run' and 'bash scripts/dev.sh test':" >&2
  printf '  %s\n' "${commands[@]}" >&2
  exit 1
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
clone="$scratch/gradscope"
mkdir "$clone"

# A fresh clone of the working tree as it is (committed or not): the files git would check out,
# nothing ignored, no build directory.
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$root" && git ls-files -z --cached --others --exclude-standard) |
    while IFS= read -r -d '' f; do
      [ -e "$root/$f" ] || continue  # deleted in the working tree
      mkdir -p "$clone/$(dirname "$f")"
      cp -p "$root/$f" "$clone/$f"
    done
else
  (cd "$root" && tar --exclude=./build -cf - .) | (cd "$clone" && tar -xf -)
fi
git -C "$clone" init -q
git -C "$clone" add -A
git -C "$clone" -c user.name=test -c user.email=test@localhost commit -q -m "fresh copy"

export GRADSCOPE_SETUP_INNER=1 GRADSCOPE_NO_INSTALL=1
step() {
  echo "== $1 (in $clone)"
  set +e
  (cd "$clone" && bash -c "$1") >"$scratch/log" 2>&1
  local rc=$?
  set -e
  if [ "$rc" -eq 77 ]; then
    tail -n 3 "$scratch/log"
    echo "readme_two_commands: skipped: a Debian package the commands need is missing"
    exit 77
  fi
  if [ "$rc" -ne 0 ]; then
    tail -n 60 "$scratch/log" >&2
    echo "FAIL: '$1' exited $rc (after: $2)" >&2
    exit 1
  fi
  tail -n 4 "$scratch/log"
}
step "${commands[0]}" "a fresh clone"
step "${commands[1]}" "${commands[0]}"
step "${commands[0]}" "${commands[1]}"

dirty="$(git -C "$clone" status --porcelain)"
if [ -n "$dirty" ]; then
  echo "FAIL: the two commands left the clone dirty (tracked files changed or unignored files):" >&2
  echo "$dirty" >&2
  exit 1
fi
echo "ok: run -> test -> run on a fresh copy, and the copy is still clean"
