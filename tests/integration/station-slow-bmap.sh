#!/bin/bash
# A bmap read in the event loop froze the station (issue 10, items 17, 25):
# a profile whose bmap takes long to read (here a FIFO nobody writes: open()
# never returned; a huge or hostile bmap takes long the same way) held up
# every other card, which were not even logged as inserted. Now bmaps are
# read by a probe child, outside the loop, and a bmap that is not a regular
# file is refused at once (the station reads it more than once). The other
# profile's card is flashed either way.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
need_loops 2
ensure_udevd
install_test_rule

img=$TEST_TMP/disk.img
mk_image_bmap "$img" "size=8M data=0:1M data=4M:2M"
mkfifo "$TEST_TMP/stuck.bmap"
db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "slow-bmap"; database = "$db"; max_device_size = "1G"; cache_dir = "$TEST_TMP/cache"; };
profiles = (
  { name = "stuck"; image = "disk.img"; bmap = "stuck.bmap"; removable_only = false;
    match = { serial = "stuck-*"; }; },
  { name = "fine"; image = "disk.img"; removable_only = false; match = { serial = "fine-*"; }; }
);
CONF
start_station "$TEST_TMP/station.conf"
station_ready "$db"

insert_card "$(make_card stuck-1.img 16M)"
stuck=$LOOP_DEV
sleep 0.5
insert_card "$(make_card fine-1.img 16M)"
wait_for "$db" "select outcome from jobs where serial='fine-1.img'" success 20 ||
	fail "the other profile's card was not flashed while the first one's bmap was read"
grep -q "fine-1.img.*inserted" "$TEST_TMP/station.log" || fail "the second card was not even logged"
station_alive
wait_for "$db" "select outcome from jobs where serial='stuck-1.img'" failed 20 ||
	fail "the card whose bmap is a FIFO was not recorded failed"
q "$db" "select error from jobs where serial='stuck-1.img'" | grep -q "not a regular file" ||
	fail "the failure does not say why: $(q "$db" "select error from jobs where serial='stuck-1.img'")"
log "ok"
