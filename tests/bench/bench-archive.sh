#!/bin/bash
# Benchmark `bmaptool copy` of images in archives against the same image
# under the bare codec, and ours against the reference for .lzo, writing
# the same loop device (over a 2.2 GiB file in /dev/shm) in the same run:
#   .tar.zst vs .zst     (target: the archive at >= 90% of the bare speed)
#   .tar.gz  vs .gz      .tar.xz vs .xz      .zip (deflate) vs .gz
#   .lzo: ours vs the reference (bmaptool-3.9 when installed, else Debian's)
# The files are made from the bench image (tests/bench/mkimage.sh: 2 GiB,
# ~712 MiB mapped) with the same codec settings for both of a pair (zstd -3
# -T2, gzip -6, xz -2 -T2 in blocks, zip -6, lzop -3; the tar is not sparse,
# so both decode the same 2 GiB) and kept in BENCH_DIR as bench-arc.*.
#
# Each pair copies in turn, RUNS times each, with its bmap (bench.img.bmap);
# the medians are compared:
#   tar.zst vs zst: zst 1.10s, tar.zst 1.15s: the archive at 95.7% of the speed (target >= 90%)
# The page cache stays warm (every file is read once first): the figures
# measure the tools. Ratios are printed, never judged: the exit status is
# non-zero only when a copy fails or the card is wrong after it.
#
# usage: bench-archive.sh [BMAPTOOL]
# env:   BMAPTOOL (default build/bmaptool of this checkout), BENCH_DIR
#        (default /var/tmp/bmap-bench), RUNS (default 3), CARD_DIR (default
#        /dev/shm), PAIRS (default "tar.zst tar.gz tar.xz zip lzo"),
#        MAKE_ONLY=1 (make the files and stop: no loop device needed)

set -u
LC_NUMERIC=C # $EPOCHREALTIME with a dot

OURS=${BMAPTOOL:-$(cd "$(dirname "$0")/../.." && pwd)/build/bmaptool}
for arg in "$@"; do
	case $arg in
	-h | --help)
		sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
		exit 0 ;;
	-*) echo "bench-archive: unknown option $arg" >&2; exit 2 ;;
	*) OURS=$arg ;;
	esac
done
BENCH_DIR=${BENCH_DIR:-/var/tmp/bmap-bench}
RUNS=${RUNS:-3}
CARD_DIR=${CARD_DIR:-/dev/shm}
read -r -a pairs <<<"${PAIRS:-tar.zst tar.gz tar.xz zip lzo}"
here=$(cd "$(dirname "$0")" && pwd)

die() { echo "bench-archive: $*" >&2; exit 1; }
say() { echo "bench-archive: $*" >&2; }
[[ -x $OURS ]] || die "our bmaptool '$OURS' is not executable"
[[ $(id -u) -eq 0 || ${MAKE_ONLY:-0} == 1 ]] || die "needs root (loop devices)"
for cmd in losetup tar zstd gzip xz zip lzop; do
	command -v "$cmd" >/dev/null || die "needs $cmd"
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive number"
REF=$(command -v bmaptool-3.9 || echo "${BMAPTOOL_REF:-/usr/bin/bmaptool}")

"$here/mkimage.sh" "$BENCH_DIR" >/dev/null || die "mkimage.sh failed"
img=$BENCH_DIR/bench.img
bmap=$img.bmap
[[ -r $bmap ]] || die "no $bmap"
base=$BENCH_DIR/bench-arc

