#!/bin/bash
# A kept job end was lost when the daemon was SIGKILLed while the journal
# refused it (issue 10, item 15): the next start marked the job interrupted,
# though the card had been flashed. Ends now also wait in JOURNAL.outbox,
# and the next start records them before it marks anything interrupted.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
ensure_udevd
install_test_rule

img=$TEST_TMP/disk.img
mk_image_bmap "$img" "size=8M data=0:1M data=4M:2M" zst
mkfifo "$TEST_TMP/gate.img.zst"
db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "outbox"; database = "$db"; max_device_size = "1G"; cache_dir = "$TEST_TMP/cache"; };
profiles = ( { name = "p"; image = "gate.img.zst"; bmap = "disk.img.bmap"; removable_only = false; verify = "readback";
               match = { serial = "kept-*"; }; } );
CONF
start_station "$TEST_TMP/station.conf"
station_ready "$db"

# The job holds on its image (a FIFO fed by the test) while a sqlite3 shell
# takes the journal's exclusive lock: the job's end must then wait.
gate_feeder "$TEST_TMP/gate.img.zst" "$img.zst"
mkfifo "$TEST_TMP/ctl"
sqlite3 "$db" <"$TEST_TMP/ctl" >"$TEST_TMP/holder.out" 2>&1 &
holder=$!
on_exit "kill $holder 2>/dev/null"
exec 9>"$TEST_TMP/ctl"
card2=$(make_card kept-2.img 16M)
insert_card "$card2"
wait_for "$db" "select outcome from jobs where serial='kept-2.img'" running 20 || fail "the job of kept-2 did not start"
echo "BEGIN EXCLUSIVE;" >&9
for _ in $(seq 50); do sqlite3 "$db" "BEGIN IMMEDIATE; ROLLBACK;" >/dev/null 2>&1 || break; sleep 0.1; done
touch "$TEST_TMP/go"
for _ in $(seq 200); do grep -q "the end of job [0-9]* (success): the journal cannot take it now" "$TEST_TMP/station.log" && break; sleep 0.1; done
grep -q "the end of job [0-9]* (success): the journal cannot take it now" "$TEST_TMP/station.log" ||
	fail "the job's end was not held back by the lock: $(tail -5 "$TEST_TMP/station.log")"

# Killed while the end waits; the lock goes; a new start.
kill -KILL "$STATION_PID"
wait "$STATION_PID" 2>/dev/null
STATION_PID=
echo "COMMIT;" >&9
exec 9>&-
wait "$holder" 2>/dev/null
[[ $(q "$db" "select outcome from jobs where serial='kept-2.img'") == running ]] ||
	fail "the row is not running before the restart: $(q "$db" "select outcome from jobs where serial='kept-2.img'")"
start_station "$TEST_TMP/station.conf"
wait_for "$db" "select outcome from jobs where serial='kept-2.img'" success 20 ||
	fail "the kept end was lost: the job is $(q "$db" "select outcome || ' ' || coalesce(error, '') from jobs where serial='kept-2.img'")"
[[ -n $(q "$db" "select readback_sha256 from jobs where serial='kept-2.img'") ]] || fail "the kept end lost its hashes"
[[ ! -s $db.outbox ]] || fail "$db.outbox still holds: $(cat "$db.outbox")"
log "ok"
