#!/bin/bash
# `watch` spun at 100% CPU when its standard input was at end of file
# (</dev/null, a closed pipe): poll() said "readable" at once, read() gave 0,
# again and again, without the half second between frames. Now it stops
# reading keys at end of file and goes on showing. Counted, not timed: under
# strace, watch reads the end of its standard input once, however long it
# runs (it ran into it on every turn of its loop).
#
# watch runs in a pseudo-terminal of its own tmux server (stopped by its
# socket) for 3 s, then `timeout` ends it with SIGTERM. No daemon, no
# devices: the journal is test_journal --write-fixture's.
. "$TESTS_DIR/lib/common.sh"

STATION=$BUILD_DIR/bmap-station
FIXTURE=$BUILD_DIR/tests/test_journal
[[ -x $STATION ]] || skip "bmap-station not built"
[[ -x $FIXTURE ]] || skip "tests/test_journal not built"
need_cmd tmux
need_cmd strace
need_cmd timeout

# LeakSanitizer cannot work under ptrace (it says so, which fails a
# sanitizer pass): watch's leaks are checked by station-live, not here.
[[ -n ${BMAP_SANITIZERS:-} ]] && export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0"

db=$TEST_TMP/journal.db
"$FIXTURE" --write-fixture "$db" || fail "cannot write the fixture journal"
sock=$TEST_TMP/tmux.sock
on_exit "tmux -S '$sock' kill-server 2>/dev/null"

# eof_reads NAME REDIRECTION: runs watch with its standard input from
# REDIRECTION; prints how many reads of standard input returned 0.
eof_reads() {
	local trace=$TEST_TMP/$1.trace
	tmux -S "$sock" new-session -d -s "$1" -x 120 -y 30 \
		"$2 strace -f -qq -e trace=read -o '$trace' timeout --preserve-status -s TERM 3 '$STATION' watch --db '$db'; echo \$? >'$TEST_TMP/$1.rc'" ||
		fail "tmux failed"
	for _ in $(seq 100); do
		[[ -s $TEST_TMP/$1.rc ]] && break
		sleep 0.1
	done
	[[ -s $TEST_TMP/$1.rc ]] || fail "$1: watch did not end on SIGTERM"
	[[ $(<"$TEST_TMP/$1.rc") == 0 ]] || fail "$1: watch exited $(<"$TEST_TMP/$1.rc")"
	grep -q 'write\|read(' "$trace" || fail "$1: strace saw nothing"
	grep -cE 'read\(0, "", 1\) += 0' "$trace"
}

n=$(eof_reads devnull '</dev/null')
[[ $n == 1 ]] || fail "watch </dev/null read its end of file $n times in 3 s (spinning)"
n=$(eof_reads pipe 'true |')
[[ $n == 1 ]] || fail "watch from a closed pipe read its end of file $n times in 3 s (spinning)"
log "ok"
