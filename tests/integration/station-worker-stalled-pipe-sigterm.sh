#!/bin/bash
# Regression: a worker whose read of the image waited on a stalled pipe (a
# FIFO image whose writer stopped) did not end at its SIGTERM: the handler
# set the cancel flag, but the read restarted after the EINTR, and the
# worker sat there until its SIGKILL, 5 s (KILL_GRACE) later, unsynced and
# without a result. So a job over its job_timeout, and every stop of the
# station with such a job running, took 5 s more. Now the read also polls a
# pipe the handler writes to:
#  - a job over its job_timeout (2 s) on a stalled pipe ends 'timeout'
#    well before 2 + 5 s after its start;
#  - the station stopped during such a job ends in well under 5 s, the job
#    'interrupted'.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
need_cmd zstd
ensure_udevd
install_test_rule

mkdir -p "$TEST_TMP/images"
img=$TEST_TMP/images/disk.img
mk_image_bmap "$img" "size=8M data=0:1M data=2M:4M" zst
db=$TEST_TMP/journal.db
fifo=$TEST_TMP/images/stall.img.zst
mkfifo "$fifo"
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "stall"; database = "$db"; require_tag = "bmap-station";
            max_device_size = "1G"; cache_dir = "$TEST_TMP/cache"; job_timeout = 2; };
profiles = (
  { name = "timeout"; image = "images/stall.img.zst"; bmap = "images/disk.img.bmap";
    removable_only = false; match = { serial = "t-*"; }; },
  { name = "stop"; image = "images/stall.img.zst"; bmap = "images/disk.img.bmap";
    removable_only = false; match = { serial = "s-*"; }; }
);
CONF
"$BMAP_STATION" check --config "$TEST_TMP/station.conf" >"$TEST_TMP/check.out" ||
	fail "check refused the configuration: $(cat "$TEST_TMP/check.out")"

# stall: the FIFO gives a little of the image, then nothing (its writer
# sleeps); sets FEEDER.
stall() {
	{ head -c 100000 "$img.zst"; exec sleep 60; } >"$fifo" 2>/dev/null &
	FEEDER=$!
	on_exit "kill $FEEDER 2>/dev/null"
}
took_ms() {
	q "$db" "select cast((julianday(finished) - julianday(started)) * 86400000 as integer) from jobs where serial='$1'"
}

start_station "$TEST_TMP/station.conf"
station_ready "$db"

stall
insert_card "$(make_card t-1.img 16M)"
wait_for "$db" "select outcome from jobs where serial='t-1.img'" timeout 20 ||
	fail "the stalled job did not end 'timeout'"
took=$(took_ms t-1.img)
log "the stalled job over its job_timeout (2 s) ended after $took ms"
((took < 5000)) || fail "the stalled job ended $took ms after its start (job_timeout 2 s): its worker waited for the SIGKILL"
kill "$FEEDER" 2>/dev/null
wait "$FEEDER" 2>/dev/null

stall
insert_card "$(make_card s-1.img 16M)"
# Stopped at once: before the job's own 2 s run out.
wait_for "$db" "select outcome from jobs where serial='s-1.img'" running 20 || fail "the stop job did not start"
t0=$(date +%s%N)
stop_station
ms=$((($(date +%s%N) - t0) / 1000000))
log "the station stopped $ms ms after its SIGTERM"
[[ $(q "$db" "select outcome from jobs where serial='s-1.img'") == interrupted ]] ||
	fail "the job cut by the stop is not 'interrupted': $(q "$db" "select outcome, error from jobs where serial='s-1.img'")"
((ms < 4000)) || fail "the station took $ms ms to stop: its worker, waiting on a stalled pipe, waited for the SIGKILL"
log "ok"
