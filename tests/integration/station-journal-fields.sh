#!/bin/bash
# Under systemd, the station's standard error is the journal: its lines
# carry structured fields (issue 10), so `journalctl SERIAL=X` and `JOB=N`
# find a card's lines and PRIORITY= is each line's own. Checked against a
# real systemd-journald, started by the test in a private mount namespace
# (its sockets and files on tmpfs there), stopped by pid.
if [[ -z ${_FIELDS_NS:-} ]]; then
	. "$TESTS_DIR/lib/common.sh"
	need_root
	need_cmd unshare
	need_cmd journalctl
	[[ -x /lib/systemd/systemd-journald ]] || skip "needs systemd-journald"
	made=
	[[ -d /run/systemd/journal ]] || { mkdir -p /run/systemd/journal && made=1; }
	rc=0
	_FIELDS_NS=1 unshare -m --propagation private bash "$0" || rc=$?
	[[ -n $made ]] && rmdir /run/systemd/journal 2>/dev/null
	exit "$rc"
fi
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
ensure_udevd
install_test_rule

mount -t tmpfs tmpfs /run/systemd/journal || fail "cannot mount a tmpfs for the journal's sockets"
mkdir -p /run/log/journal
mount -t tmpfs tmpfs /run/log/journal || fail "cannot mount a tmpfs for the journal's files"
/lib/systemd/systemd-journald &
journald=$!
on_exit "kill $journald 2>/dev/null; wait $journald 2>/dev/null"
for _ in $(seq 50); do [[ -S /run/systemd/journal/stdout ]] && break; sleep 0.1; done
[[ -S /run/systemd/journal/stdout ]] || fail "systemd-journald did not start"

img=$TEST_TMP/disk.img
mk_image_bmap "$img" "size=8M data=0:1M"
db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "fields"; database = "$db"; max_device_size = "1G"; cache_dir = "$TEST_TMP/cache"; };
profiles = ( { name = "p"; image = "disk.img"; removable_only = false; match = { serial = "fields-*"; }; } );
CONF
# As systemd runs a service: stderr a journal stream, $JOURNAL_STREAM naming it.
systemd-cat -t bmap-station-test bash -c \
	'export JOURNAL_STREAM=$(stat -L -c "%d:%i" /proc/self/fd/2); exec "$0" run --config "$1"' \
	"$BMAP_STATION" "$TEST_TMP/station.conf" &
STATION_PID=$!
on_exit "stop_station"
station_ready "$db"
insert_card "$(make_card fields-1.img 16M)"
wait_for "$db" "select outcome from jobs where serial='fields-1.img'" success 30 || fail "the card was not flashed"
job=$(q "$db" "select job from jobs where serial='fields-1.img'")
sleep 0.5
jc() { journalctl -D /run/log/journal --no-pager "$@"; }
jc -o cat SERIAL=fields-1.img >"$TEST_TMP/serial.out"
grep -q "inserted" "$TEST_TMP/serial.out" || fail "journalctl SERIAL=fields-1.img has no 'inserted': $(jc -o cat | tail -5)"
grep -q "job $job success" "$TEST_TMP/serial.out" || fail "journalctl SERIAL= has no job end: $(cat "$TEST_TMP/serial.out")"
jc -o cat JOB="$job" | grep -q "job $job success" || fail "journalctl JOB=$job finds nothing"
jc -o cat JOB="$job" OUTCOME=success | grep -q "job $job success" || fail "no OUTCOME=success field"
jc -o export SYSLOG_IDENTIFIER=bmap-station | grep -q '^PRIORITY=6$' || fail "no PRIORITY=6 entry"
jc -o cat -p err SYSLOG_IDENTIFIER=bmap-station | grep -q . && fail "error-priority lines for a good job: $(jc -o cat -p err)"
log "ok ($(wc -l <"$TEST_TMP/serial.out") lines for the card's serial)"
