#!/bin/bash
# `bmaptool copy` (ours) refuses what it must refuse, with exit 1 (2 for a
# usage error) and a message that says why; when the problem can be seen
# before writing, the card must still hold its 0xA5 pattern afterwards.
#
#   bmap damaged (its own checksum no longer matches)    -> "own checksum", untouched
#   range checksum wrong, self-checksum fixed up          -> "checksum mismatch for blocks range A-B"
#   compressed image cut in the middle (every codec)      -> "truncated"
#   compressed image with bytes flipped in the middle     -> "corrupt" (--nobmap); with the
#                                    bmap also "checksum mismatch" or "does not belong"
#   bmap of another image (same size / smaller / bigger) -> "checksum mismatch" or "does not belong"
#   bmap of an unsupported major version (3.0)           -> "not supported", untouched
#   card smaller than the image                          -> "too small", untouched
#   card held open with O_EXCL by another process        -> "busy", untouched
#   read-only card (losetup -r, blockdev --setro)        -> "read-only", untouched
#   --removable-device on a loop device (not removable)  -> "not removable", untouched
#   /dev path that does not exist                        -> "does not exist", nothing created
#   --nobmap together with --bmap                        -> exit 2, untouched
#   compressed image or a pipe without a bmap            -> mentions --nobmap, untouched
#
# A partition node (sdX1 rather than sdX) is refused too, but the kernel here
# has no partition support (losetup -P makes no pN nodes): not tested.
#
# File-target cases run everywhere; loop device cases need root (else skipped).
# VERBOSE=1 logs the message each refusal printed.

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
source "${TESTS_DIR:-$(dirname "$0")/..}/lib/cards.sh"
need_ours
need_reference # its `create` makes the bmaps
need_cmd cmp
need_cmd perl

checked=0

# refuse TAG RC REGEX CARD -- CMD...: CMD must exit RC and print a message
# matching the extended REGEX (case-insensitive); CARD, when not "-", is a
# loop device that must still hold its pattern afterwards.
refuse() {
	local tag=$1 want=$2 re=$3 card=$4 rc
	shift 5
	"$@" >"$TEST_TMP/out.log" 2>&1
	rc=$?
	checked=$((checked + 1))
	if [[ $rc -ne $want ]]; then
		bad "$tag: exit $rc, expected $want:"
		tail -n 3 "$TEST_TMP/out.log" >&2
	elif ! grep -Eqi -- "$re" "$TEST_TMP/out.log"; then
		bad "$tag: no message matching /$re/:"
		tail -n 3 "$TEST_TMP/out.log" >&2
	elif [[ -n ${VERBOSE:-} ]]; then
		log "ok: $tag: $(grep -Ei -- "$re" "$TEST_TMP/out.log" | head -n 1)"
	fi
	if [[ $card != - ]] && ! dev_is_pattern "$card"; then
		bad "$tag: the card was written to"
		refill_dev "$card" || fail "cannot refill $card"
	fi
}

# The image: 8 MiB, ~5 MiB of compressible text (so that the codecs really
# code it) from the start, 64 KiB of random data at 6 MiB, the rest holes.
d=$TEST_TMP
img=$d/disk.img
truncate -s 8M "$img"
seq 1 800000 | dd of="$img" conv=notrunc status=none || fail "cannot write $img"
pattern 6291456 65536 | dd of="$img" bs=64K seek=96 conv=notrunc status=none ||
	fail "cannot write $img"
"$REF" create -o "$img.bmap" "$img" >"$d/create.log" 2>&1 ||
	fail "reference create failed: $(tail -n 1 "$d/create.log")"
bmap=$img.bmap
size=$(stat -c %s "$img")

