#!/usr/bin/env bash
# Proves `gradscope sweep --shard` and `gradscope merge` on a real Slurm: a one-node cluster on
# localhost (its own munged, slurmctld and slurmd, its own config in a temp dir), the sweep as a
# job array, the merge, and a byte-for-byte comparison with the unsharded sweep. Prints PASS.
#
#   sudo bash scripts/slurm_sweep.sh [GRADSCOPE] [SHARDS]
#
# GRADSCOPE: the binary (default: build/release/gradscope). SHARDS: array tasks (default 3; more
# than the sweep's 8 runs is allowed and gives empty shards). Needs root on Debian 12: it installs
# slurm-wlm and munge with apt-get when slurmctld, slurmd, sbatch or munged is missing, and starts
# the daemons directly (no systemd, so it runs in a container). It never reads or writes
# /etc/slurm or /etc/munge: a real cluster on the machine is left alone, as long as these ports
# are free (set SLURMCTLD_PORT and SLURMD_PORT otherwise). KEEP=1 keeps the temp dir.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GRADSCOPE="${1:-$ROOT/build/release/gradscope}"
SHARDS="${2:-3}"
SLURMCTLD_PORT="${SLURMCTLD_PORT:-16817}"
SLURMD_PORT="${SLURMD_PORT:-16818}"
TIMEOUT="${TIMEOUT:-600}"  # seconds to wait for the node and for the job array

say() { echo "slurm_sweep: $*" >&2; }
fail() {
  say "FAIL: $*"
  exit 1
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

[ "$(id -u)" -eq 0 ] || fail "run as root (it installs packages and starts the Slurm daemons)"
[[ "$SHARDS" =~ ^[1-9][0-9]*$ ]] || fail "SHARDS must be a positive whole number, not '$SHARDS'"
[ -x "$GRADSCOPE" ] || fail "no gradscope binary at $GRADSCOPE (build it, or give its path)"
GRADSCOPE="$(realpath "$GRADSCOPE")"

# ---- Install what is missing.
t_install=$(now)
missing=0
for c in slurmctld slurmd sbatch squeue sinfo munged; do
  command -v "$c" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$c" >/dev/null 2>&1 ||
    missing=1
done
if [ "$missing" -eq 1 ]; then
  say "installing slurm-wlm and munge with apt-get"
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    slurm-wlm munge >&2
  install_seconds=$(since "$t_install")
  say "installed in ${install_seconds} s"
else
  install_seconds=0
  say "slurm-wlm and munge already installed"
fi
export PATH="$PATH:/usr/sbin:/sbin"

# ---- A private cluster in a temp dir.
T="$(mktemp -d /tmp/gradscope-slurm.XXXXXX)"
chmod 0755 "$T"
PIDS=()
cleanup() {
  local code=$?
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ] || [ "$code" -ne 0 ]; then
    say "kept $T (logs: $T/*.log)"
  else
    rm -rf "$T"
  fi
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

t_start=$(now)
NODE="$(hostname -s)"
CPUS="$(nproc)"
MEMORY_MB=$(($(awk '/^MemTotal:/ { print $2 }' /proc/meminfo) / 1024))

# munged: its own key and socket, so a running munged (a real cluster's) is not touched.
mkdir -p "$T/munge"
chmod 0700 "$T/munge"
dd if=/dev/urandom of="$T/munge/munge.key" bs=1024 count=1 status=none
chmod 0400 "$T/munge/munge.key"
munged --foreground --force --key-file="$T/munge/munge.key" --socket="$T/munge/munge.sock" \
  --pid-file="$T/munge/munged.pid" --log-file="$T/munge.log" --seed-file="$T/munge/munge.seed" \
  2>>"$T/munge.log" &
PIDS+=($!)

mkdir -p "$T/state" "$T/spool"
export SLURM_CONF="$T/slurm.conf"
cat >"$SLURM_CONF" <<EOF
# One node on localhost, written by gradscope's scripts/slurm_sweep.sh.
ClusterName=gradscope
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$SLURMCTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$T/munge/munge.sock
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/slurmctld.log
SlurmdLogFile=$T/slurmd.log
# No cgroups: processes are tracked through /proc, tasks are not confined.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
MpiDefault=none
ReturnToService=2
MinJobAge=600
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEMORY_MB State=UNKNOWN
PartitionName=gradscope Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF

# Wait for munged's socket before the Slurm daemons need it.
for _ in $(seq 100); do [ -S "$T/munge/munge.sock" ] && break; sleep 0.1; done
[ -S "$T/munge/munge.sock" ] || fail "munged did not start: $(tail -5 "$T/munge.log")"

slurmctld -D 2>>"$T/slurmctld.log" &
PIDS+=($!)
slurmd -D -N "$NODE" 2>>"$T/slurmd.log" &
PIDS+=($!)

deadline=$((SECONDS + TIMEOUT))
state=""
until [ "$state" = idle ]; do
  state="$(sinfo -h -n "$NODE" -o %T 2>/dev/null | head -1 | tr -d '*')" || true
  if [ $SECONDS -ge $deadline ]; then
    fail "the node is '$state', not idle, after ${TIMEOUT} s; see $T/slurmctld.log and $T/slurmd.log"
  fi
  [ "$state" = idle ] || sleep 0.5
done
start_seconds=$(since "$t_start")
say "cluster up in ${start_seconds} s: node $NODE, $CPUS CPUs, ${MEMORY_MB} MB"

# ---- The sweep as a job array, one shard per task.
# shellcheck disable=SC2054 # the commas are --vary's
SWEEP=(--vary activation=tanh,relu --vary depth=2,4 --seeds 2 --set stack.width=16
  --set input.batch=8 --name grid)
mkdir -p "$T/work"
cd "$T/work"
cat >"$T/shard.sbatch" <<EOF
#!/bin/bash
#SBATCH --job-name=gradscope-sweep
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
#SBATCH --output=$T/work/slurm-%A_%a.out
exec "$GRADSCOPE" sweep $(printf '%q ' "${SWEEP[@]}")--out "$T/sharded" --jobs 1 \\
  --shard "\$SLURM_ARRAY_TASK_ID/$SHARDS"
EOF

t_sweep=$(now)
job="$(sbatch --parsable --array="0-$((SHARDS - 1))" "$T/shard.sbatch")" ||
  fail "sbatch refused the job array"
job="${job%%;*}"
say "submitted job array $job (tasks 0-$((SHARDS - 1)))"
# squeue lists the array until its last task ends; scontrol then still knows each task's end
# (MinJobAge above), which says whether it succeeded: no accounting database needed.
deadline=$((SECONDS + TIMEOUT))
while [ -n "$(squeue -h -j "$job" -o %i 2>/dev/null)" ]; do
  [ $SECONDS -lt $deadline ] || fail "job array $job still running after ${TIMEOUT} s"
  sleep 0.2
done
states="$(scontrol -o show job "$job" | grep -o 'JobState=[A-Z_]* .*ExitCode=[0-9:]*' |
  sed -E 's/JobState=([A-Z_]+) .*ExitCode=([0-9:]+)/\1 \2/' | sort | uniq -c)"