# make FILE SHELL-CMD: FILE from the bench image (the command's standard
# output, run in BENCH_DIR with the image's name as $1) unless it is newer.
make() {
	local f=$1
	[[ -s $f && $f -nt $img ]] && return 0
	say "making $f"
	(cd "$BENCH_DIR" && bash -c "$2" _ bench.img) >"$f.part" && mv -- "$f.part" "$f" ||
		{ rm -f -- "$f.part"; die "making $f failed"; }
}
declare -A CMD=(
	[zst]='zstd -q -3 -T2 -c "$1"'
	[tar.zst]='tar -cf - "$1" | zstd -q -3 -T2 -c'
	[gz]='gzip -6 -c "$1"'
	[tar.gz]='tar -cf - "$1" | gzip -6 -c'
	[xz]='xz -q -2 -T2 --block-size=16MiB -c "$1"'
	[tar.xz]='tar -cf - "$1" | xz -q -2 -T2 --block-size=16MiB -c'
	[zip]='zip -q -6 - "$1"'
	[lzo]='lzop -3 -c "$1"'
)
# pair -> the bare form it is compared with ("ref": the reference, same file)
declare -A PEER=([tar.zst]=zst [tar.gz]=gz [tar.xz]=xz [zip]=gz [lzo]=ref)
for p in "${pairs[@]}"; do
	[[ -n ${PEER[$p]:-} ]] || die "unknown pair '$p'"
	make "$base.$p" "${CMD[$p]}"
	[[ ${PEER[$p]} == ref ]] || make "$base.${PEER[$p]}" "${CMD[${PEER[$p]}]}"
done
[[ ${MAKE_ONLY:-0} == 1 ]] && exit 0

. "$here/bench-card.sh"
bench_card bench-archive

echo "bench-archive: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at start;" \
	"$RUNS runs each, medians; card $loop over $card_file"
echo "  source: $img, $(($(sed -nE 's|.*<MappedBlocksCount>[[:space:]]*([0-9]+).*|\1|p' "$bmap") * 4096 / 1048576)) MiB mapped; reference $REF"

run_timed() {
	local t0 t1 rc
	t0=$EPOCHREALTIME
	"$@" >"$out/log" 2>&1
	rc=$?
	t1=$EPOCHREALTIME
	if [[ $rc -ne 0 ]]; then
		echo "bench-archive: '$*' failed (exit $rc):" >&2
		tail -n 3 "$out/log" >&2
		return 1
	fi
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", b - a }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) printf "%.2f\n", v[int((NR + 1) / 2)] }'; }

status=0
for p in "${pairs[@]}"; do
	arc=$base.$p
	peer=${PEER[$p]}
	if [[ $peer == ref ]]; then
		PEER_CMD=("$REF" copy --bmap "$bmap" "$arc" "$loop")
		peer_name="reference"
	else
		PEER_CMD=("$OURS" copy --bmap "$bmap" "$base.$peer" "$loop")
		peer_name=$peer
		cat "$base.$peer" >/dev/null
	fi
	cat "$arc" >/dev/null
	: >"$out/peer.times"
	: >"$out/ours.times"
	failed=0
	for ((i = 0; i < RUNS; i++)); do
		run_timed "${PEER_CMD[@]}" >>"$out/peer.times" || { failed=1; break; }
		run_timed "$OURS" copy --bmap "$bmap" "$arc" "$loop" >>"$out/ours.times" ||
			{ failed=1; break; }
	done
	if [[ $failed -eq 1 ]]; then
		echo "$p vs $peer_name: FAILED"
		status=1
		continue
	fi
	peer_t=$(median <"$out/peer.times")
	ours_t=$(median <"$out/ours.times")
	if [[ $peer == ref ]]; then
		awk -v r="$peer_t" -v o="$ours_t" 'BEGIN {
			printf "lzo: reference %.2fs, ours %.2fs, ratio %.2fx\n", r, o, (o > 0 ? r / o : 0) }'
	else
		awk -v p="$p" -v b="$peer" -v r="$peer_t" -v o="$ours_t" \
			-v t="$([[ $p == tar.zst ]] && echo " (target >= 90%)")" 'BEGIN {
			printf "%s vs %s: %s %.2fs, %s %.2fs: the archive at %.1f%% of the speed%s\n",
				p, b, b, r, p, o, (o > 0 ? 100 * r / o : 0), t }'
	fi
	if "$OURS" verify --bmap "$bmap" "$img" "$loop" >"$out/verify.log" 2>&1; then
		echo "  card verified against the raw image's bmap: ok"
	else
		echo "  card verified: FAILED"
		tail -n 2 "$out/verify.log" | sed 's/^/    /'
		status=1
	fi
done

echo "bench-archive: load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
exit $status
