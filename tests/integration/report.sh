#!/bin/bash
# bmap-station report / history from the command line: option parsing, exit
# codes (0 ok, 1 failure, 2 usage), filters, --summary, several --db, and
# CSV/JSON read back by python3's csv and json modules with hostile serials.
#
# The journal is written by the unit-test binary (test_journal
# --write-fixture) through the journal's own C API, so the schema is not
# repeated here; its rows are listed in write_fixture() in
# tests/unit/test_journal.c. No daemon, no devices.

. "$TESTS_DIR/lib/common.sh"

STATION=$BUILD_DIR/bmap-station
FIXTURE=$BUILD_DIR/tests/test_journal
[[ -x $STATION ]] || skip "bmap-station not built"
[[ -x $FIXTURE ]] || skip "tests/test_journal not built"
need_cmd python3
# The system python starts fastest (a pyenv shim takes a second each time).
PY=$(command -v /usr/bin/python3 || command -v python3)

HOSTILE=$'x,"q"\n$(touch PWNED)`id`'
DB1=$TEST_TMP/line-1.db
DB2=$TEST_TMP/line-2.db
"$FIXTURE" --write-fixture "$DB1" || fail "cannot write the fixture journal"
"$FIXTURE" --write-fixture "$DB2" line-2 || fail "cannot write the second journal"
cd "$TEST_TMP" || fail "cd"

# expect_rc RC ARGS...: bmap-station ARGS exits with RC; output in $OUT/$ERR.
expect_rc() {
	local want=$1 rc
	shift
	"$STATION" "$@" >"$TEST_TMP/out" 2>"$TEST_TMP/err"
	rc=$?
	OUT=$(<"$TEST_TMP/out")
	ERR=$(<"$TEST_TMP/err")
	[[ $rc -eq $want ]] ||
		fail "bmap-station $* exited $rc, not $want (stderr: $ERR)"
}

# csv_col COL: the column COL of the CSV in $TEST_TMP/out, one per line, as
# python's csv module reads it (newlines inside a value shown as \n).
csv_col() {
	"$PY" - "$1" "$TEST_TMP/out" <<'PY'
import csv, sys
with open(sys.argv[2], newline='') as f:
    rows = list(csv.DictReader(f, strict=True))
for r in rows:
    print(r[sys.argv[1]].replace('\n', '\\n'))
PY
}

json_col() {
	"$PY" - "$1" "$TEST_TMP/out" <<'PY'
import json, sys
with open(sys.argv[2]) as f:
    doc = json.load(f)
assert isinstance(doc, list)
for o in doc:
    v = o[sys.argv[1]]
    print('null' if v is None else str(v).replace('\n', '\\n'))
PY
}

check_eq() { [[ $1 == "$2" ]] || fail "$3: got '$1', want '$2'"; }

# --- usage errors: 2 -------------------------------------------------------
expect_rc 2 report --db "$DB1" --outcome nope
[[ $ERR == *"unknown outcome 'nope'"* ]] || fail "bad --outcome not named: $ERR"
expect_rc 2 report --db "$DB1" --since 2026-13-01
expect_rc 2 report --db "$DB1" --until 2026-11-26T25:00
expect_rc 2 report --db "$DB1" --since 2026-11-26+01:00
expect_rc 2 report --db "$DB1" --since 2026-11-27 --until 2026-11-26
expect_rc 2 report --db "$DB1" --no-such-option
expect_rc 2 report --db "$DB1" --format xml
expect_rc 2 report --db "$DB1" --config /dev/null
expect_rc 2 report --db "$DB1" extra
expect_rc 2 history --db "$DB1"
expect_rc 2 history A1 B2 --db "$DB1"
expect_rc 2 history A1 --db "$DB1" --summary
expect_rc 2 check --since today
expect_rc 2 run --db "$DB1"

# --- failures: 1 -----------------------------------------------------------
expect_rc 1 report --db "$TEST_TMP/missing.db"
[[ $ERR == *missing.db* ]] || fail "missing journal not named: $ERR"
expect_rc 1 report --db "$DB1" --db "$TEST_TMP/missing2.db"
[[ $ERR == *missing2.db* ]] || fail "missing second journal not named: $ERR"
: >"$TEST_TMP/empty.db"
expect_rc 1 history A1 --db "$TEST_TMP/empty.db"

