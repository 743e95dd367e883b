#!/bin/bash
# `bmaptool --version` is one line on stdout, as the reference's argparse
# prints it, with a 3.x version that scripts compare with the reference's
# (what broke: it printed "bmaptool 0.1.0", older than every 3.x), and that
# says it is this implementation: "bmaptool 3.9.0+station.V" with V
# bmap-station's own version. Checked the way scripts check it: dpkg
# --compare-versions, sort -V, and PEP 440 (Python's packaging, where
# installed: pip and setuptools vendor it).

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
need_ours

"$BMAPTOOL" --version >"$TEST_TMP/out" 2>"$TEST_TMP/err" || fail "--version failed"
[[ -s $TEST_TMP/err ]] && fail "--version wrote to stderr: $(cat "$TEST_TMP/err")"
[[ $(wc -l <"$TEST_TMP/out") -eq 1 ]] || fail "--version: not one line: $(cat "$TEST_TMP/out")"
line=$(cat "$TEST_TMP/out")
[[ $line =~ ^bmaptool\ (3\.[0-9]+\.[0-9]+)\+station\.([0-9][0-9.]*)$ ]] ||
	fail "--version: '$line' is not 'bmaptool 3.X.Y+station.V'"
version=${line#bmaptool }
own=${BASH_REMATCH[2]}
# bmap-station's version, where it is built beside: the same V.
if [[ -x ${BUILD_DIR:-}/bmap-station ]]; then
	st=$("$BUILD_DIR/bmap-station" --version 2>/dev/null)
	[[ $st == "bmap-station $own" ]] || fail "--version says station.$own, bmap-station says '$st'"
fi
# The second word, as scripts take it (`awk '{print $2}'`, `cut -d' ' -f2`).
[[ $(awk '{print $2}' "$TEST_TMP/out") == "$version" ]] || fail "awk: second word not the version"

if command -v dpkg >/dev/null; then
	dpkg --compare-versions "$version" ge 3.9 || fail "dpkg: $version < 3.9"
	dpkg --compare-versions "$version" gt 3.6 || fail "dpkg: $version <= 3.6"
	dpkg --compare-versions "$version" lt 4 || fail "dpkg: $version >= 4"
fi
[[ $(printf '3.6\n%s\n3.10.0\n' "$version" | sort -V | sed -n 2p) == "$version" ]] ||
	fail "sort -V does not put $version between 3.6 and 3.10.0"

if python3 -c 'from pip._vendor.packaging import version' 2>/dev/null ||
	python3 -c 'import packaging.version' 2>/dev/null; then
	python3 - "$version" <<'PY' || fail "PEP 440: $version is not a valid 3.x version"
import sys
try:
    from packaging.version import Version
except ImportError:
    from pip._vendor.packaging.version import Version
v = Version(sys.argv[1])
assert v.release[0] == 3 and Version("3.9") <= v < Version("4"), v
assert v.local and v.local.startswith("station"), v.local
PY
else
	log "no Python packaging module: the PEP 440 check is skipped"
fi
log "--version: '$line'"
