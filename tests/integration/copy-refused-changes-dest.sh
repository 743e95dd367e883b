#!/bin/bash
# A copy that is refused leaves a regular DEST as it was: every check that
# can be made before the first write is made before it (issue 10, item 23;
# item 13 for DEST through a symbolic link). DEST is a file holding the 0xA5
# pattern; after each refusal it must still hold it, at its size.
#
#   bmap of ImageSize 1 TiB / 4 EiB, raw image       -> "does not belong", DEST as it was
#   the same through a symbolic link to DEST          -> the file it points to as it was
#   the same to two DESTs at once                     -> both as they were
#   a new DEST path and a refused copy                -> no file left behind
#   a zero-length image (raw file, --nobmap; stdin)   -> "empty", DEST as it was
#   copy X X (same name, hard link, /dev/fd/N, stdin) -> refused, X as it was
#   bmap of ImageSize 1 TiB, compressed image         -> all its mapped data is in the
#                                    stream, which ends early: copied, exit 0, DEST sized to
#                                    the bmap's 1 TiB (sparse), as the reference does
#
# A stream's length is known at its end only, so a stream that ends inside
# its mapped data, or goes on past the bmap's image size, is refused after
# its data was written (the message says so; copy-refusals checks those).
#
# Regular files only: runs everywhere.

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
source "${TESTS_DIR:-$(dirname "$0")/..}/lib/cards.sh"
need_ours
need_cmd python3
need_cmd zstd

d=$TEST_TMP
checked=0

