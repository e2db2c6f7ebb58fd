#!/usr/bin/env bash
# Builds and tests patchbay against LibTorch 2.x without touching this machine's own
# packages: Debian 13 ("trixie", LibTorch 2.6, GCC 14, Boost 1.83, fmt 10, numpy 2) in a
# chroot made by debootstrap, with this checkout bind-mounted read-only into it. CI stays on
# Debian 12's LibTorch 1.13; this is how the 2.x path (framework/src/torch_compat.hpp) is
# checked. Needs root, debootstrap and ~6 GB; the first run downloads ~2 GB of packages.
#
# Usage: sudo tools/libtorch2-check.sh [CHROOT_DIR]    (default /var/tmp/patchbay-trixie)
#   SUITE=bookworm-backports or another Debian suite to try another LibTorch.
# Rerun to rebuild and retest; the chroot and its build folder (/build26 inside) are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
root=${1:-/var/tmp/patchbay-trixie}
suite=${SUITE:-trixie}
[ "$(id -u)" -eq 0 ] || { echo "libtorch2-check: run as root (debootstrap, chroot, mount)" >&2; exit 2; }
command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap

if [ ! -x "$root/usr/bin/apt-get" ]; then
  debootstrap --variant=minbase "$suite" "$root" http://deb.debian.org/debian
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"
mkdir -p "$root/src"
for m in proc dev sys; do mountpoint -q "$root/$m" || mount --bind "/$m" "$root/$m"; done
mountpoint -q "$root/src" || mount --bind -o ro "$src" "$root/src"
trap 'umount "$root/src" "$root/sys" "$root/dev" "$root/proc" 2>/dev/null || true' EXIT

# setup.sh's package list, read from it so the two cannot drift apart.
packages=$(sed -n '/^packages=(/,/^)/p' setup.sh | sed 's/#.*//' | tr -s ' \n' ' ' | sed 's/packages=(//; s/)//')
chroot "$root" bash -c "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq &&
  apt-get install -y -qq --no-install-recommends $packages >/dev/null"
chroot "$root" bash -c 'dpkg-query -W -f "LibTorch \${Version}\n" libtorch-dev; g++ --version | head -1'
chroot "$root" bash -c 'cmake -S /src -B /build26 -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null &&
  cmake --build /build26 -j "$(nproc)" && ctest --test-dir /build26 --output-on-failure'
