#!/bin/sh
# The test command: installs what is needed (apt-get), builds, and runs the
# whole suite with ctest (unit tests also under valgrind's memcheck). Then
# builds again with ASan + UBSan (build-sanitizers/) and runs the suite once
# more there, without the reference comparisons; SANITIZERS=full runs all of
# it there, SANITIZERS=0 skips that second pass. Tests that need root or
# loop devices are skipped (not failed) where they cannot have them.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
"$top/deploy/install-deps.sh"
BUILD_DIR=$build "$top/deploy/build.sh"
cd "$build"
# Two at a time: tests that use loop devices, udevd or the package hold a
# resource lock (tests/CMakeLists.txt), so only the others run alongside them.
ctest --output-on-failure -j"${CTEST_JOBS:-2}" "$@"

[ "${SANITIZERS:-1}" = 0 ] && exit 0
echo "run-all: the suite again, built with ASan and UBSan" >&2
san=${SANITIZER_BUILD_DIR:-$top/build-sanitizers}
BUILD_DIR=$san CMAKE_EXTRA="-DENABLE_SANITIZERS=ON" "$top/deploy/build.sh"
cd "$san"
# The soak test's 200 cycles ran above; here a shorter run looks for memory
# errors on the same paths. The comparisons with the reference bmaptool and
# the package test spend their time in Python and dpkg, not in our code: left
# out here to keep CI short (SANITIZERS=full runs them too).
skip='integration/(copy-vs-reference|create-vs-reference|copy-reference-accepts|package)$'
[ "${SANITIZERS:-1}" = full ] && skip='^$'
CYCLES=${SANITIZER_CYCLES:-30} ctest --output-on-failure -j"${CTEST_JOBS:-2}" -E "$skip" "$@"
