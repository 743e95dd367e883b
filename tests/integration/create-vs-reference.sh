#!/bin/bash
# `bmaptool create` must write the same bytes as the reference bmaptool 3.6
# (with -o, to stdout, with and without --no-checksum) for images with awkward
# layouts; bmaps made with other block sizes must be accepted by the reference
# `copy` and reproduce the image.

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
need_reference
need_ours
need_cmd cmp
need_cmd diff

# name|spec[|nocopy] (spec: see mk_sparse_image in lib/common.sh; nocopy:
# too big to compare after a copy)
CASES=(
	"one-byte|data=0:1"
	"tiny-hole|size=100"
	"size-511|data=0:511"
	"size-512|data=0:512"
	"size-1280|data=0:1280"
	"human-rounds-up|size=1M-1 data=0:4K"
	"percent-0.05|size=8000K data=0:4K"
	"percent-0.25|size=1600K data=0:4K"
	"percent-0.75|size=1600K data=0:12K"
	"single-block|data=0:4096"
	"holes-at-ends|size=1M data=256K:256K"
	"partial-last-block|size=1M+1000 data=0:8K data=1M-4K:5096"
	"partial-last-hole|size=1M+1000 data=4K:4K"
	"all-holes|size=10M"
	"fully-mapped|data=0:3M"
	"fully-mapped-partial|data=0:3M+123"
	"islands-300|size=3M islands=4K:4K:300:8K"
	"islands-beyond-fiemap-batch|size=40M islands=4K:4K:5000:8K"
	"unwritten-extent|size=4M data=0:4K unwritten=1M:1M data=3M:4K"
	"unwritten-at-end|size=2M data=0:4K unwritten=2M-64K:64K"
	"prealloc-beyond-end|size=1M data=0:4K prealloc=1M-8K:1M"
	"prealloc-partial-end|size=1M+100 data=0:4K prealloc=1M:1M"
	"prealloc-past-end|size=1M+100 data=0:4K prealloc=2M:1M"
	"zero-data-blocks|size=2M zero=512K:64K data=1M:4K zero=2M-4K:4K"
	"punched|data=0:2M hole=4K:8K hole=1M:512K"
	"mixed-adjacent|size=1M data=0:8K unwritten=8K:8K data=16K:4K zero=20K:4K"
	"unwritten-300m|size=400M data=0:4K unwritten=4K:300M"
	"huge-sparse-3t|size=3072G data=0:4K data=2048G:64K data=3072G-4K:4K|nocopy"
	"sparse-1g|size=1G data=0:1M data=100M+4K:2M unwritten=700M:1M data=512M+4K:1M data=1G-4K:4K"
)

failures=0
bad() { log "FAIL: $*"; failures=$((failures + 1)); }

# same REF OURS WHAT: byte-identical or report the first differing lines.
same() {
	if ! cmp -s "$1" "$2"; then
		bad "$3: output differs from the reference"
		diff "$1" "$2" | head -n 20 >&2
		return 1
	fi
}

