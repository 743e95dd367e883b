#!/bin/bash
# A card pulled before its job started got no row (issue 10, item 15): the
# journal could not say it was ever there. It gets one: 'removed', with the
# time it was pulled and how long it had waited, and the live view shows it
# 'removed' until the next card comes. max_workers = 1 and the first card's
# worker held at the image cache entry's lock (the test holds it), so the
# second card waits in the queue; it is pulled (its medium goes to size 0),
# then the first card is let go and flashed.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
need_cmd zstd
need_cmd flock
ensure_udevd
install_test_rule

img=$TEST_TMP/disk.img
mk_image_bmap "$img" "size=8M data=0:1M data=3M:2M" zst
db=$TEST_TMP/journal.db
cache=$TEST_TMP/cache
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "pulled-waiting"; database = "$db"; max_workers = 1; max_device_size = "1G";
            require_tag = "bmap-station"; cache_dir = "$cache"; };
profiles = (
  { name = "z"; image = "disk.img.zst"; bmap = "disk.img.bmap";
    removable_only = false; match = { serial = "wait-*"; }; }
);
CONF
row() { q "$db" "select outcome || ': ' || ifnull(error, '') from jobs where serial='$1'"; }

start_station "$TEST_TMP/station.conf"
station_ready "$db"
mkdir -p "$cache"
exec 8>>"$cache/$(cache_key "$img.zst" "$img.bmap").lock"
flock -x 8 || fail "flock"

first=$(make_card wait-1.img 16M)
insert_card "$first"
dev1=$LOOP_DEV
wait_for "$db" "select state from live where serial='wait-1.img'" writing 20 || fail "wait-1 did not start"
second=$(make_card wait-2.img 16M)
insert_card "$second"
dev2=$LOOP_DEV
wait_for "$db" "select state from live where serial='wait-2.img'" waiting 20 || fail "wait-2 is not waiting"
sleep 1
before=$(date +%s)
pull_card "$dev2" "$second"
wait_for "$db" "select count(*) from jobs where serial='wait-2.img'" 1 20 ||
	fail "the card pulled while it waited got no row"
after=$(date +%s)
[[ $(row wait-2.img) == "removed: the card was removed before its job started (after "*" s in the queue)" ]] ||
	fail "its row: $(row wait-2.img)"
waited=$(row wait-2.img | sed -nE 's/.*\(after ([0-9.]+) s in the queue\)$/\1/p')
awk -v w="$waited" 'BEGIN { exit !(w >= 1 && w < 30) }' || fail "it waited ${waited}s, not 1 s or more"
# Its time: when it was pulled (the journal's clock is UTC, so is %s).
at=$(q "$db" "select strftime('%s', started) || ' ' || strftime('%s', finished) from jobs where serial='wait-2.img'")
for t in $at; do
	((t >= before && t <= after + 1)) || fail "its row's times ($at) are not when it was pulled ($before..$after)"
done
[[ $(q "$db" "select state || ' ' || last_outcome from live where serial='wait-2.img'") == "removed removed" ]] ||
	fail "the live view: $(q "$db" "select state, last_outcome from live where serial='wait-2.img'")"

exec 8>&-
wait_for "$db" "select outcome from jobs where serial='wait-1.img'" success 60 ||
	fail "wait-1: $(row wait-1.img)"
"$BMAPTOOL" -q verify --bmap "$img.bmap" "$img" "$dev1" || fail "wait-1 does not hold the image"
[[ $(q "$db" "select count(*) from jobs where serial glob 'wait-*'") == 2 ]] ||
	fail "rows: $(q "$db" "select group_concat(serial || '=' || outcome, ' ') from jobs where serial glob 'wait-*'")"
stop_station
log "ok: $(row wait-2.img)"
