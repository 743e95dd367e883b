#!/bin/bash
# `sync` killed with SIGKILL in the middle of a catch-up (batches of 500
# rows, each committed with the position) and started again: nothing is
# missing and nothing is held twice; a batch cut short left no row of its
# own (its transaction never committed), the next run copies it again.

. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/postgres.sh"

[[ -x $BUILD_DIR/bmap-station && -x $BUILD_DIR/tests/test_sync ]] || skip "not built"
need_postgres
start_postgres

DB=$TEST_TMP/line-1.db
"$BUILD_DIR/tests/test_sync" --write "$DB" line-1 3000 0 || fail "cannot write the journal"
for round in 1 2 3; do
	start_sync "k$round" "$DB" line-1
	pid=${SYNC_PID[k$round]}
	before=$(pq "SELECT count(*) FROM bmap_jobs" 2>/dev/null || echo 0)
	# Kill as soon as one more batch committed: the next one is under way.
	deadline=$((SECONDS + 60))
	while n=$(pq "SELECT count(*) FROM bmap_jobs" 2>/dev/null || echo 0); ((n <= before)); do
		((SECONDS < deadline)) || fail "round $round: no batch committed within 60 s"
		sleep 0.05
	done
	busy=$(pq "SELECT count(*) FROM pg_stat_activity WHERE application_name =
		'bmap-station-sync' AND xact_start IS NOT NULL")
	kill -KILL "$pid"
	wait "$pid" 2>/dev/null
	n=$(pq "SELECT count(*) FROM bmap_jobs")
	log "round $round: killed with $n of 3000 jobs copied (a transaction open: $busy)"
	((n < 3000)) || break
	[[ $(pq "SELECT last_job FROM bmap_sync WHERE station = 'line-1'") == "$n" ]] ||
		fail "the position is not the last job copied after a kill"
done
"$BUILD_DIR/bmap-station" sync --db "$DB" --pg "$PG_CONNINFO" --station line-1 --once \
	2>"$TEST_TMP/once.log" || { cat "$TEST_TMP/once.log" >&2; fail "sync --once failed"; }
expect_central "line-1=$DB"
log "PASS"
