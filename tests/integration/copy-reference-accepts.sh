#!/bin/bash
# Bmaps written by our `create` (with and without checksums) must be accepted
# by the reference `bmaptool copy`, and the copy must be right: into a regular
# file it equals the image; onto a loop device (root only) the mapped ranges
# equal the image and every unmapped block still holds the 0xA5 fill.

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
need_reference
need_ours
need_cmd cmp

CASES=(
	"holes-at-ends|size=1M data=256K:256K"
	"partial-last-block|size=1M+1000 data=0:8K data=1M-4K:5096"
	"partial-last-hole|size=1M+1000 data=4K:4K"
	"all-holes|size=2M"
	"fully-mapped-partial|data=0:1M+123"
	"islands|size=3M islands=4K:4K:300:8K"
	"unwritten-extent|size=4M data=0:4K unwritten=1M:1M data=3M:4K"
	"zero-data-blocks|size=2M zero=512K:64K data=1M:4K zero=2M-4K:4K"
	"scattered-64m|size=64M data=0:64K data=5M+4K:3M data=40M:4K data=64M-8K:8K"
)

use_loop=1
if ! have_loop; then
	use_loop=0
	log "not root or no free loop device: loop device part skipped"
fi

failures=0
bad() { log "FAIL: $*"; failures=$((failures + 1)); }

# fill_a5 PATH SIZE: a file of SIZE bytes of 0xA5.
fill_a5() {
	tr '\0' '\245' </dev/zero | head -c "$2" >"$1"
}

# expected_device BMAP IMG FILL: write each mapped range of IMG (cut at the
# image size) over FILL, which then is what the device must hold.
expected_device() {
	local bs size first last off len
	bs=$(bmap_field "$1" BlockSize)
	size=$(bmap_field "$1" ImageSize)
	while read -r first last; do
		off=$((first * bs))
		len=$(((last + 1) * bs))
		((len > size)) && len=$size
		len=$((len - off))
		dd if="$2" of="$3" bs=1M skip="$off" seek="$off" count="$len" \
			iflag=skip_bytes,count_bytes oflag=seek_bytes conv=notrunc \
			status=none || fail "dd failed"
	done < <(bmap_ranges "$1")
}

# explain BMAP EXPECTED ACTUAL: say where the first difference is.
explain() {
	local byte bs block what=unmapped first last
	byte=$(cmp "$2" "$3" 2>&1 | sed -nE 's/.* byte ([0-9]+).*/\1/p')
	[[ -n $byte ]] || { cmp "$2" "$3" >&2; return; }
	bs=$(bmap_field "$1" BlockSize)
	block=$(((byte - 1) / bs))
	while read -r first last; do
		((block >= first && block <= last)) && what="mapped (range $first-$last)"
	done < <(bmap_ranges "$1")
	log "  first difference at byte offset $((byte - 1)), block $block, $what"
}

for c in "${CASES[@]}"; do
	name=${c%%|*}
	spec=${c#*|}
	d=$TEST_TMP/$name
	mkdir -p "$d"
	img=$d/$name.img
	mk_sparse_image "$img" "$spec"
	size=$(stat -c %s "$img")

	for opt in "" "--no-checksum"; do
		tag="$name${opt:+ $opt}"
		bmap=$d/ours.bmap
		"$BMAPTOOL" create $opt -o "$bmap" "$img" 2>"$d/err" ||
			{ bad "$tag: our create failed: $(cat "$d/err")"; continue; }

		# Into a regular file (the reference truncates it and leaves holes).
		rm -f "$d/out.img"
		if "$REF" copy --bmap "$bmap" "$img" "$d/out.img" >"$d/copy.log" 2>&1; then
			cmp -s "$img" "$d/out.img" ||
				bad "$tag: regular-file copy differs from the image"
		else
			bad "$tag: reference copy to a file refused our bmap:"
			tail -n 3 "$d/copy.log" >&2
		fi
		rm -f "$d/out.img"

		[[ $use_loop -eq 1 ]] || continue

		# Onto a loop device over a 0xA5-filled file, a little larger than
		# the image (whole 4 KiB blocks plus 64 KiB that must stay untouched).
		backing=$d/card.bin
		fill_a5 "$backing" $(((size + 4095) / 4096 * 4096 + 65536))
		cp "$backing" "$d/expected.bin"
		expected_device "$bmap" "$img" "$d/expected.bin"
		attach_loop "$backing"
		if "$REF" copy --bmap "$bmap" "$img" "$LOOP_DEV" >"$d/copy.log" 2>&1; then
			ok=1
		else
			ok=0
			bad "$tag: reference copy to $LOOP_DEV refused our bmap:"
			tail -n 3 "$d/copy.log" >&2
		fi
		# Compare the backing file once the loop device is gone, so that
		# nothing is answered from the device's page cache.
		detach_loop "$LOOP_DEV"
		if [[ $ok -eq 1 ]] && ! cmp -s "$d/expected.bin" "$backing"; then
			bad "$tag: loop device content is wrong"
			explain "$bmap" "$d/expected.bin" "$backing"
		fi
		rm -f "$backing" "$d/expected.bin"
	done
	rm -rf "$d"
done

[[ $failures -eq 0 ]] || fail "$failures check(s) failed"
log "reference copy accepts our bmaps on ${#CASES[@]} layouts" \
	"$([[ $use_loop -eq 1 ]] && echo "(file and loop device)" || echo "(file only)")"
exit 0
