#!/bin/bash
# The same journal synced twice: once, then again (a second --once, as after
# a lost position), and by two followers at once under the same station
# name: the central rows stay exactly the journal's, none held twice; the
# same journal under a second station name is a second station's copy.

. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/postgres.sh"

[[ -x $BUILD_DIR/bmap-station && -x $BUILD_DIR/tests/test_sync ]] || skip "not built"
need_postgres
start_postgres

DB=$TEST_TMP/line-1.db
W=$BUILD_DIR/tests/test_sync
once() {
	"$BUILD_DIR/bmap-station" sync --db "$DB" --pg "$PG_CONNINFO" --once "$@" \
		2>"$TEST_TMP/once.log" || { cat "$TEST_TMP/once.log" >&2; fail "sync --once failed"; }
}
"$W" --write "$DB" line-1 50 0 || fail "cannot write the journal"
once --station line-1
once --station line-1
expect_central "line-1=$DB"

# The position lost (a database restored without it): everything again.
pq "DELETE FROM bmap_sync" >/dev/null || fail "cannot reset the position"
once --station line-1
expect_central "line-1=$DB"

# Two followers of one journal and station at once, while it is written.
start_sync a "$DB" line-1
start_sync b "$DB" line-1
"$W" --write "$DB" line-1 40 30 || fail "cannot write the journal"
wait_central 30 "line-1=$DB"
stop_sync a
stop_sync b

once --station copy
expect_central "line-1=$DB" "copy=$DB"
log "PASS"
