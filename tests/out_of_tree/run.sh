#!/usr/bin/env bash
# Installs the build into a scratch prefix, builds tests/out_of_tree against it with
# find_package(patchbay), and checks that the installed host loads the new plugins: a masker,
# and a dataset whose data `patchbay data` generates. The installed headers are the plugin
# SDK alone: no host header can be included.
# Usage: run.sh BUILD_DIR WORK_DIR
set -euo pipefail
build=$1
work=$2
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"
mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >"$work/install.log"
sdk=$(cd "$work/prefix/include/patchbay" && ls | sort | tr '\n' ' ')
want="audio.hpp error.hpp export.hpp fbank.hpp hash.hpp log.hpp options.hpp patch_grid.hpp plugin.hpp plugin_abi.hpp plugin_kinds.hpp registrar.hpp "
[ "$sdk" = "$want" ] || { echo "installed headers are not the SDK: got '$sdk', want '$want'"; exit 1; }
cmake -S "$here" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$work/prefix" >"$work/configure.log" 2>&1 || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build" >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
for lib in libflip.so libclicks.so; do
  test -f "$work/build/$lib" || { echo "plugin $lib not built"; ls "$work/build"; exit 1; }
done
# The installed host finds its own plugins (lib/patchbay/plugins) and the new one on the path.
out=$(PATCHBAY_PLUGIN_PATH="$work/build" "$work/prefix/bin/patchbay" plugins --json)
for want in '"name": "flip"' '"name": "fftp"' '"version": "0.0.1"'; do
  grep -qF "$want" <<<"$out" || { echo "missing $want in:"; echo "$out"; exit 1; }
done
# `patchbay data` generates any dataset plugin's data, this one's included.
PATCHBAY_PLUGIN_PATH="$work/build" "$work/prefix/bin/patchbay" data clicks --out "$work/clicks" --per-class 3 \
  >"$work/data.log" 2>&1 || { cat "$work/data.log"; exit 1; }
n=$(find "$work/clicks" -name '*.wav' | wc -l)
[ "$n" = 6 ] || { echo "data clicks wrote $n clips, not 6"; cat "$work/data.log"; exit 1; }
grep -q "clicks: 6 clips" "$work/data.log" || { echo "no summary:"; cat "$work/data.log"; exit 1; }
echo "out-of-tree plugins built against the installed SDK, loaded, and one generated its data: OK"
