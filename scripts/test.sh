#!/usr/bin/env bash
# Set-up + the whole test suite through ctest.
#   scripts/test.sh                 # everything
#   scripts/test.sh -L unit         # extra arguments go to ctest
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="${L2M_BUILD_DIR:-$root/build}"
start=$(date +%s)
"$root/scripts/setup.sh"
built=$(date +%s)
cd "$build_dir"
ctest --output-on-failure -j "${L2M_TEST_JOBS:-2}" "$@"
echo "test.sh: build $((built - start)) s, tests $(( $(date +%s) - built )) s"
