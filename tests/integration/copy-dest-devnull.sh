#!/bin/bash
# /dev/null (and /dev/zero) as copy's DEST, to time reading and decoding an
# image: accepted (what broke: "neither a block device nor a regular file"),
# with a map, with --nobmap, compressed, from a pipe; nothing to sync, no
# size check. Other character devices (/dev/full here; a tty alike) are
# refused naming what they are, and so is verify of /dev/null, which keeps
# nothing to read back.

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
need_ours

failures=0
bad() { log "FAIL: $*"; failures=$((failures + 1)); }

cd "$TEST_TMP" || fail "cd"
mk_sparse_image disk.img "size=3M data=0:8K data=2M:300K"
"$BMAPTOOL" create -o disk.img.bmap disk.img 2>/dev/null || fail "create failed"
gzip -k disk.img

# run CODE NEEDLE ARGS...: exit CODE, stderr has NEEDLE, stdout empty.
run() {
	local code=$1 needle=$2 rc
	shift 2
	"$BMAPTOOL" "$@" >out 2>err
	rc=$?
	if [[ $rc -ne $code ]]; then
		bad "'$*': exit $rc, expected $code: $(head -c 400 err)"
	elif [[ -n $needle ]] && ! grep -qF -- "$needle" err; then
		bad "'$*': no '$needle' in: $(head -c 400 err)"
	elif [[ -s out ]]; then
		bad "'$*': wrote to stdout"
	fi
}

for null in /dev/null /dev/zero; do
	[[ -c $null ]] || { log "$null is not a character device here: skipped"; continue; }
	run 0 "copying image 'disk.img' to file '${null#/dev/}' using bmap file 'disk.img.bmap'" \
		copy disk.img "$null"
	run 0 "synchronizing" copy disk.img.gz "$null"
	run 0 "no bmap given" copy --nobmap disk.img.gz "$null"
	"$BMAPTOOL" copy --bmap disk.img.bmap - "$null" <disk.img.gz >out 2>err ||
		bad "copy - $null from a pipe: $(head -c 400 err)"
	# A bmap of a bigger image: no size to compare with, still copied.
	run 0 "" copy disk.img "$null" -q
	[[ -c $null ]] || fail "$null is no longer a character device"
done
# verify: nothing was kept to read back.
run 1 "nothing to read back" verify disk.img /dev/null
# Other character devices: refused, saying which.
if [[ -c /dev/full ]]; then
	run 1 "is a character device" copy disk.img /dev/full
fi

if ((failures)); then
	log "$failures failure(s)"
	exit 1
fi
log "/dev/null and /dev/zero as DEST: ok"
