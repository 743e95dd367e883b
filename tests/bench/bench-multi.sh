#!/bin/bash
# Benchmark `bmaptool copy IMAGE DEST1 DEST2 ...` (issue 9) on cards with a
# card's own write speed (block I/O throttling, tests/lib/throttle.sh; the
# tool runs inside the throttled cgroup), for each codec (default zst xz):
#
#   mixed  four cards at 90, 40, 20 and 12 MiB/s, in one copy: per card its
#          limit (mapped / write speed), the time it took (the start of the
#          command to its result line) and the efficiency limit / measured
#          (target: each within 5%, >= 0.95). The image cannot be decoded
#          faster than a copy to memory decodes it (measured first, "decode"):
#          "bound" is the larger of that and the limit, and eff/bound how
#          close the card came to what it could reach at all.
#   same   one card at 20 MiB/s alone (the plain one-destination copy), then
#          four at 20 MiB/s in one copy: ratio slowest of four / one
#          (target <= 1.1).
#
# The image is tests/bench/mkimage.sh --small (1 GiB, ~76 MiB mapped),
# compressed with zstd or xz; the cards are loop devices over sparse files in
# /dev/shm, the spill file goes to TMPDIR (default /var/tmp). Prints ratios
# and efficiencies, judges no absolute time; exits non-zero only when a copy
# fails or a card does not verify. Run as root.
#
# usage: bench-multi.sh [CODEC...]   (zst, xz, gz, bz2, lz4, raw; default zst xz)
# env: BMAPTOOL (default build/bmaptool of this checkout), BENCH_DIR
#      (/var/tmp/bmap-bench), RUNS (1; medians when more)
set -u
LC_NUMERIC=C # $EPOCHREALTIME with a dot
TESTS_DIR=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/build}
BMAPTOOL=${BMAPTOOL:-$BUILD_DIR/bmaptool}
export TESTS_DIR BUILD_DIR BMAPTOOL
for arg in "$@"; do
	case $arg in
	-h | --help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	zst | xz | gz | bz2 | lz4 | raw) ;;
	*) echo "bench-multi: unknown codec '$arg'" >&2; exit 2 ;;
	esac
