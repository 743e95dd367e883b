#!/bin/bash
# The station under systemd (Type=notify, WatchdogSec=; issue 10): READY=1
# once it listens, WATCHDOG=1 from its event loop at a quarter of the
# watchdog interval, STATUS= lines, STOPPING=1 on SIGTERM, all on the real
# $NOTIFY_SOCKET protocol (a datagram socket, as systemd gives it).
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
need_cmd python3
ensure_udevd

db=$TEST_TMP/journal.db
img=$TEST_TMP/disk.img
mk_image_bmap "$img" "size=8M data=0:1M"
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "notify"; database = "$db"; max_device_size = "1G"; cache_dir = "$TEST_TMP/cache"; };
profiles = ( { name = "p"; image = "disk.img"; match = { serial = "notify-none-*"; }; } );
CONF

sock=$TEST_TMP/notify.sock
python3 - "$sock" "$TEST_TMP/messages" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(30)
with open(sys.argv[2], "w", buffering=1) as out:
    try:
        while True:
            m = s.recv(4096).decode(errors="replace")
            for line in m.split("\n"):
                out.write("%.3f %s\n" % (time.monotonic(), line))
            if "STOPPING=1" in m:
                break
    except socket.timeout:
        pass
PY
listener=$!
on_exit "kill $listener 2>/dev/null"
for _ in $(seq 50); do [[ -S $sock ]] && break; sleep 0.1; done
[[ -S $sock ]] || fail "the test's notify socket did not appear"

NOTIFY_SOCKET=$sock WATCHDOG_USEC=1000000 "$BMAP_STATION" run --config "$TEST_TMP/station.conf" \
	>>"$TEST_TMP/station.log" 2>&1 &
STATION_PID=$!
on_exit "stop_station"
for _ in $(seq 100); do grep -q 'READY=1' "$TEST_TMP/messages" 2>/dev/null && break; sleep 0.1; done
grep -q 'READY=1' "$TEST_TMP/messages" || fail "no READY=1: $(cat "$TEST_TMP/messages" 2>/dev/null)"
grep -q "STATUS=station 'notify'" "$TEST_TMP/messages" || fail "no STATUS=: $(cat "$TEST_TMP/messages")"
sleep 3
pings=$(grep -c 'WATCHDOG=1' "$TEST_TMP/messages")
# A quarter of 1 s: about 12 pings in 3 s; at least one per half interval.
((pings >= 6)) || fail "$pings WATCHDOG=1 in 3 s with WatchdogSec=1s"
kill -TERM "$STATION_PID"
wait "$STATION_PID" || fail "the station exited with $?"
STATION_PID=
for _ in $(seq 50); do grep -q 'STOPPING=1' "$TEST_TMP/messages" && break; sleep 0.1; done
grep -q 'STOPPING=1' "$TEST_TMP/messages" || fail "no STOPPING=1"
log "ok ($pings watchdog pings in 3 s)"