# The fastest level of each: what is refused does not depend on it (xz's
# and bzip2's defaults were 5 s of the test).
declare -A COMPRESS=(
	[zst]="zstd -q -1 -c"
	[gz]="gzip -1 -c"
	[xz]="xz -0 -c"
	[bz2]="bzip2 -1 -c"
	[lz4]="lz4 -q -1 -c"
)
codecs=()
for fmt in zst gz xz bz2 lz4; do
	cmd=${COMPRESS[$fmt]}
	if command -v "${cmd%% *}" >/dev/null 2>&1; then
		$cmd <"$img" >"$img.$fmt" || fail "${cmd%% *} failed"
		codecs+=("$fmt")
	else
		log "no ${cmd%% *}: .$fmt not tested"
	fi
done

out=$d/out.bin # a regular-file destination

# ---- the bmap itself ------------------------------------------------------

# The last range's checksum edited (first hex digit changed), the
# self-checksum left alone.
nranges=$(bmap_ranges "$bmap" | wc -l)
last_range=$(bmap_ranges "$bmap" | tail -n 1)
last_range=${last_range/ /-}
perl -pe 'BEGIN { $n = 0 }
	s/chksum="(.)/"chksum=\"" . ($1 eq "0" ? "1" : "0")/e
		if /<Range/ && ++$n == '"$nranges" \
	"$bmap" >"$d/edited.bmap"
cmp -s "$bmap" "$d/edited.bmap" && fail "could not edit the range checksum"
refuse "edited bmap, self-checksum stale" 1 "own checksum does not match" - -- \
	"$BMAPTOOL" copy --bmap "$d/edited.bmap" "$img" "$out"

# The same edit with the self-checksum recomputed: only the range is wrong.
cp "$d/edited.bmap" "$d/wrong-range.bmap"
fix_bmap_checksum "$d/wrong-range.bmap"
refuse "wrong range checksum (raw)" 1 \
	"checksum mismatch for blocks range $last_range([^0-9]|$)" - -- \
	"$BMAPTOOL" copy --bmap "$d/wrong-range.bmap" "$img" "$out"
refuse "wrong range checksum (zst, stdin)" 1 \
	"checksum mismatch for blocks range $last_range([^0-9]|$)" - -- \
	sh -c 'cat "$4" | exec "$1" copy --bmap "$2" - "$3"' sh \
	"$BMAPTOOL" "$d/wrong-range.bmap" "$out" "$img.${codecs[0]:-zst}"

# A major version above 2.
sed 's/<bmap version="[0-9.]*"/<bmap version="3.0"/' "$bmap" >"$d/v3.bmap"
fix_bmap_checksum "$d/v3.bmap"
refuse "bmap version 3.0" 1 "version 3\.0.*not supported" - -- \
	"$BMAPTOOL" copy --bmap "$d/v3.bmap" "$img" "$out"

# ---- broken compressed images ---------------------------------------------

for fmt in "${codecs[@]}"; do
	csize=$(stat -c %s "$img.$fmt")
	head -c $((csize / 2)) "$img.$fmt" >"$d/cut.img.$fmt"
	refuse "truncated .$fmt" 1 "truncated" - -- \
		"$BMAPTOOL" copy --bmap "$bmap" "$d/cut.img.$fmt" "$out"
	refuse "truncated .$fmt --nobmap" 1 "truncated" - -- \
		"$BMAPTOOL" copy --nobmap "$d/cut.img.$fmt" "$out"
	rm -f "$d/cut.img.$fmt"

	cp "$img.$fmt" "$d/bad.img.$fmt"
	printf '\x55\xaa\x55\xaa\x55\xaa\x55\xaa' |
		dd of="$d/bad.img.$fmt" bs=1 seek=$((csize / 2)) conv=notrunc status=none
	# With a bmap, the range checksum may be what notices first, or the
	# image growing past the bmap's size (deflate has no check but the
	# trailer's CRC).
	refuse "corrupt .$fmt" 1 "corrupt|checksum mismatch for blocks range|does not belong" - -- \
		"$BMAPTOOL" copy --bmap "$bmap" "$d/bad.img.$fmt" "$out"
	refuse "corrupt .$fmt --nobmap" 1 "corrupt" - -- \
		"$BMAPTOOL" copy --nobmap "$d/bad.img.$fmt" "$out"
	rm -f "$d/bad.img.$fmt"
