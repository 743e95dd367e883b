#!/bin/bash
# A real station (daemon, udevd, loop devices as cards, hooks) with `sync`
# following its journal through the configuration's sync group: while cards
# are flashed, refused and forgotten, the central rows become exactly the
# journal's (jobs, hook records, forgotten serials; running jobs replaced by
# their ends), under station.name; status shows the central copy up to date.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
. "$TESTS_DIR/lib/postgres.sh"
need_station_env
need_ours
need_postgres
ensure_udevd
install_test_rule
start_postgres

img=$TEST_TMP/disk.img
mk_image_bmap "$img" "size=8M data=0:1M data=4M:2M"
db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "line-7"; database = "$db"; max_device_size = "1G";
  cache_dir = "$TEST_TMP/cache";
  hooks = { on_success = [ "/bin/echo", "passed", "--", "%serial" ]; }; };
sync = { conninfo = "$PG_CONNINFO"; };
profiles = (
  { name = "serialised"; image = "disk.img"; removable_only = false; once_per_serial = true;
    match = { serial = "unit-*"; }; }
);
CONF
start_station "$TEST_TMP/station.conf"
station_ready "$db"
"$BMAP_STATION" sync --config "$TEST_TMP/station.conf" >"$TEST_TMP/sync.log" 2>&1 &
sync_pid=$!
on_exit "kill $sync_pid 2>/dev/null; wait $sync_pid 2>/dev/null"

for n in 1 2; do
	card=$(make_card "unit-$n.img" 16M)
	insert_card "$card"
	wait_for "$db" "select outcome from jobs where serial='unit-$n.img' order by job desc limit 1" \
		success || fail "unit-$n was not flashed"
	detach_loop "$LOOP_DEV"
done
# Refused (passed before), forgotten, flashed again.
insert_card "$CARD_DIR/unit-1.img"
wait_for "$db" "select outcome from jobs where serial='unit-1.img' order by job desc limit 1" \
	refused || fail "unit-1 was not refused"
detach_loop "$LOOP_DEV"
"$BMAP_STATION" forget --db "$db" unit-1.img >/dev/null || fail "forget failed"
insert_card "$CARD_DIR/unit-1.img"
wait_for "$db" "select outcome from jobs where serial='unit-1.img' order by job desc limit 1" \
	success || fail "the forgotten card was not flashed again"
detach_loop "$LOOP_DEV"
wait_for "$db" "select count(*) from hooks" 3 || fail "the hooks were not recorded"

wait_central 30 "line-7=$db"
[[ $(pq "SELECT count(*) FROM bmap_jobs WHERE station = 'line-7'") == 4 ]] ||
	fail "not the station's 4 jobs under its name"
[[ $(pq "SELECT count(*) FROM bmap_forgotten") == 1 ]] || fail "the forget is not copied"
"$BMAP_STATION" status --db "$db" >"$TEST_TMP/status" 2>&1
grep -q "central copy (sync as 'line-7'): up to date" "$TEST_TMP/status" ||
	fail "status: $(<"$TEST_TMP/status")"
kill -TERM "$sync_pid"
wait "$sync_pid" || fail "sync did not exit 0 on SIGTERM"
log "PASS"
