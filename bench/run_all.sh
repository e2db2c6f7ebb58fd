#!/usr/bin/env bash
# Every benchmark, one command: builds the benchmark targets, runs each comparison script
# (each interleaves patchbay with what a user would run instead, in one script run), and
# writes bench/RESULTS.md: the machine, a table of the six bars (value, bar, met?), then each
# script's full output. Run it on a machine as quiet as you can get; the load average before
# and after is recorded.
#
# Usage: bench/run_all.sh [BUILD_DIR] [OUT.md]        (defaults: build, bench/RESULTS.md)
#   QUICK=1: one round each and the tiny preset only (a smoke run, ~5 min; not for the record)
# Installs the Python comparison side (python3-torch, python3-torchaudio, python3-h5py) with
# apt-get when missing and run as root: only the benchmarks need it, never patchbay or its tests.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
out=${2:-$here/RESULTS.md}
quick=${QUICK:-0}

missing=()
for pkg in python3-torch python3-torchaudio python3-h5py; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y --no-install-recommends "${missing[@]}"
  else
    echo "run_all.sh: the comparisons need ${missing[*]}: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
cmake --build "$build" --target patchbay patchbay_bench_fbank patchbay_bench_selective_scan \
  patchbay_bench_ast_train all >/dev/null

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%Y-%m-%dT%H:%MZ)
t0=$(date +%s)
step() {  # name title command...
  local name=$1 title=$2
  shift 2
  echo "== $title: $*" >&2
  local s
  s=$(date +%s)
  if "$@" >"$logs/$name.out" 2>"$logs/$name.err"; then
    echo "$title" >"$logs/$name.title"
  else
    echo "$title (FAILED, exit $?: $(tail -3 "$logs/$name.err" | tr '\n' ' '))" >"$logs/$name.title"
  fi
  echo "$*" >"$logs/$name.cmd"
  echo "   $(($(date +%s) - s)) s" >&2
}
if [ "$quick" = 1 ]; then
  step fbank "Front end: patchbay vs torchaudio (bar 1)" "$here/run_fbank.sh" "$build" 100 1
  step ast "AST training step vs PyTorch-Python, achieved vs peak (bar 2)" \
    env PRESETS=tiny STEPS=3 WARMUP=1 "$here/run_ast_train.sh" "$build" 1
  step scan "Selective scan vs the PyTorch reference loop (bar 3)" "$here/run_selective_scan.sh" "$build" 1 1
  step latency "Batch-1 latency, square vs FFTP, AST-base 10 s (bar 4)" env REPEATS=3 "$here/run_latency.sh" "$build" 1 1
else
  step fbank "Front end: patchbay vs torchaudio (bar 1)" "$here/run_fbank.sh" "$build" 200 1 2
  step ast "AST training step vs PyTorch-Python, achieved vs peak (bar 2)" \
    env STEPS=4 WARMUP=1 "$here/run_ast_train.sh" "$build" 3
  step scan "Selective scan vs the PyTorch reference loop (bar 3)" "$here/run_selective_scan.sh" "$build" 1 5
  step latency "Batch-1 latency, square vs FFTP, AST-base 10 s (bar 4)" "$here/run_latency.sh" "$build" 3 1
fi
step sweep "Data path and sweep overhead (bars 5, 6)" "$here/run_sweep.sh" "$build"

/usr/bin/python3 - "$logs" "$out" "$started" "$load_before" "$(cut -d' ' -f1-3 /proc/loadavg)" \
  "$(($(date +%s) - t0))" "$quick" "$("$build/patchbay" --version | tr '\n' ' ')" <<'PY'
import os, shlex, sys
logs, out, started, load_before, load_after, seconds, quick, version = sys.argv[1:9]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
names = ["fbank", "ast", "scan", "latency", "sweep"]
bars = []
for n in names:
    path = os.path.join(logs, n + ".out")
    if not os.path.exists(path):
        continue
    for line in open(path):
        if line.startswith("BAR "):
            tokens = shlex.split(line[4:])
            fields = dict(kv.split("=", 1) for kv in tokens[1:])
            fields["name"] = tokens[0]
            bars.append((n, fields))
def met(f):
    v, b = float(f["value"]), float(f["bar"])
    return v <= b if f.get("lower") == "1" else v >= b
with open(out, "w") as o:
    o.write("# bench/RESULTS.md\n\n")
    o.write("Written by `bench/run_all.sh`" + (" with QUICK=1 (smoke run, not for the record)" if quick == "1" else "")
            + "; how each number is measured and what limits it: bench/README.md. Ratios compare two "
            "implementations inside one script run (these machines are shared and noisy).\n\n")
    o.write(f"- date: {started}, {int(seconds) // 60} min\n- CPU: {cpu}, {os.cpu_count()} logical cores\n")
    o.write(f"- load average before / after: {load_before} / {load_after}\n")
    o.write(f"- patchbay: {version.strip()}\n")
    o.write(f"- OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}\n\n")
    o.write("## The bars\n\n| bar | measured | target | met |\n|---|---|---|---|\n")
    for n, f in bars:
        unit = f.get("unit", "")
        sign = "<=" if f.get("lower") == "1" else ">="
        shown = f["value"] + ("x" if unit == "x" else " %" if unit == "%" else "")
        target = f["bar"] + ("x" if unit == "x" else " %" if unit == "%" else "")
        o.write(f"| `{f['name']}`: {f['detail']} | {shown} | {sign} {target} | {'yes' if met(f) else '**no**'} |\n")
    for n in names:
        title_path = os.path.join(logs, n + ".title")
        if not os.path.exists(title_path):
            continue
        o.write(f"\n## {open(title_path).read().strip()}\n\n`{open(os.path.join(logs, n + '.cmd')).read().strip()}`\n\n")
        text = open(os.path.join(logs, n + ".out")).read().rstrip()
        o.write(text + "\n")
print(f"wrote {out}: {sum(met(f) for _, f in bars)} of {len(bars)} bars met")
PY
