#!/bin/bash
# A row updated after it was synced: jobs copied while running end later
# (their outcome, finished, bytes written and checksums change); the next
# sync replaces their copies (same key, no second row), by --once and while
# following the journal.

. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/postgres.sh"

[[ -x $BUILD_DIR/bmap-station && -x $BUILD_DIR/tests/test_sync ]] || skip "not built"
need_postgres
start_postgres

DB=$TEST_TMP/line-1.db
W=$BUILD_DIR/tests/test_sync
once() {
	"$BUILD_DIR/bmap-station" sync --db "$DB" --pg "$PG_CONNINFO" --station line-1 --once \
		2>"$TEST_TMP/once.log" || { cat "$TEST_TMP/once.log" >&2; fail "sync --once failed"; }
}
# 30 jobs, the last 5 left running.
"$W" --write "$DB" line-1 30 0 5 || fail "cannot write the journal"
once
expect_central "line-1=$DB"
[[ $(pq "SELECT count(*) FROM bmap_jobs WHERE outcome = 'running'") == 5 ]] ||
	fail "the central copy does not hold the 5 running jobs"
"$W" --end-running "$DB" || fail "cannot end the running jobs"
central_matches "line-1=$DB" && fail "the ended jobs match before a sync (the test sees nothing)"
once
expect_central "line-1=$DB"
[[ $(pq "SELECT count(*) FROM bmap_jobs WHERE outcome = 'interrupted'") == 5 ]] ||
	fail "the ended jobs' copies were not replaced"

# The same while following: jobs that end a few jobs after they start.
start_sync f "$DB" line-1
"$W" --write "$DB" line-1 30 40 3 || fail "cannot write the journal"
wait_central 30 "line-1=$DB"
"$W" --end-running "$DB" || fail "cannot end the running jobs"
wait_central 30 "line-1=$DB"
stop_sync f
[[ $(pq "SELECT count(*) FROM bmap_jobs WHERE outcome = 'running'") == 0 ]] ||
	fail "running copies of ended jobs remain"
log "PASS"
