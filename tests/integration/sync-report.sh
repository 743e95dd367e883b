#!/bin/bash
# report, history and report --summary for the whole line from the central
# copy (--pg CONNINFO, --central with sync.conninfo, --station NAME): the
# same rows, filters and formats as reading the stations' journals together
# (--db A --db B --db C), and one station's as reading its journal alone.
# The one difference allowed: sync made the journals' invalid UTF-8 valid
# (U+FFFD), where a table of the journal shows '?' and its CSV the bytes:
# both sides are compared with every invalid sequence and U+FFFD as '?'.

. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/postgres.sh"

S=$BUILD_DIR/bmap-station
[[ -x $S && -x $BUILD_DIR/tests/test_sync ]] || skip "not built"
need_postgres
start_postgres

dbs=()
for s in l1 l2 l3; do
	"$BUILD_DIR/tests/test_sync" --write "$TEST_TMP/$s.db" "$s" 25 0 2 || fail "writer"
	"$S" sync --db "$TEST_TMP/$s.db" --pg "$PG_CONNINFO" --station "$s" --once 2>/dev/null ||
		fail "sync --once $s failed"
	dbs+=(--db "$TEST_TMP/$s.db")
done

PY=$(command -v /usr/bin/python3 || command -v python3) || skip "needs python3"
unify() {
	"$PY" -c 'import sys; sys.stdout.write(sys.stdin.buffer.read().decode("utf-8",
		"replace").replace("\ufffd", "?"))'
}

# same WHAT ARGS...: `report ARGS` of the journals and of the central copy.
same() {
	local what=$1
	shift
	"$S" "$@" "${dbs[@]}" 2>"$TEST_TMP/err" | unify >"$TEST_TMP/journals"
	[[ ${PIPESTATUS[0]} -eq 0 ]] || fail "$what from the journals failed: $(<"$TEST_TMP/err")"
	"$S" "$@" --pg "$PG_CONNINFO" 2>"$TEST_TMP/err" | unify >"$TEST_TMP/central"
	[[ ${PIPESTATUS[0]} -eq 0 ]] || fail "$what --pg failed: $(<"$TEST_TMP/err")"
	[[ -s $TEST_TMP/central ]] || fail "$what --pg printed nothing"
	diff "$TEST_TMP/journals" "$TEST_TMP/central" >&2 ||
		fail "$what: the central copy's answer differs from the journals'"
	log "$what: same ($(wc -l <"$TEST_TMP/central") lines)"
}
for f in table csv json; do
	same "report -f $f" report -f "$f"
	same "report --summary -f $f" report --summary -f "$f"
done
same "report --outcome verify_failed" report --outcome verify_failed -f csv
same "report --profile pi --since today" report --profile pi --since today
same "report --slot s2 --until 2099-01-01" report --slot s2 --until 2099-01-01
same "history" history l2-card-4 -f csv

# One station: as its journal alone.
"$S" report --db "$TEST_TMP/l2.db" -f csv | unify >"$TEST_TMP/journals"
"$S" report --pg "$PG_CONNINFO" --station l2 -f csv | unify >"$TEST_TMP/central" ||
	fail "--station l2"
diff "$TEST_TMP/journals" "$TEST_TMP/central" >&2 || fail "--station l2 differs from l2's journal"
"$S" report --pg "$PG_CONNINFO" --station nosuch -f csv >"$TEST_TMP/central" ||
	fail "--station nosuch failed"
[[ $(wc -l <"$TEST_TMP/central") == 1 ]] || fail "--station nosuch is not an empty report"

# --central takes the configuration's sync.conninfo.
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "l1"; database = "$TEST_TMP/l1.db"; };
sync = { conninfo = "$PG_CONNINFO"; };
profiles = ({ name = "p"; image = "/srv/none.img"; });
CONF
"$S" report --central --config "$TEST_TMP/station.conf" -f csv >"$TEST_TMP/a" || fail "--central"
"$S" report --pg "$PG_CONNINFO" -f csv >"$TEST_TMP/b"
cmp -s "$TEST_TMP/a" "$TEST_TMP/b" || fail "--central differs from --pg with the same conninfo"
# --db and --pg do not mix.
"$S" report --db "$TEST_TMP/l1.db" --pg "$PG_CONNINFO" >/dev/null 2>&1
[[ $? -eq 2 ]] || fail "--db with --pg is not a usage error"
log "PASS"
