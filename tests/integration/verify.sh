#!/bin/bash
# `bmaptool verify` (ours) reads the card back from the media and finds
# every damaged range, never trusting the page cache.
#
# - a good card (loop device) and a good regular file pass (exit 0), and the
#   digest read back equals the one copy printed for the data written;
# - one byte changed in a mapped block: exit 1, the range named with its
#   block and byte numbers ("blocks A-B (bytes X-Y)"), "1 of N ranges";
#   two damaged ranges: "2 of N", the first one named;
# - a byte changed in an unmapped block, or on the card past the image's end
#   inside the partial last block, is not the image's business: exit 0; a
#   byte changed inside the partial last block is found;
# - a bmap without checksums (reference `create --no-checksum`) and --nobmap
#   compare byte for byte with the image (raw or compressed): pass when
#   good, fail naming the byte offset of the first difference;
# - the page cache: the card is held open and read through the loop device
#   (so the device's cache holds the good data), then a byte is changed in
#   the backing file behind the device's back: a buffered read still shows
#   the old byte, verify must see the new one and fail.
#
# Without root or loop devices only the regular-file cases run.

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
source "${TESTS_DIR:-$(dirname "$0")/..}/lib/cards.sh"
need_ours
need_reference # its `create` makes the bmaps
need_cmd cmp
need_cmd perl

checked=0
d=$TEST_TMP
M=1048576

# The image: 16 MiB + 1000 bytes; ranges 0-63, 512-767, 1536 (one block),
# 2560-2687 and 4095-4096 (the last block partial: 1000 bytes).
img=$d/disk.img
mk_sparse_image "$img" "size=16M+1000 data=0:256K data=2M:1M data=6M:4K \
	data=10M:512K data=16M-4K:5096"
size=$(stat -c %s "$img")
"$REF" create -o "$img.bmap" "$img" >/dev/null 2>&1 || fail "reference create failed"
"$REF" create --no-checksum -o "$d/nock.bmap" "$img" >/dev/null 2>&1 ||
	fail "reference create --no-checksum failed"
bmap=$img.bmap
nock=$d/nock.bmap
nranges=$(bmap_ranges "$bmap" | wc -l)
[[ $nranges -eq 5 ]] || fail "expected 5 ranges in the bmap, got $nranges"
zstd_ok=0
if command -v zstd >/dev/null 2>&1; then
	zstd -q -c "$img" >"$img.zst" && zstd_ok=1
fi

# check_verify TAG RC REGEX -- ARGS...: `verify ARGS` exits RC and, when
# REGEX is not empty, prints a line matching it (extended, literal case).
# Sets VLOG to the log.
VLOG=$d/verify.log
check_verify() {
	local tag=$1 want=$2 re=$3 rc
	shift 4
	"$BMAPTOOL" verify "$@" >"$VLOG" 2>&1
	rc=$?
	checked=$((checked + 1))
	if [[ $rc -ne $want ]]; then
		bad "$tag: verify exit $rc, expected $want:"
		tail -n 2 "$VLOG" >&2
		return 1
	fi
	if [[ -n $re ]] && ! grep -Eq -- "$re" "$VLOG"; then
		bad "$tag: no message matching /$re/:"
		tail -n 2 "$VLOG" >&2
		return 1
	fi
	[[ -n ${VERBOSE:-} ]] && log "ok: $tag: $(grep -E 'error|matches' "$VLOG" | head -n 1)"
	return 0
}

# same_digest TAG COPY_LOG: the digest verify read back (VLOG) equals the
# one copy wrote.
same_digest() {
	local w r
	w=$(digest_of "$2")
	r=$(digest_of "$VLOG")
	[[ -n $w && $w == "$r" ]] ||
		bad "$1: digest written '$w' != digest read back '$r'"
}

# copy_to DEST [ARGS...]: our copy of the image to DEST; log in $d/copy.log.
copy_to() {
	local dest=$1
	shift
	"$BMAPTOOL" copy "$@" "$img" "$dest" >"$d/copy.log" 2>&1 ||
		fail "our copy to $dest failed: $(tail -n 1 "$d/copy.log")"
}

# Byte offsets used below.
in_range2=$((2 * M + 12345))     # blocks 512-767
in_range4=$((10 * M + 4096 * 7)) # blocks 2560-2687
in_last=$((16 * M + 500))        # block 4096, partial, inside the image
past_end=$((size + 100))         # block 4096, past the image's end
unmapped=$((4 * M + 77))         # a hole
R2="blocks 512-767 \\(bytes 2097152-3145727\\)"
R5="blocks 4095-4096 \\(bytes 16773120-16778215\\)"

# ---- a regular file ----------------------------------------------------------

file=$d/out.img
copy_to "$file" --bmap "$bmap"
check_verify "good file" 0 "" -- --bmap "$bmap" "$img" "$file" &&
	same_digest "good file" "$d/copy.log"
