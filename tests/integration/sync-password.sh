#!/bin/bash
# Passwords never appear in sync's log, its errors, its state file, status
# or check's output: a wrong password (key=value and URI forms), a right
# one, a conninfo libpq cannot parse; and a password file (PGPASSFILE)
# works without any password in the conninfo. PostgreSQL asks for the
# password (scram-sha-256) of the role the test creates.

. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/postgres.sh"

S=$BUILD_DIR/bmap-station
[[ -x $S && -x $BUILD_DIR/tests/test_sync ]] || skip "not built"
need_postgres
start_postgres

GOOD=Good-s3cr3t-4711
BAD=Wrong-s3cr3t-0815
{ pq "CREATE ROLE audit LOGIN PASSWORD '$GOOD'" && pq "CREATE DATABASE line OWNER audit"; } \
	>/dev/null || fail "cannot create the role"
sed -i "1i local all audit scram-sha-256" "$PG_DATA/pg_hba.conf"
runuser -u "$PG_USER" -- "$PG_BIN/pg_ctl" -D "$PG_DATA" reload >/dev/null || fail "reload"
sleep 1

DB=$TEST_TMP/line-1.db
"$BUILD_DIR/tests/test_sync" --write "$DB" line-1 5 0 || fail "writer"
no_secret() { # FILE WHAT
	! grep -aq -e "$GOOD" -e "$BAD" -e 's3cr3t' "$1" ||
		{ cat "$1" >&2; fail "$2 shows the password"; }
}

KV="host=$PG_SOCK port=$PG_PORT user=audit dbname=line"
URI="postgresql://audit:$BAD@/line?host=$PG_SOCK&port=$PG_PORT"
for conn in "$KV password=$BAD" "$URI"; do
	"$S" sync --db "$DB" --pg "$conn" --station line-1 --once >"$TEST_TMP/out" 2>&1 &&
		fail "sync --once with a wrong password succeeded"
	grep -q "password authentication failed" "$TEST_TMP/out" ||
		{ cat "$TEST_TMP/out" >&2; fail "sync does not say the password was refused"; }
	no_secret "$TEST_TMP/out" "sync --once"
	"$S" report --pg "$conn" >"$TEST_TMP/out" 2>&1 && fail "report --pg with a wrong password"
	no_secret "$TEST_TMP/out" "report --pg"
done

# Following: the outage is logged, written to JOURNAL.sync and shown by
# status, all without the password.
"$S" sync --db "$DB" --pg "$KV password=$BAD" --station line-1 >"$TEST_TMP/follow.log" 2>&1 &
pid=$!
on_exit "kill $pid 2>/dev/null"
for _ in $(seq 100); do grep -q '^state=down' "$DB.sync" 2>/dev/null && break; sleep 0.1; done
kill "$pid"
wait "$pid"
grep -q '^state=down' "$DB.sync" || fail "JOURNAL.sync does not say the copy is down"
grep -q 'password authentication failed' "$TEST_TMP/follow.log" || fail "no outage logged"
no_secret "$TEST_TMP/follow.log" "sync's log"
no_secret "$DB.sync" "JOURNAL.sync"
"$S" status --db "$DB" >"$TEST_TMP/out" 2>&1
grep -q "PostgreSQL unreachable since" "$TEST_TMP/out" || fail "status does not show the outage"
no_secret "$TEST_TMP/out" "status"

# The right password copies; status and check show the conninfo without it.
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "line-1"; database = "$DB"; };
sync = { conninfo = "$KV password=$GOOD"; };
profiles = ({ name = "p"; image = "/srv/none.img"; });
CONF
"$S" sync --config "$TEST_TMP/station.conf" --once >"$TEST_TMP/out" 2>&1 ||
	{ cat "$TEST_TMP/out" >&2; fail "sync with the right password failed"; }
no_secret "$TEST_TMP/out" "sync"
[[ $(psql -X -At -d "$KV password=$GOOD" -c "SELECT count(*) FROM bmap_jobs") == 5 ]] ||
	fail "the jobs were not copied"
"$S" check --config "$TEST_TMP/station.conf" >"$TEST_TMP/out" 2>&1
grep -q "sync: as station 'line-1' into .*user=audit" "$TEST_TMP/out" ||
	{ cat "$TEST_TMP/out" >&2; fail "check does not show sync's conninfo"; }
no_secret "$TEST_TMP/out" "check"

# A conninfo libpq cannot parse: check warns, without the password.
sed -i "s|^sync = .*|sync = { conninfo = \"$KV password=$GOOD $GOOD\"; };|" "$TEST_TMP/station.conf"
"$S" check --config "$TEST_TMP/station.conf" >"$TEST_TMP/out" 2>&1
grep -q "warning: sync.conninfo: not a libpq connection string" "$TEST_TMP/out" ||
	{ cat "$TEST_TMP/out" >&2; fail "check does not warn about the conninfo"; }
no_secret "$TEST_TMP/out" "check of a bad conninfo"
"$S" sync --config "$TEST_TMP/station.conf" --once >"$TEST_TMP/out" 2>&1 &&
	fail "sync accepted a conninfo libpq cannot parse"
no_secret "$TEST_TMP/out" "sync with a bad conninfo"

# A password file instead (the way the README recommends).
printf '*:*:*:audit:%s\n' "$GOOD" >"$TEST_TMP/pgpass"
chmod 600 "$TEST_TMP/pgpass"
"$BUILD_DIR/tests/test_sync" --write "$DB" line-1 3 0 || fail "writer"
PGPASSFILE=$TEST_TMP/pgpass "$S" sync --db "$DB" --pg "$KV" --station line-1 --once \
	>"$TEST_TMP/out" 2>&1 || { cat "$TEST_TMP/out" >&2; fail "sync with PGPASSFILE failed"; }
[[ $(psql -X -At -d "$KV password=$GOOD" -c "SELECT count(*) FROM bmap_jobs") == 8 ]] ||
	fail "the jobs were not copied with PGPASSFILE"
log "PASS"
