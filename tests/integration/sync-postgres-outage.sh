#!/bin/bash
# PostgreSQL stopped for a while in the middle of a run and started again:
# the journal's writer never waits for it (it finishes while PostgreSQL is
# down), `sync` logs the outage once (a warning) and its end once (a
# notice), status says the central copy is behind and why, and after the
# restart sync catches up: the central rows equal the journal's.

. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/postgres.sh"

[[ -x $BUILD_DIR/bmap-station && -x $BUILD_DIR/tests/test_sync ]] || skip "not built"
need_postgres
start_postgres

DB=$TEST_TMP/line-1.db
W=$BUILD_DIR/tests/test_sync
"$W" --write "$DB" line-1 20 0 || fail "cannot write the journal"
start_sync s "$DB" line-1
wait_central 30 "line-1=$DB"
"$BUILD_DIR/bmap-station" status --db "$DB" >"$TEST_TMP/status" 2>/dev/null
grep -q "central copy (sync as 'line-1'): up to date" "$TEST_TMP/status" ||
	fail "status does not say the central copy is up to date: $(<"$TEST_TMP/status")"

# Down in the middle of a writer's run; the writer finishes meanwhile.
"$W" --write "$DB" line-1 40 50 &
writer=$!
sleep 0.5
postgres_stop
wait "$writer" || fail "the journal's writer failed while PostgreSQL was down"
sleep 3 # sync tries, backs off, tries again
"$BUILD_DIR/bmap-station" status --db "$DB" >"$TEST_TMP/status" 2>/dev/null
grep -Eq "central copy \(sync as 'line-1'\): [1-9][0-9]* job\(s\), .* behind .*PostgreSQL unreachable since" \
	"$TEST_TMP/status" || fail "status does not say the copy is behind: $(<"$TEST_TMP/status")"
"$W" --write "$DB" line-1 5 0 || fail "cannot write while PostgreSQL is down"
postgres_start
# Backoff is capped at 30 s: caught up well within a minute.
wait_central 60 "line-1=$DB"
stop_sync s
n_down=$(grep -c '^<4>.*sync: central copy .*retrying' "$TEST_TMP/sync-s.log")
n_up=$(grep -c '^<5>.*sync: central copy .* reachable again' "$TEST_TMP/sync-s.log")
[[ $n_down == 1 && $n_up == 1 ]] ||
	{ cat "$TEST_TMP/sync-s.log" >&2; fail "outage logged $n_down time(s), its end $n_up time(s)"; }
"$BUILD_DIR/bmap-station" status --db "$DB" >"$TEST_TMP/status" 2>/dev/null
grep -q "central copy (sync as 'line-1'): up to date" "$TEST_TMP/status" ||
	fail "status does not say the central copy caught up: $(<"$TEST_TMP/status")"
log "PASS"
