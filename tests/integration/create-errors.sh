#!/bin/bash
# `bmaptool create` error handling: bad images exit 1 naming the file, bad
# command lines exit 2, and nothing is ever written to stdout on failure
# (the same codes the reference uses).

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
need_ours

failures=0
bad() { log "FAIL: $*"; failures=$((failures + 1)); }

# expect CODE NEEDLE ARGS...: run ours, check the exit code, that stdout is
# empty and (when NEEDLE is not empty) that stderr mentions NEEDLE.
expect() {
	local code=$1 needle=$2 rc
	shift 2
	"$BMAPTOOL" "$@" >"$TEST_TMP/out" 2>"$TEST_TMP/err"
	rc=$?
	if [[ $rc -ne $code ]]; then
		bad "'$*': exit $rc, expected $code; stderr: $(head -c 300 "$TEST_TMP/err")"
	elif [[ -s $TEST_TMP/out ]]; then
		bad "'$*': wrote $(wc -c <"$TEST_TMP/out") bytes to stdout on failure"
	elif [[ -n $needle ]] && ! grep -qF -- "$needle" "$TEST_TMP/err"; then
		bad "'$*': message does not mention '$needle': $(head -c 300 "$TEST_TMP/err")"
	elif [[ ! -s $TEST_TMP/err ]]; then
		bad "'$*': failed without a message"
	fi
}

img=$TEST_TMP/ok.img
mk_sparse_image "$img" "size=1M data=0:4K"

# Image problems: exit 1, message names the file.
: >"$TEST_TMP/empty.img"
expect 1 "$TEST_TMP/empty.img" create "$TEST_TMP/empty.img"
expect 1 "$TEST_TMP/empty.img" create -o "$TEST_TMP/empty.bmap" "$TEST_TMP/empty.img"
expect 1 "$TEST_TMP/missing.img" create "$TEST_TMP/missing.img"
mkdir "$TEST_TMP/dir.img"
expect 1 "$TEST_TMP/dir.img" create "$TEST_TMP/dir.img"
if [[ $(id -u) -ne 0 ]]; then
	cp "$img" "$TEST_TMP/noread.img"
	chmod 000 "$TEST_TMP/noread.img"
	expect 1 "$TEST_TMP/noread.img" create "$TEST_TMP/noread.img"
else
	log "as root an unreadable file is readable: that case is skipped"
fi
# Output that cannot be created.
expect 1 "" create -o "$TEST_TMP/no/such/dir/x.bmap" "$img"

# Usage errors: exit 2.
for bs in 1000 256 abc 0 -4096; do
	expect 2 "" create --blocksize "$bs" "$img"
done
expect 2 "" create --no-such-option "$img"
expect 2 "" create
expect 2 "" no-such-command "$img"
expect 2 ""

# And the valid form still works after all that.
"$BMAPTOOL" create --blocksize 4096 "$img" >"$TEST_TMP/out" 2>"$TEST_TMP/err" ||
	bad "valid create failed: $(cat "$TEST_TMP/err")"
grep -q '<BlockMap>' "$TEST_TMP/out" || bad "valid create wrote no bmap"

[[ $failures -eq 0 ]] || fail "$failures check(s) failed"
log "all error cases behave"
exit 0