check_verify "good file, no-checksum bmap" 0 "" -- --bmap "$nock" "$img" "$file"
check_verify "good file, --nobmap" 0 "" -- --nobmap "$img" "$file"
poke "$file" "$in_range2"
check_verify "damaged file" 1 "1 of 5 ranges are bad.*$R2" -- --bmap "$bmap" "$img" "$file"
check_verify "damaged file, no-checksum bmap" 1 "$R2.*first difference at byte $in_range2([^0-9]|$)" -- \
	--bmap "$nock" "$img" "$file"
check_verify "damaged file, --nobmap" 1 "first difference at byte $in_range2([^0-9]|$)" -- \
	--nobmap "$img" "$file"
poke "$file" "$in_range2"
check_verify "repaired file" 0 "" -- --bmap "$bmap" "$img" "$file"
poke "$file" "$in_last"
check_verify "damaged partial last block (file)" 1 "1 of 5 ranges are bad.*$R5" -- \
	--bmap "$bmap" "$img" "$file"
poke "$file" "$in_last"
rm -f "$file"

# ---- loop devices ----------------------------------------------------------

if ! have_loop; then
	log "not root or no free loop device: card cases skipped"
	finish "$checked verify checks passed (regular files only)"
fi

new_card "$(card_size "$size")" card
card=$CARD_DEV
backing=$CARD_FILE

copy_to "$card" --bmap "$bmap"
check_verify "good card" 0 "everything matches" -- --bmap "$bmap" "$img" "$card" &&
	same_digest "good card" "$d/copy.log"
check_verify "good card, no-checksum bmap" 0 "" -- --bmap "$nock" "$img" "$card"
[[ $zstd_ok -eq 1 ]] &&
	check_verify "good card, no-checksum bmap, .zst image" 0 "" -- --bmap "$nock" "$img.zst" "$card"

# Don't-care bytes: a hole, and the card past the image's end.
poke "$backing" "$unmapped"
poke "$backing" "$past_end"
check_verify "byte changed in a hole and past the image's end" 0 "" -- --bmap "$bmap" "$img" "$card"
check_verify "the same, no-checksum bmap" 0 "" -- --bmap "$nock" "$img" "$card"

# The page cache. Hold the card open so that closing it does not drop its
# cache, fill the cache through the device, then change a byte in the
# backing file behind the device's back.
exec {holdfd}<"$card"
cat "$card" >/dev/null
old=$(od -An -tu1 -j "$in_range2" -N1 "$backing" | tr -d ' ')
poke "$backing" "$in_range2"
cached=$(dd if="$card" bs=1 skip="$in_range2" count=1 status=none | od -An -tu1 | tr -d ' ')
if [[ $cached == "$old" ]]; then
	log "the loop device's cache still shows the old byte: good, the next check means something"
else
	log "note: the loop device's cache did not keep the old byte (the page-cache check is weaker)"
fi
check_verify "damaged behind the page cache" 1 "1 of 5 ranges are bad.*$R2" -- \
	--bmap "$bmap" "$img" "$card"
check_verify "damaged behind the page cache, no-checksum bmap" 1 \
	"first difference at byte $in_range2([^0-9]|$)" -- --bmap "$nock" "$img" "$card"
exec {holdfd}<&-

# A second damaged range, this time written through the device.
poke "$card" "$in_range4"
check_verify "two damaged ranges" 1 "2 of 5 ranges are bad; the first is $R2" -- \
	--bmap "$bmap" "$img" "$card"
check_verify "two damaged ranges, no-checksum bmap" 1 "2 of 5 ranges are bad; the first is $R2" -- \
	--bmap "$nock" "$img" "$card"
[[ $zstd_ok -eq 1 ]] &&
	check_verify "two damaged ranges, no-checksum bmap, .zst image" 1 \
		"first difference at byte $in_range2([^0-9]|$)" -- --bmap "$nock" "$img.zst" "$card"
poke "$card" "$in_range4"
poke "$card" "$in_range2"
check_verify "repaired card" 0 "" -- --bmap "$bmap" "$img" "$card"

# The partial last block, inside the image.
poke "$card" "$in_last"
check_verify "damaged partial last block" 1 "1 of 5 ranges are bad.*$R5" -- \
	--bmap "$bmap" "$img" "$card"
poke "$card" "$in_last"

# --nobmap: the whole image on the card (holes written as zeros).
copy_to "$card" --nobmap
check_verify "good card, --nobmap" 0 "" -- --nobmap "$img" "$card" &&
	same_digest "good card, --nobmap" "$d/copy.log"
[[ $zstd_ok -eq 1 ]] &&
	check_verify "good card, --nobmap, .zst image" 0 "" -- --nobmap "$img.zst" "$card"
poke "$backing" "$unmapped" # not a hole for --nobmap: data that is zero
check_verify "damaged card, --nobmap" 1 "first difference at byte $unmapped([^0-9]|$)" -- \
	--nobmap "$img" "$card"
[[ $zstd_ok -eq 1 ]] &&
	check_verify "damaged card, --nobmap, .zst image" 1 \
		"first difference at byte $unmapped([^0-9]|$)" -- --nobmap "$img.zst" "$card"

detach_loop "$card"
finish "$checked verify checks passed (files and loop devices)"
