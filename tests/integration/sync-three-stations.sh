#!/bin/bash
# Three stations' journals, written while their three `bmap-station sync`
# follow them at once into one PostgreSQL: the central rows end up exactly
# the union of the journals (nothing missing, nothing twice), jobs that
# ended after they were copied replaced their running copies, and a row
# reaches PostgreSQL within seconds of its commit. The journals are written
# through the journal's C API (test_sync --write), as a station writes them.

. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/postgres.sh"

[[ -x $BUILD_DIR/bmap-station && -x $BUILD_DIR/tests/test_sync ]] || skip "not built"
need_postgres
start_postgres

pairs=()
writers=()
for s in line-1 line-2 line-3; do
	db=$TEST_TMP/$s.db
	# A journal exists before sync opens it (a station creates it at start).
	"$BUILD_DIR/tests/test_sync" --write "$db" "$s" 1 0 || fail "cannot start journal $s"
	pairs+=("$s=$db")
	start_sync "$s" "$db" "$s"
done
for s in line-1 line-2 line-3; do
	"$BUILD_DIR/tests/test_sync" --write "$TEST_TMP/$s.db" "$s" 60 40 &
	writers+=($!)
done
for w in "${writers[@]}"; do
	wait "$w" || fail "a journal writer failed"
done
# Every row within a few seconds of the last commit (2 s of polling and
# backoff at most; the margin is for a loaded machine).
wait_central 30 "${pairs[@]}"
[[ $(pq "SELECT count(DISTINCT station) FROM bmap_jobs") == 3 ]] || fail "not three stations"
[[ $(pq "SELECT count(*) FROM bmap_jobs WHERE outcome = 'running'") == 0 ]] ||
	fail "running copies of ended jobs remain"
for s in line-1 line-2 line-3; do
	[[ $(pq "SELECT last_job FROM bmap_sync WHERE station = '$s'") == 61 ]] ||
		fail "station $s's position is not its last job"
	stop_sync "$s"
done

# A new row reaches the central copy while sync follows: latency measured.
start_sync again "$TEST_TMP/line-2.db" line-2
sleep 1
"$BUILD_DIR/tests/test_sync" --write "$TEST_TMP/line-2.db" line-2 1 0 || fail "writer"
t0=$(date +%s%N)
wait_central 20 "${pairs[@]}"
log "the new job was in PostgreSQL $((($(date +%s%N) - t0) / 1000000)) ms after its" \
	"commit (found by comparisons every 0.5 s)"
stop_sync again
log "PASS"
