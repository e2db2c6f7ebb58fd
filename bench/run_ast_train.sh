#!/usr/bin/env bash
# AST training step (forward, cross-entropy, backward, AdamW; batch 32, 128 x 128 input):
# patchbay's plugins (patchbay_bench_ast_train) vs the same model in PyTorch-Python
# (ast_train_reference.py), same shapes, same thread count, same BLAS (the OpenMP build of
# OpenBLAS: the binaries by their RPATH, Python by LD_LIBRARY_PATH, docs/platform.md's thread
# fight), interleaved runs (rounds outermost, the order of the two flipped every round; these
# machines are shared and noisy). Each run also measures torch.mm's float32 2048^2 peak at its
# thread count; achieved GFLOP/s = 3 x forward FLOPs / step time (fwd+bwd ~= 3 x fwd).
#
# Usage: bench/run_ast_train.sh [BUILD_DIR] [ROUNDS]     (needs python3-torch)
#   PRESETS="tiny small" PATCHERS="square fftp" THREADS="1 2" STEPS=5 WARMUP=2 BATCH=32
#   AVX512=1: unset OPENBLAS_CORETYPE in the two benchmark commands only (AVX-512 kernels;
#   the environment's Haswell setting forces AVX2).
#   OMP_WAIT_POLICY=PASSIVE (passed to both sides like any environment): on a machine loaded
#   by other processes, 2-thread steps with the default (spinning) policy were 3-6x slower.
#   MALLOC_KEEP=1 (default): patchbay's side runs with --malloc-keep (glibc keeps freed memory
#   mapped), as `patchbay run`'s workers do; MALLOC_KEEP=0 measures glibc's defaults. Python
#   runs as its users run it.
# Prints every run, then per (preset, patcher, threads) the medians, the ratio
# patchbay/python (python ms / patchbay ms; bar >= 1.1x) and patchbay's achieved/peak (bar >= 60 %).
set -euo pipefail
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
rounds=${2:-3}
presets=${PRESETS:-tiny small}
patchers=${PATCHERS:-square fftp}
threads=${THREADS:-1 2}
steps=${STEPS:-5}
warmup=${WARMUP:-2}
batch=${BATCH:-32}
openblas_omp=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)/openblas-openmp
envcmd=(env)
[ "${AVX512:-0}" = 1 ] && envcmd=(env -u OPENBLAS_CORETYPE)
out=$(mktemp)
trap 'rm -f "$out"' EXIT

run_ours() {  # preset patcher threads
  "${envcmd[@]}" "$build/bench/patchbay_bench_ast_train" --presets "$1" --patchers "$2" \
    --threads "$3" --batch "$batch" --steps "$steps" --warmup "$warmup" --json \
    $([ "${MALLOC_KEEP:-1}" = 1 ] && echo --malloc-keep)
}
run_ref() {  # preset patcher threads params
  "${envcmd[@]}" LD_LIBRARY_PATH=$openblas_omp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
    /usr/bin/python3 "$here/ast_train_reference.py" "$1" "$2" "$3" --batch "$batch" \
    --steps "$steps" --warmup "$warmup" --expect-params "$4"
}

