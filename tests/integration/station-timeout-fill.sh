#!/bin/bash
# Regression: job_timeout killed a worker with SIGKILL at once, so it could
# neither sync and close its card nor report; now the worker gets SIGTERM,
# and SIGKILL only when it has not ended 5 s later. And (issue 10, item 3)
# the image cache's fill belongs to no card: a job_timeout on the card whose
# worker started it, SIGTERM and then SIGKILL, does not stop it for the
# others.
#
# Card A's worker starts the fill of a bzip2 image (slow to decode); the
# test stops both (SIGSTOP), so nothing moves until it says so:
#  - A passes its job_timeout (2 s): its worker gets SIGTERM (seen pending:
#    a stopped process cannot act on it) and is still there;
#  - card B, inserted after a reload gave new jobs a long job_timeout,
#    reads along the same fill;
#  - after the grace A's worker is killed; the filler is still there, its
#    part in the cache; A's job ends 'timeout';
#  - the filler goes on (SIGCONT): B succeeds from the one fill, which
#    becomes the complete entry.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
. "$TESTS_DIR/lib/fill.sh"
need_station_env
need_ours
need_cmd bzip2
ensure_udevd
install_test_rule

im=$TEST_TMP/images
mkdir -p "$im"
mk_slow_bz2 "$im/disk.img" 40
db=$TEST_TMP/journal.db
cache=$TEST_TMP/cache
write_conf() {
	cat >"$TEST_TMP/station.conf" <<-CONF
	station = { name = "timeout-fill"; database = "$db"; max_workers = 4; job_timeout = $1;
	  require_tag = "bmap-station"; max_device_size = "1G"; cache_dir = "$cache"; cache_prefill = false; };
	profiles = (
	  { name = "z"; image = "$im/disk.img.bz2"; bmap = "$im/disk.img.bmap";
	    removable_only = false; verify = "readback"; match = { serial = "t-*"; }; }
	);
	CONF
}
write_conf 2
start_station "$TEST_TMP/station.conf"
station_ready "$db"

card_a=$(make_card t-a.img 48M)
insert_card "$card_a"
filler_of t-a.img
wa=$WORKER filler=$FILLER
[[ -n $filler ]] || fail "card A's worker (${wa:-none}) forked no filler"
kill_ours STOP "$filler"
kill_ours STOP "$wa"
# Whatever happens below, neither stays behind stopped.
on_exit "kill_ours KILL $filler; kill_ours KILL $wa"
grep -q "t-a.img.*cache built" "$TEST_TMP/station.log" ||
	fail "card A did not start the fill: $(grep t-a.img "$TEST_TMP/station.log")"
ls "$cache"/*.part >/dev/null 2>&1 || fail "no part in the cache while it is filled"

# job_timeout: SIGTERM first.
for _ in $(seq 100); do
	sig_pending "$wa" 15 && break
	proc_alive "$wa" || fail "card A's worker was killed at job_timeout without SIGTERM first"
	sleep 0.1
done
sig_pending "$wa" 15 || fail "card A's worker got no SIGTERM 10 s after its job_timeout"
log "card A's worker has SIGTERM pending after its job_timeout"

# New jobs get a long job_timeout; B reads along the running fill.
write_conf 600
kill -HUP "$STATION_PID"
for _ in $(seq 50); do grep -q "configuration reloaded" "$TEST_TMP/station.log" && break; sleep 0.1; done
grep -q "configuration reloaded" "$TEST_TMP/station.log" || fail "SIGHUP did not reload"
card_b=$(make_card t-b.img 48M)
insert_card "$card_b"
for _ in $(seq 100); do
	grep -q "t-b.img.*cache used.*(read while it is filled)" "$TEST_TMP/station.log" && break
	sleep 0.1
done
grep -q "t-b.img.*cache used.*(read while it is filled)" "$TEST_TMP/station.log" ||
	fail "card B did not read along the fill: $(grep t-b.img "$TEST_TMP/station.log")"

# Then SIGKILL, after the grace; the filler stays.
for _ in $(seq 150); do
	proc_alive "$wa" || break
	sleep 0.1
done
proc_alive "$wa" && fail "card A's stopped worker was not killed 15 s after its SIGTERM"
wait_for "$db" "select outcome from jobs where serial='t-a.img'" timeout 10 ||
	fail "card A: $(q "$db" "select outcome, error from jobs where serial='t-a.img'")"
proc_alive "$filler" || fail "the filler died with card A's worker"
ls "$cache"/*.part >/dev/null 2>&1 || fail "the fill's part went with card A's worker"
[[ $(q "$db" "select outcome from jobs where serial='t-b.img'") == running ]] ||
	fail "card B: $(q "$db" "select outcome, error from jobs where serial='t-b.img'")"

kill_ours CONT "$filler"
wait_for "$db" "select outcome from jobs where serial='t-b.img'" success 120 ||
	fail "card B: $(q "$db" "select outcome, error from jobs where serial='t-b.img'")"
[[ $(grep -c "cache built" "$TEST_TMP/station.log") == 1 ]] ||
	fail "the cache was filled more than once: $(grep cache "$TEST_TMP/station.log")"
ls "$cache"/*.img >/dev/null 2>&1 || fail "the fill left no complete entry"
ls "$cache"/*.part >/dev/null 2>&1 && fail "a part is left: $(ls -l "$cache")"
"$BMAPTOOL" -q verify --bmap "$im/disk.img.bmap" "$im/disk.img" "$card_b" ||
	fail "card B does not hold the image"
log "ok: job_timeout sent SIGTERM, then SIGKILL after the grace; the fill went on for card B"
