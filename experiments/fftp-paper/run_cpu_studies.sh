#!/usr/bin/env bash
# Every CPU study of experiments/fftp-paper/README.md, in the order the write-up uses them:
# the cost table (no training), then the trained studies, each followed by its report.
# Resumable: rerun the same command after an interruption and finished runs are skipped.
#
# Usage: experiments/fftp-paper/run_cpu_studies.sh [BUILD_DIR] [STUDY...]
#   studies: cost stride masking backbones instruments (default: all, in that order)
#   NICE=19 to run at the lowest CPU priority on a shared machine.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build}
[ $# -gt 0 ] && shift
studies=("$@")
[ ${#studies[@]} -eq 0 ] && studies=(cost stride masking backbones instruments)
run=(nice -n "${NICE:-0}" "$build/patchbay")
cd "$root"
mkdir -p results
for s in "${studies[@]}"; do
  echo "== $s ($(date -u +%H:%M:%SZ))"
  if [ "$s" = cost ]; then
    # Table III of the paper: AST-base and AuM-base, 1 s and 10 s inputs, 527 classes.
    "${run[@]}" cost experiments/fftp-paper/cpu/cost-table.toml --classes 527 --batch 0 \
      --repeats 5 train.threads=1 | tee results/fftp-cost-table.txt
    "${run[@]}" cost experiments/fftp-paper/cpu/cost-table.toml --classes 527 --batch 0 \
      --repeats 5 train.threads=1 --json >results/fftp-cost-table.json
    continue
  fi
  "${run[@]}" run "experiments/fftp-paper/cpu/$s.toml"
  "${run[@]}" report "results/fftp-cpu-$s.h5"
done
