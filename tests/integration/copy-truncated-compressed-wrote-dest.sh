#!/bin/bash
# A truncated compressed image or archive (.gz, .bz2, .xz, .zst, .lz4, .lzo,
# and each as .tar.<codec>) used to write part of DEST before its decoder
# reached the cut and the copy failed. Now a local file is found cut before
# DEST is opened: for every form, cut inside the image's data, in the last
# block and in the trailer, `bmaptool copy` exits 1 with "truncated", the
# file's name and "nothing was written", and DEST (a pattern-filled file, and
# a loop device where the machine gives one) is unchanged byte for byte.
# The same files whole, padded with zeros, or made of several concatenated
# streams, still copy (the check must not refuse what the decoders accept).
# A plain .gz is the exception (only decoding it finds its end, which would
# double the copy's work): cut, it fails at the cut with exit 1 and its name,
# as the reference's copy does, after writing what came before.

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
source "${TESTS_DIR:-$(dirname "$0")/..}/lib/cards.sh"
need_ours
need_cmd tar
need_cmd cmp
need_cmd perl

d=$TEST_TMP
# Holes and data, an odd size; the data in random bytes so that every
# codec's output has many blocks.
mk_sparse_image "$d/disk.img" "size=3M+100 data=0:64K data=1M:1M data=3M:100"
head -c 1048576 /dev/urandom | dd of="$d/disk.img" bs=1M seek=1 conv=notrunc status=none
"$BMAPTOOL" create -o "$d/disk.img.bmap" "$d/disk.img" >/dev/null 2>&1 || fail "create failed"
size=$(stat -c %s "$d/disk.img")
csize=$(card_size "$size")
(cd "$d" && tar -cf disk.img.tar disk.img) || fail "tar failed"

use_loop=1
have_loop || { use_loop=0; log "not root or no free loop device: files only"; }

# compress EXT: the command that compresses stdin to stdout.
compress() {
	case $1 in
	gz) gzip -6 -c ;;
	bz2) bzip2 -c ;;
	xz) xz -c -T1 --block-size=1MiB ;; # several blocks: the block decoder
	zst) zstd -q -c ;;
	lz4) lz4 -q -c ;;
	lzo) lzop -c ;;
	esac
}
tool_of() {
	case $1 in
	gz) echo gzip ;; bz2) echo bzip2 ;; xz) echo xz ;; zst) echo zstd ;;
	lz4) echo lz4 ;; lzo) echo lzop ;;
	esac
}

checked=0
# refused TAG FILE: copying FILE fails before DEST is written.
refused() {
	local tag=$1 f=$2 dest target rc err
	for dest in file loop; do
		if [[ $dest == file ]]; then
			new_file_card "$csize" "refused"
			target=$CARD_FILE
		else
			[[ $use_loop -eq 1 ]] || continue
			new_card "$csize" "refused"
			target=$CARD_DEV
		fi
		"$BMAPTOOL" copy --bmap "$d/disk.img.bmap" "$f" "$target" >"$d/log" 2>&1
		rc=$?
		err=$(grep -i error "$d/log" | tail -n 1)
		[[ $rc -eq 1 ]] || bad "$tag ($dest): exit $rc, not 1: $(tail -n 1 "$d/log")"
		grep -q "truncated" <<<"$err" || bad "$tag ($dest): no 'truncated' in: $err"
		grep -q "nothing was written" <<<"$err" ||
			bad "$tag ($dest): no 'nothing was written' in: $err"
		grep -qF -- "$(basename "$f")" <<<"$err" ||
			bad "$tag ($dest): the error does not name $(basename "$f"): $err"
		if [[ $dest == file ]]; then
			is_pattern "$CARD_FILE" || bad "$tag (file): DEST was written to"
		else
			dev_is_pattern "$CARD_DEV" || bad "$tag (loop): DEST was written to"
			detach_loop "$CARD_DEV"
		fi
		[[ ${VERBOSE:-0} == 1 ]] && log "$tag ($dest): $err"
		rm -f "$CARD_FILE"
		checked=$((checked + 1))
	done
}

