#!/bin/bash
# once_per_serial: a card that passed with the profile is refused when it
# comes back (recorded with the reason), until 'bmap-station forget SERIAL';
# the forgotten card is flashed again and its old job stays in the journal.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
ensure_udevd
install_test_rule

img=$TEST_TMP/disk.img
mk_image_bmap "$img" "size=8M data=0:1M data=4M:2M"
db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "once"; database = "$db"; max_device_size = "1G"; cache_dir = "$TEST_TMP/cache"; };
profiles = (
  { name = "serialised"; image = "disk.img"; removable_only = false; once_per_serial = true;
    match = { serial = "unit-*"; }; }
);
CONF
start_station "$TEST_TMP/station.conf"
card=$(make_card unit-1.img 16M)

insert_card "$card"
wait_for "$db" "select outcome from jobs where serial='unit-1.img' order by job desc limit 1" success ||
	fail "the first insertion was not flashed"
detach_loop "$LOOP_DEV"

# Back again: refused, with the reason, and not written.
head -c 4096 /dev/zero | tr '\0' '\132' | dd of="$card" conv=notrunc status=none
sum=$(sha256sum <"$card")
insert_card "$card"
wait_for "$db" "select outcome from jobs where serial='unit-1.img' order by job desc limit 1" refused ||
	fail "the card was not refused the second time"
q "$db" "select error from jobs where serial='unit-1.img' order by job desc limit 1" |
	grep -q "already passed with profile serialised" || fail "the refusal does not say why"
[[ $(sha256sum <"$card") == "$sum" ]] || fail "the refused card was written"
detach_loop "$LOOP_DEV"

# Forgotten: flashed again; the journal keeps every job.
"$BMAP_STATION" forget --db "$db" unit-1.img >/dev/null || fail "forget failed"
insert_card "$card"
wait_for "$db" "select outcome from jobs where serial='unit-1.img' order by job desc limit 1" success ||
	fail "the forgotten card was not flashed again"
[[ $(q "$db" "select group_concat(outcome, ',') from (select outcome from jobs where serial='unit-1.img' order by job)") == success,refused,success ]] ||
	fail "history: $(q "$db" "select group_concat(outcome, ',') from jobs where serial='unit-1.img'")"
"$BMAP_STATION" forget unit-1.img --db "$TEST_TMP/missing.db" 2>/dev/null && fail "forget on a missing journal succeeded"
log "ok"
