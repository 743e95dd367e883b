#!/bin/bash
# Benchmark `bmaptool copy` and `verify` (ours) against the reference copy on
# the bench image (tests/bench/mkimage.sh --compressed: 2 GiB, ~712 MiB
# mapped), written to a loop device over a 2.2 GiB backing file in /dev/shm.
#
# For each image (raw, .zst, .gz, .xz; .bz2 and .lz4 with --all-codecs) the
# two tools copy in turn, RUNS times each, and the medians are compared:
#   copy raw: reference X.XXs, ours Y.YYs, ratio R.RRx (target >= 2.5x)
# plus our peak RSS (/usr/bin/time). After ours' last run of each image our
# verify must pass. Then our verify is timed against the speed of SHA-256 on
# this CPU (openssl speed -evp sha256, 16 KiB blocks).
#
# The page cache stays warm (the images are read once beforehand, caches are
# never dropped): both tools read from memory, the card is RAM too, so the
# figures measure the tools, not the disk. Ratios are printed, never judged:
# the exit status is non-zero only when a copy fails or the card is wrong.
#
# usage: bench-copy.sh [--all-codecs] [BMAPTOOL]
# env:   BMAPTOOL (default build/bmaptool of this checkout,
#        as deploy/build.sh makes it), BENCH_DIR (default
#        /var/tmp/bmap-bench), RUNS (default 3), BMAPTOOL_REF (default
#        /usr/bin/bmaptool), CARD_DIR (default /dev/shm)

set -u
LC_NUMERIC=C # $EPOCHREALTIME with a dot

all_codecs=0
OURS=${BMAPTOOL:-$(cd "$(dirname "$0")/../.." && pwd)/build/bmaptool}
for arg in "$@"; do
	case $arg in
	--all-codecs) all_codecs=1 ;;
	-h | --help)
		sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
		exit 0 ;;
	-*) echo "bench-copy: unknown option $arg" >&2; exit 2 ;;
	*) OURS=$arg ;;
	esac
done
REF=${BMAPTOOL_REF:-/usr/bin/bmaptool}
BENCH_DIR=${BENCH_DIR:-/var/tmp/bmap-bench}
RUNS=${RUNS:-3}
CARD_DIR=${CARD_DIR:-/dev/shm}
here=$(cd "$(dirname "$0")" && pwd)

die() { echo "bench-copy: $*" >&2; exit 1; }
say() { echo "bench-copy: $*" >&2; }
[[ -x $OURS ]] || die "our bmaptool '$OURS' is not executable"
[[ -x $REF ]] || die "reference bmaptool '$REF' missing"
[[ $(id -u) -eq 0 ]] || die "needs root (loop devices)"
[[ -x /usr/bin/time ]] || die "needs /usr/bin/time (Debian package 'time')"
command -v losetup >/dev/null || die "needs losetup"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive number"

"$here/mkimage.sh" --compressed "$BENCH_DIR" >/dev/null || die "mkimage.sh failed"
img=$BENCH_DIR/bench.img
bmap=$img.bmap
[[ -r $bmap ]] || die "no $bmap"

. "$here/bench-card.sh"
bench_card bench-copy

block_size=$(sed -nE 's|.*<BlockSize>[[:space:]]*([0-9]+).*|\1|p' "$bmap")
mapped_blocks=$(sed -nE 's|.*<MappedBlocksCount>[[:space:]]*([0-9]+).*|\1|p' "$bmap")
mapped_bytes=$((block_size * mapped_blocks))

# window_kib FILE CASE: the window (KiB) the image was compressed with, the
# memory its format itself demands of a decoder; 32 for gzip, 0 for raw.
window_kib() {
	local b
	case $2 in
	zst) b=$(zstd -lv "$1" 2>/dev/null | sed -nE 's/^Window Size:.*\(([0-9]+) B\).*/\1/p' | head -n 1) ;;
	xz) b=$(xz -lvv "$1" 2>/dev/null | grep -oE 'dict=[0-9]+[KM]iB' | sort -u |
		awk -F'[=KM]' '{ v = $2 * ($0 ~ /MiB/ ? 1048576 : 1024); if (v > m) m = v } END { print m + 0 }') ;;
	gz) b=32768 ;;
	bz2) b=$((900 * 1024)) ;;
	lz4) b=$((4 << 20)) ;;
	*) b=0 ;;
	esac
	echo $((${b:-0} / 1024))
}

cases=(raw zst gz xz)
[[ $all_codecs -eq 1 ]] && cases+=(bz2 lz4)
declare -A TARGET=([raw]=2.5 [zst]=3 [gz]=3 [xz]=1.5)

echo "bench-copy: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at start;" \
	"$RUNS runs each, medians; card $loop over $card_file"