# compare_create DIR NAME IMG: ours (-o over a longer file, and stdout) must
# equal the reference, with and without --no-checksum.
compare_create() {
	local d=$1 name=$2 img=$3 opt tag
	for opt in "" "--no-checksum"; do
		tag="$name${opt:+ $opt}"
		rm -f "$d"/*.bmap
		"$REF" create $opt -o "$d/ref.bmap" "$img" 2>"$d/ref.err" ||
			{ bad "$tag: reference create failed: $(tail -n 1 "$d/ref.err")"; continue; }
		# A longer file already there must be truncated by -o.
		head -c 100000 /dev/urandom >"$d/ours.bmap"
		"$BMAPTOOL" create $opt -o "$d/ours.bmap" "$img" 2>"$d/ours.err" ||
			{ bad "$tag: our create -o failed: $(cat "$d/ours.err")"; continue; }
		same "$d/ref.bmap" "$d/ours.bmap" "$tag (-o)"
		"$BMAPTOOL" create $opt "$img" >"$d/stdout.bmap" 2>"$d/ours.err" ||
			{ bad "$tag: our create to stdout failed: $(cat "$d/ours.err")"; continue; }
		same "$d/ref.bmap" "$d/stdout.bmap" "$tag (stdout)"
	done
}

for c in "${CASES[@]}"; do
	IFS='|' read -r name spec flags <<<"$c"
	d=$TEST_TMP/$name
	mkdir -p "$d"
	img=$d/$name.img
	mk_sparse_image "$img" "$spec"
	log "$name: $(stat -c %s "$img") bytes, $(du -k "$img" | cut -f1) KiB allocated"

	compare_create "$d" "$name" "$img"

	[[ ${flags:-} == nocopy ]] && bslist="" || bslist="512 65536"
	for bs in $bslist; do
		tag="$name --blocksize $bs"
		"$BMAPTOOL" create --blocksize "$bs" -o "$d/bs.bmap" "$img" 2>"$d/ours.err" ||
			{ bad "$tag: our create failed: $(cat "$d/ours.err")"; continue; }
		[[ $(bmap_field "$d/bs.bmap" BlockSize) == "$bs" ]] ||
			bad "$tag: BlockSize is not $bs"
		rm -f "$d/out.img"
		"$REF" copy --bmap "$d/bs.bmap" "$img" "$d/out.img" >"$d/copy.log" 2>&1 ||
			{ bad "$tag: reference copy refused our bmap:"; tail -n 3 "$d/copy.log" >&2; continue; }
		cmp -s "$img" "$d/out.img" || bad "$tag: reference copy result differs from the image"
		rm -f "$d/out.img"
	done
	rm -rf "$d"
done

# On tmpfs there is no FIEMAP: the reference falls back to SEEK_DATA/SEEK_HOLE
# (fallocated space counts as data there too). Ours must still match.
if [[ $(stat -f -c %T /dev/shm 2>/dev/null) == tmpfs && -w /dev/shm ]]; then
	shm=$(mktemp -d /dev/shm/bmaptest-$TEST_NAME.XXXXXX) || fail "mktemp in /dev/shm"
	on_exit "rm -rf -- '$shm'"
	for c in "${CASES[@]}"; do
		IFS='|' read -r name spec flags <<<"$c"
		case $name in
		holes-at-ends | partial-last-block | all-holes | islands-300 | \
			unwritten-extent | mixed-adjacent | one-byte) ;;
		*) continue ;;
		esac
		mk_sparse_image "$shm/$name.img" "$spec"
		compare_create "$shm" "tmpfs $name" "$shm/$name.img"
		rm -f "$shm"/*
	done
	log "tmpfs (SEEK_HOLE) layouts compared"
fi

# Output targets that are not plain files. The reference opens -o with
# open(path, "w+"): it writes through a symlink and refuses a FIFO (not
# seekable). Ours may stream into a FIFO or refuse it, but must never replace
# either by a new file (write to a temporary file + rename would, as root,
# also replace device nodes such as /dev/null). Only our temp dir is used.
d=$TEST_TMP/outputs
mkdir -p "$d"
img=$d/o.img
mk_sparse_image "$img" "size=1M data=0:8K data=512K:4K"
"$REF" create -o "$d/ref.bmap" "$img" 2>/dev/null || bad "reference create failed"

echo keep >"$d/target.bmap"
ln -s target.bmap "$d/link.bmap"
"$BMAPTOOL" create -o "$d/link.bmap" "$img" 2>"$d/err" ||
	bad "-o symlink: our create failed: $(cat "$d/err")"
[[ -L $d/link.bmap ]] ||
	bad "-o symlink: the symlink was replaced by a file (the reference writes through it)"
cmp -s "$d/ref.bmap" "$d/target.bmap" ||
	bad "-o symlink: the symlink's target does not hold the bmap"

# An existing output keeps its permissions, as with the reference.
: >"$d/mode.bmap"
chmod 640 "$d/mode.bmap"
"$BMAPTOOL" create -o "$d/mode.bmap" "$img" 2>"$d/err" ||
	bad "-o existing file: our create failed: $(cat "$d/err")"
[[ $(stat -c %a "$d/mode.bmap") == 640 ]] ||
	bad "-o existing file: mode 640 became $(stat -c %a "$d/mode.bmap") (the reference keeps the file)"

mkfifo "$d/fifo"
timeout 10 cat "$d/fifo" >"$d/from-fifo" 2>/dev/null &
reader=$!
on_exit "kill $reader 2>/dev/null"
if timeout 30 "$BMAPTOOL" create -o "$d/fifo" "$img" 2>"$d/err"; then
	ours_rc=0
else
	ours_rc=1
	log "-o FIFO refused (like the reference): $(head -c 200 "$d/err")"
fi
wait "$reader" 2>/dev/null
if [[ ! -p $d/fifo ]]; then
	bad "-o FIFO: the FIFO was replaced by a regular file"
elif [[ $ours_rc -eq 0 ]] && ! cmp -s "$d/ref.bmap" "$d/from-fifo"; then
	bad "-o FIFO: the reader did not get the bmap"
fi

[[ $failures -eq 0 ]] || fail "$failures check(s) failed"
log "all ${#CASES[@]} layouts match the reference"
exit 0