# fails_late TAG FILE: a plain .gz cut: exit 1, an error naming FILE and
# where its data ends, found while copying (DEST may hold what came before).
fails_late() {
	local tag=$1 f=$2 rc err
	new_file_card "$csize" "late"
	"$BMAPTOOL" copy --bmap "$d/disk.img.bmap" "$f" "$CARD_FILE" >"$d/log" 2>&1
	rc=$?
	err=$(grep -i error "$d/log" | tail -n 1)
	[[ $rc -eq 1 ]] || bad "$tag: exit $rc, not 1: $(tail -n 1 "$d/log")"
	grep -qF -- "$(basename "$f")" <<<"$err" ||
		bad "$tag: the error does not name $(basename "$f"): $err"
	grep -q "nothing was written" <<<"$err" && bad "$tag: says nothing was written: $err"
	[[ ${VERBOSE:-0} == 1 ]] && log "$tag: $err"
	rm -f "$CARD_FILE"
	checked=$((checked + 1))
}

# copies TAG FILE: FILE copies and DEST holds the image.
copies() {
	local tag=$1 f=$2
	new_file_card "$csize" "whole"
	if ! "$BMAPTOOL" copy --bmap "$d/disk.img.bmap" "$f" "$CARD_FILE" >"$d/log" 2>&1; then
		bad "$tag: refused: $(grep -i error "$d/log" | tail -n 1)"
	elif ! cmp -s -n "$size" "$d/disk.img" "$CARD_FILE"; then
		bad "$tag: DEST does not hold the image"
	fi
	rm -f "$CARD_FILE"
	checked=$((checked + 1))
}

# cuts TAG FILE: FILE cut a third in (the image's data), 20 bytes before its
# end (the last block), 1 and 4 bytes before it (the trailer).
cuts() {
	local tag=$1 f=$2 n at base
	n=$(stat -c %s "$f")
	base=$(basename "$f")
	for at in $((n / 3)) $((n - 20)) $((n - 4)) $((n - 1)); do
		head -c "$at" "$f" >"$d/cut-$base"
		if [[ $tag == .gz ]]; then
			fails_late "$tag cut at $at of $n" "$d/cut-$base"
		else
			refused "$tag cut at $at of $n" "$d/cut-$base"
		fi
	done
	rm -f "$d/cut-$base"
}

# The image in two halves, each compressed on its own, concatenated (as
# pbzip2 and pigz -i do, or a cat of streams).
half=$((size / 2))
head -c "$half" "$d/disk.img" >"$d/half1"
tail -c +$((half + 1)) "$d/disk.img" >"$d/half2"

forms=0
for ext in gz bz2 xz zst lz4 lzo; do
	if ! command -v "$(tool_of $ext)" >/dev/null; then
		log "no $(tool_of $ext): .$ext and .tar.$ext are not tested"
		continue
	fi
	compress $ext <"$d/disk.img" >"$d/disk.img.$ext" || fail "$(tool_of $ext) failed"
	compress $ext <"$d/disk.img.tar" >"$d/disk.img.tar.$ext" || fail "$(tool_of $ext) failed"
	copies ".$ext whole" "$d/disk.img.$ext"
	copies ".tar.$ext whole" "$d/disk.img.tar.$ext"
	# Zero padding after the last stream (xz's in fours, as its format says).
	{ cat "$d/disk.img.$ext"; head -c 64 /dev/zero; } >"$d/padded.$ext"
	copies ".$ext padded with zeros" "$d/padded.$ext"
	{ compress $ext <"$d/half1"; compress $ext <"$d/half2"; } >"$d/concat.$ext"
	copies ".$ext of two streams" "$d/concat.$ext"
	cuts ".$ext" "$d/disk.img.$ext"
	cuts ".tar.$ext" "$d/disk.img.tar.$ext"
	# Cut in the first of two streams: the check walks them all.
	head -c $(($(stat -c %s "$d/concat.$ext") / 4)) "$d/concat.$ext" >"$d/cut-concat.$ext"
	if [[ $ext == gz ]]; then
		fails_late ".gz of two streams cut in the first" "$d/cut-concat.gz"
	else
		refused ".$ext of two streams cut in the first" "$d/cut-concat.$ext"
	fi
	rm -f "$d/disk.img.$ext" "$d/disk.img.tar.$ext" "$d/padded.$ext" "$d/concat.$ext" \
		"$d/cut-concat.$ext"
	forms=$((forms + 1))
done
[[ $forms -gt 0 ]] || skip "no compressor found"

finish "$checked checks of $forms codecs, plain and under tar" \
	"$([[ $use_loop -eq 1 ]] && echo "(files and loop devices)" || echo "(files only)")"
