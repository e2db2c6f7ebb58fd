#!/usr/bin/env bash
# Selective scan forward+backward: patchbay's kernel vs the PyTorch-Python reference loop,
# same shapes, same thread count, interleaved runs (these machines are shared and noisy).
# Usage: bench/run_selective_scan.sh [BUILD_DIR]   (needs python3-torch: apt-get install python3-torch)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
shape="8 384 100 16"
threads=1
for round in 1 2 3; do
  k=$("$build/bench/patchbay_bench_selective_scan" $shape $threads 9 | awk '{print $2}')
  r=$(/usr/bin/python3 "$here/selective_scan_reference.py" $shape $threads 3 | awk '{print $2}')
  echo "round $round: kernel ${k} ms, reference ${r} ms, ratio $(awk "BEGIN {printf \"%.1f\", $r / $k}")x"
done
echo "(B D L N = $shape, $threads thread, forward+backward, median per round; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
