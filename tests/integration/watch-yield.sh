#!/bin/bash
# `watch` and `report --summary` had two yields: watch counted refused cards
# as failed, the summary leaves refused and interrupted jobs out. One
# definition now (README: passed over the jobs that ran to an end of their
# own: success, failed, verify_failed, removed, timeout): today's yield in
# watch is the summary's, and watch shows the cards it leaves out apart.
#
# The journal is test_journal --write-fixture's (3 success, 1 verify_failed,
# 1 refused, 1 ignored), moved to today, plus an interrupted job; watch runs
# in a pseudo-terminal of its own tmux server. No daemon, no devices.
. "$TESTS_DIR/lib/common.sh"

STATION=$BUILD_DIR/bmap-station
FIXTURE=$BUILD_DIR/tests/test_journal
[[ -x $STATION ]] || skip "bmap-station not built"
[[ -x $FIXTURE ]] || skip "tests/test_journal not built"
need_cmd tmux
need_cmd sqlite3
PY=$(command -v /usr/bin/python3 || command -v python3)

db=$TEST_TMP/journal.db
"$FIXTURE" --write-fixture "$db" || fail "cannot write the fixture journal"
sqlite3 "$db" "insert into jobs (station, started, profile, outcome, error)
	values ('line-1', '2026-11-26T09:00:00.000Z', 'pi', 'interrupted', 'the station stopped');
	update jobs set started = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
	finished = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')" || fail "cannot move the jobs to today"

# The summary's yield over today's jobs, and the counts it rests on.
"$STATION" report --db "$db" --summary --since today --format csv >"$TEST_TMP/summary.csv" ||
	fail "report --summary failed"
read -r passed ended refused interrupted < <("$PY" - "$TEST_TMP/summary.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], newline='')))
s = lambda k: sum(int(r[k]) for r in rows)
ended = sum(s(k) for k in ("passed", "failed", "verify_failed", "removed", "timeout"))
print(s("passed"), ended, s("refused"), s("interrupted"))
PY
)
[[ $passed == 3 && $ended == 4 && $refused == 1 && $interrupted == 1 ]] ||
	fail "today's jobs: passed $passed, ended $ended, refused $refused, interrupted $interrupted"
want=$(awk -v p="$passed" -v e="$ended" 'BEGIN { printf "%.1f", 100 * p / e }')
"$PY" - "$TEST_TMP/summary.csv" "$want" <<'PY' || fail "report --summary's yield: $(cat "$TEST_TMP/summary.csv")"
import csv, sys
pi = [r for r in csv.DictReader(open(sys.argv[1], newline='')) if r["profile"] == "pi"]
assert pi[0]["yield_pct"] == sys.argv[2], pi
PY

sock=$TEST_TMP/tmux.sock
on_exit "tmux -S '$sock' kill-server 2>/dev/null"
tmux -S "$sock" new-session -d -x 120 -y 30 "'$STATION' watch --db '$db'; sleep 30" ||
	fail "tmux failed"
for _ in $(seq 30); do
	tmux -S "$sock" capture-pane -p -J >"$TEST_TMP/screen.txt" 2>/dev/null
	grep -q "today:" "$TEST_TMP/screen.txt" && break
	sleep 0.2
done
grep -q "today: flashed 6, *passed 3 *, *failed 1 *, yield $want%" "$TEST_TMP/screen.txt" ||
	fail "watch's yield is not report --summary's $want%: $(grep today: "$TEST_TMP/screen.txt")"
grep -q "not counted: 1 refused, 1 interrupted" "$TEST_TMP/screen.txt" ||
	fail "watch does not show what the yield leaves out: $(grep today: "$TEST_TMP/screen.txt")"
log "ok"
