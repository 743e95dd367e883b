#!/bin/bash
# `bmaptool copy` (ours) must leave a card exactly as the reference bmaptool
# 3.6 leaves it, for awkward layouts and every compression format.
#
# For each layout the image's bmap is made by the reference `create`; the
# image is compressed with each codec's own CLI. Each variant is copied onto
# two loop devices over 0xA5-filled backing files in /dev/shm, a little
# larger than the image: one by the reference, one by ours (which finds the
# bmap by itself, next to the image). The backing files must then be equal
# byte for byte (mapped data written, unmapped blocks and the slack after
# the image still 0xA5). Ours must also verify its card, print the same
# data digest for copy and verify, and the same digest for every codec.
# Ours reading the image from standard input ('-', with --bmap) must give
# the same card. Regular-file targets (pre-filled, larger than the image)
# must end up equal to the image, as the reference leaves them.
#
# Without root or loop devices only the regular-file part runs.

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
source "${TESTS_DIR:-$(dirname "$0")/..}/lib/cards.sh"
need_reference
need_ours
need_cmd cmp
need_cmd perl

# name|mk_sparse_image spec|codecs (all: zst gz xz bz2 lz4); every codec goes
# through the partial-block layouts and bulk data, the others through a few.
CASES=(
	"many-small|size=16M islands=0:4K:1000:8K islands=8M:12K:150:20K data=16M-4K:4K|all"
	"single-blocks|size=8M data=0:4K data=4M+4K:4K data=8M-4K:4K|zst lz4"
	"partial-512|size=8M+2560 data=0:64K data=8M-4K:6656|all"
	"partial-odd|size=8M+1001 data=1M:1M data=8M:1001|all"
	"partial-hole|size=8M+777 data=4K:8K|gz bz2"
	"all-holes|size=16M|zst xz"
	"fully-mapped|data=0:8M|all"
	"zero-blocks|size=16M zero=0:64K data=1M:4K zero=2M:1M data=3M:8K zero=16M-4K:4K|gz lz4"
	"unwritten|size=8M data=0:4K unwritten=1M:1M data=4M:4K|zst"
	"scattered-64m|size=64M data=0:64K data=5M+4K:3M data=40M:4K data=64M-8K:8K|zst xz"
	"sparse-1g|size=1G data=0:1M data=300M+4K:2M data=1G-1M:1M|zst"
)

declare -A COMPRESS=(
	[zst]="zstd -q -1 -T2 -c"
	[gz]="gzip -1 -c"
	[xz]="xz -T2 -0 -c"
	[bz2]="bzip2 -1 -c"
	[lz4]="lz4 -q -1 -c"
)

use_loop=1
if ! have_loop; then
	use_loop=0
	log "not root or no free loop device: only regular-file targets are tested"
fi

# compress NAME IMG FMT: IMG.FMT, or nothing when the codec's CLI is missing.
compress() {
	local cmd=${COMPRESS[$3]}
	command -v "${cmd%% *}" >/dev/null 2>&1 ||
		{ log "$1: no ${cmd%% *}: .$3 not tested"; return 1; }
	$cmd <"$2" >"$2.$3" || fail "$1: ${cmd%% *} failed"
}

# ref_copy LOG ARGS...: run the reference copy, report on failure.
ref_copy() {
	local logf=$1
	shift
	"$REF" copy "$@" >"$logf" 2>&1 && return 0
	bad "reference 'copy $*' failed:"
	tail -n 3 "$logf" >&2
	return 1
}

# ours_copy LOG ARGS...: run our copy, report on failure; prints nothing.
ours_copy() {
	local logf=$1
	shift
	"$BMAPTOOL" copy "$@" >"$logf" 2>&1 && return 0
	bad "our 'copy $*' failed (exit $?):"
	tail -n 3 "$logf" >&2
	return 1
}

# same_card WHAT REF_FILE OUR_FILE: the two backing files are equal.
same_card() {
	local off
	cmp -s "$2" "$3" && return 0
	off=$(first_diff "$2" "$3")
	bad "$1: card differs from the reference's${off:+ (first at byte $off, block $((off / 4096)))}"
	return 1
}

