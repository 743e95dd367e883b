#!/bin/sh
# Configures and builds bmap-station into build/ (or $BUILD_DIR).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
werror=OFF
[ -n "${CI:-}" ] && werror=ON
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBMAP_WERROR=$werror >/dev/null
cmake --build "$build" -j"$(nproc)"