done
if [[ ${#codecs[@]} -gt 0 ]]; then
	fmt=${codecs[0]}
	head -c $(($(stat -c %s "$img.$fmt") / 2)) "$img.$fmt" >"$d/cut.img.$fmt"
	refuse "truncated .$fmt from stdin" 1 "truncated" - -- \
		sh -c 'cat "$3" | exec "$1" copy --bmap "$2" - "$4"' sh \
		"$BMAPTOOL" "$bmap" "$d/cut.img.$fmt" "$out"
	rm -f "$d/cut.img.$fmt"
fi

# ---- a bmap of another image ----------------------------------------------

# Same size, other data in the same places.
other=$d/other.img
truncate -s 8M "$other"
seq 2 800001 | dd of="$other" conv=notrunc status=none
"$REF" create -o "$other.bmap" "$other" >/dev/null 2>&1 || fail "reference create failed"
refuse "bmap of another image (same size)" 1 "checksum mismatch|does not belong" - -- \
	"$BMAPTOOL" copy --bmap "$other.bmap" "$img" "$out"
[[ ${#codecs[@]} -gt 0 ]] &&
	refuse "bmap of another image (same size, .${codecs[0]})" 1 \
		"checksum mismatch|does not belong" - -- \
		"$BMAPTOOL" copy --bmap "$other.bmap" "$img.${codecs[0]}" "$out"
# A bmap of a smaller image (4 MiB): the raw image's size gives it away.
small=$d/small.img
truncate -s 4M "$small"
pattern 0 65536 | dd of="$small" conv=notrunc status=none
"$REF" create -o "$small.bmap" "$small" >/dev/null 2>&1 || fail "reference create failed"
refuse "bmap of a smaller image" 1 "does not belong" - -- \
	"$BMAPTOOL" copy --bmap "$small.bmap" "$img" "$out"
[[ ${#codecs[@]} -gt 0 ]] &&
	refuse "bmap of a smaller image (.${codecs[0]})" 1 "does not belong|checksum mismatch" - -- \
		"$BMAPTOOL" copy --bmap "$small.bmap" "$img.${codecs[0]}" "$out"
# A bmap of a bigger image: the image ends before the bmap says.
if [[ ${#codecs[@]} -gt 0 ]]; then
	${COMPRESS[${codecs[0]}]} <"$small" >"$small.${codecs[0]}"
	refuse "bmap of a bigger image (.${codecs[0]})" 1 \
		"does not belong|truncated|checksum mismatch" - -- \
		"$BMAPTOOL" copy --bmap "$bmap" "$small.${codecs[0]}" "$out"
fi

# ---- usage ------------------------------------------------------------------

# A path under /dev that does not exist must not become a regular file.
missing=/dev/nonexistent-card-XYZ
if [[ -e $missing ]]; then
	log "$missing exists: that case is skipped"
else
	refuse "missing /dev path" 1 "does not exist" - -- \
		"$BMAPTOOL" copy --bmap "$bmap" "$img" "$missing"
	if [[ -e $missing ]]; then
		bad "missing /dev path: $missing was created"
		rm -f -- "$missing"
	fi
fi

# ---- loop devices as cards ------------------------------------------------

if ! have_loop; then
	log "not root or no free loop device: card cases skipped"
	[[ $checked -gt 0 ]] || skip "nothing could be tested"
	finish "$checked refusals checked (file targets only)"
fi

csize=$(card_size "$size")
new_card "$csize" card
card=$CARD_DEV

refuse "edited bmap onto a card" 1 "own checksum does not match" "$card" -- \
	"$BMAPTOOL" copy --bmap "$d/edited.bmap" "$img" "$card"
refuse "bmap version 3.0 onto a card" 1 "not supported" "$card" -- \
	"$BMAPTOOL" copy --bmap "$d/v3.bmap" "$img" "$card"
refuse "bmap of a smaller image onto a card" 1 "does not belong" "$card" -- \
	"$BMAPTOOL" copy --bmap "$small.bmap" "$img" "$card"
refuse "--nobmap with --bmap" 2 "nobmap" "$card" -- \
	"$BMAPTOOL" copy --nobmap --bmap "$bmap" "$img" "$card"
refuse "--removable-device on a loop device" 1 "not removable" "$card" -- \
	"$BMAPTOOL" copy --removable-device --bmap "$bmap" "$img" "$card"

# No bmap next to a compressed image (its bmap is moved away), nor for a
# pipe (whose holes cannot be seen).
if [[ ${#codecs[@]} -gt 0 ]]; then
	mv "$bmap" "$d/moved.bmap"
	refuse "compressed image without a bmap" 1 "--nobmap" "$card" -- \
		"$BMAPTOOL" copy "$img.${codecs[0]}" "$card"
	refuse "compressed pipe without a bmap" 1 "--nobmap" "$card" -- \
		sh -c 'cat "$3" | exec "$1" copy - "$2"' sh "$BMAPTOOL" "$card" "$img.${codecs[0]}"
	mv "$d/moved.bmap" "$bmap"
fi
refuse "raw pipe without a bmap" 1 "--nobmap" "$card" -- \
	sh -c 'cat "$3" | exec "$1" copy - "$2"' sh "$BMAPTOOL" "$card" "$img"

# Held open exclusively by another process (as a mount would).
if hold_card "$card"; then
	refuse "card held exclusively" 1 "busy" "$card" -- \
		"$BMAPTOOL" copy --bmap "$bmap" "$img" "$card"
else
	bad "could not hold $card exclusively: $HOLD_ERROR"
fi
release_card

# Read-only by blockdev --setro.
if blockdev --setro "$card"; then
	refuse "card set read-only (blockdev --setro)" 1 "read-only" "$card" -- \
		"$BMAPTOOL" copy --bmap "$bmap" "$img" "$card"
	blockdev --setrw "$card"
else
	bad "blockdev --setro $card failed"
fi

# The card still takes a good image (nothing above broke it).
"$BMAPTOOL" copy --bmap "$bmap" "$img" "$card" >"$d/good.log" 2>&1 ||
	bad "the good image is refused after all: $(tail -n 1 "$d/good.log")"
detach_loop "$card"
rm -f "$CARD_FILE"

# Read-only loop device (losetup -r).
fill_pattern "$d/ro.bin" "$csize"
attach_card "$d/ro.bin" -r
refuse "read-only loop device (losetup -r)" 1 "read-only" "$LOOP_DEV" -- \
	"$BMAPTOOL" copy --bmap "$bmap" "$img" "$LOOP_DEV"
detach_loop "$LOOP_DEV"

# A card smaller than the image: raw and compressed with the bmap (refused
# before writing), and a compressed image with --nobmap (its size is only
# known at the end: refused when it no longer fits).
new_card $((size / 2)) small-card
for src in "$img" "${codecs[@]/#/$img.}"; do
	refuse "card too small (${src##*/})" 1 "too small" "$CARD_DEV" -- \
		"$BMAPTOOL" copy --bmap "$bmap" "$src" "$CARD_DEV"
done
[[ ${#codecs[@]} -gt 0 ]] &&
	refuse "card too small (--nobmap ${codecs[-1]})" 1 "too small|does not fit" - -- \
		"$BMAPTOOL" copy --nobmap "$img.${codecs[-1]}" "$CARD_DEV"
detach_loop "$CARD_DEV"

finish "$checked refusals checked (files and loop devices)"