for round in $(seq 1 "$rounds"); do
  for preset in $presets; do
    for patcher in $patchers; do
      for t in $threads; do
        if [ $((round % 2)) = 1 ]; then
          ours=$(run_ours "$preset" "$patcher" "$t")
          params=$(sed 's/.*"params": \([0-9]*\).*/\1/' <<<"$ours")
          ref=$(run_ref "$preset" "$patcher" "$t" "$params")
        else
          # Python first this round; its parameter check uses the table in the script.
          ref=$(run_ref "$preset" "$patcher" "$t" 0)
          ours=$(run_ours "$preset" "$patcher" "$t")
          params=$(sed 's/.*"params": \([0-9]*\).*/\1/' <<<"$ours")
          grep -q "\"params\": $params," <<<"$ref" || { echo "parameter counts differ: $ours / $ref" >&2; exit 1; }
        fi
        echo "$ours" >>"$out"
        echo "$ref" >>"$out"
        awk -v r="$round" -v p="$preset" -v q="$patcher" -v t="$t" -v a="$ours" -v b="$ref" 'BEGIN {
          match(a, /"step_ms": [0-9.]+/); ma = substr(a, RSTART + 11, RLENGTH - 11)
          match(b, /"step_ms": [0-9.]+/); mb = substr(b, RSTART + 11, RLENGTH - 11)
          printf "round %s %s %s %s thread(s): patchbay %.1f ms, python %.1f ms, ratio %.2fx\n", r, p, q, t, ma, mb, mb / ma }'
      done
    done
  done
done

/usr/bin/python3 - "$out" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
keys = []
for r in rows:
    k = (r["preset"], r["patcher"], r["threads"])
    if k not in keys:
        keys.append(k)
med = lambda impl, k, f: statistics.median(r[f] for r in rows if r["impl"] == impl and (r["preset"], r["patcher"], r["threads"]) == k)
bars = []
print()
print("| preset | patcher | tokens | threads | patchbay ms/step | python ms/step | **patchbay/python** | "
      "CPU-time ratio | patchbay examples/s | patchbay GFLOP/s | python GFLOP/s | mm peak GFLOP/s | "
      "**patchbay % of peak** | python % of peak |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for k in keys:
    ours, ref = med("patchbay", k, "step_ms"), med("python", k, "step_ms")
    ours_cpu, ref_cpu = med("patchbay", k, "cpu_ms"), med("python", k, "cpu_ms")
    first = next(r for r in rows if r["impl"] == "patchbay" and (r["preset"], r["patcher"], r["threads"]) == k)
    flop = 3 * first["fwd_gflop_per_example"] * first["batch"]  # GFLOP per step
    peak, ppeak = med("patchbay", k, "peak_gflops"), med("python", k, "peak_gflops")
    print(f"| {k[0]} | {k[1]} | {first['tokens']} | {k[2]} | {ours:.0f} | {ref:.0f} | **{ref / ours:.2f}x** | "
          f"{ref_cpu / ours_cpu:.2f}x | {first['batch'] / ours * 1000:.1f} | {flop / ours * 1000:.1f} | "
          f"{flop / ref * 1000:.1f} | {peak:.0f} | **{100 * flop / ours * 1000 / peak:.0f} %** | "
          f"{100 * flop / ref * 1000 / ppeak:.0f} % |")
    bars.append((f"{k[0]}_{k[1]}_{k[2]}t", ref / ours, 100 * flop / ours * 1000 / peak))
print()
for name, ratio, share in bars:
    print(f'BAR ast_step_{name} value={ratio:.2f} bar=1.1 unit=x detail="patchbay/python step time"')
    print(f'BAR ast_peak_{name} value={share:.0f} bar=60 unit=% detail="achieved GFLOP/s / measured mm peak"')
EOF
echo "(batch $batch, $steps timed steps after $warmup warm-up, median of $rounds interleaved rounds; bars: patchbay/python >= 1.1x, achieved/peak >= 60 %;"
echo " achieved = 3 x forward FLOPs / step, peak = torch.mm float32 2048^2 in the same process;"
echo " CPU-time ratio = python / patchbay process CPU ms per step (all threads; less sensitive to other load);"
echo " $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); OPENBLAS_CORETYPE=$([ "${AVX512:-0}" = 1 ] && echo unset || echo "${OPENBLAS_CORETYPE:-unset}");"
echo " OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset} (both sides); patchbay malloc: $([ "${MALLOC_KEEP:-1}" = 1 ] && echo '--malloc-keep (as patchbay run)' || echo "glibc's defaults"); load average before $load_before, after $(cut -d' ' -f1-3 /proc/loadavg))"
