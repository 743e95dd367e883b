#!/bin/bash
# Benchmark `bmaptool copy` of self-mapped images (no .bmap anywhere) against
# the tools a user would run instead, writing the same loop device (over a
# 2.2 GiB file in /dev/shm) in the same run:
#   qcow2 (plain, zlib -c, zstd)   qemu-img convert -n -O raw -t none IMG /dev/loopN
#   Android sparse (img2simg)      simg2img IMG /dev/loopN
# The images are made from the bench image (tests/bench/mkimage.sh: 2 GiB,
# ~712 MiB mapped) by the real producers (qemu-img convert -O qcow2 [-c]
# [-o compression_type=zstd], img2simg) and kept in BENCH_DIR.
#
# For each image the peer and ours copy in turn, RUNS times each, and the
# medians are compared:
#   copy qcow2-zstd: qemu-img 2.31s, ours 0.80s, ratio 2.89x (target >= 2.5x)
# plus our peak RSS (/usr/bin/time) against 64 MiB plus one cluster per
# thread. After ours' last run the card is verified twice: by ours against
# the image (its mapped data), and against the raw bench image's reference
# bmap (every range's SHA-256).
#
# The page cache stays warm (every image is read once first): both tools
# read from memory, the card is RAM too, so the figures measure the tools.
# Ratios are printed, never judged: the exit status is non-zero only when a
# copy fails or the card is wrong.
#
# Two floors bound what any copy can do here, and each case says whether
# its target lies below one: the write of the bench image's mapped bytes
# (dd oflag=direct, 4 MiB requests, to the same card, before the cases)
# and the SHA-256 of that data (the copy hashes every range for its digest,
# each in one stream: openssl speed's rate), on every CPU at once (copy
# cuts a self-mapped image's map into 16 MiB pieces for its workers; the
# fills of zeros are not hashed), or over the largest such piece when that
# takes longer.
#
# usage: bench-formats.sh [BMAPTOOL]
# env:   BMAPTOOL (default build/bmaptool of this checkout), BENCH_DIR
#        (default /var/tmp/bmap-bench), RUNS (default 3), CARD_DIR (default
#        /dev/shm), CASES (default "qcow2 qcow2-zlib qcow2-zstd simg")

set -u
LC_NUMERIC=C # $EPOCHREALTIME with a dot

OURS=${BMAPTOOL:-$(cd "$(dirname "$0")/../.." && pwd)/build/bmaptool}
for arg in "$@"; do
	case $arg in
	-h | --help)
		sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'
		exit 0 ;;
	-*) echo "bench-formats: unknown option $arg" >&2; exit 2 ;;
	*) OURS=$arg ;;
	esac
done
BENCH_DIR=${BENCH_DIR:-/var/tmp/bmap-bench}
RUNS=${RUNS:-3}
CARD_DIR=${CARD_DIR:-/dev/shm}
read -r -a cases <<<"${CASES:-qcow2 qcow2-zlib qcow2-zstd simg}"
here=$(cd "$(dirname "$0")" && pwd)

die() { echo "bench-formats: $*" >&2; exit 1; }
say() { echo "bench-formats: $*" >&2; }
[[ -x $OURS ]] || die "our bmaptool '$OURS' is not executable"
[[ $(id -u) -eq 0 ]] || die "needs root (loop devices)"
[[ -x /usr/bin/time ]] || die "needs /usr/bin/time (Debian package 'time')"
for cmd in losetup qemu-img img2simg simg2img; do
	command -v "$cmd" >/dev/null || die "needs $cmd (qemu-utils, android-sdk-libsparse-utils)"
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive number"

"$here/mkimage.sh" "$BENCH_DIR" >/dev/null || die "mkimage.sh failed"
img=$BENCH_DIR/bench.img
bmap=$img.bmap
[[ -r $bmap ]] || die "no $bmap"