checked=0
for c in "${CASES[@]}"; do
	IFS='|' read -r name spec codecs <<<"$c"
	[[ $codecs == all ]] && codecs="zst gz xz bz2 lz4"
	d=$TEST_TMP/$name
	mkdir -p "$d"
	img=$d/$name.img
	mk_sparse_image "$img" "$spec"
	size=$(stat -c %s "$img")
	"$REF" create -o "$img.bmap" "$img" >"$d/create.log" 2>&1 ||
		{ bad "$name: reference create failed: $(tail -n 1 "$d/create.log")"; continue; }
	bmap=$img.bmap

	variants=(raw)
	for fmt in $codecs; do
		compress "$name" "$img" "$fmt" && variants+=("$fmt")
	done

	# Regular-file targets, pre-filled and larger than the image: the
	# reference truncates them to the image size and writes the mapped
	# ranges, which leaves exactly the image (holes read as zeros). Raw
	# from the file, and the first codec from standard input.
	file_variants=(raw "${variants[1]:-}")
	for v in "${file_variants[@]}"; do
		[[ -n $v ]] || continue
		new_file_card $((size + 12345)) file
		if [[ $v == raw ]]; then
			tag="$name/raw to a file"
			ours_copy "$d/ours.log" "$img" "$CARD_FILE" || { rm -f "$CARD_FILE"; continue; }
		else
			tag="$name/$v from stdin to a file"
			ours_copy "$d/ours.log" --bmap "$bmap" - "$CARD_FILE" <"$img.$v" ||
				{ rm -f "$CARD_FILE"; continue; }
		fi
		[[ $(stat -c %s "$CARD_FILE") -eq $size ]] ||
			bad "$tag: file is $(stat -c %s "$CARD_FILE") bytes, not the image's $size"
		if ! cmp -s "$img" "$CARD_FILE"; then
			off=$(first_diff "$img" "$CARD_FILE")
			bad "$tag: file differs from the image${off:+ (first at byte $off)}"
		fi
		checked=$((checked + 1))
		rm -f "$CARD_FILE"
	done

	[[ $use_loop -eq 1 ]] || { rm -rf "$d"; continue; }

	csize=$(card_size "$size")
	raw_digest=
	for v in "${variants[@]}"; do
		src=$img
		[[ $v == raw ]] || src=$img.$v
		tag="$name/$v"

		# The reference's card.
		new_card "$csize" ref
		ref_file=$CARD_FILE
		ok=0
		ref_copy "$d/ref.log" --bmap "$bmap" "$src" "$CARD_DEV" && ok=1
		detach_loop "$CARD_DEV"
		[[ $ok -eq 1 ]] || { rm -f "$ref_file"; continue; }

		# Ours, bmap discovered next to the image, then verified.
		new_card "$csize" ours
		our_file=$CARD_FILE
		if ours_copy "$d/ours.log" "$src" "$CARD_DEV"; then
			wd=$(digest_of "$d/ours.log")
			if "$BMAPTOOL" verify --bmap "$bmap" "$src" "$CARD_DEV" >"$d/verify.log" 2>&1; then
				rd=$(digest_of "$d/verify.log")
				[[ -n $wd && $wd == "$rd" ]] ||
					bad "$tag: digests differ: written '$wd', read back '$rd'"
			else
				bad "$tag: our verify of our card failed:"
				tail -n 2 "$d/verify.log" >&2
			fi
			if [[ $v == raw ]]; then
				raw_digest=$wd
			elif [[ -n $raw_digest && $wd != "$raw_digest" ]]; then
				bad "$tag: digest $wd differs from the raw image's $raw_digest"
			fi
			detach_loop "$CARD_DEV"
			same_card "$tag" "$ref_file" "$our_file"
			checked=$((checked + 1))
		else
			detach_loop "$CARD_DEV"
		fi
		rm -f "$our_file"

		# Ours from standard input, bmap given (for a big raw image the
		# file case above is enough).
		if [[ $v == raw && $size -gt $CARD_FULL_FILL_MAX ]]; then
			rm -f "$ref_file"
			continue
		fi
		new_card "$csize" stdin
		# A pipe, not a redirection: stdin must not be seekable.
		if cat "$src" | "$BMAPTOOL" copy --bmap "$bmap" - "$CARD_DEV" >"$d/stdin.log" 2>&1; then
			detach_loop "$CARD_DEV"
			same_card "$tag from stdin" "$ref_file" "$CARD_FILE"
			checked=$((checked + 1))
		else
			bad "$tag: our copy from stdin failed:"
			tail -n 3 "$d/stdin.log" >&2
			detach_loop "$CARD_DEV"
		fi
		rm -f "$CARD_FILE" "$ref_file"
	done
	rm -rf "$d"
done

[[ $checked -gt 0 || $FAILURES -gt 0 ]] || skip "nothing could be tested"
finish "$checked copies equal to the reference's on ${#CASES[@]} layouts" \
	"$([[ $use_loop -eq 1 ]] && echo "(files and loop devices)" || echo "(files only)")"
