#!/usr/bin/env bash
# Installs the build into a scratch prefix, builds tests/out_of_tree against it with
# find_package(patchbay), and checks that the installed host loads the new plugin.
# Usage: run.sh BUILD_DIR WORK_DIR
set -euo pipefail
build=$1
work=$2
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"
mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >"$work/install.log"
cmake -S "$here" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$work/prefix" >"$work/configure.log" 2>&1 || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build" >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
test -f "$work/build/libreverse_time.so" || { echo "plugin not built"; ls "$work/build"; exit 1; }
# The installed host finds its own plugins (lib/patchbay/plugins) and the new one on the path.
out=$(PATCHBAY_PLUGIN_PATH="$work/build" "$work/prefix/bin/patchbay" plugins --json)
for want in '"name": "reverse_time"' '"name": "fftp"' '"version": "0.0.1"'; do
  grep -qF "$want" <<<"$out" || { echo "missing $want in:"; echo "$out"; exit 1; }
done
echo "out-of-tree plugin built against the installed package and loaded: OK"
