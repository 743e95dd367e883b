#!/bin/bash
# The station against the reference, on the 2 GiB benchmark image (.zst):
#  - four reference `bmaptool copy` runs started in parallel on four cards
#    (they verify nothing on the card);
#  - the station flashing and read-back verifying one card, then four cards
#    (with a fresh image cache each time: one decompression per batch).
# Cards are loop devices over files in /dev/shm. Prints ratios (targets:
# station four <= 0.5 x reference four, station four <= 2 x station one);
# exits non-zero only when a copy fails. Run as root.
#
# usage: bench-station.sh    env: BUILD_DIR (default build/ of this checkout), BENCH_DIR
set -u
LC_NUMERIC=C # $EPOCHREALTIME with a dot
TESTS_DIR=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/build}
BMAPTOOL=$BUILD_DIR/bmaptool
export TESTS_DIR BUILD_DIR BMAPTOOL
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
BENCH_DIR=${BENCH_DIR:-/var/tmp/bmap-bench}
"$TESTS_DIR/bench/mkimage.sh" --compressed "$BENCH_DIR" >/dev/null || fail "mkimage.sh failed"
img=$BENCH_DIR/bench.img.zst
[[ -f $img && -f $BENCH_DIR/bench.img.bmap ]] || fail "no $img"
cat "$img" "$BENCH_DIR/bench.img.bmap" >/dev/null
ensure_udevd
install_test_rule

now() { echo "$EPOCHREALTIME"; }
cards=()
for i in 1 2 3 4; do cards+=("$(make_card card-$i.img 1M)"); done
for c in "${cards[@]}"; do truncate -s 2200M "$c"; done

# Four reference copies at once.
devs=()
for c in "${cards[@]}"; do attach_loop "$c"; devs+=("$LOOP_DEV"); done
udevadm settle
t0=$(now)
pids=()
for d in "${devs[@]}"; do
	/usr/bin/bmaptool -q copy --bmap "$BENCH_DIR/bench.img.bmap" "$img" "$d" &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a reference copy failed"; done
ref4=$(echo "$(now) - $t0" | bc)
for d in "${devs[@]}"; do detach_loop "$d"; done

cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "bench"; database = "$TEST_TMP/journal.db"; max_device_size = "4G";
            cache_dir = "$TEST_TMP/cache"; cache_prefill = false; };
profiles = ( { name = "bench"; image = "$img"; bmap = "$BENCH_DIR/bench.img.bmap";
               removable_only = false; verify = "readback"; match = { serial = "card-*"; }; } );
CONF
start_station "$TEST_TMP/station.conf"
sleep 0.5
db=$TEST_TMP/journal.db

# One card (cache cold: it includes the decompression).
t0=$(now)
attach_loop "${cards[0]}"
one_dev=$LOOP_DEV
wait_for "$db" "select count(*) from jobs where outcome = 'success'" 1 300 || fail "one card failed"
one=$(echo "$(now) - $t0" | bc)
detach_loop "$one_dev"

# Four cards, cache cold again.
rm -rf "$TEST_TMP/cache"
t0=$(now)
for c in "${cards[@]}"; do attach_loop "$c"; done
wait_for "$db" "select count(*) from jobs where outcome = 'success'" 5 600 || fail "four cards failed"
four=$(echo "$(now) - $t0" | bc)
[[ $(q "$db" "select count(*) from jobs where outcome <> 'success' and outcome <> 'ignored'") == 0 ]] ||
	fail "a job failed: $(q "$db" "select serial, outcome, error from jobs")"

printf 'station: four reference copies in parallel %.2fs (no read-back), station four cards %.2fs (with read-back), ratio %.2f (target <= 0.5)\n' \
	"$ref4" "$four" "$(echo "$four / $ref4" | bc -l)"
printf 'station: one card %.2fs, four cards %.2fs, ratio %.2f (target <= 2.0)\n' \
	"$one" "$four" "$(echo "$four / $one" | bc -l)"
log "cache: $(grep -c 'cache built' "$TEST_TMP/station.log") built, $(grep -c 'cache used' "$TEST_TMP/station.log") used"
