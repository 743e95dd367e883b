#!/bin/sh
# Configures and builds bmap-station into build/ (or $BUILD_DIR); CMAKE_EXTRA
# adds cmake options (e.g. -DENABLE_SANITIZERS=ON).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
werror=OFF
[ -n "${CI:-}" ] && werror=ON
# shellcheck disable=SC2086 # CMAKE_EXTRA: more -D options, split on spaces
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBMAP_WERROR=$werror \
	${CMAKE_EXTRA:-} >/dev/null
cmake --build "$build" -j"$(nproc)"
