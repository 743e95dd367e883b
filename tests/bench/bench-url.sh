#!/bin/bash
# Bytes moved by `bmaptool copy` of the raw bench image (tests/bench/
# mkimage.sh: 2 GiB, ~712 MiB mapped) from a URL: an nginx on 127.0.0.1
# (tests/lib/webserver.sh) serves it, and its access log ($bytes_sent, the
# headers and bodies it wrote to the sockets) counts what each copy moved:
#   ranged     the raw image with its bmap: only the mapped ranges are
#              fetched (Range requests); target: at most 5% more than the
#              bmap maps
#   stream     the gzip image (no ranges to take from it): every byte
# It prints bytes sent against mapped bytes and the copies' times; the card
# (a file in /dev/shm) is checked against the bmap's checksums by verify.
# The ratio is printed, never judged: the exit status is non-zero only when
# a copy or a verify fails.
#
# usage: bench-url.sh [BMAPTOOL]
# env:   BMAPTOOL (default build/bmaptool of this checkout), BENCH_DIR
#        (default /var/tmp/bmap-bench), CARD_DIR (default /dev/shm)

set -u
LC_NUMERIC=C
here=$(cd "$(dirname "$0")" && pwd)
OURS=${1:-${BMAPTOOL:-$here/../../build/bmaptool}}
BENCH_DIR=${BENCH_DIR:-/var/tmp/bmap-bench}
CARD_DIR=${CARD_DIR:-/dev/shm}
TESTS_DIR=$here/..
BMAPTOOL=$OURS
source "$TESTS_DIR/lib/common.sh"
source "$TESTS_DIR/lib/webserver.sh"
need_nginx
[[ -x $OURS ]] || fail "our bmaptool '$OURS' is not executable"

"$here/mkimage.sh" --compressed "$BENCH_DIR" >&2 || fail "mkimage.sh failed"
www=$TEST_TMP/www
mkdir -p "$www"
# Links, not copies: the image is shared with the other benchmarks.
for f in bench.img bench.img.bmap bench.img.gz; do
	ln -s "$BENCH_DIR/$f" "$www/$f"
done
web_start bench "$www"
card=$(mktemp "$CARD_DIR/bench-url.XXXXXX") || fail "cannot create a card in $CARD_DIR"
on_exit "rm -f '$card'"
mapped=$("$OURS" info --json "$BENCH_DIR/bench.img" |
	sed -n 's/.*"mapped_bytes": \([0-9]*\).*/\1/p')

# run NAME URL: one copy; prints the bytes the server sent for the image.
run() {
	local name=$1 url=$2 t0 t1 before after
	before=$(web_sent bench '^/bench\.img')
	t0=$EPOCHREALTIME
	"$OURS" -q copy "$url" "$card" || fail "$name: copy failed"
	t1=$EPOCHREALTIME
	after=$(web_sent bench '^/bench\.img')
	"$OURS" -q verify --bmap "$BENCH_DIR/bench.img.bmap" "$BENCH_DIR/bench.img" "$card" ||
		fail "$name: the card does not verify"
	sent=$((after - before))
	printf 'url %-7s sent %11d bytes, mapped %11d: %6.2f%% of the mapped bytes, %5.2fs\n' \
		"$name" "$sent" "$mapped" "$(echo "$sent * 100 / $mapped" | bc -l)" \
		"$(echo "$t1 - $t0" | bc -l)"
}

run ranged "$(web_url bench bench.img)"
ranged_requests=$(grep -c '^GET /bench\.img 206' "$WEB_LOG_bench")
run stream "$(web_url bench bench.img.gz)"
echo "url ranged: $ranged_requests range requests; the bmap's own requests not counted"
