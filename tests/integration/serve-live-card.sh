#!/bin/bash
# The live JSON follows a real card: `bmap-station serve` starts before the
# station has created its journal (and says so), then a real daemon flashes
# one loop card whose image comes through a FIFO in eight pieces 0.4 s
# apart; /api/live, polled every 0.1 s by the test, shows the card's tile
# writing with its progress moving, then done (pull-passed), and today's
# counts with the pass. The server runs all along, reading the journal the
# daemon writes (WAL).
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
. "$TESTS_DIR/lib/serve.sh"
need_station_env
need_ours
need_cmd curl
PY=$(command -v /usr/bin/python3 || command -v python3)
ensure_udevd
install_test_rule

img=$TEST_TMP/disk.img
mk_image_bmap "$img" "size=48M data=0:1M data=4M:40M" zst
mkfifo "$TEST_TMP/feed.zst"
db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "live"; database = "$db"; max_device_size = "1G"; cache_dir = "$TEST_TMP/cache"; };
profiles = (
  { name = "fed"; image = "feed.zst"; bmap = "disk.img.bmap"; removable_only = false;
    match = { serial = "card-*"; }; }
);
CONF
serve_start s --config "$TEST_TMP/station.conf" --listen 127.0.0.1:0 || fail "serve did not start"
url=$(serve_url s)
curl -sf "$url/api/live" | grep -q '"journal":"missing"' ||
	fail "serve does not say the journal is missing before the station ran"

start_station "$TEST_TMP/station.conf"
station_ready "$db"
size=$(stat -c %s "$img.zst")
{
	for i in 0 1 2 3 4 5 6 7; do
		tail -c +$((i * size / 8 + 1)) "$img.zst" | head -c $(((i + 1) * size / 8 - i * size / 8))
		sleep 0.4
	done
} >"$TEST_TMP/feed.zst" 2>/dev/null &
feeder=$!
on_exit "kill $feeder 2>/dev/null"
card=$(make_card card-1.img 64M)
insert_card "$card"

"$PY" - "$url/api/live" <<'PY' || fail "/api/live did not follow the card (see above)"
import json, sys, time, urllib.request
seen, last = [], None
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    d = json.load(urllib.request.urlopen(sys.argv[1], timeout=10))
    tiles = [t for t in d["tiles"] if t["serial"] == "card-1.img"]
    if d["journal"] == "ok" and tiles:
        t = tiles[0]
        key = (t["state"], t["percent"])
        if not seen or seen[-1] != key:
            seen.append(key)
        last = (t, d)
        if t["state"] in ("done", "failed"):
            break
    time.sleep(0.1)
print("serve-live-card: states seen:", seen, file=sys.stderr)
assert last, "the card never appeared"
t, d = last
assert t["state"] == "done" and t["last_outcome"] == "success", t
assert t["class"] == "tile state-done pull-passed" and t["pull"] == "passed", t
assert t["id"].startswith("card-loop"), t
writing = [p for s, p in seen if s == "writing" and p is not None and 0 < p < 100]
assert len(set(writing)) >= 2, "progress did not move while writing: %s" % seen
assert writing == sorted(writing), "progress went back: %s" % seen
assert d["today"]["passed"] == 1 and d["today"]["yield_pct"] == 100.0, d["today"]
PY
q "$db" "select outcome from jobs where serial='card-1.img'" | grep -qx success ||
	fail "the journal has no success for the card"
# The live page itself, rendered by the server, shows the same tile.
curl -sf "$url/" | grep -q 'class="tile state-done pull-passed" id="card-loop' ||
	fail "the live page does not show the done card"
station_alive
kill -0 "$SERVE_PID_s" || fail "serve died"
log "ok"
