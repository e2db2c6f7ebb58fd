#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU, a CUDA PyTorch (or LibTorch) and this
# project's other dependencies (./setup.sh installs them on Debian), builds patchbay against
# that LibTorch, runs the unit tests (their CUDA cases run only where a GPU is seen), trains
# the quick start for one epoch on the GPU in bf16 and on the CPU in fp32, and prints the
# training step time of each and their ratio.
#
# Usage: tools/gpu-check.sh [TORCH_DIR]
#   TORCH_DIR  the folder holding TorchConfig.cmake (default: the one of `python3 -c 'import
#              torch'`, i.e. $(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')/Torch)
#   BUILD=dir  build folder (default: build-gpu)   PRECISION=fp16  try fp16 instead of bf16
# Writes its results to $BUILD/gpu-check/ (cuda.h5, cpu.h5 and their curves as CSV).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build-gpu}
precision=${PRECISION:-bf16}
say() { printf '\n== %s\n' "$*"; }

torch_dir=${1:-}
if [ -z "$torch_dir" ]; then
  torch_dir=$(python3 -c 'import torch, os; print(os.path.join(torch.utils.cmake_prefix_path, "Torch"))') || {
    echo "gpu-check: no TORCH_DIR given and python3 cannot import torch; pass the folder of TorchConfig.cmake" >&2
    exit 2
  }
fi
[ -e "$torch_dir/TorchConfig.cmake" ] || { echo "gpu-check: no TorchConfig.cmake in $torch_dir" >&2; exit 2; }
# Debian's Boost, fmt and spdlog use the C++11 string ABI; a LibTorch built with the old one
# (pytorch.org's "pre-cxx11" archives, PyTorch wheels before 2.7) cannot link with them.
if grep -q '_GLIBCXX_USE_CXX11_ABI=0' "$torch_dir/TorchConfig.cmake" "$torch_dir"/*.cmake 2>/dev/null; then
  echo "gpu-check: $torch_dir is a pre-C++11-ABI LibTorch, which cannot link with Debian's libraries;" \
       "use the 'cxx11 ABI' LibTorch archive from pytorch.org or PyTorch 2.7 or later" >&2
  exit 2
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

say "configure and build against $torch_dir ($build)"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTorch_DIR="$torch_dir"
cmake --build "$build" -j "$(nproc)"
"$build/patchbay" --version

say "unit tests (the CUDA cases included)"
"$build/tests/patchbay_tests" -ts=unit

out="$build/gpu-check"
mkdir -p "$out"
quick=(experiments/quickstart/quickstart.toml train.epochs=1 train.warmup_steps=10)
say "the quick start, 1 epoch, on cuda in $precision"
"$build/patchbay" run "${quick[@]}" train.device=cuda train.precision="$precision" --results "$out/cuda.h5" --force
say "the same on the CPU in fp32"
"$build/patchbay" run "${quick[@]}" --results "$out/cpu.h5" --force
"$build/patchbay" export "$out/cuda.h5" --curves "$out/cuda-curves.csv" --csv "$out/cuda-runs.csv"
"$build/patchbay" export "$out/cpu.h5" --curves "$out/cpu-curves.csv" --csv "$out/cpu-runs.csv"

say "training step time (train_seconds / steps of epoch 1)"
python3 - "$out" "$precision" <<'PY'
import csv, sys
out, precision = sys.argv[1], sys.argv[2]
def steps(name):
    rows = {}
    for r in csv.DictReader(open(f"{out}/{name}-curves.csv")):
        if r["epoch"] == "1":
            rows[r["slug"]] = float(r["train_seconds"]) / float(r["step"])
    return rows
gpu, cpu = steps("cuda"), steps("cpu")
print(f"{'run':<40} {'cpu fp32 (ms)':>14} {'cuda ' + precision + ' (ms)':>16} {'speed-up':>9}")
for slug in sorted(set(gpu) & set(cpu)):
    print(f"{slug:<40} {1e3 * cpu[slug]:>14.1f} {1e3 * gpu[slug]:>16.1f} {cpu[slug] / gpu[slug]:>8.1f}x")
PY
say "cost on the GPU (batch-1 latency, synchronised)"
"$build/patchbay" cost experiments/quickstart/quickstart.toml train.device=cuda train.precision="$precision"
