#!/usr/bin/env bash
# Every CPU study of experiments/fftp-paper/README.md, in the order the write-up uses them:
# the cost table (no training), then the trained studies, each followed by its report.
# Resumable: rerun the same command after an interruption and finished runs are skipped.
# Runs another study already finished with the same configuration are copied (run --reuse).
#
# Usage: experiments/fftp-paper/run_cpu_studies.sh [BUILD_DIR] [STUDY...]   (BUILD_DIR: default build/)
#   studies: cost tuning tuned keywords-300 keywords-real patch-shape stride square-longer masking masking-budget
#   masking-longer masking-converge backbones instruments instruments-converge transfer (default: all, in that order, then figures and claims)
#   transfer: pretrains cpu/transfer-pretrain.toml, exports its best epoch, then cpu/transfer.toml
#   tuned: writes cpu/tuned.toml from tuning's validation scores (pick_tuned.py), runs it
#   figures: copy the plots the write-up shows from the studies' reports into figures/
#   claims: test the write-up's claims (claims.toml) on the results so far: results/fftp-claims.md,
#           copied into README.md's summary (embed_claims.py)
#   NICE=19 to run at the lowest CPU priority on a shared machine; JOBS=N to train N runs side
#   by side, the cores split between them (JOBS=2 on 2 cores: ~1.5x the runs per hour for
#   AST-tiny runs, bench/RESULTS.md "Side by side").
set -euo pipefail
# One block, read whole before it runs: bash reads a script as it goes, so editing this file
# while a study runs for hours would otherwise derail the run at the edit's offset.
{
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
all=(cost tuning tuned keywords-300 keywords-real patch-shape stride square-longer masking masking-budget
     masking-longer masking-converge backbones instruments instruments-converge transfer figures claims)
is_study() { local s; for s in "${all[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
# The build folder is optional: a first argument that names a study starts the list (with no
# folder and no study, the default is every study: hours, so a typo must not fall into it).
build=$root/build
if [ $# -gt 0 ] && ! is_study "$1"; then
  if [ ! -d "$1" ]; then
    echo "run_cpu_studies.sh: '$1' is neither a build folder nor a study; the studies are: ${all[*]}" >&2
    exit 2
  fi
  build=$1
  shift
fi
studies=("$@")
[ ${#studies[@]} -eq 0 ] && studies=("${all[@]}")
for s in "${studies[@]}"; do
  is_study "$s" || { echo "run_cpu_studies.sh: '$s' is not a study; the studies are: ${all[*]}" >&2; exit 2; }
done
if [ ! -x "$build/patchbay" ]; then
  echo "run_cpu_studies.sh: no patchbay in '$build'; build it first (README, \"Build notes\") or name the build folder as the first argument" >&2
  exit 2
fi
run=(nice -n "${NICE:-0}" "$build/patchbay")
cd "$root"
mkdir -p results
for s in "${studies[@]}"; do
  echo "== $s ($(date -u +%H:%M:%SZ))"
  if [ "$s" = figures ]; then
    # The write-up's figures: report plots, named <study>-<plot>.png.
    mkdir -p "$here/figures"
    for f in stride/metric_vs_gmacs stride/curves square-longer/curves masking/metric_vs_masker \
             masking-longer/curves masking-longer/metric_vs_masker backbones/metric_vs_gmacs \
             instruments/metric_vs_gmacs instruments/curves tuned/curves keywords-300/curves \
             keywords-real/per_test_set instruments-converge/metric_vs_gmacs instruments-converge/curves \
             masking-converge/metric_vs_masker masking-converge/curves; do
      src="results/fftp-cpu-${f%%/*}-report/${f#*/}.png"
      if [ -e "$src" ]; then cp "$src" "$here/figures/${f%%/*}-${f#*/}.png"; else echo "no $src (run that study first)"; fi
    done
    continue
  fi
  if [ "$s" = claims ]; then
    "${run[@]}" claims experiments/fftp-paper/claims.toml --out results/fftp-claims.md
    /usr/bin/python3 "$here/embed_claims.py" results/fftp-claims.md "$here/README.md"
    continue
  fi
  if [ "$s" = cost ]; then
    # Table III of the paper: AST-base and AuM-base, 1 s and 10 s inputs, 527 classes.
    "${run[@]}" cost experiments/fftp-paper/cpu/cost-table.toml --classes 527 --batch 0 \
      --repeats 5 train.threads=1 --json >results/fftp-cost-table.json
    /usr/bin/python3 - results/fftp-cost-table.json <<'PY' | tee results/fftp-cost-table.md
import json, sys
runs = json.load(open(sys.argv[1]))["runs"]
print("| backbone | input | patches | tokens | params (M) | paper GMACs | GFLOPs | batch-1 latency, 1 thread (ms) | GMACs vs square | latency vs square |")
print("|---|---|---|---|---|---|---|---|---|---|")
square = {}
for r in runs:
    key = (r["backbone"], r["id"].split("target-frames")[1].split("_")[0])
    if r["patcher"] == "square":
        square[key] = r
for r in runs:
    frames = r["id"].split("target-frames")[1].split("_")[0]
    sq = square[(r["backbone"], frames)]
    patch = "square 16x16 st 10" if r["patcher"] == "square" else "FFTP st " + r["id"].rsplit("stride", 1)[1]
    print(f"| {r['backbone']}-base | {int(frames) // 100} s ({frames} frames) | {patch} | {r['tokens']} | "
          f"{r['params'] / 1e6:.1f} | {r['paper_macs'] / 1e9:.2f} | {r['flops'] / 1e9:.2f} | "
          f"{r['latency_ms_median']:.0f} | {r['paper_macs'] / sq['paper_macs']:.2f} | "
          f"{r['latency_ms_median'] / sq['latency_ms_median']:.2f} |")
PY
    # The paper's own rows (Tp 10 on 1,000 frames), checked against its 85.32 and 4.15.
    "${run[@]}" cost experiments/fftp-paper/cpu/cost-paper-rows.toml --classes 527 --batch 0 \
      --repeats 5 train.threads=1 | tee results/fftp-cost-paper-rows.txt
    continue
  fi
  if [ "$s" = transfer ]; then
    # The source checkpoint: square AST-tiny on instruments, its best epoch on validation.
    "${run[@]}" run experiments/fftp-paper/cpu/transfer-pretrain.toml
    pre=results/fftp-cpu-transfer-pretrain.h5
    id=$(/usr/bin/python3 -c "import h5py, sys; print(h5py.File(sys.argv[1], 'r')['table']['id'].asstr()[0])" "$pre")
    "${run[@]}" weights export "$pre.runs/$id" --out results/fftp-transfer-square-instruments.h5
  fi
  if [ "$s" = tuned ]; then
    /usr/bin/python3 "$here/pick_tuned.py" results/fftp-cpu-tuning.h5 \
      --template "$here/cpu/tuning.toml" --out "$here/cpu/tuned.toml"
  fi
  # Rows two studies share (e.g. AST-tiny square / FFTP st 4 with SpecMask 1,024 in stride,
  # masking and backbones) are trained once: --reuse copies them from the other studies.
  reuse=()
  for other in results/fftp-cpu-*.h5; do
    [ -e "$other" ] && [ "$other" != "results/fftp-cpu-$s.h5" ] && reuse+=(--reuse "$other")
  done
  "${run[@]}" run "experiments/fftp-paper/cpu/$s.toml" "${reuse[@]}" --jobs "${JOBS:-1}"
  "${run[@]}" report "results/fftp-cpu-$s.h5"
done
exit
}