# make FILE CMD...: FILE from the bench image unless it is already newer.
make() {
	local f=$1
	shift
	[[ -s $f && $f -nt $img ]] && return 0
	say "making $f"
	"$@" || { rm -f -- "$f"; die "'$*' failed"; }
}
make "$BENCH_DIR/bench.qcow2" qemu-img convert -q -O qcow2 "$img" "$BENCH_DIR/bench.qcow2"
make "$BENCH_DIR/bench-zlib.qcow2" qemu-img convert -q -c -O qcow2 "$img" "$BENCH_DIR/bench-zlib.qcow2"
make "$BENCH_DIR/bench-zstd.qcow2" qemu-img convert -q -c -O qcow2 -o compression_type=zstd \
	"$img" "$BENCH_DIR/bench-zstd.qcow2"
make "$BENCH_DIR/bench.simg" img2simg "$img" "$BENCH_DIR/bench.simg"

. "$here/bench-card.sh"
bench_card bench-formats

declare -A FILE=([qcow2]=bench.qcow2 [qcow2-zlib]=bench-zlib.qcow2
	[qcow2-zstd]=bench-zstd.qcow2 [simg]=bench.simg)
declare -A TARGET=([qcow2]=3 [qcow2-zlib]=2.5 [qcow2-zstd]=2.5 [simg]=8)
declare -A CLUSTER=([qcow2]=65536 [qcow2-zlib]=65536 [qcow2-zstd]=65536 [simg]=4096)

echo "bench-formats: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at start;" \
	"$RUNS runs each, medians; card $loop over $card_file"
echo "  source: $img, $(($(sed -nE 's|.*<MappedBlocksCount>[[:space:]]*([0-9]+).*|\1|p' "$bmap") * 4096 / 1048576)) MiB mapped"

for c in "${cases[@]}"; do
	f=$BENCH_DIR/${FILE[$c]:-}
	[[ -r $f ]] || die "unknown case '$c'"
	cat "$f" >/dev/null
done

# SHA-256 of one stream, bytes a second (openssl speed prints kB/s, 1000).
sha_rate=$(openssl speed -elapsed -seconds 1 -bytes 1048576 -evp sha256 2>/dev/null |
	awk '$1 == "sha256" { sub(/k$/, "", $2); printf "%.0f\n", $2 * 1000 }')
[[ $sha_rate =~ ^[0-9]+$ && $sha_rate -gt 0 ]] || sha_rate=

# The write floor: the median time dd takes to write the bench image's
# mapped bytes to the card, after one untimed write of them, as the tools'
# later runs write pages an earlier one wrote (the card's file allocated
# again first: a peer's zeroing punched holes in it).
write_floor() {
	local mib=$(((mapped_bytes + 4194303) / 4194304)) i t0 t1
	fallocate -l $((2253 * 1048576)) "$card_file" || return 1
	for ((i = -1; i < RUNS; i++)); do
		t0=$EPOCHREALTIME
		dd if="$img" of="$loop" bs=4M count="$mib" oflag=direct iflag=fullblock \
			status=none || return 1
		t1=$EPOCHREALTIME
		[[ $i -ge 0 ]] && awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", b - a }'
	done | median
}

# hash_floor IMG: seconds the SHA-256 of the mapped data takes on every CPU
# at once, or one stream over IMG's largest range as copy cuts it (16 MiB
# pieces) when that is longer.
hash_floor() {
	[[ -n $sha_rate ]] || return 0
	awk -v b="$(largest_range "$1")" -v r="$sha_rate" -v m="$mapped_bytes" -v c="$(nproc)" \
		'BEGIN { if (b > 16777216) b = 16777216; a = m / (r * c); o = b / r
		printf "%.2f\n", (a > o ? a : o) }'
}

# largest_range IMG: the bytes of the image's largest range (its bmap's).
largest_range() {
	"$OURS" create --no-checksum "$1" 2>/dev/null | awk '
		/<BlockSize>/ { gsub(/[^0-9]/, ""); bs = $0 }
		/<Range/ { sub(/.*<Range[^>]*>[[:space:]]*/, ""); sub(/[[:space:]]*<.*/, "")
			n = split($0, p, "-"); l = (n == 2 ? p[2] : p[1]) - p[1] + 1
			if (l > m) m = l }
		END { printf "%.0f\n", m * bs }'
}