echo "  image: $img, $((mapped_bytes / 1048576)) MiB mapped"

# Warm the page cache once: both tools then read the images from memory.
for c in "${cases[@]}"; do
	f=$img
	[[ $c == raw ]] || f=$img.$c
	[[ -r $f ]] || continue
	cat "$f" >/dev/null
done

# run_timed TIMEFILE CMD...: run CMD, print its wall time (s); /usr/bin/time
# writes the peak RSS (KiB) to TIMEFILE. Fails when CMD fails.
run_timed() {
	local tf=$1 t0 t1 rc
	shift
	t0=$EPOCHREALTIME # no fork: the clock is read by bash itself
	/usr/bin/time -f %M -o "$tf" "$@" >"$out/log" 2>&1
	rc=$?
	t1=$EPOCHREALTIME
	if [[ $rc -ne 0 ]]; then
		echo "bench-copy: '$*' failed (exit $rc):" >&2
		tail -n 3 "$out/log" >&2
		return 1
	fi
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", b - a }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) printf "%.2f\n", v[int((NR + 1) / 2)] }'; }

status=0
for c in "${cases[@]}"; do
	src=$img
	[[ $c == raw ]] || src=$img.$c
	if [[ ! -r $src ]]; then
		echo "copy $c: $src missing, skipped"
		continue
	fi
	: >"$out/ref.times"
	: >"$out/ours.times"
	: >"$out/ours.rss"
	failed=0
	for ((i = 0; i < RUNS; i++)); do
		run_timed "$out/ref.rss" "$REF" copy --bmap "$bmap" "$src" "$loop" >>"$out/ref.times" ||
			{ failed=1; break; }
		run_timed "$out/rss" "$OURS" copy --bmap "$bmap" "$src" "$loop" >>"$out/ours.times" ||
			{ failed=1; break; }
		tail -n 1 "$out/rss" >>"$out/ours.rss"
	done
	if [[ $failed -eq 1 ]]; then
		echo "copy $c: FAILED"
		status=1
		continue
	fi
	ref_t=$(median <"$out/ref.times")
	ours_t=$(median <"$out/ours.times")
	rss=$(sort -n "$out/ours.rss" | tail -n 1)
	target=${TARGET[$c]:-}
	awk -v c="$c" -v r="$ref_t" -v o="$ours_t" -v t="$target" 'BEGIN {
		printf "copy %s: reference %.2fs, ours %.2fs, ratio %.2fx %s\n", c, r, o,
			(o > 0 ? r / o : 0), (t != "" ? "(target >= " t "x)" : "(no target)") }'
	win=$(window_kib "$src" "$c")
	limit=$((65536 + win))
	echo "  peak RSS ours: $rss KiB (target < $limit KiB: 64 MiB plus the image's $win KiB window):" \
		"$([[ $rss -lt $limit ]] && echo ok || echo OVER)"

	# The card must hold the image's mapped data (ours wrote last).
	if "$OURS" verify --bmap "$bmap" "$src" "$loop" >"$out/verify.log" 2>&1; then
		echo "  card verified after ours: ok"
	else
		echo "  card verified after ours: FAILED"
		tail -n 2 "$out/verify.log" | sed 's/^/    /'
		status=1
	fi
done

# verify: our read-back speed against the speed of SHA-256 itself.
: >"$out/verify.times"
vfail=0
for ((i = 0; i < RUNS; i++)); do
	run_timed "$out/rss" "$OURS" verify --bmap "$bmap" "$img" "$loop" >>"$out/verify.times" ||
		{ vfail=1; break; }
done
if [[ $vfail -eq 1 ]]; then
	echo "verify: FAILED"
	status=1
else
	vt=$(median <"$out/verify.times")
	# openssl's last line: "sha256  <rate>k" in 1000s of bytes per second.
	ossl=$(openssl speed -evp sha256 -bytes 16384 -seconds 3 2>/dev/null | tail -n 1 |
		awk '{ v = $NF; sub(/k$/, "", v); printf "%.1f\n", v * 1000 / 1e6 }')
	awk -v b="$mapped_bytes" -v t="$vt" -v s="$ossl" 'BEGIN {
		mbs = (t > 0 ? b / 1e6 / t : 0)
		if (s > 0)
			printf "verify: %.0f MB/s of mapped data = %.0f%% of openssl speed -evp sha256 (16 KiB blocks, %.0f MB/s) (target >= 70%%)\n", mbs, mbs * 100 / s, s
		else
			printf "verify: %.0f MB/s of mapped data (openssl speed unavailable)\n", mbs }'
	echo "  median ${vt}s over $RUNS runs; peak RSS $(tail -n 1 "$out/rss") KiB"
fi

echo "bench-copy: load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
exit $status