# set_image_size BMAP SIZE OUT: BMAP with ImageSize SIZE (BlocksCount to
# match), its own checksum fixed up: a valid bmap of another image.
set_image_size() {
	python3 - "$1" "$2" "$3" <<-'EOF' || fail "cannot edit $1"
	import re, sys
	text, size = open(sys.argv[1]).read(), int(sys.argv[2])
	bs = int(re.search(r"<BlockSize>\s*(\d+)", text)[1])
	text = re.sub(r"<ImageSize>\s*\d+\s*<", "<ImageSize> %d <" % size, text)
	text = re.sub(r"<BlocksCount>\s*\d+\s*<", "<BlocksCount> %d <" % ((size + bs - 1) // bs), text)
	open(sys.argv[3], "w").write(text)
	EOF
	fix_bmap_checksum "$3"
}

# refused TAG REGEX FILE... -- CMD...: CMD exits 1 with a message matching
# REGEX, and each FILE still holds the pattern at its old size.
refused() {
	local tag=$1 re=$2 files=() f rc
	shift 2
	while [[ $1 != -- ]]; do files+=("$1"); shift; done
	shift
	local -A sizes=()
	for f in "${files[@]}"; do sizes[$f]=$(stat -c %s "$f"); done
	"$@" >"$d/out.log" 2>&1
	rc=$?
	checked=$((checked + 1))
	[[ $rc -eq 1 ]] || bad "$tag: exit $rc, expected 1: $(tail -n 2 "$d/out.log")"
	grep -Eqi -- "$re" "$d/out.log" || bad "$tag: no message matching /$re/: $(tail -n 2 "$d/out.log")"
	for f in "${files[@]}"; do
		if [[ $(stat -c %s "$f") != "${sizes[$f]}" ]]; then
			bad "$tag: ${f##*/} was resized from ${sizes[$f]} to $(stat -c %s "$f") bytes"
		elif ! is_pattern "$f"; then
			bad "$tag: ${f##*/} was written to"
		fi
	done
}

img=$d/disk.img
mk_image_bmap "$img" "size=8M data=0:1M data=3M:512K data=7M:64K" zst
set_image_size "$img.bmap" $((1 << 40)) "$d/1tib.bmap"
set_image_size "$img.bmap" $((1 << 62)) "$d/4eib.bmap"

new_file_card $((9 << 20)) dest
dest=$CARD_FILE
new_file_card $((9 << 20)) dest2
dest2=$CARD_FILE

# ---- a bmap of another image ----------------------------------------------

refused "ImageSize 1 TiB" "does not belong" "$dest" -- \
	"$BMAPTOOL" copy --bmap "$d/1tib.bmap" "$img" "$dest"
refused "ImageSize 4 EiB" "does not belong" "$dest" -- \
	"$BMAPTOOL" copy --bmap "$d/4eib.bmap" "$img" "$dest"
ln -s "$dest" "$d/link"
refused "ImageSize 1 TiB, DEST a symbolic link" "does not belong" "$dest" -- \
	"$BMAPTOOL" copy --bmap "$d/1tib.bmap" "$img" "$d/link"
refused "ImageSize 1 TiB, two DESTs" "does not belong" "$dest" "$dest2" -- \
	"$BMAPTOOL" copy --bmap "$d/1tib.bmap" "$img" "$dest" "$dest2"

# A DEST that did not exist is not left behind, empty or sized.
"$BMAPTOOL" copy --bmap "$d/4eib.bmap" "$img" "$d/new.img" >"$d/out.log" 2>&1
checked=$((checked + 1))
[[ -e $d/new.img ]] && bad "new DEST: a refused copy left '$d/new.img' of $(stat -c %s "$d/new.img") bytes"

# ---- an empty image ---------------------------------------------------------

: >"$d/empty.img"
refused "zero-length image, --nobmap" "empty" "$dest" -- \
	"$BMAPTOOL" copy --nobmap "$d/empty.img" "$dest"
refused "zero-length image on stdin, --nobmap" "empty" "$dest" -- \
	sh -c 'exec "$1" copy --nobmap - "$2" </dev/null' sh "$BMAPTOOL" "$dest"
refused "zero-length zstd image on stdin, --nobmap" "empty" "$dest" -- \
	sh -c ': | zstd -q -c | exec "$1" copy --nobmap - "$2"' sh "$BMAPTOOL" "$dest"

# ---- the image itself as DEST -------------------------------------------------

new_file_card $((8 << 20)) self
self=$CARD_FILE
ln "$self" "$CARD_DIR/hard-link" || fail "cannot make a hard link to $self"
refused "copy X X" "itself" "$self" -- "$BMAPTOOL" copy --nobmap "$self" "$self"
refused "copy X X (hard link)" "itself" "$self" -- \
	"$BMAPTOOL" copy --nobmap "$self" "$CARD_DIR/hard-link"
refused "copy X /dev/fd/N of X" "itself" "$self" -- \
	sh -c 'exec "$1" copy --nobmap "$2" /dev/fd/3 3<"$2"' sh "$BMAPTOOL" "$self"
refused "copy - X <X" "itself" "$self" -- \
	sh -c 'exec "$1" copy --nobmap - "$2" <"$2"' sh "$BMAPTOOL" "$self"

# ---- a stream: its size is known at its end only ----------------------------

# The stream ends before the bmap's 1 TiB, after all its mapped data: the
# reference copies it and sizes a regular DEST to the bmap's image size,
# and so do we (sparse: only the data takes room).
"$BMAPTOOL" copy --bmap "$d/1tib.bmap" "$img.zst" "$dest" >"$d/out.log" 2>&1
rc=$?
checked=$((checked + 1))
[[ $rc -eq 0 ]] || bad "ImageSize 1 TiB, zstd: exit $rc, expected 0: $(tail -n 1 "$d/out.log")"
[[ $(stat -c %s "$dest") -eq $((1 << 40)) ]] ||
	bad "ImageSize 1 TiB, zstd: DEST is $(stat -c %s "$dest") bytes, not the bmap's 1 TiB"
cmp -s -n "$(stat -c %s "$img")" "$img" "$dest" || bad "ImageSize 1 TiB, zstd: DEST does not start with the image"
(($(stat -c %b "$dest") * $(stat -c %B "$dest") < (64 << 20))) ||
	bad "ImageSize 1 TiB, zstd: DEST takes $(du -h "$dest" | cut -f1): not sparse"
truncate -s 0 "$dest"

# Nothing above broke a good copy.
"$BMAPTOOL" -q copy --bmap "$img.bmap" "$img.zst" "$dest" || bad "the good image is refused"
cmp -s "$img" "$dest" || bad "the good copy does not equal the image"

finish "$checked refusals checked"
