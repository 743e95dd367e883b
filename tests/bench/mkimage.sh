#!/bin/bash
# Build the benchmark image OUTDIR/bench.img: a 2 GiB sparse disk with a GPT,
# a 256 MiB FAT partition holding ~100 MiB of files and a 1.5 GiB ext4
# partition holding ~600 MiB (both taken from /usr), about 700 MiB mapped.
# Also writes OUTDIR/bench.img.bmap with the reference bmaptool and, with
# --compressed, bench.img.{zst,gz,xz,bz2,lz4} (bmap discovery finds
# bench.img.bmap for them by stripping the extension).
#
# No loop devices, no mounts: each filesystem is built in its own file
# (mkfs.vfat + mcopy, mkfs.ext4 -d) and copied in with dd conv=sparse.
# Idempotent: an existing image is kept unless --force is given.
#
# --small builds OUTDIR/bench-small.img instead (and its bmap and compressed
# files): a 1 GiB disk of the same layout with ~16 MiB of files on FAT and
# ~40 MiB on ext4, about 76 MiB mapped with their metadata, for benchmarks
# that write many cards at once into memory. The 2 GiB image is not touched.
#
# usage: mkimage.sh [--force] [--compressed] [--small] OUTDIR

set -eu

force=0
compressed=0
small=0
outdir=
for arg in "$@"; do
	case $arg in
	--force) force=1 ;;
	--compressed) compressed=1 ;;
	--small) small=1 ;;
	-h | --help)
		sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
		exit 0 ;;
	-*) echo "mkimage.sh: unknown option $arg" >&2; exit 2 ;;
	*) outdir=$arg ;;
	esac
done
[[ -n $outdir ]] || { echo "usage: mkimage.sh [--force] [--compressed] [--small] OUTDIR" >&2; exit 2; }

REF=${BMAPTOOL_REF:-/usr/bin/bmaptool}
MiB=1048576
IMG_SIZE=$((2048 * MiB))
FAT_START=$((1 * MiB))    # partition 1: 1 MiB .. 257 MiB
FAT_SIZE=$((256 * MiB))
EXT_START=$((257 * MiB))  # partition 2: 257 MiB .. 1793 MiB
EXT_SIZE=$((1536 * MiB))
FAT_DATA=$((100 * MiB))   # bytes of files to put on each filesystem
EXT_DATA=$((600 * MiB))
NAME=bench.img
if [[ $small -eq 1 ]]; then
	IMG_SIZE=$((1024 * MiB))
	FAT_SIZE=$((128 * MiB))  # partition 1: 1 MiB .. 129 MiB
	EXT_START=$((129 * MiB)) # partition 2: 129 MiB .. 1009 MiB
	EXT_SIZE=$((880 * MiB))
	FAT_DATA=$((16 * MiB))
	EXT_DATA=$((40 * MiB))
	NAME=bench-small.img
fi

# Fixed identities and times, so two builds from the same /usr match.
DISK_GUID=5d1e5a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b
FAT_GUID=11111111-2222-4333-8444-555555555555
EXT_GUID=66666666-7777-4888-8999-aaaaaaaaaaaa
EXT_UUID=0b3a1e6c-7d2f-4c5a-9e8b-1f2a3b4c5d6e
FAKE_TIME=1700000000

say() { echo "mkimage: $*" >&2; }
die() { echo "mkimage: error: $*" >&2; exit 1; }
for cmd in sgdisk mkfs.vfat mcopy mkfs.ext4 tar dd; do
	command -v "$cmd" >/dev/null || die "'$cmd' is needed (gdisk, dosfstools, mtools, e2fsprogs)"
done

mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
img=$outdir/$NAME
work=

cleanup() {
	[[ -n $work && -d $work ]] && rm -rf -- "$work"
	rm -f -- "$img.tmp" "$img".*.tmp
}
trap cleanup EXIT

# pick_files DIR MIN MAX TOTAL: regular files under DIR of MIN to MAX bytes,
# in path order, until TOTAL bytes; prints paths relative to /.
pick_files() {
	find "$1" -xdev -type f -size +$(($2 - 1))c -size -$(($3 + 1))c -readable \
		-printf '%s %P\n' 2>/dev/null |
		LC_ALL=C sort -k2 |
		awk -v total="$4" -v base="${1#/}" '
			{ size = $1; sub(/^[0-9]+ /, "");
			  if (sum >= total) exit;
			  sum += size; print base "/" $0 }'
}

# stage LIST DIR: copy the listed files (relative to /) into DIR.
stage() {
	mkdir -p "$2"
	tar -C / --no-recursion -cf - -T "$1" 2>/dev/null | tar -C "$2" -xf -
}

