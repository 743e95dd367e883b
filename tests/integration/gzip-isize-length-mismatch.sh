#!/bin/bash
# A gzip member whose length field (ISIZE, the trailer's last 4 bytes) is
# wrong is reported as a length mismatch, as `gzip -t` says "length error";
# what broke: ISA-L returns one code for both, and it was reported as a CRC
# mismatch, sending the user after the wrong kind of damage. A bad CRC32
# still says "CRC mismatch". Both exit 1, for copy and for verify --nobmap,
# one member and the second of two.

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
need_ours
need_cmd python3

failures=0
bad() { log "FAIL: $*"; failures=$((failures + 1)); }

cd "$TEST_TMP" || fail "cd"
mk_sparse_image disk.img "size=3M data=0:64K data=1M:700K data=3M-4K:4K"
"$BMAPTOOL" create -o disk.img.bmap disk.img 2>/dev/null || fail "create"
# NAME.gz with its last member's trailer damaged: isize or crc, and a
# two-member file (the damage in the second).
python3 - <<'PY' || fail "cannot make the damaged files"
import gzip, struct
data = open("disk.img", "rb").read()
half = len(data) // 2
for members, parts in (("one", [data]), ("two", [data[:half], data[half:]])):
    blobs = [gzip.compress(p) for p in parts]
    last = blobs[-1]
    crc, isize = struct.unpack("<II", last[-8:])
    variants = {
        "isize": last[:-4] + struct.pack("<I", (isize + 4096) & 0xFFFFFFFF),
        "crc": last[:-8] + struct.pack("<II", crc ^ 0x10, isize),
    }
    for kind, damaged in variants.items():
        open("%s-%s.gz" % (members, kind), "wb").write(b"".join(blobs[:-1]) + damaged)
PY

check() { # FILE NEEDLE NOT_NEEDLE ARGS...
	local file=$1 needle=$2 not=$3 rc
	shift 3
	"$BMAPTOOL" "$@" >out 2>err
	rc=$?
	if [[ $rc -ne 1 ]]; then
		bad "$file, '$*': exit $rc, expected 1: $(head -c 300 err)"
	elif ! grep -q -- "$needle" err; then
		bad "$file, '$*': no '$needle': $(head -c 400 err)"
	elif grep -q -- "$not" err; then
		bad "$file, '$*': says '$not': $(head -c 400 err)"
	fi
}

for m in one two; do
	gzip -t "$m-isize.gz" 2>&1 | grep -q "length error" ||
		log "note: gzip -t does not call $m-isize.gz a length error"
	check "$m-isize.gz" "length mismatch" "CRC mismatch" copy --bmap disk.img.bmap "$m-isize.gz" out.img
	check "$m-isize.gz" "length mismatch" "CRC mismatch" copy --nobmap "$m-isize.gz" out.img
	check "$m-crc.gz" "CRC mismatch" "length mismatch" copy --bmap disk.img.bmap "$m-crc.gz" out.img
	"$BMAPTOOL" -q copy disk.img good.img || fail "copy of the raw image"
	check "$m-isize.gz" "length mismatch" "CRC mismatch" verify --nobmap "$m-isize.gz" good.img
done

if ((failures)); then
	log "$failures failure(s)"
	exit 1
fi
log "gzip ISIZE damage is a length mismatch, CRC damage a CRC mismatch"
