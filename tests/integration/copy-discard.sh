#!/bin/bash
# `bmaptool copy --discard`: the unmapped ranges of the image are discarded
# (BLKDISCARD) on the card, and nothing else is. Checked on loop devices
# (where a discarded range reads back as zeros), read back with O_DIRECT:
#
#   512-byte sectors, the bmap of a sparse image with holes of several sizes
#   (at the start, 4 KiB, 120 KiB, 1.5 MiB, and 904 bytes at the end of an
#   image of odd size)            -> every whole sector of every gap is zeros,
#                                    every mapped byte is the image's, the
#                                    image's partial last sector and every
#                                    byte past the image keep the pattern;
#                                    the info line counts exactly those bytes
#   the same without --discard    -> every unmapped byte keeps the pattern
#   4096-byte logical sectors (losetup --sector-size) and a bmap of 512-byte
#   blocks whose gaps start and end inside sectors
#                                 -> gaps cut inward to whole sectors: the
#                                    sectors shared with mapped data keep
#                                    their pattern bytes, mapped data intact
#   a loop device over a file on ramfs (no punch hole: the loop device has
#   discard_max_bytes 0)          -> warning "does not support discard", exit 0
#   refused cards (mounted, too small, read-only)
#                                 -> no discard at all: content unchanged
#   a regular-file DEST           -> holes punched, the file equals the image
#   --nobmap                      -> says there is nothing to discard
#
# Needs root and loop devices (exit 77 otherwise).

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
source "${TESTS_DIR:-$(dirname "$0")/..}/lib/cards.sh"
source "${TESTS_DIR:-$(dirname "$0")/..}/lib/discard.sh"
need_ours
need_root
need_loop
need_cmd python3
need_cmd blockdev

d=$TEST_TMP

# readback DEV: the whole device, read with O_DIRECT, into $d/readback.
readback() { read_back "$1" "$d/readback"; }

# ---- the image: holes of several sizes, an odd size ------------------------
# 64K data at 64K (a hole before the first range), a 4K hole at 128K, a
# 120K hole before 1M... and 4096 bytes at 6M, the last 904 bytes (a
# partial block, not a multiple of 4 KiB nor of 512) being a hole.
img=$d/disk.img
size=$((6 * 1048576 + 5000))
mk_image_bmap "$img" "size=$size data=64K:64K data=132K:8K data=1M:512K data=3M:1M zero=5M:4K data=6M:4096"
bmap=$img.bmap
[[ $(bmap_field "$bmap" ImageSize) == "$size" ]] || fail "image size: $(bmap_field "$bmap" ImageSize)"
log "image: $size bytes, ranges: $(bmap_ranges "$bmap" | tr '\n' ' ')"
csize=$(card_size "$size")

# ---- 512-byte sectors --------------------------------------------------------
new_card "$csize" card512
card=$CARD_DEV
"$BMAPTOOL" copy --discard --bmap "$bmap" "$img" "$card" >"$d/copy.log" 2>&1 ||
	fail "copy --discard failed: $(tail -n 3 "$d/copy.log")"
readback "$card"
want=$(check_unmapped "$d/readback" "$img" "$bmap" 512 discarded) ||
	bad "512-byte sectors, --discard: the card is not as it should be"
got=$(discarded_bytes "$d/copy.log")
[[ -n $want && $got == "$want" ]] ||
	bad "512-byte sectors: the info line says '${got}' bytes discarded, expected $want: $(grep -E "info: discarded|support discard" "$d/copy.log")"
grep -qi "does not support discard" "$d/copy.log" && bad "512-byte sectors: a warning about discard support"
"$BMAPTOOL" -q verify --bmap "$bmap" "$img" "$card" || bad "verify after --discard failed"
log "512-byte sectors: $want bytes discarded"

# The same card again, without --discard: nothing unmapped is touched.
refill_dev "$card" || fail "cannot refill $card"
"$BMAPTOOL" copy --bmap "$bmap" "$img" "$card" >"$d/copy.log" 2>&1 ||
	fail "copy failed: $(tail -n 3 "$d/copy.log")"
readback "$card"
check_unmapped "$d/readback" "$img" "$bmap" 512 kept >/dev/null ||
	bad "without --discard: an unmapped byte lost its pattern"
grep -Eq "info: discarded|support discard" "$d/copy.log" &&
	bad "without --discard: $(grep -E "info: discarded|support discard" "$d/copy.log")"
detach_loop "$card"
rm -f "$CARD_FILE"

