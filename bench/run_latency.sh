#!/usr/bin/env bash
# Bar 4: batch-1 CPU latency ratio square(16x16, stride 10) / FFTP(stride 10), AST-base, 10 s
# input (bench/experiments/latency.toml), against the ratio of their paper MACs. The bar: the
# latency ratio is at least 0.8 x the MACs ratio (FFTP's saving in MACs shows up as time).
# `patchbay cost` measures both models in one process (medians of REPEATS forward passes);
# ROUNDS processes alternate, and the ratio of the per-model medians over rounds is reported.
#
# Usage: bench/run_latency.sh [BUILD_DIR] [ROUNDS] [THREADS]   (defaults: build, 3, 1)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
rounds=${2:-3}
threads=${3:-1}
repeats=${REPEATS:-10}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for round in $(seq "$rounds"); do
  "$build/patchbay" cost "$here/experiments/latency.toml" train.threads="$threads" --json \
    --batch 0 --repeats "$repeats" --classes 527 >>"$out"
  echo "round $round done" >&2
done
/usr/bin/python3 - "$out" "$rounds" "$threads" "$repeats" <<'PY'
import json, statistics, sys
text = open(sys.argv[1]).read()
decoder, docs, i = json.JSONDecoder(), [], 0
while i < len(text):
    if text[i].isspace():
        i += 1
        continue
    doc, i = decoder.raw_decode(text, i)
    docs.append(doc)
by = {}
for d in docs:
    for r in d["runs"]:
        by.setdefault(r["patcher"], []).append(r)
sq, ff = by["square"], by["fftp"]
lat = {k: statistics.median(r["latency_ms_median"] for r in v) for k, v in by.items()}
macs = {k: v[0]["paper_macs"] for k, v in by.items()}
tok = {k: v[0]["tokens"] for k, v in by.items()}
lat_ratio, mac_ratio = lat["square"] / lat["fftp"], macs["square"] / macs["fftp"]
print("| model | tokens | paper GMACs | batch-1 latency ms (median over rounds) |")
print("|---|---|---|---|")
for k in ("square", "fftp"):
    print(f"| AST-base {k} | {tok[k]} | {macs[k] / 1e9:.2f} | {lat[k]:.1f} |")
print()
print(f"latency ratio square/FFTP {lat_ratio:.2f}, paper-MACs ratio {mac_ratio:.2f}: "
      f"latency ratio = {lat_ratio / mac_ratio:.2f} x the MACs ratio (bar >= 0.8)")
print(f"BAR latency value={lat_ratio / mac_ratio:.3f} bar=0.8 detail=\"latency ratio {lat_ratio:.2f} vs MACs ratio {mac_ratio:.2f}, {sys.argv[3]} thread(s)\"")
print(f"({sys.argv[2]} rounds x {sys.argv[4]} timed forward passes per model; 527 classes)")
PY
