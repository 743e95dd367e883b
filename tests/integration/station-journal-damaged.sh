#!/bin/bash
# A journal damaged while the station ran (a page overwritten) made every
# write fail, and the station retried them for ever: the card waited for its
# row, never flashed, with nothing but a line every 30 s. Now the first
# write that finds the damage stops the station, with the way out in its
# log; the card is not written (it would have no row).
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
ensure_udevd
install_test_rule
PY=$(command -v /usr/bin/python3 || command -v python3)

img=$TEST_TMP/disk.img
mk_image_bmap "$img" "size=8M data=0:1M data=4M:2M"
db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "damaged"; database = "$db"; max_device_size = "1G"; cache_dir = "$TEST_TMP/cache"; };
profiles = ( { name = "p"; image = "disk.img"; removable_only = false; match = { serial = "card-*"; }; } );
CONF
start_station "$TEST_TMP/station.conf"
station_ready "$db"
card=$(make_card card-1.img 16M)
insert_card "$card"
wait_for "$db" "select outcome from jobs where serial='card-1.img'" success || fail "card-1 not flashed"

# The jobs table's root page overwritten; another connection's write makes
# the station read its pages again.
"$PY" - "$db" <<'PY' || fail "cannot damage the journal"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=5)
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
page = db.execute("SELECT rootpage FROM sqlite_schema WHERE name = 'jobs'").fetchone()[0]
size = db.execute("PRAGMA page_size").fetchone()[0]
with open(sys.argv[1], "r+b") as f:
    f.seek((page - 1) * size)
    f.write(b"\x5a" * 512)
db.execute("INSERT INTO forgotten VALUES ('nobody', 'now')")
db.commit()
db.close()
PY

card2=$(make_card card-2.img 16M)
insert_card "$card2"
for _ in $(seq 300); do
	kill -0 "$STATION_PID" 2>/dev/null || break
	sleep 0.1
done
kill -0 "$STATION_PID" 2>/dev/null &&
	fail "the station goes on retrying writes to a damaged journal (30 s)"
wait "$STATION_PID" 2>/dev/null
STATION_PID=
grep -q "damaged.*restore it from a backup or move it away" "$TEST_TMP/station.log" ||
	fail "the log does not say the journal is damaged and what to do"
grep -qF "$db" <(grep damaged "$TEST_TMP/station.log") || fail "the log does not name the journal"
cmp -s <(head -c 1M "$card2") <(head -c 1M /dev/zero | tr '\0' '\245') ||
	fail "card-2 was written without a row"
log "ok"
