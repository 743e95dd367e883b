#!/bin/bash
# The live view: 'status' (table and JSON, parsed back) and 'watch' in a real
# pseudo-terminal (tmux) while the daemon is busy with one card mid-copy and
# has finished another; watch shows progress and today's counts, quits on 'q'
# and gives the terminal back.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
need_cmd tmux
need_cmd python3
ensure_udevd
install_test_rule

img=$TEST_TMP/disk.img
mk_image_bmap "$img" "size=48M data=0:1M data=4M:40M" zst
mkfifo "$TEST_TMP/slow.zst"
db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "live"; database = "$db"; max_device_size = "1G"; cache_dir = "$TEST_TMP/cache"; };
profiles = (
  { name = "fast"; image = "disk.img.zst"; bmap = "disk.img.bmap"; removable_only = false;
    match = { serial = "card-*"; }; },
  { name = "slow"; image = "slow.zst"; bmap = "disk.img.bmap"; removable_only = false;
    match = { serial = "slow-*"; }; }
);
CONF
start_station "$TEST_TMP/station.conf"

fast=$(make_card card-1.img 64M)
insert_card "$fast"
wait_for "$db" "select outcome from jobs where serial='card-1.img'" success || fail "card-1 not flashed"
# Half the image, then the feed stalls: the job stays mid-copy.
{ head -c $(($(stat -c %s "$img.zst") / 2)) "$img.zst"; exec sleep 60; } >"$TEST_TMP/slow.zst" 2>/dev/null &
feeder=$!
on_exit "kill $feeder 2>/dev/null"
slow=$(make_card slow-1.img 64M)
insert_card "$slow"
wait_for "$db" "select state from live where serial='slow-1.img' and done > 0" writing 20 ||
	fail "no progress for the slow card in the live table"

"$BMAP_STATION" status --db "$db" >"$TEST_TMP/status.txt" 2>"$TEST_TMP/status.err" || fail "status failed"
grep -q "slow-1.img.*writing" "$TEST_TMP/status.txt" || fail "status: $(cat "$TEST_TMP/status.txt")"
grep -q "card-1.img.*done.*success" "$TEST_TMP/status.txt" || fail "status: $(cat "$TEST_TMP/status.txt")"
"$BMAP_STATION" status --db "$db" --json >"$TEST_TMP/status.json" || fail "status --json failed"
python3 - "$TEST_TMP/status.json" <<'PY' || fail "status --json: $(cat "$TEST_TMP/status.json")"
import json, sys
rows = {r["serial"]: r for r in json.load(open(sys.argv[1]))}
slow, fast = rows["slow-1.img"], rows["card-1.img"]
assert slow["state"] == "writing" and slow["profile"] == "slow", slow
assert 0 < slow["percent"] < 100 and slow["done"] < slow["total"], slow
assert fast["state"] == "done" and fast["last_outcome"] == "success", fast
PY

# watch in a pseudo-terminal of its own tmux server (stopped by its socket).
sock=$TEST_TMP/tmux.sock
on_exit "tmux -S '$sock' kill-server 2>/dev/null"
tmux -S "$sock" new-session -d -x 120 -y 30 \
	"'$BMAP_STATION' watch --db '$db'; echo WATCH-ENDED; sleep 30" || fail "tmux failed"
for _ in $(seq 30); do
	tmux -S "$sock" capture-pane -p -J >"$TEST_TMP/screen.txt" 2>/dev/null
	grep -q "slow-1.img" "$TEST_TMP/screen.txt" && grep -q "today:" "$TEST_TMP/screen.txt" && break
	sleep 0.2
done
grep -q "slow-1.img .*writing .*\[#*\.*\] *[0-9]*%" "$TEST_TMP/screen.txt" ||
	fail "watch shows no progress bar: $(cat "$TEST_TMP/screen.txt")"
grep -q "card-1.img .*done .*100%" "$TEST_TMP/screen.txt" || fail "watch: $(cat "$TEST_TMP/screen.txt")"
awk 'length > 120 { exit 1 }' "$TEST_TMP/screen.txt" || fail "watch wrote past the terminal's width"
grep -q "today: flashed 1, *passed 1 *, *failed 0 *, yield 100.0%" "$TEST_TMP/screen.txt" ||
	fail "watch shows no counts: $(cat "$TEST_TMP/screen.txt")"
tmux -S "$sock" send-keys q
for _ in $(seq 30); do
	tmux -S "$sock" capture-pane -p >"$TEST_TMP/screen.txt" 2>/dev/null
	grep -q WATCH-ENDED "$TEST_TMP/screen.txt" && break
	sleep 0.2
done
grep -q WATCH-ENDED "$TEST_TMP/screen.txt" || fail "watch did not quit on q"
# Back on the main screen: none of watch's drawing is left there.
grep -q "slow-1.img" "$TEST_TMP/screen.txt" && fail "watch left its screen behind"
"$BMAP_STATION" watch --db "$db" </dev/null >/dev/null 2>&1 && fail "watch without a terminal should refuse"
grep -q "not running" "$TEST_TMP/status.err" && fail "status said a running station is not running"

# The station dies without a word (SIGKILL); its rows stay as it left them
# ("writing"): status and watch say it is not running. Its worker dies with
# it, and the journal's lock with the last of them.
kill -KILL "$STATION_PID"
wait "$STATION_PID" 2>/dev/null
STATION_PID=
for _ in $(seq 50); do
	"$BMAP_STATION" status --db "$db" >"$TEST_TMP/status.txt" 2>"$TEST_TMP/status.err" || fail "status failed"
	grep -q "not running" "$TEST_TMP/status.err" && break
	sleep 0.1
done
grep -q "slow-1.img.*writing" "$TEST_TMP/status.txt" || fail "status: $(cat "$TEST_TMP/status.txt")"
grep -q "the station is not running" "$TEST_TMP/status.err" ||
	fail "status does not say the station is not running: $(cat "$TEST_TMP/status.err")"
"$BMAP_STATION" status --db "$db" --json >"$TEST_TMP/status.json" 2>"$TEST_TMP/status.err" ||
	fail "status --json failed"
python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$TEST_TMP/status.json" ||
	fail "status --json is no longer JSON when the station is not running"
grep -q "the station is not running" "$TEST_TMP/status.err" || fail "status --json: $(cat "$TEST_TMP/status.err")"
tmux -S "$sock" new-window "'$BMAP_STATION' watch --db '$db'; sleep 30" || fail "tmux failed"
for _ in $(seq 30); do
	tmux -S "$sock" capture-pane -p -J >"$TEST_TMP/screen.txt" 2>/dev/null
	grep -q "slow-1.img" "$TEST_TMP/screen.txt" && break
	sleep 0.2
done
grep -q "station not running" "$TEST_TMP/screen.txt" ||
	fail "watch does not say the station is not running: $(cat "$TEST_TMP/screen.txt")"
log "ok"
