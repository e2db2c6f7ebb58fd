#!/usr/bin/env bash
# How long `patchbay plan` takes for a large sweep: a 10,000-point plan (100 masking budgets
# x 100 seeds on the quick start's FFTP model) and a 1,000-point one, ROUNDS rounds each,
# median wall time. The bar (issue "faults" 9): the 10,000-point plan in well under a second
# of planning, which means no model is built per point (grids are shared by points with the
# same patcher; see grid_of in framework/app/cli_common.cpp).
#
# Usage: bench/run_plan.sh [BUILD_DIR] [ROUNDS]      (defaults: build, 3)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
rounds=${2:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
write() {  # write N_BUDGETS N_SEEDS FILE
  {
    echo '[experiment]'
    echo 'name = "plan_bench"'
    echo '[dataset]'
    echo 'plugin = "folder"'
    echo 'root = "data"'
    echo '[patcher]'
    echo 'plugin = "fftp"'
    echo '[masker]'
    echo 'plugin = "specmask"'
    echo '[backbone]'
    echo 'plugin = "ast"'
    echo 'preset = "tiny"'
    echo '[sweep]'
    printf '"masker.budget" = ['
    for ((b = 1; b <= $1; b++)); do printf '%s%d' "$([ "$b" -gt 1 ] && echo ', ')" $((b * 10)); done
    echo ']'
    printf 'seeds = ['
    for ((s = 0; s < $2; s++)); do printf '%s%d' "$([ "$s" -gt 0 ] && echo ', ')" "$s"; done
    echo ']'
  } >"$3"
}
write 10 100 "$work/p1000.toml"
write 100 100 "$work/p10000.toml"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(nproc) cores; $("$build/patchbay" --version | head -1)"
for plan in p1000 p10000; do
  times=()
  for ((r = 0; r < rounds; r++)); do
    start=$(date +%s.%N)
    "$build/patchbay" plan "$work/$plan.toml" >"$work/$plan.out"
    end=$(date +%s.%N)
    times+=("$(awk "BEGIN { printf \"%.3f\", $end - $start }")")
  done
  runs=$(grep -m1 -o '[0-9]* runs' "$work/$plan.out" || true)
  median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (rounds + 1) / 2 ))p")
  echo "$plan: $runs, median ${median} s of ${rounds} (${times[*]})"
done
