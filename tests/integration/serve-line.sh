#!/bin/bash
# The line page (/line) from a real PostgreSQL into which two stations'
# journals were synced by `bmap-station sync`: one section per station
# with today's counts and yield (as `report --summary --pg` has them) and
# one row per slot with its newest job (a running one shows "running"); a
# hostile serial is escaped text; with no central database configured the
# page says so; with PostgreSQL stopped the page says it cannot be read,
# shows no password of the conninfo, and the live page is still served.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/postgres.sh"
. "$TESTS_DIR/lib/serve.sh"

FIXTURE=$BUILD_DIR/tests/test_journal
[[ -x $STATION && -x $FIXTURE ]] || skip "not built"
need_cmd curl
need_postgres
PY=$(command -v /usr/bin/python3 || command -v python3)
start_postgres

bad=$(printf '<script>alert(1)</script>"\x27\xe2\x80\xae')
badhex=$(printf '%s' "$bad" | od -An -tx1 | tr -d ' \n')
for s in line-1 line-2; do
	"$FIXTURE" --write-fixture "$TEST_TMP/$s.db" "$s" || fail "cannot write journal $s"
done
# line-1's jobs are today's; line-2's yesterday's, and it writes a card now.
sqlite3 "$TEST_TMP/line-1.db" "update jobs set started = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
	finished = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')" || fail "sqlite3"
sqlite3 "$TEST_TMP/line-2.db" "update jobs set
	started = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 day'),
	finished = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 day');
	insert into jobs (station, started, slot, serial, profile, outcome) values ('line-2',
	strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 'slot-c', CAST(X'$badhex' AS TEXT), 'pi', 'running')" ||
	fail "sqlite3"
for s in line-1 line-2; do
	"$STATION" sync --db "$TEST_TMP/$s.db" --pg "$PG_CONNINFO" --station "$s" --once \
		>"$TEST_TMP/sync-$s.log" 2>&1 || fail "sync $s: $(cat "$TEST_TMP/sync-$s.log")"
done
"$STATION" report --pg "$PG_CONNINFO" --station line-1 --summary --since today --format csv >"$TEST_TMP/summary.csv" ||
	fail "report --summary --pg failed"

# A password in the conninfo (trust ignores it) must never be shown.
pg="$PG_CONNINFO password=hunter2-secret"
serve_start s --db "$TEST_TMP/line-1.db" --pg "$pg" --listen 127.0.0.1:0 || fail "serve did not start"
url=$(serve_url s)
curl -sf "$url/line" >"$TEST_TMP/line.html" || fail "GET /line failed"
"$PY" - "$TEST_TMP/line.html" "$TEST_TMP/summary.csv" <<'PY' || fail "the line page: $(cat "$TEST_TMP/line.html")"
import csv, re, sys
h = open(sys.argv[1], "rb").read().decode()
assert "\u202e" not in h and "<script>alert" not in h, "hostile text reached the page"
sections = dict(re.findall(r'<section class="station" id="station-([^"]*)">(.*?)</section>', h, re.S))
assert sorted(sections) == ["line-1", "line-2"], sorted(sections)
def today(sec):
    return {k: re.search(r'<span class="%s">([^<]*)</span>' % k, sec).group(1)
            for k in ("flashed", "passed", "failed", "refused", "yield")}
def slots(sec):
    rows = re.findall(r'<tr class="slot outcome-([a-z_]+)"><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td>', sec)
    return {r[1]: (r[0], r[2], r[3]) for r in rows}
rows = list(csv.DictReader(open(sys.argv[2], newline="")))
passed = sum(int(r["passed"]) for r in rows)
ended = sum(int(r[k]) for r in rows for k in ("passed", "failed", "verify_failed", "removed", "timeout"))
t1 = today(sections["line-1"])
assert t1 == {"flashed": "5", "passed": str(passed), "failed": str(ended - passed),
              "refused": "1", "yield": "%.1f%%" % (100 * passed / ended)}, t1
assert passed == 3 and ended == 4, (passed, ended)
s1 = slots(sections["line-1"])
assert s1 == {"slot-a": ("success", "A1", "pi"), "slot-b": ("refused", "B2", "other")}, s1
t2 = today(sections["line-2"])
assert t2 == {"flashed": "0", "passed": "0", "failed": "0", "refused": "0", "yield": "-"}, t2
s2 = slots(sections["line-2"])
esc = "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;?"
assert s2["slot-c"] == ("running", esc, "pi"), s2
assert s2["slot-a"] == ("success", "A1", "pi") and s2["slot-b"][0] == "refused", s2
assert 'id="line-state"' not in h
assert "Central copy up to job 6," in sections["line-1"], sections["line-1"]
assert "Central copy up to job 7," in sections["line-2"], sections["line-2"]
PY
curl -s -o /dev/null -D - "$url/line" | tr -d '\r' |
	grep -q "^Content-Security-Policy: default-src 'none';" || fail "/line without the CSP"

# PostgreSQL stopped: the page says so, the live page goes on.
postgres_stop
curl -sf "$url/line" >"$TEST_TMP/line.html" || fail "GET /line failed with PostgreSQL down"
grep -q 'id="line-state" class="notice">The central database cannot be read' "$TEST_TMP/line.html" ||
	fail "the page does not say PostgreSQL is down: $(cat "$TEST_TMP/line.html")"
curl -sf -o /dev/null --max-time 10 "$url/api/live" || fail "the live page is not served"
curl -sf "$url/line" >"$TEST_TMP/line2.html" || fail "GET /line failed again"
grep -q 'cannot be read' "$TEST_TMP/line2.html" || fail "the second /line does not say so"
serve_stop s
grep -q "hunter2" "$TEST_TMP/line.html" "$TEST_TMP/line2.html" "$SERVE_LOG_s" &&
	fail "the conninfo's password was shown"
grep -q "line page: .*host=" "$SERVE_LOG_s" || fail "the outage is not logged: $(cat "$SERVE_LOG_s")"

# No central database at all.
serve_start n --db "$TEST_TMP/line-1.db" --listen 127.0.0.1:0 || fail "serve did not start"
curl -sf "$(serve_url n)/line" | grep -q 'id="line-state" class="notice">No central database' ||
	fail "the page does not say there is no central database"
log "ok"
