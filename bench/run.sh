#!/usr/bin/env bash
# Prints the benchmark figures: the in-process ratio to the plain products, the whole-process time
# of `gradscope run` against the same job in PyTorch (best thread setting), and peak memory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=build/release
OUT=bench/out
mkdir -p "$OUT"
REPEATS=${REPEATS:-3}

echo "== in-process: the whole diagnostic against a plain loop of the same products"
"$BIN/bench/gradscope_bench" 100 1024 256 "$REPEATS"

# Best wall time of a command over REPEATS runs, and its peak resident memory, via Python's
# resource module (no extra package needed).
measure() {
  /usr/bin/python3 - "$REPEATS" "$@" <<'PY'
import resource, subprocess, sys, time
repeats = int(sys.argv[1]); cmd = sys.argv[2:]
best = float("inf")
for _ in range(repeats):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    best = min(best, time.perf_counter() - t0)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(f"{best:.3f} {peak}")
PY
}

echo
echo "== whole process: gradscope run vs PyTorch (CPU, hooks), reference job"
read -r t_gs peak_gs < <(measure "$BIN/gradscope" run bench/reference.json --out "$OUT" --quiet)
echo "  gradscope run                  ${t_gs} s"
best_torch=""
for threads in 1 2; do
  read -r t_torch _ < <(measure /usr/bin/python3 bench/torch_reference.py "$threads")
  echo "  pytorch, $threads thread(s)            ${t_torch} s"
  if [ -z "$best_torch" ] || awk "BEGIN{exit !($t_torch < $best_torch)}"; then best_torch=$t_torch; fi
done
awk -v a="$best_torch" -v b="$t_gs" 'BEGIN{printf "  speed-up over best pytorch      %.2fx  (target >= 3)\n", a/b}'

echo
echo "== peak memory of gradscope run (reference job)"
/usr/bin/python3 - "$OUT/reference.json" "$peak_gs" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["network"]["memory"]
peak = int(sys.argv[2])
need = m["weights_bytes"] + m["cache_bytes"]
mib = lambda b: b / 2**20
print(f"  weights + backward cache        {mib(need):.0f} MiB (estimate, from the JSON)")
print(f"  estimate incl. buffers          {mib(m['estimate_bytes']):.0f} MiB")
print(f"  measured peak RSS               {mib(peak):.0f} MiB")
print(f"  peak / (weights + cache)        {peak / need:.2f}  (target <= 1.3)")
PY

echo
echo "== whole process: gradscope run vs PyTorch (CPU, hooks), transformer job"
echo "   (12 pre-norm blocks, width 768, 12 heads, 256 tokens, batch 8, float32)"
read -r t_gs_tf peak_gs_tf < <(measure "$BIN/gradscope" run bench/transformer.json --out "$OUT" --quiet)
echo "  gradscope run                  ${t_gs_tf} s"
best_torch_tf=""
for threads in 1 2; do
  read -r t_torch _ < <(measure /usr/bin/python3 bench/torch_transformer.py "$threads")
  echo "  pytorch, $threads thread(s)            ${t_torch} s"
  if [ -z "$best_torch_tf" ] || awk "BEGIN{exit !($t_torch < $best_torch_tf)}"; then best_torch_tf=$t_torch; fi
done
awk -v a="$best_torch_tf" -v b="$t_gs_tf" 'BEGIN{printf "  speed-up over best pytorch      %.2fx  (target >= 2)\n", a/b}'
/usr/bin/python3 - "$OUT/transformer.json" "$peak_gs_tf" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["network"]["memory"]
peak = int(sys.argv[2])
need = m["weights_bytes"] + m["cache_bytes"]
mib = lambda b: b / 2**20
print(f"  weights + backward cache        {mib(need):.0f} MiB (estimate, from the JSON)")
print(f"  measured peak RSS               {mib(peak):.0f} MiB")
print(f"  peak / (weights + cache)        {peak / need:.2f}  (target <= 1.3)")
PY
# The floor: the job's matrix products (forward, backward to the input, the weight gradients; the
# attention core full T x T, as both programs compute it) at this machine's GEMM speed on both
# cores, measured now on a product of the job's own shape.
OPENBLAS_NUM_THREADS=2 /usr/bin/python3 - "$t_gs_tf" "$best_torch_tf" <<'PY'
import sys, time
import numpy as np
t_gs, t_torch = float(sys.argv[1]), float(sys.argv[2])
N, D, T, B = 12, 768, 256, 8
n = B * T
forward = N * (2 * n * 12 * D * D + 4 * B * T * T * D)  # QKVO + MLP, then QK^T and PV
flops = 3 * forward
a = np.random.default_rng(0).standard_normal((n, D), dtype=np.float32)
w = np.random.default_rng(1).standard_normal((D, 4 * D), dtype=np.float32)
a @ w
best = float("inf")
for _ in range(5):
    t0 = time.perf_counter()
    for _ in range(10):
        a @ w
    best = min(best, time.perf_counter() - t0)
rate = 10 * 2 * n * D * 4 * D / best
floor = flops / rate
print(f"  matrix products of the job      {flops / 1e9:.0f} GFLOP")
print(f"  GEMM speed, both cores          {rate / 1e9:.0f} GFLOP/s (numpy's OpenBLAS, {n}x{D} by {D}x{4 * D})")
print(f"  floor: those products at that speed  {floor:.2f} s")
print(f"  gradscope / floor               {t_gs / floor:.2f}")
print(f"  best pytorch / floor            {t_torch / floor:.2f}  (so the target 2x needs gradscope at {t_torch / floor / 2:.2f} of the floor)")
PY

echo
echo "== coordinate check: gradscope coordcheck vs the same check in PyTorch with hooks"
echo "   (12-block pre-norm residual MLP, muP, Adam, widths 128..2048 at depth 12 and depths"
echo "    3, 6, 12, 24 at width 128, 3 steps, 4 seeds: 36 trainings, float32)"
read -r t_gs_cc peak_gs_cc < <(measure "$BIN/gradscope" coordcheck bench/coordcheck.json \
  --widths 128,256,512,1024,2048 --depths 3,6,12,24 --param mup --out "$OUT" --quiet)
echo "  gradscope coordcheck           ${t_gs_cc} s  (peak RSS $((peak_gs_cc / 1048576)) MiB)"
best_torch_cc=""
for threads in 1 2; do
  read -r t_torch _ < <(measure /usr/bin/python3 bench/torch_coordcheck.py "$threads")
  echo "  pytorch, $threads thread(s)            ${t_torch} s"
  if [ -z "$best_torch_cc" ] || awk "BEGIN{exit !($t_torch < $best_torch_cc)}"; then best_torch_cc=$t_torch; fi
done
awk -v a="$best_torch_cc" -v b="$t_gs_cc" 'BEGIN{printf "  speed-up over best pytorch      %.2fx\n", a/b}'

echo
echo "== the deep job: depth 10,000 under a 4 GiB memory budget (several minutes)"
if [ "${SKIP_DEEP:-0}" = 1 ]; then
  echo "  skipped (SKIP_DEEP=1)"
else
  "$BIN/bench/gradscope_bench_deep" 10000 1024 256 4GiB
fi