run_timed() {
	local tf=$1 t0 t1 rc
	shift
	t0=$EPOCHREALTIME
	/usr/bin/time -f %M -o "$tf" "$@" >"$out/log" 2>&1
	rc=$?
	t1=$EPOCHREALTIME
	if [[ $rc -ne 0 ]]; then
		echo "bench-formats: '$*' failed (exit $rc):" >&2
		tail -n 3 "$out/log" >&2
		return 1
	fi
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", b - a }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) printf "%.2f\n", v[int((NR + 1) / 2)] }'; }

# peer CASE IMG: sets PEER to the peer's command (run by /usr/bin/time).
peer() {
	case $1 in
	simg) PEER=(simg2img "$2" "$loop") ;;
	*) PEER=(qemu-img convert -n -O raw -t none "$2" "$loop") ;;
	esac
}

mapped_bytes=$(($(sed -nE 's|.*<MappedBlocksCount>[[:space:]]*([0-9]+).*|\1|p' "$bmap") * 4096))
wfloor=$(write_floor)
echo "  floors: writing the $((mapped_bytes / 1048576)) MiB of data to the card ${wfloor:-?}s" \
	"(dd oflag=direct, 4 MiB requests); SHA-256 in one stream" \
	"$([[ -n $sha_rate ]] && echo "$((sha_rate / 1000000)) MB/s" || echo "unknown")"

status=0
for c in "${cases[@]}"; do
	src=$BENCH_DIR/${FILE[$c]}
	: >"$out/peer.times"
	: >"$out/ours.times"
	: >"$out/ours.rss"
	failed=0
	peer "$c" "$src"
	for ((i = 0; i < RUNS; i++)); do
		run_timed "$out/peer.rss" "${PEER[@]}" >>"$out/peer.times" || { failed=1; break; }
		run_timed "$out/rss" "$OURS" copy "$src" "$loop" >>"$out/ours.times" ||
			{ failed=1; break; }
		tail -n 1 "$out/rss" >>"$out/ours.rss"
	done
	if [[ $failed -eq 1 ]]; then
		echo "copy $c: FAILED"
		status=1
		continue
	fi
	peer_t=$(median <"$out/peer.times")
	ours_t=$(median <"$out/ours.times")
	rss=$(sort -n "$out/ours.rss" | tail -n 1)
	awk -v c="$c" -v p="$([[ $c == simg ]] && echo simg2img || echo qemu-img)" -v r="$peer_t" \
		-v o="$ours_t" -v t="${TARGET[$c]}" 'BEGIN {
		printf "copy %s: %s %.2fs, ours %.2fs, ratio %.2fx (target >= %sx)\n", c, p, r, o,
			(o > 0 ? r / o : 0), t }'
	# 64 MiB plus one cluster for each of the engine's threads (at most
	# 4 workers, each with a writer).
	limit=$((65536 + 8 * ${CLUSTER[$c]} / 1024))
	echo "  peak RSS ours: $rss KiB (target < $limit KiB: 64 MiB plus a cluster per thread):" \
		"$([[ $rss -lt $limit ]] && echo ok || echo OVER)"
	if "$OURS" verify "$src" "$loop" >"$out/verify.log" 2>&1 &&
		"$OURS" verify --bmap "$bmap" "$img" "$loop" >>"$out/verify.log" 2>&1; then
		echo "  card verified after ours (against the image, and the raw image's bmap): ok"
	else
		echo "  card verified after ours: FAILED"
		tail -n 2 "$out/verify.log" | sed 's/^/    /'
		status=1
	fi
	hf=$(hash_floor "$src")
	awk -v p="$peer_t" -v t="${TARGET[$c]}" -v w="${wfloor:-0}" -v h="${hf:-0}" 'BEGIN {
		need = p / t
		f = w > h ? w : h
		verdict = need < f ? "below a floor, not reachable here" : "above the floors"
		printf "  the target needs ours <= %.2fs; floors: write %.2fs, hash of the", need, w
		printf " data on every CPU %.2fs: %s\n", h, verdict }'
done

echo "bench-formats: load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
exit $status
