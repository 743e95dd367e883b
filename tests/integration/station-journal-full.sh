#!/bin/bash
# The journal's file system full (a small tmpfs, filled up):
#  - a card inserted then is NOT written (its job-start row cannot be
#    committed), the station says so and keeps running; once there is room
#    the job is recorded, then run
#  - a card no profile wants: its 'ignored' row is kept and lands later
#  - a job that ends while the disk is full: its outcome is kept in memory and
#    lands once there is room, with the time it really ended
#  - stopped (SIGTERM) while a job's end waits for room: the station waits for
#    the journal before it exits, and the row lands
#  - records lost = 0, PRAGMA integrity_check ok
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
need_cmd zstd
need_cmd mount
ensure_udevd
install_test_rule

mkdir -p "$TEST_TMP/images" "$TEST_TMP/jdir"
mount -t tmpfs -o size=2m,mode=0755 bmap-test-journal "$TEST_TMP/jdir" || skip "cannot mount a tmpfs"
on_exit "umount '$TEST_TMP/jdir' 2>/dev/null || umount -l '$TEST_TMP/jdir'"
img=$TEST_TMP/images/disk.img
mk_image_bmap "$img" "size=32M data=0:1M data=3M:12M" zst
db=$TEST_TMP/jdir/journal.db
fifo=$TEST_TMP/images/gate.img.zst
mkfifo "$fifo"

cat >"$TEST_TMP/station.conf" <<CONF
station = {
  name = "full";
  database = "$db";
  cache_dir = "$TEST_TMP/cache";
  max_workers = 4;
  require_tag = "bmap-station";
  max_device_size = "1G";
};
profiles = (
  { name = "p"; image = "images/disk.img.zst"; bmap = "images/disk.img.bmap";
    removable_only = false; verify = "readback"; match = { serial = "card-*"; }; },
  { name = "gate"; image = "images/gate.img.zst"; bmap = "images/disk.img.bmap";
    removable_only = false; verify = "readback"; match = { serial = "gate-*"; }; }
);
CONF

# fill: the WAL checkpointed and truncated, then every free block taken.
fill() {
	q "$db" "pragma wal_checkpoint(truncate)" >/dev/null
	dd if=/dev/zero of="$TEST_TMP/jdir/fill" bs=4k status=none 2>/dev/null
	[[ $(df --output=avail -k "$TEST_TMP/jdir" | tail -1 | tr -d ' ') == 0 ]] || fail "the tmpfs is not full"
}
unfill() { rm -f "$TEST_TMP/jdir/fill"; }

start_station "$TEST_TMP/station.conf"
station_ready "$db"
sleep 1
base=$(q "$db" "select count(*) from jobs") # the machine's own disks, ignored
faults=0

# 1. Full before the job starts: the card must stay untouched.
card1=$(make_card card-1.img 40M)
other=$(make_card other-1.img 8M)
sum1=$(sha256sum <"$card1")
fill
faults=$((faults + 1))
insert_card "$card1"
dev1=$LOOP_DEV
insert_card "$other"
dev_other=$LOOP_DEV
for _ in $(seq 50); do
	grep -q "card-1.img.*cannot record the job, so the card is NOT written" "$TEST_TMP/station.log" &&
		grep -q "other-1.img.*ignored.*kept in memory" "$TEST_TMP/station.log" && break
	sleep 0.1
done
grep -q "card-1.img.*cannot record the job, so the card is NOT written.*full" "$TEST_TMP/station.log" ||
	fail "the station did not say it cannot record the job: $(tail -5 "$TEST_TMP/station.log")"
grep -q "other-1.img.*ignored.*kept in memory" "$TEST_TMP/station.log" ||
	fail "the ignored card's row was not kept: $(tail -5 "$TEST_TMP/station.log")"
sleep 3
station_alive
[[ $(sha256sum <"$card1") == "$sum1" ]] || fail "card-1 was written while its job could not be recorded"
grep -q "card-1.img.*started" "$TEST_TMP/station.log" && fail "a worker started for card-1 without a row"
n=$(q "$db" "select count(*) from jobs"); [[ $n == "$base" ]] || fail "rows appeared on a full disk? $n: $(q "$db" "select job, serial, outcome from jobs" 2>&1) $(cat "$TEST_TMP/station.log")"
t_free=$(date +%s)
unfill
wait_for "$db" "select outcome from jobs where serial='card-1.img'" success 30 || fail "card-1 was not flashed once there was room"
wait_for "$db" "select outcome from jobs where serial='other-1.img'" ignored 10 || fail "the ignored row did not land"
grep -q "job [0-9]* recorded after waiting" "$TEST_TMP/station.log" || fail "no log line for the job start that waited"
"$BMAPTOOL" -q verify --bmap "$img.bmap" "$img" "$card1" || fail "card-1 does not hold the image"
log "1: job start waited $(sed -nE 's/.*recorded after waiting ([0-9.]+ s).*/\1/p' "$TEST_TMP/station.log" | head -1) for room"
detach_loop "$dev_other"