done
codecs=("$@")
[[ ${#codecs[@]} -gt 0 ]] || codecs=(zst xz)

. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/cards.sh"
. "$TESTS_DIR/lib/throttle.sh"
need_ours
need_root
need_cmd perl
need_loops 4
throttle_init
RUNS=${RUNS:-1}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || fail "RUNS must be a positive number"
BENCH_DIR=${BENCH_DIR:-/var/tmp/bmap-bench}
"$TESTS_DIR/bench/mkimage.sh" --small --compressed "$BENCH_DIR" >/dev/null || fail "mkimage.sh failed"
img=$BENCH_DIR/bench-small.img
bmap=$img.bmap
img_size=$(bmap_field "$bmap" ImageSize)
mapped=$(($(bmap_field "$bmap" MappedBlocksCount) * $(bmap_field "$bmap" BlockSize)))
MiB=1048576
src_of() { [[ $1 == raw ]] && echo "$img" || echo "$img.$1"; }
for c in "${codecs[@]}"; do
	[[ -r $(src_of "$c") ]] || fail "no $(src_of "$c")"
	cat "$(src_of "$c")" >/dev/null # in the page cache: the disk is not measured
done

# Cards: sparse files of the image's size plus 1 MiB; each attached once,
# limited before its file is on it.
SPEEDS=(90 40 20 12)
for i in 0 1 2 3; do
	truncate -s $((img_size + MiB)) "$CARD_DIR/card$i" || fail "cannot create a card"
	attach_card_at_speed "$CARD_DIR/card$i" "${SPEEDS[i]}M" 0
	DEVS[i]=$CARD_DEV
done

# The stamp of each line bmaptool prints (seconds, as $EPOCHREALTIME).
cat >"$TEST_TMP/stamp.pl" <<'PERL'
use strict; use warnings; use Time::HiRes qw(time);
$| = 1;
while (my $l = <STDIN>) { printf "%.6f %s", time, $l; }
PERL

# run LOG CMD...: CMD in the cgroup, its stderr stamped into LOG; sets T0, T1
# and RSS (KiB, /usr/bin/time when there is one). Fails when CMD fails.
run() {
	local logf=$1 rc
	shift
	T0=$EPOCHREALTIME
	if [[ -x /usr/bin/time ]]; then
		# (throttled) in a subshell of its own: it execs there.
		{ (throttled /usr/bin/time -f %M -o "$TEST_TMP/rss" "$@") 2>&1 >/dev/null; echo "rc $?" >"$TEST_TMP/rc"; } |
			perl "$TEST_TMP/stamp.pl" >"$logf"
	else
		{ (throttled "$@") 2>&1 >/dev/null; echo "rc $?" >"$TEST_TMP/rc"; } |
			perl "$TEST_TMP/stamp.pl" >"$logf"
		echo 0 >"$TEST_TMP/rss"
	fi
	T1=$EPOCHREALTIME
	RSS=$(tail -n 1 "$TEST_TMP/rss")
	read -r _ rc <"$TEST_TMP/rc"
	[[ $rc == 0 ]] && return 0
	log "'$*' failed (exit $rc):"
	tail -n 5 "$logf" >&2
	status=1
	return 1
}

# ended LOG DEV: seconds from T0 to DEV's result line ("" for one card).
ended() {
	local pat="sha256 of the data written"
	[[ -n $2 ]] && pat="$2: $pat"
	awk -v t0="$T0" -v p="$pat" 'index($0, p) { printf "%.3f\n", $1 - t0; exit }' "$1"
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) printf "%.3f\n", v[int((NR + 1) / 2)] }'; }

status=0
echo "bench-multi: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at start;" \
	"cgroup $THROTTLE_CG (v$THROTTLE_VERSION); $img: $((mapped / MiB)) MiB mapped of" \
	"$((img_size / MiB)) MiB; spill in ${TMPDIR:-/var/tmp}; $RUNS run(s), medians"
for c in "${codecs[@]}"; do
	src=$(src_of "$c")

	# The decoder's own speed: one copy into memory, no card.
	: >"$TEST_TMP/decode.t"
	for ((r = 0; r < RUNS; r++)); do
		run "$TEST_TMP/decode.log" "$BMAPTOOL" copy --bmap "$bmap" "$src" "$CARD_DIR/mem.img" &&
			ended "$TEST_TMP/decode.log" "" >>"$TEST_TMP/decode.t"
		rm -f -- "$CARD_DIR/mem.img"
	done
	decode=$(median <"$TEST_TMP/decode.t")

	# mixed: four speeds in one copy.
	for i in 0 1 2 3; do : >"$TEST_TMP/mixed.$i"; done
	rss=0
	for ((r = 0; r < RUNS; r++)); do
		run "$TEST_TMP/mixed.log" "$BMAPTOOL" copy --bmap "$bmap" "$src" "${DEVS[@]}" || continue
		for i in 0 1 2 3; do ended "$TEST_TMP/mixed.log" "${DEVS[i]}" >>"$TEST_TMP/mixed.$i"; done
		((RSS > rss)) && rss=$RSS
	done
	echo
	echo "== mixed, $c: four cards at ${SPEEDS[*]} MiB/s in one copy; decoding alone takes ${decode:-?} s; peak RSS $rss KiB"
	printf '%-12s %6s %8s %10s %6s %8s %9s\n' card MiB/s "limit s" "measured s" eff "bound s" eff/bound
	for i in 0 1 2 3; do
		m=$(median <"$TEST_TMP/mixed.$i")
		awk -v d="${DEVS[i]}" -v s="${SPEEDS[i]}" -v mapped="$mapped" -v m="$m" -v dec="${decode:-0}" 'BEGIN {
			l = mapped / (s * 1048576); b = l > dec ? l : dec
			if (m == "") { printf "%-12s %6d %8.2f %10s\n", d, s, l, "FAILED"; exit }
			printf "%-12s %6d %8.2f %10.2f %6.2f %8.2f %9.2f\n", d, s, l, m, l / m, b, b / m }'
	done

	# same: one card at 20 MiB/s, then four.
	for i in 0 1 2 3; do card_speed "${DEVS[i]}" 20M 0; done
	: >"$TEST_TMP/one.t"
	: >"$TEST_TMP/four.t"
	for ((r = 0; r < RUNS; r++)); do
		run "$TEST_TMP/one.log" "$BMAPTOOL" copy --bmap "$bmap" "$src" "${DEVS[0]}" &&
			ended "$TEST_TMP/one.log" "" >>"$TEST_TMP/one.t"
		if run "$TEST_TMP/four.log" "$BMAPTOOL" copy --bmap "$bmap" "$src" "${DEVS[@]}"; then
			for i in 0 1 2 3; do ended "$TEST_TMP/four.log" "${DEVS[i]}"; done | sort -g | tail -n 1 >>"$TEST_TMP/four.t"
		fi
	done
	one=$(median <"$TEST_TMP/one.t")
	four=$(median <"$TEST_TMP/four.t")
	awk -v c="$c" -v o="$one" -v f="$four" -v l="$(awk -v m="$mapped" 'BEGIN { print m / (20 * 1048576) }')" 'BEGIN {
		if (o == "" || f == "") { printf "== same, %s: FAILED\n", c; exit }
		printf "== same, %s: 20 MiB/s (limit %.2f s): one card %.2f s, four cards %.2f s (the slowest): ratio %.3f (target <= 1.1)\n",
			c, l, o, f, f / o }'
	for i in 0 1 2 3; do card_speed "${DEVS[i]}" "${SPEEDS[i]}M" 0; done

	# Every card holds the image (the last copy wrote all four).
	for d in "${DEVS[@]}"; do
		"$BMAPTOOL" -q verify --bmap "$bmap" "$img" "$d" ||
			{ log "$c: $d does not verify"; status=1; }
	done
done
echo
echo "bench-multi: load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
exit $status