if [ "$(echo "$states" | grep -c .)" -ne 1 ] || ! echo "$states" | grep -q " COMPLETED 0:0$"; then
  cat "$T"/work/slurm-*.out >&2 || true
  fail "job array $job: tasks ended as: $states; task outputs above, daemons' logs in $T"
fi
[ "$(echo "$states" | awk '{ print $1 }')" -eq "$SHARDS" ] ||
  fail "job array $job: $states, expected $SHARDS tasks"
array_seconds=$(since "$t_sweep")
say "job array of $SHARDS task(s) done in ${array_seconds} s"

t_merge=$(now)
"$GRADSCOPE" merge "$T/sharded/grid" --out "$T/merged" -q || fail "gradscope merge failed"
merge_seconds=$(since "$t_merge")

t_whole=$(now)
"$GRADSCOPE" sweep "${SWEEP[@]}" --out "$T/whole" -q || fail "the unsharded sweep failed"
whole_seconds=$(since "$t_whole")

# ---- Every file, byte for byte.
diff -r "$T/whole/grid" "$T/merged/grid" >&2 || fail "the merged sweep differs from the unsharded one"
files=0
while IFS= read -r -d '' f; do
  cmp -s "$f" "$T/merged/grid/${f#"$T/whole/grid/"}" || fail "differs: ${f#"$T/whole/grid/"}"
  files=$((files + 1))
done < <(find "$T/whole/grid" -type f -print0)
[ "$files" -gt 8 ] || fail "only $files files in the unsharded sweep"

echo "install ${install_seconds} s, cluster start ${start_seconds} s, job array ($SHARDS task(s))" \
  "${array_seconds} s, merge ${merge_seconds} s, unsharded sweep ${whole_seconds} s"
echo "PASS: $files files of the merged $SHARDS-shard sweep are byte-identical to the unsharded sweep"
