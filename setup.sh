#!/usr/bin/env bash
# patchbay setup: installs the Debian 12 packages patchbay needs (only when something is
# missing), then configures and builds into build/. Safe to run again at any time.
#
#   ./setup.sh            install + configure + build the CLI and the plugins (what the quick
#                         start needs; Release, preset "release")
#   ./setup.sh --tests    the same, then everything else: the test suites and the benchmarks
#   ./setup.sh --no-build install only
set -euo pipefail
cd "$(dirname "$0")"

packages=(
  build-essential cmake ninja-build ccache git pkg-config python3
  libtorch-dev                                   # LibTorch 1.13 (C++)
  libgloo-dev                                    # headers c10d's ProcessGroupGloo includes (run-dist)
  libopenblas-dev libopenblas0-openmp            # BLAS; the OpenMP build avoids a thread fight
  libboost-program-options-dev libboost-filesystem-dev libboost-dev  # CLI, Boost.DLL
  libtomlplusplus-dev libfmt-dev libspdlog-dev nlohmann-json3-dev    # config, text, logs, JSON
  libhdf5-dev hdf5-tools                         # results files
  libsndfile1-dev libsoxr-dev                    # audio decoding and resampling
  libespeak-ng-dev espeak-ng-data                # voices of the built-in keywords dataset
  libfluidsynth-dev fluid-soundfont-gm           # synth + soundfont of the built-in instruments dataset
  libstb-dev                                     # PNG images (patchbay mask)
  gnuplot-nox                                    # patchbay report's plots
  doctest-dev python3-h5py python3-pandas        # tests (they read results as users do)
  python3-torch                                  # tests: tools/load_weights.py checks exported weights
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all Debian packages present"
fi

case "${1:-}" in
  ""|--no-build|--tests) ;;
  *) echo "setup: unknown option '$1' (expected --tests or --no-build)" >&2; exit 2 ;;
esac
if [ "${1:-}" = "--no-build" ]; then exit 0; fi

# ccache with a precompiled header needs these (docs/platform.md); harmless without ccache.
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
cmake --preset release
if [ "${1:-}" = "--tests" ]; then
  cmake --build --preset release
  echo "setup: built build/patchbay, build/plugins/ and the tests (ctest --test-dir build)"
else
  cmake --build --preset release --target cli
  echo "setup: built build/patchbay and build/plugins/ (./setup.sh --tests adds the tests)"
fi
