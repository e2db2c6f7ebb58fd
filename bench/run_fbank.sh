#!/usr/bin/env bash
# Front-end throughput: patchbay's load_features (use_cache = false) vs AST's Python front end
# (torchaudio.load + torchaudio.compliance.kaldi.fbank + pad), on the same generated WAV
# files, with the same thread count, interleaved rounds (these machines are shared and noisy).
# Usage: bench/run_fbank.sh [BUILD_DIR] [CLIPS] [THREADS...]
#   (needs python3-torchaudio: apt-get install python3-torchaudio)
# Python gets the same BLAS as patchbay's binaries (the OpenMP build of OpenBLAS, docs/platform.md's
# thread fight), its best case. The last line per thread count is the ratio of the medians.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
clips=${2:-200}
shift $(($# < 2 ? $# : 2))
threads=("$@")
[ ${#threads[@]} -eq 0 ] && threads=(1 2)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$build/bench/patchbay_bench_fbank" --clips "$clips" --seconds 1 --write-clips "$work" >/dev/null
openblas_omp=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)/openblas-openmp
median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
for t in "${threads[@]}"; do
  ours_all=() ref_all=()
  for round in 1 2 3; do
    line=$("$build/bench/patchbay_bench_fbank" --clips-dir "$work" --threads "$t" --repeats 5)
    ours=$(awk '{print $4}' <<<"$line")
    direct=$(awk '{print $6}' <<<"$line")
    cached=$(awk '{print $8}' <<<"$line")
    ref=$(LD_LIBRARY_PATH=$openblas_omp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} /usr/bin/python3 \
          "$here/fbank_reference.py" "$work" "$t" 3 | awk '{print $2}')
    echo "threads $t round $round: load_features ${ours} clips/s (direct loop ${direct}, cached ${cached}), torchaudio ${ref} clips/s, ratio $(awk "BEGIN {printf \"%.1f\", $ours / $ref}")x"
    ours_all+=("$ours") ref_all+=("$ref")
  done
  mo=$(printf '%s\n' "${ours_all[@]}" | median)
  mr=$(printf '%s\n' "${ref_all[@]}" | median)
  echo "threads $t median: load_features $mo clips/s, torchaudio $mr clips/s, ratio $(awk "BEGIN {printf \"%.1f\", $mo / $mr}")x"
  echo "BAR fbank_${t}thread value=$(awk "BEGIN {printf \"%.2f\", $mo / $mr}") bar=10 unit=x detail=\"cold: decode + fbank, $mo vs $mr clips/s\""
done
# Same numbers? The first 10 clips through `patchbay fbank` against torchaudio's features.
mkdir -p "$work/npy"
for wav in $(ls "$work"/*.wav | head -10); do
  "$build/patchbay" fbank "$wav" --out "$work/npy/$(basename "$wav" .wav).npy" --frames 128 >/dev/null
done
LD_LIBRARY_PATH=$openblas_omp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} /usr/bin/python3 - "$work" "$here" <<'PY'
import glob, os, sys
import numpy as np
sys.path.insert(0, sys.argv[2])
from fbank_reference import features
worst = 0.0
for npy in sorted(glob.glob(os.path.join(sys.argv[1], "npy", "*.npy"))):
    wav = os.path.join(sys.argv[1], os.path.basename(npy)[:-4] + ".wav")
    worst = max(worst, float(np.abs(np.load(npy) - features(wav).numpy()).max()))
print(f"max abs log-mel difference, patchbay fbank vs torchaudio, 10 clips: {worst:.2e} (bar <= 1e-3)")
print(f"BAR fbank_accuracy value={worst:.2e} bar=1e-3 unit=abs detail=\"max abs log-mel difference over 10 clips\" lower=1")
PY
echo "($clips clips of 1 s, 16 kHz; AST fbank: 128 mel, 128 frames; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset})"
