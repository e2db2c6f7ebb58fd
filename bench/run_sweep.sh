#!/usr/bin/env bash
# Bars 5 and 6: where a sweep's wall time goes. Runs bench/experiments/sweep-overhead.toml
# (8 tiny AST runs on the built-in keywords) once to fill the feature cache, then again, timed,
# into a fresh results file, and reads the runs' own timings back from it (h5py):
#   bar 5, data path: time waiting for batches + masking + mixup over the epochs' wall time
#          (the runs' `data_seconds` / `epoch_seconds`), cache warm: <= 5 %;
#   bar 6, sweep overhead: the sweep's wall time minus the runs' training, validation and
#          test time (and minus latency measurement, reported apart) over the sweep's wall
#          time: <= 3 %. What is left is process start, plugin loading, reading the cached
#          features, building models and writing results.
#
# Usage: bench/run_sweep.sh [BUILD_DIR]         (needs python3-h5py; JOBS=1 by default)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
jobs=${JOBS:-1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
exp=$here/experiments/sweep-overhead.toml
"$build/patchbay" run "$exp" --results "$work/warm.h5" --quiet train.epochs=1 >/dev/null
start=$(date +%s.%N)
"$build/patchbay" run "$exp" --results "$work/sweep.h5" --quiet --jobs "$jobs" >/dev/null
end=$(date +%s.%N)
/usr/bin/python3 - "$work/sweep.h5" "$start" "$end" "$jobs" <<'PY'
import sys
import h5py
path, start, end, jobs = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
wall = end - start
epochs = data = test = measure = features = run_wall = 0.0
n = 0
with h5py.File(path, "r") as f:
    for rid in f["runs"]:
        run = f["runs"][rid]
        status = run.attrs["status"]
        status = status.decode() if isinstance(status, bytes) else status
        if status != "COMPLETED":
            sys.exit(f"run {rid} is {status}: {run.attrs['reason']}")
        fin = run["final"].attrs
        epochs += float(run["curves"]["epoch_seconds"][()].sum())
        data += float(run["curves"]["data_seconds"][()].sum())
        test += float(fin["test_seconds"])
        measure += float(fin["measure_seconds"])
        features += float(fin["features_seconds"])
        run_wall += float(run.attrs["wall_seconds"])
        n += 1
work = (epochs + test) / jobs
outside = wall - work - measure / jobs
print(f"| | seconds | share of the sweep's wall time |")
print(f"|---|---|---|")
print(f"| sweep wall time ({n} runs, --jobs {jobs}) | {wall:.1f} | 100 % |")
print(f"| training + validation epochs | {epochs:.1f} | {100 * epochs / jobs / wall:.1f} % |")
print(f"| of which waiting for batches, masking, mixup | {data:.1f} | {100 * data / jobs / wall:.1f} % |")
print(f"| test evaluation | {test:.1f} | {100 * test / jobs / wall:.1f} % |")
print(f"| latency measurement (per-run cost record) | {measure:.1f} | {100 * measure / jobs / wall:.1f} % |")
print(f"| reading cached features (inside the runs) | {features:.1f} | {100 * features / jobs / wall:.1f} % |")
print(f"| everything else: start, plugins, features, models, results | {outside:.1f} | {100 * outside / wall:.1f} % |")
print()
print(f"BAR data_path value={100 * data / epochs:.2f} bar=5 unit=% lower=1 detail=\"data_seconds / epoch_seconds over {n} runs, warm cache\"")
print(f"BAR sweep_overhead value={100 * outside / wall:.2f} bar=3 unit=% lower=1 detail=\"{outside:.1f} s of {wall:.1f} s outside training, evaluation and latency measurement\"")
PY
