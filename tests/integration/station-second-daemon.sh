#!/bin/bash
# Two daemons on one journal falsified it: the second `bmap-station run`
# marked the first one's running job interrupted, cleared the live table and
# started a job of its own on the same card; the first one's real success
# was then not recorded. Now the first holds the journal's lock:
#  - a second `run` on the same journal (also through another name of the
#    file) exits non-zero at once, naming the first one's pid, and touches
#    nothing: the job stays running, the live table stays, no second job
#  - the first one's job ends and is recorded, exactly once
#  - once the station is gone (SIGKILL: nothing could clean up), `status`
#    and `watch` say it is not running instead of showing a stale "writing"
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
need_cmd zstd
need_cmd tmux
ensure_udevd
install_test_rule

img=$TEST_TMP/disk.img
mk_image_bmap "$img" "size=16M data=0:1M data=4M:8M" zst
mkfifo "$TEST_TMP/gated.zst"
db=$TEST_TMP/journal.db
conf() {
	cat <<CONF
station = { name = "one"; database = "$1"; max_device_size = "1G"; cache_dir = "$TEST_TMP/cache"; };
profiles = ( { name = "gated"; image = "gated.zst"; bmap = "disk.img.bmap"; removable_only = false;
  match = { serial = "card-*"; }; } );
CONF
}
conf "$db" >"$TEST_TMP/station.conf"
ln -s journal.db "$TEST_TMP/alias.db"
conf "$TEST_TMP/alias.db" >"$TEST_TMP/alias.conf"

start_station "$TEST_TMP/station.conf"
first=$STATION_PID
station_ready "$db"
gate_feeder "$TEST_TMP/gated.zst" "$img.zst"
card=$(make_card card-1.img 32M)
insert_card "$card"
wait_for "$db" "select state from live where serial='card-1.img'" writing 20 ||
	fail "the first station's job did not start"
live_before=$(q "$db" "select count(*) from live")

for c in station.conf alias.conf; do
	timeout 20 "$BMAP_STATION" run --config "$TEST_TMP/$c" >"$TEST_TMP/second.log" 2>&1
	rc=$?
	[[ $rc != 0 && $rc != 124 ]] ||
		fail "a second station on the journal ($c) did not refuse to start (exit $rc): $(cat "$TEST_TMP/second.log")"
	grep -q "pid $first" "$TEST_TMP/second.log" ||
		fail "the refusal does not name the running station's pid $first: $(cat "$TEST_TMP/second.log")"
	[[ $(q "$db" "select group_concat(outcome) from jobs") == running ]] ||
		fail "the second station touched the jobs: $(q "$db" "select job, outcome, error from jobs")"
	[[ $(q "$db" "select count(*) from live") == "$live_before" ]] ||
		fail "the second station touched the live table"
done
station_alive

touch "$TEST_TMP/go"
wait_for "$db" "select outcome from jobs where serial='card-1.img'" success 60 ||
	fail "the first station's job was not recorded"
[[ $(q "$db" "select count(*) from jobs") == 1 ]] || fail "jobs: $(q "$db" "select job, outcome from jobs")"
"$BMAP_STATION" status --db "$db" >"$TEST_TMP/status.out" 2>"$TEST_TMP/status.err" || fail "status failed"
grep -q "not running" "$TEST_TMP/status.err" && fail "status says a running station is not running"

# The station dies without a word; its live rows stay as they were.
q "$db" "update live set state = 'writing', done = 15, total = 100"
kill -KILL "$first"
wait "$first" 2>/dev/null
STATION_PID=
# Its workers go with it (PR_SET_PDEATHSIG); the lock with the last of them.
for _ in $(seq 50); do
	"$BMAP_STATION" status --db "$db" >"$TEST_TMP/status.out" 2>"$TEST_TMP/status.err" || fail "status failed"
	grep -q "not running" "$TEST_TMP/status.err" && break
	sleep 0.1
done
grep -q "station is not running" "$TEST_TMP/status.err" ||
	fail "status does not say the station is not running: $(cat "$TEST_TMP/status.out" "$TEST_TMP/status.err")"
grep -q "card-1.img.*writing" "$TEST_TMP/status.out" || fail "status: $(cat "$TEST_TMP/status.out")"

sock=$TEST_TMP/tmux.sock
on_exit "tmux -S '$sock' kill-server 2>/dev/null"
tmux -S "$sock" new-session -d -x 120 -y 30 "'$BMAP_STATION' watch --db '$db'; sleep 30" ||
	fail "tmux failed"
for _ in $(seq 30); do
	tmux -S "$sock" capture-pane -p -J >"$TEST_TMP/screen.txt" 2>/dev/null
	grep -q "card-1.img" "$TEST_TMP/screen.txt" && break
	sleep 0.2
done
grep -q "station not running" "$TEST_TMP/screen.txt" ||
	fail "watch does not say the station is not running: $(cat "$TEST_TMP/screen.txt")"

# And the next station starts.
start_station "$TEST_TMP/alias.conf"
for _ in $(seq 50); do
	[[ $(grep -c "station 'one' running" "$TEST_TMP/station.log") == 2 ]] && break
	sleep 0.1
done
"$BMAP_STATION" status --db "$db" >"$TEST_TMP/status.out" 2>"$TEST_TMP/status.err" || fail "status failed"
grep -q "not running" "$TEST_TMP/status.err" && fail "status: the new station is not seen running"
stop_station
log "ok"
