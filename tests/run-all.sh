#!/bin/sh
# The test command: installs what is needed (apt-get), builds, and runs the
# whole suite with ctest. Tests that need root or loop devices are skipped
# (not failed) where they cannot have them.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
"$top/deploy/install-deps.sh"
BUILD_DIR=$build "$top/deploy/build.sh"
cd "$build"
ctest --output-on-failure -j"${CTEST_JOBS:-1}" "$@"