build_image() {
	work=$(mktemp -d "$outdir/.mkimage.XXXXXX")

	say "choosing files from /usr"
	# FAT: bigger files (libraries), as on a boot partition; ext4: a mix of
	# many small files (/usr/share) and programs (/usr/bin).
	pick_files /usr/lib 65536 $((8 * MiB)) $FAT_DATA >"$work/fat.list"
	pick_files /usr/share 1 $((32 * MiB)) $((EXT_DATA / 2)) >"$work/ext.list"
	pick_files /usr/bin 1 $((32 * MiB)) $((EXT_DATA / 2)) >>"$work/ext.list"
	stage "$work/fat.list" "$work/fat"
	stage "$work/ext.list" "$work/ext"
	find "$work/fat" "$work/ext" -exec touch -h -d "@$FAKE_TIME" {} +

	say "building the FAT filesystem ($((FAT_SIZE / MiB)) MiB)"
	mkfs.vfat -F 32 -n BENCHBOOT -i 1badc0de --invariant \
		-C "$work/fat.img" $((FAT_SIZE / 1024)) >/dev/null
	# -D o: overwrite on a long-name clash instead of asking.
	MTOOLS_SKIP_CHECK=1 mcopy -i "$work/fat.img" -s -p -m -Q -D o \
		"$work/fat/usr" ::/ || die "mcopy failed"

	say "building the ext4 filesystem ($((EXT_SIZE / MiB)) MiB)"
	truncate -s "$EXT_SIZE" "$work/ext.img"
	E2FSPROGS_FAKE_TIME=$FAKE_TIME mkfs.ext4 -q -F -b 4096 -L bench-root \
		-U "$EXT_UUID" -E "hash_seed=$EXT_UUID,root_owner=0:0" \
		-d "$work/ext" "$work/ext.img" || die "mkfs.ext4 failed"

	say "assembling $img"
	rm -f "$img.tmp"
	truncate -s "$IMG_SIZE" "$img.tmp"
	sgdisk -Z -o -U "$DISK_GUID" \
		-n 1:$((FAT_START / 512)):+$((FAT_SIZE / 1024))K -t 1:0700 -c 1:boot -u 1:$FAT_GUID \
		-n 2:$((EXT_START / 512)):+$((EXT_SIZE / 1024))K -t 2:8300 -c 2:root -u 2:$EXT_GUID \
		"$img.tmp" >/dev/null || die "sgdisk failed"
	# conv=sparse: all-zero 4 KiB blocks become holes (unused space, the
	# zeroed journal); good enough for a benchmark image.
	dd if="$work/fat.img" of="$img.tmp" bs=4096 seek=$((FAT_START / 4096)) \
		conv=notrunc,sparse status=none
	dd if="$work/ext.img" of="$img.tmp" bs=4096 seek=$((EXT_START / 4096)) \
		conv=notrunc,sparse status=none
	sync -f "$img.tmp" 2>/dev/null || sync
	mv -f "$img.tmp" "$img"
	rm -f "$img.bmap"
	rm -rf -- "$work"
	work=
}

# newer_than A B: A exists and is not older than B.
newer_than() { [[ -e $1 && ! $1 -ot $2 ]]; }

if [[ $force -eq 1 || ! -e $img ]]; then
	build_image
else
	say "keeping existing $img (use --force to rebuild)"
fi

if ! newer_than "$img.bmap" "$img"; then
	if [[ -x $REF ]]; then
		say "writing $img.bmap with the reference bmaptool"
		"$REF" create -o "$img.bmap.tmp" "$img" && mv -f "$img.bmap.tmp" "$img.bmap"
	else
		say "reference bmaptool ($REF) missing: no $img.bmap"
	fi
fi

if [[ $compressed -eq 1 ]]; then
	gz="gzip -6 -c"
	command -v pigz >/dev/null && gz="pigz -6 -c"
	bz="bzip2 -9 -c"
	command -v lbzip2 >/dev/null && bz="lbzip2 -9 -c"
	for spec in "zst|zstd -T2 -3 -q -c" "gz|$gz" "xz|xz -T2 -6 -c" "bz2|$bz" "lz4|lz4 -q -c"; do
		ext=${spec%%|*}
		cmd=${spec#*|}
		out=$img.$ext
		newer_than "$out" "$img" && continue
		command -v "${cmd%% *}" >/dev/null || { say "no ${cmd%% *}: skipping .$ext"; continue; }
		say "compressing: $out (${cmd})"
		$cmd <"$img" >"$out.tmp" && mv -f "$out.tmp" "$out"
	done
fi

mapped_blocks=$(sed -nE 's|.*<MappedBlocksCount>[[:space:]]*([0-9]+).*|\1|p' "$img.bmap" 2>/dev/null || true)
block_size=$(sed -nE 's|.*<BlockSize>[[:space:]]*([0-9]+).*|\1|p' "$img.bmap" 2>/dev/null || true)
echo "bench image: $img"
echo "  size:   $(du -h --apparent-size "$img" | cut -f1) (apparent), $(du -h "$img" | cut -f1) allocated"
[[ -n $mapped_blocks ]] && echo "  mapped: $((mapped_blocks * block_size / MiB)) MiB per $img.bmap"
for ext in zst gz xz bz2 lz4; do
	[[ -e $img.$ext ]] && echo "  $img.$ext: $(du -h "$img.$ext" | cut -f1)"
done
exit 0
