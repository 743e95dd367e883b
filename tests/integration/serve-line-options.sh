#!/bin/bash
# Regression: the line page's session settings were connection options
# given before dbname, so a conninfo with an options= of its own silently
# replaced them: no statement_timeout, no read-only transactions. Now they
# are SET once connected, whatever the conninfo holds.
#
# A real PostgreSQL whose bmap_sync is a view over a function that sleeps
# 8 s and then writes a row: with the conninfo's own options=, /line must
# give up after the 5 s statement_timeout (said on the page), and the row
# must never be written (read-only: the INSERT would fail anyway).
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/postgres.sh"
. "$TESTS_DIR/lib/serve.sh"

[[ -x $STATION ]] || skip "not built"
need_cmd curl
need_postgres
start_postgres

pq "CREATE TABLE writes (n int);
CREATE TABLE bmap_jobs (job bigint, station text, slot text, devnode text, serial text,
	outcome text, profile text, started text, finished text);
CREATE FUNCTION trap() RETURNS TABLE (station text, last_job bigint, updated timestamptz)
	LANGUAGE plpgsql VOLATILE AS \$\$
BEGIN
	PERFORM pg_sleep(8);
	INSERT INTO writes VALUES (1);
	RETURN QUERY SELECT 'st'::text, 1::bigint, now();
END \$\$;
CREATE VIEW bmap_sync AS SELECT * FROM trap();" || fail "cannot create the trap"

serve_start s --db "$TEST_TMP/none.db" --listen 127.0.0.1:0 \
	--pg "$PG_CONNINFO options='-c search_path=public'" || fail "serve did not start"
URL=$(serve_url s)
t=$(curl -sS -m 30 -o "$TEST_TMP/line.html" -w '%{time_total}' "$URL/line") ||
	fail "GET /line failed"
log "/line answered after ${t}s"
n=$(pq "SELECT count(*) FROM writes")
[[ $n == 0 ]] || fail "the line page wrote into the central database ($n rows): not read-only"
grep -q "statement timeout" "$TEST_TMP/line.html" ||
	fail "the line page did not stop at its statement_timeout: $(grep -o 'line-state.*' "$TEST_TMP/line.html")"
awk -v t="$t" 'BEGIN { exit !(t < 8) }' || fail "/line took ${t}s: no statement_timeout"
# Plain read-only, without the sleep: the INSERT itself is refused.
pq "CREATE OR REPLACE FUNCTION trap() RETURNS TABLE (station text, last_job bigint,
	updated timestamptz) LANGUAGE plpgsql VOLATILE AS \$\$
BEGIN
	INSERT INTO writes VALUES (1);
	RETURN QUERY SELECT 'st'::text, 1::bigint, now();
END \$\$;" || fail "cannot replace the trap"
sleep 11 # the page's back-off after the failure
curl -sS -m 30 -o "$TEST_TMP/line2.html" "$URL/line" || fail "GET /line failed"
n=$(pq "SELECT count(*) FROM writes")
[[ $n == 0 ]] || fail "the line page wrote into the central database ($n rows): not read-only"
grep -q "read-only transaction" "$TEST_TMP/line2.html" ||
	fail "the write was not refused as read-only: $(grep -o 'line-state.*' "$TEST_TMP/line2.html")"
log "ok: statement_timeout and read-only hold with the conninfo's own options="
