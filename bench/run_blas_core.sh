#!/usr/bin/env bash
# The OpenBLAS core the launcher chooses (framework/app/blas_core.hpp) against forcing each
# core, on the product's path: `patchbay cost` of the quick start (batch-32 inference
# throughput, clips/s, and batch-1 latency of every planned model), ROUNDS alternating rounds.
# The bar (issue 18): the product's default is at least 0.9x the best forced core.
#
# Usage: bench/run_blas_core.sh [BUILD_DIR] [ROUNDS] [THREADS] [CORES...]
#        (defaults: build, 3, 2, "Prescott Haswell SkylakeX" where the CPU has AVX-512, else
#        "Prescott Haswell")
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
rounds=${2:-3}
threads=${3:-2}
shift $(( $# > 3 ? 3 : $# )) || true
cores=("$@")
if [ ${#cores[@]} -eq 0 ]; then
  cores=(Prescott Haswell)
  grep -qw avx512bw /proc/cpuinfo && cores+=(SkylakeX)
fi
exp="$here/../experiments/quickstart/quickstart.toml"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); threads $threads; rounds $rounds" >&2
echo "default: $(env -u OPENBLAS_CORETYPE -u PATCHBAY_BLAS_CHOICE "$build/patchbay" --version | grep '^BLAS')" >&2
for round in $(seq "$rounds"); do
  env -u OPENBLAS_CORETYPE -u PATCHBAY_BLAS_CHOICE "$build/patchbay" cost "$exp" train.threads="$threads" \
    --json --repeats 5 --batch 32 >"$out/default.$round.json"
  for core in "${cores[@]}"; do
    env -u PATCHBAY_BLAS_CHOICE OPENBLAS_CORETYPE="$core" "$build/patchbay" cost "$exp" \
      train.threads="$threads" --json --repeats 5 --batch 32 >"$out/$core.$round.json"
  done
  echo "round $round done" >&2
done
/usr/bin/python3 - "$out" "${cores[@]}" <<'PY'
import glob, json, os, statistics, sys
out, cores = sys.argv[1], ["default"] + sys.argv[2:]
def load(core):
    rows = {}
    for f in sorted(glob.glob(os.path.join(out, core + ".*.json"))):
        for r in json.load(open(f))["runs"]:
            rows.setdefault(r["id"], []).append(r)
    return {k: (statistics.median(x["throughput_per_s"] for x in v), statistics.median(x["latency_ms_median"] for x in v))
            for k, v in rows.items()}
data = {c: load(c) for c in cores}
slugs = list(data["default"])
print("| run | " + " | ".join(f"{c} clips/s (latency ms)" for c in cores) + " | default / best forced |")
print("|---|" + "---:|" * (len(cores) + 1))
worst = None
for s in slugs:
    cells = [f"{data[c][s][0]:.1f} ({data[c][s][1]:.2f})" for c in cores]
    best = max(data[c][s][0] for c in cores[1:])
    ratio = data["default"][s][0] / best
    worst = ratio if worst is None else min(worst, ratio)
    print(f"| {s} | " + " | ".join(cells) + f" | {ratio:.2f}x |")
print(f"\nbar: default >= 0.9x the best forced core on every run: {'PASS' if worst >= 0.9 else 'FAIL'} (worst {worst:.2f}x)")
PY
