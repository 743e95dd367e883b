#!/bin/bash
# Images in archives (tar plain and under every codec, GNU and pax sparse
# members, zip stored and deflated) and lzop files: ours leaves a card
# exactly as the reference bmaptool leaves it.
#
# The reference is bmaptool 3.9 (`bmaptool-3.9`) when installed, else
# Debian's 3.6 (/usr/bin/bmaptool, or BMAPTOOL_REF); both take every form
# here by its suffix and extract it with tar, funzip, lzop...: a form whose
# program is missing is skipped, saying so. For each generated sparse image
# (holes of every size, odd sizes) and form, ours (which finds IMAGE.bmap by
# stripping the archive's suffixes) and the reference (--bmap) copy onto
# pre-filled regular files and onto loop devices over 0xA5-filled backing
# files; the results must be equal byte for byte (cmp), and the regular
# files equal to the image. Ours also takes a few forms from a pipe.
#
# A sanitizer build (BMAP_SANITIZERS set; REF_PER_FORM=1 overrides) runs the
# reference once per layout, on the raw image, and compares every form's
# copy by ours with that card and file: ours runs every form as before,
# under ASan and UBSan, against the same bytes, and the reference's own run
# of each form (78 Python runs, about 20 s) was compared in the normal pass.
#
# Without root or loop devices only the regular-file part runs.

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
source "${TESTS_DIR:-$(dirname "$0")/..}/lib/cards.sh"
need_ours
need_cmd cmp
need_cmd tar
need_cmd perl

if command -v bmaptool-3.9 >/dev/null 2>&1; then
	REF=$(command -v bmaptool-3.9)
	log "reference: bmaptool 3.9 ($REF)"
else
	need_reference
	log "bmaptool-3.9 is not installed: comparing with $REF ($("$REF" --version 2>&1 | head -n 1))"
fi

CASES=(
	"holes|size=8M+1001 islands=0:4K:100:8K data=1M:1M data=3M+512:3000 zero=5M:64K data=8M:1001"
	"partial|size=4M+2560 data=0:64K data=4M-4K:6656"
	"all-holes|size=3M+17"
)

# form#what ours must say it is#command making it from $1 (the image, run in
# its folder) onto standard output#programs it needs (ours' and the reference's).
# The deflated zip is written to a pipe (sizes in data descriptors after the
# data), the stored one to a file (sizes in its headers).
FORMS=(
	"tar#tar#tar -S -cf - \"\$1\"#tar"
	"tar.gz#gzip-compressed tar#tar -cf - \"\$1\" | gzip -1 -c#gzip"
	"tgz#gzip-compressed tar#tar --format=pax -S -cf - \"\$1\" | gzip -1 -c#gzip"
	"tar.bz2#bzip2-compressed tar#tar -cf - \"\$1\" | bzip2 -1 -c#bzip2"
	"tbz2#bzip2-compressed tar#tar -cf - \"\$1\" | bzip2 -1 -c#bzip2"
	"tar.xz#xz-compressed tar#tar --format=ustar -cf - \"\$1\" | xz -T2 -0 -c#xz"
	"txz#xz-compressed tar#tar -cf - \"\$1\" | xz -0 -c#xz"
	"tar.lzo#lzo-compressed tar#tar -cf - \"\$1\" | lzop -c#lzop"
	"tar.lz4#lz4-compressed tar#tar -cf - \"\$1\" | lz4 -q -1 -c#lz4"
	"tar.zst#zstd-compressed tar#tar -cf - \"\$1\" | zstd -q -1 -T2 -c#zstd"
	"zip#zip#zip -q - \"\$1\"#zip funzip"
	"stored.zip#zip#zip -q -0 \"\$1.z.zip\" \"\$1\" && cat \"\$1.z.zip\" && rm \"\$1.z.zip\"#zip funzip"
	"lzo#lzo#lzop -c \"\$1\"#lzop"
)

per_form=${REF_PER_FORM:-$([[ -n ${BMAP_SANITIZERS:-} ]] && echo 0 || echo 1)}
((per_form)) || log "the reference runs once per layout, on the raw image (sanitizer build or REF_PER_FORM=0)"

use_loop=1
if ! have_loop; then
	use_loop=0
	log "not root or no free loop device: only regular-file targets are tested"
fi

# same WHAT A B: files A and B are equal.
same() {
	local off
	cmp -s "$2" "$3" && return 0
	off=$(first_diff "$2" "$3")
	bad "$1: differs${off:+ (first at byte $off, block $((off / 4096)))}"
	return 1
}

# run_copy TAG LOG TOOL ARGS...: a copy that must succeed.
run_copy() {
	local tag=$1 logf=$2
	shift 2
	"$@" >"$logf" 2>&1 && return 0
	bad "$tag: '$*' failed (exit $?):"
	tail -n 3 "$logf" >&2
	return 1
}

