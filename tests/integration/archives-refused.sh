#!/bin/bash
# Damaged or unusable archives are refused with exit 1 and a message naming
# the archive (and the member, once one is known); where the damage can be
# seen before writing, DEST (a pre-filled file, and a loop device when the
# machine gives one) still holds its 0xA5 pattern afterwards:
#
#   plain tar cut inside the image's data    -> "truncated", untouched
#   plain zip cut (no central directory)     -> "truncated", untouched
#   tar header damaged (ustar, bad checksum) -> "corrupt", untouched (plain and gzip)
#   zip whose first member is a README       -> "member 'README'", "nothing was written"
#   tar whose first file is a README         -> the same
#   encrypted zip                            -> "encrypted", untouched
#   tar / zip holding only directories       -> "holds no regular file", untouched
#   qcow2 image inside a tar                 -> "random access", untouched
#   tar.gz cut inside the image's data       -> "truncated", untouched (found
#                                               before writing: the gzip is decoded
#                                               once first, source-whole.c)

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
source "${TESTS_DIR:-$(dirname "$0")/..}/lib/cards.sh"
need_ours
need_cmd tar
need_cmd cmp
need_cmd perl

d=$TEST_TMP
mk_sparse_image "$d/disk.img" "size=3M+100 data=0:64K data=1M:1M data=3M:100"
"$BMAPTOOL" create -o "$d/disk.img.bmap" "$d/disk.img" >/dev/null 2>&1 || fail "create failed"
size=$(stat -c %s "$d/disk.img")
csize=$(card_size "$size")

use_loop=1
have_loop || { use_loop=0; log "not root or no free loop device: files only"; }

checked=0
# refuse TAG REGEX UNTOUCHED ARCHIVE: copying ARCHIVE (bmap discovered or,
# for names that do not lead to it, given) exits 1 with a message matching
# REGEX and naming ARCHIVE; UNTOUCHED=1: DEST still holds its pattern.
refuse() {
	local tag=$1 re=$2 untouched=$3 arc=$4 dest rc
	for dest in file loop; do
		if [[ $dest == file ]]; then
			new_file_card "$csize" "refused"
			target=$CARD_FILE
		else
			[[ $use_loop -eq 1 ]] || continue
			new_card "$csize" "refused"
			target=$CARD_DEV
		fi
		"$BMAPTOOL" copy --bmap "$d/disk.img.bmap" "$arc" "$target" >"$d/log" 2>&1
		rc=$?
		[[ $rc -eq 1 ]] || bad "$tag ($dest): exit $rc, not 1: $(tail -n 1 "$d/log")"
		grep -Eqi -- "$re" "$d/log" || bad "$tag ($dest): no '$re' in: $(grep error "$d/log")"
		grep -q -- "$(basename "$arc")" <<<"$(grep error "$d/log")" ||
			bad "$tag ($dest): the error does not name $(basename "$arc"): $(grep error "$d/log")"
		if [[ $untouched -eq 1 ]]; then
			if [[ $dest == file ]]; then
				is_pattern "$CARD_FILE" || bad "$tag (file): DEST was written to"
			else
				dev_is_pattern "$CARD_DEV" || bad "$tag (loop): DEST was written to"
			fi
		fi
		[[ ${VERBOSE:-0} == 1 ]] && log "$tag ($dest): $(grep error "$d/log")"
		[[ $dest == loop ]] && detach_loop "$CARD_DEV"
		rm -f "$CARD_FILE"
		checked=$((checked + 1))
	done
}

(cd "$d" && tar -cf disk.img.tar disk.img) || fail "tar failed"
tar_size=$(stat -c %s "$d/disk.img.tar")
head -c $((tar_size / 2)) "$d/disk.img.tar" >"$d/cut.tar"
refuse "plain tar cut in the data" "truncated" 1 "$d/cut.tar"

gzip -1 -c "$d/disk.img.tar" >"$d/disk.img.tar.gz"
head -c $(($(stat -c %s "$d/disk.img.tar.gz") * 2 / 3)) "$d/disk.img.tar.gz" >"$d/cut.tar.gz"
refuse "tar.gz cut in the data" "cut.tar.gz.*truncated" 1 "$d/cut.tar.gz"

# The mode field of the ustar header: its checksum no longer matches.
cp "$d/disk.img.tar" "$d/badhdr.tar"
printf '9' | dd of="$d/badhdr.tar" bs=1 seek=100 conv=notrunc status=none
refuse "tar header damaged" "corrupt" 1 "$d/badhdr.tar"
gzip -1 -c "$d/badhdr.tar" >"$d/badhdr.tar.gz"
refuse "tar.gz header damaged" "corrupt" 1 "$d/badhdr.tar.gz"

echo "release notes" >"$d/README"
(cd "$d" && tar -cf readme-first.tar README disk.img) || fail "tar failed"
refuse "tar with a README first" "member 'README'.*nothing was written" 1 "$d/readme-first.tar"

mkdir -p "$d/tree/a/b"
(cd "$d/tree" && tar -cf ../dirs.tar a) || fail "tar failed"
refuse "tar of directories" "holds no regular file" 1 "$d/dirs.tar"

if command -v zip >/dev/null; then
	(cd "$d" && zip -q disk.img.zip disk.img && zip -q readme-first.zip README disk.img &&
		zip -q -P secret enc.zip disk.img && cd tree && zip -q -r ../dirs.zip a) ||
		fail "zip failed"
	head -c $(($(stat -c %s "$d/disk.img.zip") / 2)) "$d/disk.img.zip" >"$d/cut.zip"
	refuse "zip cut" "truncated" 1 "$d/cut.zip"
	refuse "zip with a README first" "member 'README'.*nothing was written" 1 "$d/readme-first.zip"
	refuse "encrypted zip" "encrypted" 1 "$d/enc.zip"
	refuse "zip of directories" "holds no regular file" 1 "$d/dirs.zip"
else
	log "no zip: the zip cases are not tested"
fi

if command -v qemu-img >/dev/null; then
	qemu-img convert -O qcow2 "$d/disk.img" "$d/disk.qcow2" || fail "qemu-img failed"
	(cd "$d" && tar -cf qcow2.tar disk.qcow2) || fail "tar failed"
	refuse "qcow2 in a tar" "random access" 1 "$d/qcow2.tar"
else
	log "no qemu-img: the qcow2 case is not tested"
fi

finish "$checked refusals of damaged or unusable archives" \
	"$([[ $use_loop -eq 1 ]] && echo "(files and loop devices)" || echo "(files only)")"