# --- report and filters ----------------------------------------------------
expect_rc 0 report --db "$DB1"
[[ $OUT == JOB* && $OUT != *STATION* ]] || fail "one journal's table changed: $OUT"
expect_rc 0 report --db "$DB1" --format csv
check_eq "$(csv_col job | tr '\n' ' ')" "6 5 4 3 2 1 " "report order"
check_eq "$(csv_col serial | sed -n 5p)" "${HOSTILE//$'\n'/\\n}" "hostile serial (CSV)"
check_eq "$(csv_col station | sort -u)" "line-1" "station column (CSV)"
expect_rc 0 report --db "$DB1" --format json
check_eq "$(json_col serial | sed -n 5p)" "${HOSTILE//$'\n'/\\n}" "hostile serial (JSON)"
check_eq "$(json_col error | sed -n 1p)" 'why, "this"' "error (JSON)"
[[ ! -e PWNED && ! -e $TEST_TMP/PWNED ]] || fail "a serial ran a command"

expect_rc 0 report --db "$DB1" --format csv --since 2026-11-26 --until 2026-11-26
check_eq "$(csv_col job | tr '\n' ' ')" "6 5 4 3 " "--since/--until a day"
expect_rc 0 report --db "$DB1" --format csv --since 2026-11-26T06:00Z --until 2026-11-26T07:00:00
check_eq "$(csv_col job | tr '\n' ' ')" "4 " "--since/--until date-times"
expect_rc 0 report --db "$DB1" --format csv --profile pi --slot slot-a --outcome success
check_eq "$(csv_col job | tr '\n' ' ')" "5 1 " "--profile --slot --outcome"
expect_rc 0 report --db "$DB1" --format csv --serial "$HOSTILE"
check_eq "$(csv_col job | tr '\n' ' ')" "2 " "--serial (hostile)"
expect_rc 0 report --db "$DB1" --format csv --serial a1
check_eq "$(csv_col job)" "" "--serial is exact"
expect_rc 0 report --db "$DB1" --format json --since today --outcome running
check_eq "$OUT" "[]" "empty JSON report"

# --- history ---------------------------------------------------------------
expect_rc 0 history A1 --db "$DB1" --format csv
check_eq "$(csv_col job | tr '\n' ' ')" "1 3 5 " "history oldest first"
expect_rc 0 history --db "$DB1" --format json -- "$HOSTILE"
check_eq "$(json_col job)" "2" "history of a hostile serial"
expect_rc 0 history A1 --db "$DB1" --outcome success
[[ $(wc -l <<<"$OUT") -eq 3 ]] || fail "history table: $OUT"

# --- summary ---------------------------------------------------------------
expect_rc 0 report --db "$DB1" --summary --format csv
check_eq "$(csv_col day | tr '\n' ' ')" "2026-11-25 2026-11-26 2026-11-26 " "summary days"
check_eq "$(csv_col profile | tr '\n' ' ')" "pi other pi " "summary profiles"
check_eq "$(csv_col cards | tr '\n' ' ')" "2 1 2 " "summary cards (ignored left out)"
check_eq "$(csv_col yield_pct | tr '\n' ' ')" "100.0  50.0 " "summary yield"
check_eq "$(csv_col median_s | tr '\n' ' ')" "30.0  10.0 " "summary median"
check_eq "$(csv_col p95_s | tr '\n' ' ')" "40.0  10.0 " "summary p95"
check_eq "$(csv_col median_mbps | tr '\n' ' ')" "7.5  3.0 " "summary MB/s"
expect_rc 0 report --db "$DB1" --summary --format json --profile pi
check_eq "$(json_col verify_failed | tr '\n' ' ')" "0 1 " "summary JSON"
check_eq "$(json_col yield_pct | tr '\n' ' ')" "100.0 50.0 " "summary JSON yield"
expect_rc 0 report --db "$DB1" --summary
[[ $OUT == DAY* && $OUT == *YIELD%* ]] || fail "summary table: $OUT"

# --- several stations --------------------------------------------------------
expect_rc 0 report --db "$DB1" --db "$DB2"
[[ $OUT == "JOB  STATION"* && $OUT == *line-2* ]] || fail "no STATION column: $OUT"
expect_rc 0 report --db "$DB1" --db "$DB2" --format csv
[[ $(csv_col job | wc -l) -eq 12 ]] || fail "not every job of both journals"
check_eq "$(csv_col station | sed -n '1p;2p' | sort | tr '\n' ' ')" "line-1 line-2 " \
	"both stations' newest first"
expect_rc 0 history A1 --db "$DB1" --db "$DB2" --format json
check_eq "$(json_col station | tr '\n' ' ')" "line-1 line-2 line-1 line-2 line-1 line-2 " \
	"history across stations, by start time"
expect_rc 0 report --db "$DB1" --db "$DB2" --summary --format csv
check_eq "$(csv_col cards | tr '\n' ' ')" "4 2 4 " "summary across stations"

log "ok"
