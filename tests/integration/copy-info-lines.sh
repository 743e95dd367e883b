#!/bin/bash
# `copy` says what the reference says, in its order and words, where a
# user (or a script reading stderr) notices: the bmap discovered, "block
# map format version", the blocks line, "copying image 'I' to file 'D'
# using bmap file 'B'" (a file and the bmap by their last component),
# "no bmap given, copy entire image to 'D'" for --nobmap, "synchronizing
# 'D'" and "copying time: ..., copying speed ...". Our extra lines are
# allowed only from a short list, and stdout stays empty (upstream's tests
# assert it). What broke: no "using bmap file" part, the image by its full
# path, "block map format version (none)" with --nobmap, and
# "synchronizing" printed after the sync instead of before it (checked with
# strace where it is allowed).
# Compared with bmaptool-3.9 where installed, else $REF (Debian's 3.6,
# which prints the same lines).

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
need_ours
ref=$REF
command -v bmaptool-3.9 >/dev/null && ref=$(command -v bmaptool-3.9)
[[ -x $ref ]] || skip "no reference bmaptool (bmaptool-3.9 or $REF)"
log "reference: $ref"

failures=0
bad() { log "FAIL: $*"; failures=$((failures + 1)); }

cd "$TEST_TMP" || fail "cd"
mkdir sub
mk_sparse_image sub/disk.img "size=2M data=0:8K data=1M:100K"
"$ref" create -o sub/disk.img.bmap sub/disk.img 2>/dev/null || fail "reference create failed"
cp sub/disk.img.bmap given.bmap
gzip -k -c sub/disk.img >sub/disk.img.gz

# Our lines that the reference does not print, and that say something.
extra='^bmaptool: info: sha256 of the data written: [0-9a-f]{64}$'

# lines TOOL ARGS...: its stderr, times and speeds made comparable.
lines() {
	local tool=$1
	shift
	rm -f out.img
	"$tool" "$@" >stdout 2>stderr || { bad "$tool $*: failed: $(head -c 300 stderr)"; return; }
	[[ -s stdout ]] && bad "$tool $*: wrote to stdout: $(head -c 200 stdout)"
	sed -E 's/^(bmaptool: info: copying time: ).*/\1T/' stderr
}

for args in "sub/disk.img out.img" "--bmap given.bmap sub/disk.img out.img" \
	"sub/disk.img $TEST_TMP/out.img" "--nobmap sub/disk.img out.img" \
	"sub/disk.img.gz out.img"; do
	# shellcheck disable=SC2086 # ARGS are words
	lines "$ref" copy $args >want
	# shellcheck disable=SC2086
	lines "$BMAPTOOL" copy $args >got
	grep -Ev "$extra" got >got.filtered
	if ! diff -u want got.filtered >diff; then
		bad "copy $args: not the reference's lines:"
		cat diff >&2
	fi
done

# "synchronizing" is said before the sync, not after it.
if strace -f -o /dev/null true 2>/dev/null; then
	rm -f out.img
	# LeakSanitizer cannot run under ptrace: the runs above look for leaks.
	ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" \
		strace -f -e trace=fsync,fdatasync,write -o trace "$BMAPTOOL" copy sub/disk.img \
		out.img 2>/dev/null || bad "copy under strace failed"
	say=$(grep -n "synchronizing 'out.img'" trace | head -1 | cut -d: -f1)
	sync=$(grep -nE '(fsync|fdatasync)\(' trace | head -1 | cut -d: -f1)
	if [[ -z $say || -z $sync ]]; then
		bad "strace: no 'synchronizing' line ($say) or no fsync ($sync)"
	elif ((say > sync)); then
		bad "'synchronizing' printed after the sync (trace lines $say > $sync)"
	fi
else
	log "strace cannot trace here: the order of 'synchronizing' and the sync is not checked"
fi

if ((failures)); then
	log "$failures failure(s)"
	exit 1
fi
log "copy's info lines are the reference's"
