#!/usr/bin/env bash
# Selective scan, forward-only and forward+backward: patchbay's kernel against the PyTorch
# reference loop (selective_scan_reference.py, mamba_ssm's selective_scan_ref), same seeded
# inputs, same shapes, same thread count. Runs alternate between the two sides in ROUNDS
# rounds (these machines are shared and noisy); each side reports medians of REPEATS runs,
# wall-clock and process CPU time, and the script prints the median over rounds and the
# ratios. Both sides get the OpenMP build of OpenBLAS and OMP/OpenBLAS thread counts equal
# to THREADS (docs/platform.md: the pthreads build fights LibTorch's OpenMP pool).
#
# Usage: bench/run_selective_scan.sh [BUILD_DIR] [THREADS] [ROUNDS] [VARIANT]
#   defaults: build, 1, 3, unbind (VARIANT index: mamba_ssm's own indexing, far slower)
#   SHAPE="B D L N" overrides the shape (default "8 384 100 16").
# Needs python3-torch (apt-get install python3-torch).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
threads=${2:-1}
rounds=${3:-3}
variant=${4:-unbind}
shape=${SHAPE:-"8 384 100 16"}
blas=/usr/lib/x86_64-linux-gnu/openblas-openmp
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads
kernel_repeats=21
reference_repeats=5
[ "$variant" = index ] && reference_repeats=1

value() { awk -v k="$1" '$1 == k {print $2}' <<<"$2"; }
median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
declare -A series
for round in $(seq "$rounds"); do
  k=$("$build/bench/patchbay_bench_selective_scan" $shape "$threads" $kernel_repeats)
  r=$(LD_LIBRARY_PATH=$blas${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
      /usr/bin/python3 "$here/selective_scan_reference.py" $shape "$threads" $reference_repeats "$variant")
  [ "$round" = 1 ] && { echo "$(grep check <<<"$k")"; echo "$(grep check <<<"$r")"; }
  line="round $round:"
  for m in fwd fwd_cpu fwdbwd fwdbwd_cpu; do
    kv=$(value "kernel_${m}_ms" "$k") rv=$(value "reference_${m}_ms" "$r")
    series[k_$m]+="$kv "
    series[r_$m]+="$rv "
    line+=" $m ${kv}/${rv}"
  done
  echo "$line  (kernel/reference ms)"
done
echo "medians over $rounds rounds (ms): kernel / reference = ratio"
for m in fwd fwd_cpu fwdbwd fwdbwd_cpu; do
  kv=$(tr ' ' '\n' <<<"${series[k_$m]}" | grep . | median)
  rv=$(tr ' ' '\n' <<<"${series[r_$m]}" | grep . | median)
  printf '  %-11s %8.3f / %9.3f = %6.1fx\n' "$m" "$kv" "$rv" "$(awk "BEGIN {print $rv / $kv}")"
done
kv=$(tr ' ' '\n' <<<"${series[k_fwdbwd_cpu]}" | grep . | median)
rv=$(tr ' ' '\n' <<<"${series[r_fwdbwd_cpu]}" | grep . | median)
echo "BAR selective_scan value=$(awk "BEGIN {printf \"%.1f\", $rv / $kv}") bar=100 unit=x detail=\"forward+backward, CPU-time medians, $threads thread(s), $kv vs $rv ms\""
echo "(B D L N = $shape; threads $threads; reference loop: $variant; kernel isa $(value kernel_isa "$k");" \
     "$(lscpu | grep 'Model name' | cut -d: -f2 | xargs); OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; $(date -u +%Y-%m-%dT%H:%MZ))"
