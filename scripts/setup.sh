#!/usr/bin/env bash
# Installs the Debian packages l2m needs (only the missing ones) and builds it.
# Idempotent: a second run installs nothing and rebuilds only what changed.
#   scripts/setup.sh            # install + build into ./build
#   L2M_BUILD_DIR=dir scripts/setup.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="${L2M_BUILD_DIR:-$root/build}"

mapfile -t wanted < <(grep -v '^\s*#' "$root/scripts/packages.txt" | sed '/^\s*$/d')
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing ${#missing[@]} missing Debian packages: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all Debian packages present"
fi

jobs="${L2M_JOBS:-$(nproc)}"
cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
echo "setup: building in $build_dir with $jobs jobs"
cmake --build "$build_dir" -j "$jobs"
echo "setup: done; the program is $build_dir/colmap_plugin/l2m"
