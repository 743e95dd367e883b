#!/bin/bash
# Regression: cards written from the image cache went one at a time. A
# worker that found the entry took flock(LOCK_EX), then held LOCK_SH for its
# whole copy, so the next worker's LOCK_EX waited until that copy was over:
# on cards at real speeds the station was a one-slot station (RAM cards hid
# it). Four throttled cards (8 MiB/s write, 24 MiB/s read) from one zstd
# image, inserted together: all four must be writing at the same moment, and
# the four together take well under twice one card's limit (one after the
# other took four times). A fifth card from the finished entry, with two
# workers reading it, checks the complete-entry path the same way.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
. "$TESTS_DIR/lib/throttle.sh"
need_station_env
need_ours
need_cmd zstd
need_loops 6
throttle_init
ensure_udevd
install_test_rule

W=8M R=24M
im=$TEST_TMP/images
mkdir -p "$im"
mk_sparse_image "$im/disk.img" "size=40M data=0:6M data=9M:6M data=20M:4M data=30M:8M"
"$BMAPTOOL" -q create -o "$im/disk.img.bmap" "$im/disk.img" || fail "create"
zstd -q "$im/disk.img" -o "$im/disk.img.zst" || fail "zstd"
mapped=$(sed -nE 's/.*<MappedBlocksCount>\s*([0-9]+).*/\1/p' "$im/disk.img.bmap")
mapped=$((mapped * 4096))
# One card's physical limit: mapped data written, then read back.
limit=$(echo "$mapped / $(to_bytes $W) + $mapped / $(to_bytes $R)" | bc -l)

db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "cache-readers"; database = "$db"; max_workers = 4;
  require_tag = "bmap-station"; max_device_size = "1G"; cache_dir = "$TEST_TMP/cache"; cache_prefill = false; };
profiles = (
  { name = "z"; image = "$im/disk.img.zst"; bmap = "$im/disk.img.bmap";
    removable_only = false; verify = "readback"; match = { serial = "r-*"; }; }
);
CONF
start_station "$TEST_TMP/station.conf" throttled
station_ready "$db"

# writing_at_once N SERIAL_GLOB: waits until N cards are writing with data
# on their way at the same moment, before any of them ended; prints the
# largest number seen.
writing_at_once() {
	local most=0 n
	for _ in $(seq 300); do
		n=$(q "$db" "select count(*) from live where serial glob '$2' and state = 'writing' and done > 0")
		((n > most)) && most=$n
		((most >= $1)) && break
		[[ $(q "$db" "select count(*) from jobs where serial glob '$2' and outcome <> 'running'") == 0 ]] ||
			break
		sleep 0.05
	done
	echo "$most"
}

# insert_cards FIRST LAST: cards r-FIRST .. r-LAST at $W/$R, together; then
# waits for their jobs to succeed and sets MOST (see writing_at_once).
insert_cards() {
	local i
	for ((i = $1; i <= $2; i++)); do
		c[$i]=$(make_card "r-$i.img" 48M)
		attach_card_at_speed "${c[$i]}" $W $R
	done
	MOST=$(writing_at_once $(($2 - $1 + 1)) "r-[$1-$2].img")
	wait_for "$db" "select count(*) from jobs where serial glob 'r-[$1-$2].img' and outcome = 'success'" \
		$(($2 - $1 + 1)) 60 || fail "r-$1..r-$2: $(q "$db" "select serial, outcome, error from jobs")"
}

t0=$EPOCHREALTIME
insert_cards 1 4
most=$MOST
t1=$EPOCHREALTIME
total=$(echo "$t1 - $t0" | bc -l)
log "four cards at $W/$R: $total s for all four, one card's limit $(printf %.2f "$limit") s, at most $most writing at once"
[[ $most == 4 ]] || fail "only $most of four cards were written at the same time (they waited for each other)"
(($(echo "$total < 2 * $limit" | bc -l))) ||
	fail "four cards took $total s, one card's limit is $limit s: they were not written side by side"
[[ $(grep -c "cache built" "$TEST_TMP/station.log") == 1 ]] ||
	fail "the cache was not filled exactly once: $(grep cache "$TEST_TMP/station.log")"
for i in 1 2 3 4; do
	"$BMAPTOOL" -q verify --bmap "$im/disk.img.bmap" "$im/disk.img" "${c[$i]}" ||
		fail "r-$i does not hold the image"
done

# Two more cards from the complete entry: readers of a finished entry do
# not wait for each other either.
ls "$TEST_TMP/cache"/*.img >/dev/null 2>&1 || fail "no complete cache entry"
insert_cards 5 6
[[ $MOST -ge 2 ]] || fail "the two cards from the finished entry were not written at the same time"
[[ $(grep -c "cache built" "$TEST_TMP/station.log") == 1 ]] || fail "the finished entry was filled again"
log "ok: cards from the image cache are written side by side, while it fills and once it is complete"
