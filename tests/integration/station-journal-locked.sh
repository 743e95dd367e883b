#!/bin/bash
# The journal locked by another process (a sqlite3 shell):
#  - BEGIN IMMEDIATE held ~10 s while a card is inserted: the card is NOT
#    written until its job-start row is committed; the station says it waits,
#    keeps running, and flashes it once the lock is gone
#  - BEGIN EXCLUSIVE held ~10 s while a job ends: its outcome is kept and
#    lands after the lock
#  - a long read transaction while cards are flashed: writes go on (WAL),
#    the checkpoint cannot pass the reader's snapshot until it ends
#  - records lost = 0, PRAGMA integrity_check ok
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
need_cmd zstd
ensure_udevd
install_test_rule

mkdir -p "$TEST_TMP/images"
img=$TEST_TMP/images/disk.img
mk_image_bmap "$img" "size=32M data=0:1M data=3M:12M" zst
db=$TEST_TMP/journal.db
fifo=$TEST_TMP/images/gate.img.zst
mkfifo "$fifo"
HOLD=10

cat >"$TEST_TMP/station.conf" <<CONF
station = {
  name = "locked";
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

# holder_start: a sqlite3 shell on the journal, fed statements through fd 9.
holder_start() {
	rm -f "$TEST_TMP/ctl"
	mkfifo "$TEST_TMP/ctl"
	sqlite3 "$db" <"$TEST_TMP/ctl" >"$TEST_TMP/holder.out" 2>&1 &
	HOLDER=$!
	on_exit "kill $HOLDER 2>/dev/null"
	exec 9>"$TEST_TMP/ctl"
}
holder() { echo "$1" >&9; }
holder_end() {
	exec 9>&-
	wait "$HOLDER" 2>/dev/null
}
locked() { ! sqlite3 "$db" "BEGIN IMMEDIATE; ROLLBACK;" >/dev/null 2>&1; }
wait_log() {
	for _ in $(seq "$((${2:-10} * 10))"); do
		grep -qE "$1" "$TEST_TMP/station.log" && return 0
		sleep 0.1
	done
	fail "no log line like [$1]: $(cat "$TEST_TMP/station.log")"
}

start_station "$TEST_TMP/station.conf"
station_ready "$db"
sleep 1
base=$(q "$db" "select count(*) from jobs") # the machine's own disks, ignored
faults=0

# 1. A writer holds the lock while a card comes: nothing is written to it.
card1=$(make_card card-1.img 40M)
other=$(make_card other-1.img 8M)
sum1=$(sha256sum <"$card1")
holder_start
holder "BEGIN IMMEDIATE;"
for _ in $(seq 50); do locked && break; sleep 0.1; done
locked || fail "the sqlite3 shell did not take the lock"
t_lock=$(date +%s.%N)
faults=$((faults + 1))
insert_card "$card1"
dev1=$LOOP_DEV
insert_card "$other"
dev_other=$LOOP_DEV
wait_log "card-1.img.*cannot record the job, so the card is NOT written.*locked"
wait_log "other-1.img.*ignored.*locked.*kept in memory"
sleep $((HOLD - 3))
station_alive
[[ $(sha256sum <"$card1") == "$sum1" ]] || fail "card-1 was written while its job could not be recorded"
grep -q "card-1.img.*started" "$TEST_TMP/station.log" && fail "a worker started for card-1 without a row"
holder "COMMIT;"
holder_end
wait_for "$db" "select outcome from jobs where serial='card-1.img'" success 30 || fail "card-1 was not flashed after the lock"
wait_for "$db" "select outcome from jobs where serial='other-1.img'" ignored 10 || fail "the ignored row did not land"
wait_log "card-1.img.*job [0-9]+ recorded after waiting"
log "1: BEGIN IMMEDIATE held $(echo "$(date +%s.%N) - $t_lock" | bc | cut -c1-4)s; the job start waited $(sed -nE 's/.*recorded after waiting ([0-9.]+ s).*/\1/p' "$TEST_TMP/station.log" | head -1)"
"$BMAPTOOL" -q verify --bmap "$img.bmap" "$img" "$card1" || fail "card-1 does not hold the image"
detach_loop "$dev_other"

# 2. An exclusive lock while a job ends: its outcome waits, then lands.
gate_feeder "$fifo" "$img.zst"
gate=$(make_card gate-1.img 40M)
insert_card "$gate"
dev_gate=$LOOP_DEV
wait_for "$db" "select outcome from jobs where serial='gate-1.img'" running || fail "gate-1 did not start"
holder_start
holder "BEGIN EXCLUSIVE;"
for _ in $(seq 50); do locked && break; sleep 0.1; done
locked || fail "the sqlite3 shell did not take the exclusive lock"
faults=$((faults + 1))
touch "$TEST_TMP/go"
wait_log "the end of job [0-9]+ \(success\): the journal cannot take it now.*locked" 20
sleep 3
station_alive
[[ $(q "$db" "select outcome from jobs where serial='gate-1.img'") == running ]] || fail "the row changed under an exclusive lock?"
sleep $((HOLD - 5))
holder "COMMIT;"
holder_end
wait_for "$db" "select outcome from jobs where serial='gate-1.img'" success 10 || fail "the kept end did not land"
wait_log "the end of job [0-9]+ \(success\): recorded after"
log "2: $(grep -oE 'the end of job [0-9]+ \(success\): recorded after .*' "$TEST_TMP/station.log")"
"$BMAPTOOL" -q verify --bmap "$img.bmap" "$img" "$gate" || fail "gate-1 does not hold the image"
wait "$FEEDER" 2>/dev/null
detach_loop "$dev_gate"

# 3. A long reader: writers go on; the WAL is not checkpointed past it.
holder_start
holder "BEGIN;"
holder "SELECT count(*) FROM jobs;"
faults=$((faults + 1))
sleep 0.5
declare -a dev
for i in 2 3; do
	c=$(make_card card-$i.img 40M)
	insert_card "$c"
	dev[$i]=$LOOP_DEV
done
wait_for "$db" "select count(*) from jobs where serial in ('card-2.img','card-3.img') and outcome='success'" 2 30 ||
	fail "cards were not flashed under a long reader"
ck_during=$(q "$db" "pragma wal_checkpoint(passive)")
wal_during=$(stat -c %s "$db-wal")
holder "COMMIT;"
holder_end
ck_after=$(q "$db" "pragma wal_checkpoint(passive)")
IFS='|' read -r _ log_d done_d <<<"$ck_during"
IFS='|' read -r _ log_a done_a <<<"$ck_after"
((done_d < log_d)) || fail "the checkpoint passed a reader's snapshot? ($ck_during)"
((done_a == log_a)) || fail "the WAL is not checkpointed after the reader ended ($ck_after)"
log "3: under the reader the WAL held $log_d frames ($wal_during bytes), $done_d checkpointed; after it: $done_a of $log_a"
station_alive
stop_station
for i in 2 3; do detach_loop "${dev[$i]}"; done
detach_loop "$dev1"

# Records lost = 0.
started=$(grep -oE 'job [0-9]+ started' "$TEST_TMP/station.log" | sort -u | wc -l)
rows=$(q "$db" "select count(*) from jobs where outcome not in ('running','ignored','refused')")
[[ $started == 4 && $rows == 4 ]] || fail "jobs started (log): $started, rows with an outcome: $rows (want 4 and 4)"
[[ $(q "$db" "select count(*) from jobs") == $((base + 5)) ]] || fail "rows: $(q "$db" "select job, serial, outcome from jobs")"
grep -q "NOT RECORDED" "$TEST_TMP/station.log" && fail "the station gave up a record"
[[ $(q "$db" "pragma integrity_check") == ok ]] || fail "integrity_check"
log "ok: faults $faults (IMMEDIATE lock at a job start, EXCLUSIVE lock at a job end, long reader), rows checked $(q "$db" "select count(*) from jobs"), jobs started $started, records lost $((started - rows))"