# ---- 4096-byte logical sectors, gaps inside sectors ----------------------------
# A fully written image (random bytes everywhere: a wrongly discarded mapped
# byte shows) with a bmap of 512-byte blocks written by hand: gaps
# [0,1536) (no whole sector), [66560,102400), [154112,512000), [515072,515584)
# (512 bytes), [517632,6292480); the last, partial block is mapped.
img4=$d/full.img
pattern 0 "$size" >"$img4" || fail "cannot write $img4"
python3 - "$img4" 512 "3-130,200-300,1000-1005,1007-1010,12290-12297" "$img4.bmap" <<-'PY' ||
	import hashlib, sys
	path, bs, spec, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
	data = open(path, "rb").read()
	size = len(data)
	lines, mapped = [], 0
	for r in spec.split(","):
	    a, b = map(int, r.split("-"))
	    s, e = a * bs, min((b + 1) * bs, size)
	    rng = str(a) if a == b else "%d-%d" % (a, b)
	    lines.append('        <Range chksum="%s"> %s </Range>' % (hashlib.sha256(data[s:e]).hexdigest(), rng))
	    mapped += b - a + 1
	open(out, "w").write(
	    '<?xml version="1.0" ?>\n<bmap version="2.0">\n'
	    "    <ImageSize> %d </ImageSize>\n    <BlockSize> %d </BlockSize>\n"
	    "    <BlocksCount> %d </BlocksCount>\n    <MappedBlocksCount> %d </MappedBlocksCount>\n"
	    "    <ChecksumType> sha256 </ChecksumType>\n"
	    "    <BmapFileChecksum> %s </BmapFileChecksum>\n    <BlockMap>\n%s\n    </BlockMap>\n</bmap>\n"
	    % (size, bs, -(-size // bs), mapped, "0" * 64, "\n".join(lines)))
	PY
	fail "cannot write the 512-byte-block bmap"
fix_bmap_checksum "$img4.bmap"
fill_pattern "$CARD_DIR/card4k.bin" "$csize"
attach_card "$CARD_DIR/card4k.bin" --sector-size 4096
card=$CARD_DEV
[[ $(blockdev --getss "$card") == 4096 ]] || fail "$card has $(blockdev --getss "$card")-byte sectors, not 4096"
"$BMAPTOOL" copy --discard --bmap "$img4.bmap" "$img4" "$card" >"$d/copy.log" 2>&1 ||
	fail "copy --discard (4096-byte sectors) failed: $(tail -n 3 "$d/copy.log")"
readback "$card"
want=$(check_unmapped "$d/readback" "$img4" "$img4.bmap" 4096 discarded) ||
	bad "4096-byte sectors, --discard: the card is not as it should be"
got=$(discarded_bytes "$d/copy.log")
[[ -n $want && $got == "$want" ]] ||
	bad "4096-byte sectors: the info line says '${got}' bytes discarded, expected $want"
# (0 + 32768 + 356352 + 0 + 5771264: the gaps above, cut inward to 4 KiB.)
[[ $want == $((32768 + 356352 + 5771264)) ]] ||
	bad "4096-byte sectors: $want bytes to discard, by hand $((32768 + 356352 + 5771264))"
"$BMAPTOOL" -q verify --bmap "$img4.bmap" "$img4" "$card" || bad "verify (4096-byte sectors) failed"
log "4096-byte sectors: $want bytes discarded"
detach_loop "$card"
rm -f "$CARD_DIR/card4k.bin"

# ---- a device that cannot discard: a loop device over a file on ramfs --------
# ramfs has no fallocate, so the loop device offers no discard at all
# (discard_max_bytes 0).
ramfs=$d/ramfs
mkdir -p "$ramfs"
if mount -t ramfs ramfs "$ramfs" 2>"$d/mount.err"; then
	# Lazily: the loop device may still hold the file (it is detached after this).
	on_exit "umount -l '$ramfs' 2>/dev/null"
	fill_pattern "$ramfs/card.bin" "$csize"
	attach_card "$ramfs/card.bin"
	card=$CARD_DEV
	max=$(cat "/sys/block/${card#/dev/}/queue/discard_max_bytes")
	[[ $max == 0 ]] || log "note: $card over ramfs has discard_max_bytes $max"
	"$BMAPTOOL" copy --discard --bmap "$bmap" "$img" "$card" >"$d/copy.log" 2>&1 ||
		bad "copy --discard onto a card without discard: exit $?, expected 0: $(tail -n 2 "$d/copy.log")"
	grep -q "warning: device '$card' does not support discard: the unmapped ranges were not discarded" \
		"$d/copy.log" || bad "no warning that $card does not support discard: $(cat "$d/copy.log")"
	grep -q "info: discarded" "$d/copy.log" && bad "a card without discard says bytes were discarded"
	readback "$card"
	check_unmapped "$d/readback" "$img" "$bmap" 512 kept >/dev/null ||
		bad "a card without discard: an unmapped byte lost its pattern"
	detach_loop "$card"
	umount "$ramfs" || log "could not unmount $ramfs"
else
	bad "cannot mount ramfs: $(cat "$d/mount.err")"
fi

# ---- refused cards: no discard at all -------------------------------------------
# sum_dev DEV: the SHA-256 of the whole device, read with O_DIRECT.
sum_dev() { dd if="$1" bs=1M iflag=direct status=none | sha256sum; }

# Mounted (a file system on the card; O_EXCL fails).
if command -v mkfs.ext2 >/dev/null 2>&1; then
	fill_pattern "$CARD_DIR/mounted.bin" "$csize"
	mkfs.ext2 -q -F "$CARD_DIR/mounted.bin" >/dev/null 2>&1 || fail "mkfs.ext2 failed"
	attach_card "$CARD_DIR/mounted.bin"
	card=$CARD_DEV
	mkdir -p "$d/mnt"
	if mount -t ext2 "$card" "$d/mnt" 2>"$d/mount.err"; then
		on_exit "umount '$d/mnt' 2>/dev/null"
		before=$(sum_dev "$card")
		"$BMAPTOOL" copy --discard --bmap "$bmap" "$img" "$card" >"$d/copy.log" 2>&1 &&
			bad "copy --discard onto a mounted card succeeded"
		grep -qi "busy" "$d/copy.log" || bad "mounted card: $(tail -n 1 "$d/copy.log")"
		grep -q "info: discarded" "$d/copy.log" && bad "mounted card: $(grep "info: discarded" "$d/copy.log")"
		[[ $(sum_dev "$card") == "$before" ]] || bad "the mounted card was changed"
		umount "$d/mnt" || fail "cannot unmount $d/mnt"
	else
		log "cannot mount ext2 ($(cat "$d/mount.err")): the mounted case is skipped"
	fi
	detach_loop "$card"
	rm -f "$CARD_DIR/mounted.bin"
else
	log "no mkfs.ext2: the mounted case is skipped"
fi

# Too small, and read-only.
new_card $((size / 2)) small
"$BMAPTOOL" copy --discard --bmap "$bmap" "$img" "$CARD_DEV" >"$d/copy.log" 2>&1 &&
	bad "copy --discard onto a card too small succeeded"
grep -qi "too small" "$d/copy.log" || bad "small card: $(tail -n 1 "$d/copy.log")"
dev_is_pattern "$CARD_DEV" || bad "the card too small was changed (discarded?)"
detach_loop "$CARD_DEV"
fill_pattern "$CARD_DIR/ro.bin" "$csize"
attach_card "$CARD_DIR/ro.bin" -r
"$BMAPTOOL" copy --discard --bmap "$bmap" "$img" "$CARD_DEV" >"$d/copy.log" 2>&1 &&
	bad "copy --discard onto a read-only card succeeded"
grep -qi "read-only" "$d/copy.log" || bad "read-only card: $(tail -n 1 "$d/copy.log")"
dev_is_pattern "$CARD_DEV" || bad "the read-only card was changed"
detach_loop "$CARD_DEV"

# ---- files ----------------------------------------------------------------------
"$BMAPTOOL" copy --discard --bmap "$bmap" "$img" "$d/out.img" >"$d/copy.log" 2>&1 ||
	bad "copy --discard to a file failed: $(tail -n 2 "$d/copy.log")"
grep -q "holes punched in the file" "$d/copy.log" || bad "file DEST: $(grep -E "info: discarded|support discard" "$d/copy.log")"
cmp -s "$img" "$d/out.img" || bad "file DEST: the file differs from the image"
"$BMAPTOOL" copy --discard --nobmap "$img" "$d/out.img" >"$d/copy.log" 2>&1 ||
	bad "copy --discard --nobmap failed: $(tail -n 2 "$d/copy.log")"
grep -q "nothing to discard with --nobmap" "$d/copy.log" || bad "--nobmap: $(grep -E "info: discarded|support discard" "$d/copy.log")"

finish "discard checked: 512- and 4096-byte sectors, without --discard, no discard support, refused cards, files"
