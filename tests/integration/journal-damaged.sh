#!/bin/bash
# A corrupt or truncated journal went unnoticed: with a page overwritten
# (one the reports do not read), `report`, `history` and `status` exited 0
# and `run` started; a journal truncated to 0 bytes was silently made anew
# (job numbers started again at 1); `report --db FIFO` hung in open().
# Now every command checks the file when it opens it:
#  - damaged (PRAGMA quick_check): report, history, status and run exit 1
#    naming the file and the way out, and the file is not changed
#  - truncated to 0 bytes: run refuses (the file stays empty), reports too
#  - missing: reports refuse, only run creates a journal
#  - a FIFO or a folder: refused at once, not waited on
# The journals are written by test_journal --write-fixture. No devices: run
# fails on its journal before it talks to udev.
. "$TESTS_DIR/lib/common.sh"

STATION=$BUILD_DIR/bmap-station
FIXTURE=$BUILD_DIR/tests/test_journal
[[ -x $STATION ]] || skip "bmap-station not built"
[[ -x $FIXTURE ]] || skip "tests/test_journal not built"
need_cmd python3
need_cmd timeout
PY=$(command -v /usr/bin/python3 || command -v python3)

db=$TEST_TMP/journal.db
"$FIXTURE" --write-fixture "$db" || fail "cannot write the fixture journal"
touch "$TEST_TMP/disk.img"
# Should a station start all the same, it would touch no disk: no disk has
# its tag, no serial its pattern (and timeout stops it).
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "damaged"; database = "$db"; cache_dir = "$TEST_TMP/cache";
  require_tag = "no-such-tag-$$"; };
profiles = ( { name = "p"; image = "disk.img"; match = { serial = "no-such-card-$$"; }; } );
CONF

# expect_refused RC WORDS ARGS...: bmap-station ARGS exits RC within 20 s,
# and its stderr holds WORDS and the journal's name.
expect_refused() {
	local want=$1 words=$2 rc
	shift 2
	timeout 20 "$STATION" "$@" >"$TEST_TMP/out" 2>"$TEST_TMP/err"
	rc=$?
	[[ $rc != 124 ]] || fail "bmap-station $* hung (killed after 20 s)"
	[[ $rc == "$want" ]] || fail "bmap-station $* exited $rc, not $want: $(cat "$TEST_TMP/err")"
	grep -qF -- "$words" "$TEST_TMP/err" || fail "bmap-station $*: no '$words' in: $(cat "$TEST_TMP/err")"
}

# A page no report reads: the hooks table's root.
"$PY" - "$db" <<'PY' || fail "cannot damage the journal"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
page = db.execute("SELECT rootpage FROM sqlite_schema WHERE name = 'hooks'").fetchone()[0]
size = db.execute("PRAGMA page_size").fetchone()[0]
db.close()
with open(sys.argv[1], "r+b") as f:
    f.seek((page - 1) * size)
    f.write(b"\x5a" * 512)
PY
sum=$(sha256sum <"$db")
way_out="restore it from a backup or move it away"
expect_refused 1 "$way_out" report --db "$db"
grep -qF "$db" "$TEST_TMP/err" || fail "report does not name the journal: $(cat "$TEST_TMP/err")"
expect_refused 1 "$way_out" report --db "$db" --summary
expect_refused 1 "$way_out" history A1 --db "$db"
expect_refused 1 "$way_out" status --db "$db"
expect_refused 1 "$way_out" run --config "$TEST_TMP/station.conf"
grep -qF "$db" "$TEST_TMP/err" || fail "run does not name the journal: $(cat "$TEST_TMP/err")"
[[ $(sha256sum <"$db") == "$sum" ]] || fail "the damaged journal was changed"

# Truncated to 0 bytes (its -wal and -shm files, which the station keeps,
# still there): no new journal in its place.
rm -f "$db" "$db-wal" "$db-shm"
"$FIXTURE" --write-fixture "$db" || fail "cannot write the fixture journal"
[[ -e $db-wal ]] || fail "the journal keeps no -wal file"
: >"$db"
expect_refused 1 "empty" run --config "$TEST_TMP/station.conf"
[[ -e $db && ! -s $db ]] || fail "run made a new journal where one was truncated"
expect_refused 1 "restore it from a backup" report --db "$db"

# Missing: a reader never creates one.
rm -f "$db" "$db-wal" "$db-shm" "$db.lock"
for cmd in "report --db $db" "history A1 --db $db" "status --db $db"; do
	# shellcheck disable=SC2086
	expect_refused 1 "$db" $cmd
done
[[ ! -e $db ]] || fail "a reader created the journal"

# A FIFO (no writer) and a folder: refused at once.
mkfifo "$TEST_TMP/fifo.db"
expect_refused 1 "FIFO" report --db "$TEST_TMP/fifo.db"
expect_refused 1 "FIFO" status --db "$TEST_TMP/fifo.db"
mkdir "$TEST_TMP/folder.db"
expect_refused 1 "folder" report --db "$TEST_TMP/folder.db"
log "ok"
