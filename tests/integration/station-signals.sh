#!/bin/bash
# The daemon died silently (issue 10, item 22): SIGPIPE when the reader of
# its standard error went away (exit 141), SIGUSR1 by its default action.
# Now a lost log reader and stray signals leave it running and flashing.
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
station = { name = "signals"; database = "$db"; max_device_size = "1G"; cache_dir = "$TEST_TMP/cache"; };
profiles = ( { name = "p"; image = "disk.img"; removable_only = false; match = { serial = "sig-*"; }; } );
CONF

# Its standard error is a pipe whose reader ends after the first line.
mkfifo "$TEST_TMP/err"
head -n 1 <"$TEST_TMP/err" >"$TEST_TMP/first-line" &
reader=$!
"$BMAP_STATION" run --config "$TEST_TMP/station.conf" 2>"$TEST_TMP/err" &
STATION_PID=$!
on_exit "stop_station"
station_ready "$db"
wait "$reader"
grep -q 'bmap-station: station .signals. running' "$TEST_TMP/first-line" ||
	fail "the first log line: $(cat "$TEST_TMP/first-line")"

# Log lines now go to a pipe nobody reads: the card is still flashed.
card=$(make_card sig-1.img 16M)
insert_card "$card"
if ! wait_for "$db" "select outcome from jobs where serial='sig-1.img'" success 30; then
	kill -0 "$STATION_PID" 2>/dev/null || { wait "$STATION_PID"; fail "the station died writing its log (exit $?)"; }
	fail "the card was not flashed"
fi
cmp_range "$img" "$LOOP_DEV" 0 $((1 << 20)) && cmp_range "$img" "$LOOP_DEV" $((4 << 20)) $((2 << 20)) ||
	fail "the card does not hold the image's data"
kill -0 "$STATION_PID" 2>/dev/null || fail "the station is gone after the job"

for sig in USR1 USR2 ALRM; do
	kill -"$sig" "$STATION_PID"
	sleep 0.2
	kill -0 "$STATION_PID" 2>/dev/null || { wait "$STATION_PID"; fail "SIG$sig ended the station (exit $?)"; }
done

card2=$(make_card sig-2.img 16M)
insert_card "$card2"
wait_for "$db" "select outcome from jobs where serial='sig-2.img'" success 30 ||
	fail "the card after the signals was not flashed"
log "ok"