checked=0
skipped=()
for c in "${CASES[@]}"; do
	IFS='|' read -r name spec <<<"$c"
	d=$TEST_TMP/$name
	mkdir -p "$d"
	img=$d/$name.img
	mk_sparse_image "$img" "$spec"
	size=$(stat -c %s "$img")
	"$BMAPTOOL" create -o "$img.bmap" "$img" >"$d/create.log" 2>&1 ||
		fail "$name: create failed: $(tail -n 1 "$d/create.log")"
	csize=$(card_size "$size")

	# The reference's file and card of the raw image, for every form.
	if ((!per_form)); then
		new_file_card $((size + 12345)) rawref-file
		raw_ref_file=$CARD_FILE
		run_copy "$name (reference, file)" "$d/ref.log" "$REF" copy --bmap "$img.bmap" "$img" \
			"$raw_ref_file" || { rm -rf "$d"; continue; }
		raw_ref_card=
		if [[ $use_loop -eq 1 ]]; then
			new_card "$csize" rawref-card
			run_copy "$name (reference, loop)" "$d/ref.log" "$REF" copy --bmap "$img.bmap" "$img" \
				"$CARD_DEV" && raw_ref_card=$CARD_FILE
			detach_loop "$CARD_DEV"
		fi
	fi

	for f in "${FORMS[@]}"; do
		IFS='#' read -r form says cmd progs <<<"$f"
		missing=
		for p in $progs; do command -v "$p" >/dev/null 2>&1 || missing="$missing $p"; done
		if [[ -n $missing ]]; then
			skipped+=(".$form (no$missing)")
			continue
		fi
		# A stored zip is still a .zip for the reference: a folder of its own.
		src=$img.$form
		if [[ $form == stored.zip ]]; then
			mkdir -p "$d/stored"
			cp "$img.bmap" "$d/stored/"
			src=$d/stored/$name.img.zip
		fi
		(cd "$d" && bash -c "$cmd" _ "$(basename "$img")") >"$src" ||
			{ bad "$name.$form: making it failed"; continue; }
		tag="$name.$form"
		# The reference takes a plain .tar for a raw image (no suffix of
		# its names it): its card is that of the image itself.
		refsrc=$src
		[[ $form == tar ]] && refsrc=$img

		# Regular files, pre-filled and larger than the image.
		if ((per_form)); then
			new_file_card $((size + 12345)) ref
			ref_file=$CARD_FILE
			run_copy "$tag (reference, file)" "$d/ref.log" "$REF" copy --bmap "$img.bmap" \
				"$refsrc" "$ref_file" || { rm -f "$ref_file" "$src"; continue; }
		else
			ref_file=$raw_ref_file
		fi
		new_file_card $((size + 12345)) ours
		if run_copy "$tag (ours, file)" "$d/ours.log" "$BMAPTOOL" copy "$src" "$CARD_FILE"; then
			grep -q "discovered bmap file '$(dirname "$src")/$name.img.bmap'" "$d/ours.log" ||
				bad "$tag: ours did not discover $name.img.bmap: $(head -n 2 "$d/ours.log")"
			"$BMAPTOOL" info "$src" >"$d/info.log" 2>&1 ||
				bad "$tag: our info failed: $(tail -n 1 "$d/info.log")"
			if [[ $form == lzo ]]; then
				grep -q "^compression: *lzo$" "$d/info.log"
			else
				grep -q "^archive: *$says archive, member '$name.img'$" "$d/info.log"
			fi || bad "$tag: our info does not say '$says': $(cat "$d/info.log")"
			[[ $form == lzo ]] || grep -q "the image is member '$name.img'" "$d/ours.log" ||
				bad "$tag: ours did not name the member taken: $(head -n 1 "$d/ours.log")"
			same "$tag: our file vs the reference's" "$ref_file" "$CARD_FILE" &&
				same "$tag: our file vs the image" "$img" "$CARD_FILE" &&
				checked=$((checked + 1))
		fi
		rm -f "$CARD_FILE"
		# From a pipe, for a few forms.
		case $form in tar.zst | zip | tar | lzo)
			new_file_card $((size + 12345)) pipe
			if cat "$src" | run_copy "$tag (ours, pipe)" "$d/pipe.log" "$BMAPTOOL" copy \
				--bmap "$img.bmap" - "$CARD_FILE"; then
				same "$tag from a pipe: vs the reference's" "$ref_file" "$CARD_FILE" &&
					checked=$((checked + 1))
			fi
			rm -f "$CARD_FILE" ;;
		esac
		((per_form)) && rm -f "$ref_file"

		[[ $use_loop -eq 1 ]] || { rm -f "$src"; continue; }
		ok=0
		if ((per_form)); then
			new_card "$csize" ref
			ref_file=$CARD_FILE
			run_copy "$tag (reference, loop)" "$d/ref.log" "$REF" copy --bmap "$img.bmap" \
				"$refsrc" "$CARD_DEV" && ok=1
			detach_loop "$CARD_DEV"
		elif [[ -n $raw_ref_card ]]; then
			ref_file=$raw_ref_card
			ok=1
		fi
		if [[ $ok -eq 1 ]]; then
			new_card "$csize" ours
			if run_copy "$tag (ours, loop)" "$d/ours.log" "$BMAPTOOL" copy "$src" "$CARD_DEV"
			then
				detach_loop "$CARD_DEV"
				same "$tag: our card vs the reference's" "$ref_file" "$CARD_FILE" &&
					checked=$((checked + 1))
			else
				detach_loop "$CARD_DEV"
			fi
			rm -f "$CARD_FILE"
		fi
		((per_form)) && rm -f "$ref_file"
		rm -f "$src"
	done
	((per_form)) || rm -f "$raw_ref_file" "${raw_ref_card:-}"
	rm -rf "$d"
done

for s in "${skipped[@]}"; do log "skipped: $s"; done
[[ $checked -gt 0 || $FAILURES -gt 0 ]] || skip "nothing could be tested"
finish "$checked copies of archived and lzop images equal to the reference's" \
	"$([[ $use_loop -eq 1 ]] && echo "(files and loop devices)" || echo "(files only)")"