# 2. Full while a job runs: its end must not be lost.
gate_feeder "$fifo" "$img.zst"
gate=$(make_card gate-1.img 40M)
insert_card "$gate"
dev_gate=$LOOP_DEV
wait_for "$db" "select outcome from jobs where serial='gate-1.img'" running || fail "gate-1 did not start"
fill
faults=$((faults + 1))
t_end=$(date -u +%Y-%m-%dT%H:%M:%S)
touch "$TEST_TMP/go"
for _ in $(seq 100); do
	grep -q "the end of job [0-9]* (success): the journal cannot take it now" "$TEST_TMP/station.log" && break
	sleep 0.1
done
grep -q "the end of job [0-9]* (success): the journal cannot take it now.*full" "$TEST_TMP/station.log" ||
	fail "the station did not say it keeps the job's end: $(tail -5 "$TEST_TMP/station.log")"
sleep 3
station_alive
[[ $(q "$db" "select outcome from jobs where serial='gate-1.img'") == running ]] || fail "the row changed on a full disk?"
unfill
wait_for "$db" "select outcome from jobs where serial='gate-1.img'" success 10 || fail "the kept end did not land"
grep -q "the end of job [0-9]* (success): recorded after" "$TEST_TMP/station.log" || fail "no log line for the kept end"
# finished is when it ended (before the room came back), not when it landed.
fin=$(q "$db" "select substr(finished, 1, 19) from jobs where serial='gate-1.img'")
[[ $fin < "$(date -u -d "@$(($(date +%s) - 2))" +%Y-%m-%dT%H:%M:%S)" && ! $fin < "${t_end%:*}" ]] ||
	fail "finished $fin is not when the job ended (about $t_end)"
"$BMAPTOOL" -q verify --bmap "$img.bmap" "$img" "$gate" || fail "gate-1 does not hold the image"
wait "$FEEDER" 2>/dev/null
detach_loop "$dev_gate"

# 3. Stopped while an end waits for room: the station waits, then exits.
gate_feeder "$fifo" "$img.zst"
gate2=$(make_card gate-2.img 40M)
insert_card "$gate2"
dev_gate2=$LOOP_DEV
wait_for "$db" "select outcome from jobs where serial='gate-2.img'" running || fail "gate-2 did not start"
fill
faults=$((faults + 1))
kill -TERM "$STATION_PID"
for _ in $(seq 100); do
	grep -q "stopping: waiting up to" "$TEST_TMP/station.log" && break
	sleep 0.1
done
grep -q "stopping: waiting up to" "$TEST_TMP/station.log" || fail "the station did not wait for the journal on stop"
station_alive
unfill
for _ in $(seq 100); do kill -0 "$STATION_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$STATION_PID" 2>/dev/null && fail "the station did not exit once its records landed"
wait "$STATION_PID"
rc=$?
STATION_PID=
[[ $rc == 0 ]] || fail "the station exited with $rc"
[[ $(q "$db" "select outcome from jobs where serial='gate-2.img'") == interrupted ]] ||
	fail "gate-2: $(q "$db" "select outcome, error from jobs where serial='gate-2.img'")"
kill "$FEEDER" 2>/dev/null
wait "$FEEDER" 2>/dev/null
detach_loop "$dev_gate2"
detach_loop "$dev1"

# Records lost = 0.
started=$(grep -oE 'job [0-9]+ started' "$TEST_TMP/station.log" | sort -u | wc -l)
rows=$(q "$db" "select count(*) from jobs where outcome not in ('running','ignored','refused')")
[[ $started == 3 && $rows == 3 ]] || fail "jobs started (log): $started, rows with an outcome: $rows (want 3 and 3)"
[[ $(q "$db" "select count(*) from jobs") == $((base + 4)) ]] || fail "rows: $(q "$db" "select job, serial, outcome from jobs")"
grep -q "NOT RECORDED" "$TEST_TMP/station.log" && fail "the station gave up a record"
[[ $(q "$db" "pragma integrity_check") == ok ]] || fail "integrity_check"
log "ok: faults $faults (disk full before a job, during a job, at stop), rows checked $(q "$db" "select count(*) from jobs"), jobs started $started, records lost $((started - rows))"
