#!/bin/bash
# Benchmark `bmaptool create` against the reference on the bench image
# (tests/bench/mkimage.sh): median of RUNS runs each, page cache warm.
# Prints ratios, never judges time; exits non-zero only when our bmap differs
# from the reference's (or a tool fails).
#
# usage: bench-create.sh [BMAPTOOL]
# env:   BMAPTOOL (default build/bmaptool of this checkout,
#        as deploy/build.sh makes it), BENCH_DIR (default
#        /var/tmp/bmap-bench: keep it on ext4, not tmpfs, so that both tools
#        use FIEMAP), RUNS (default 3), BMAPTOOL_REF (default /usr/bin/bmaptool)

set -u
LC_NUMERIC=C # $EPOCHREALTIME with a dot

OURS=${1:-${BMAPTOOL:-$(cd "$(dirname "$0")/../.." && pwd)/build/bmaptool}}
REF=${BMAPTOOL_REF:-/usr/bin/bmaptool}
BENCH_DIR=${BENCH_DIR:-/var/tmp/bmap-bench}
RUNS=${RUNS:-3}
here=$(cd "$(dirname "$0")" && pwd)

die() { echo "bench-create: $*" >&2; exit 1; }
[[ -x $OURS ]] || die "our bmaptool '$OURS' is not executable"
[[ -x $REF ]] || die "reference bmaptool '$REF' missing"

"$here/mkimage.sh" "$BENCH_DIR" >/dev/null || die "mkimage.sh failed"
img=$BENCH_DIR/bench.img
[[ $(stat -f -c %T "$BENCH_DIR") == tmpfs ]] &&
	echo "bench-create: note: $BENCH_DIR is tmpfs: the reference falls back to SEEK_HOLE there"

out=$(mktemp -d "${TMPDIR:-/tmp}/bench-create.XXXXXX") || die "mktemp failed"
trap 'rm -rf -- "$out"' EXIT

cat "$img" >/dev/null # warm the page cache (holes cost nothing)

# median_time OUTFILE CMD...: run RUNS times, print the median wall time (s).
median_time() {
	local outfile=$1 i t0 t1
	shift
	for ((i = 0; i < RUNS; i++)); do
		t0=$EPOCHREALTIME # no fork: the clock is read by bash itself
		"$@" -o "$outfile" "$img" 2>"$out/err" || { cat "$out/err" >&2; return 1; }
		t1=$EPOCHREALTIME
		awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", b - a }'
	done | sort -g | awk '{ v[NR] = $1 } END { printf "%.3f\n", v[int((NR + 1) / 2)] }'
}

status=0
# compare LABEL REF OURS: bmaps must be identical.
compare() {
	if ! cmp -s "$2" "$3"; then
		echo "bench-create: $1: our bmap differs from the reference:" >&2
		diff "$2" "$3" | head -n 20 >&2
		status=1
	fi
}

report() { # LABEL REF_TIME OUR_TIME
	awk -v l="$1" -v r="$2" -v o="$3" 'BEGIN {
		printf "%s: reference %.2fs, ours %.2fs, ratio %.2fx (target >= 2.5x)\n",
			l, r, o, (o > 0 ? r / o : 0) }'
}

echo "bench-create: $img ($(du -h --apparent-size "$img" | cut -f1), $(du -h "$img" | cut -f1) mapped), $RUNS runs each"

ref_t=$(median_time "$out/ref.bmap" "$REF" create) || die "reference create failed"
our_t=$(median_time "$out/ours.bmap" "$OURS" create) || die "our create failed"
compare create "$out/ref.bmap" "$out/ours.bmap"
report create "$ref_t" "$our_t"

ref_t=$(median_time "$out/ref-nc.bmap" "$REF" create --no-checksum) || die "reference create failed"
our_t=$(median_time "$out/ours-nc.bmap" "$OURS" create --no-checksum) || die "our create failed"
compare "create --no-checksum" "$out/ref-nc.bmap" "$out/ours-nc.bmap"
report "create --no-checksum" "$ref_t" "$our_t"

if [[ -x /usr/bin/time ]]; then
	rss=$(/usr/bin/time -f %M -o "$out/rss" "$OURS" create -o "$out/rss.bmap" "$img" 2>/dev/null &&
		cat "$out/rss")
	ref_rss=$(/usr/bin/time -f %M -o "$out/rss" "$REF" create -o "$out/rss.bmap" "$img" 2>/dev/null &&
		cat "$out/rss")
	echo "create peak RSS: ${rss:-?} KiB (target < 32768); reference ${ref_rss:-?} KiB"
else
	echo "create peak RSS: not measured (install Debian package 'time' for /usr/bin/time)"
fi
exit $status
