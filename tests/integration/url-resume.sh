#!/bin/bash
# A dropped connection is resumed where it broke. An nginx on 127.0.0.1
# sends a gzip image slowly (limit_rate) and is killed (SIGKILL, by pid)
# mid-transfer, then started again on the same port a second later:
#
# - the copy goes on (a warning says it is resuming, the server's log shows
#   a "Range: bytes=N-" request answered 206), exits 0, and the result is
#   identical to a local copy; verify of the URL passes;
# - a server that ignores Range (max_ranges 0: a 200 with the whole file)
#   is read again from its start, the bytes already had dropped: identical;
# - a stalled download (the server stopped with SIGSTOP) ends at SIGTERM:
#   bmaptool exits non-zero within seconds, naming the interruption;
# - a server killed for good: after 5 tries the copy exits 1 naming the URL
#   and that it gave up, and says DEST is incomplete. The waits between the
#   tries come from BMAP_URL_RETRY_DELAYS_MS here (0.1 to 0.5 s, each named
#   in its warning), not the default 1+2+4+8+16 s: the same code path, half
#   a minute less; test_url checks the default schedule itself.

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
source "${TESTS_DIR:-$(dirname "$0")/..}/lib/webserver.sh"
need_ours
need_reference
need_nginx
need_cmd cmp

www=$TEST_TMP/www
mkdir -p "$www"
mk_sparse_image "$www/disk.img" "size=10M+4000 data=0:6M data=7M:1M data=10M-4K:8096"
"$REF" create -o "$www/disk.img.bmap" "$www/disk.img" 2>/dev/null || fail "reference create failed"
gzip -1 -c "$www/disk.img" >"$www/disk.img.gz"
"$BMAPTOOL" -q copy "$www/disk.img.gz" "$TEST_TMP/local" || fail "local copy failed"

out=$TEST_TMP/out
# copy_through_kill NAME: copies from server NAME, killed and restarted
# mid-transfer; the copy's output in $out.
copy_through_kill() {
	local name=$1 pid rc
	"$BMAPTOOL" copy "$(web_url "$name" disk.img.gz)" "$TEST_TMP/$name" >"$out" 2>&1 &
	pid=$!
	on_exit "kill $pid 2>/dev/null"
	sleep 1.5
	kill -0 "$pid" 2>/dev/null || { cat "$out" >&2; fail "$name: the copy ended before the kill"; }
	web_kill "$name"
	sleep 1
	web_restart "$name"
	wait "$pid"
	rc=$?
	((rc == 0)) || { cat "$out" >&2; fail "$name: the copy through a killed server failed ($rc)"; }
	grep -q "resuming" "$out" || { cat "$out" >&2; fail "$name: no resume was reported"; }
	cmp "$TEST_TMP/local" "$TEST_TMP/$name" || fail "$name: the resumed copy differs from a local one"
}

web_start a "$www" "limit_rate 2m;"
copy_through_kill a
# (Not the request for the rest after the first MiB: "bytes=1048576-".)
grep -v '"bytes=1048576-"' "$WEB_LOG_a" | grep -q '^GET /disk.img.gz 206 .*"bytes=[1-9][0-9]*-"' ||
	{ cat "$WEB_LOG_a" >&2; fail "no Range request from the last byte was answered 206"; }
"$BMAPTOOL" -q verify "$(web_url a disk.img.gz)" "$TEST_TMP/a" || fail "verify of the resumed copy failed"

web_start b "$www" "limit_rate 2m; max_ranges 0;"
copy_through_kill b
grep -q "ignored the range" "$out" || { cat "$out" >&2; fail "b: the server ignoring Range was not noticed"; }
grep -q '^GET /disk.img.gz 200 .*"bytes=[1-9][0-9]*-"' "$WEB_LOG_b" ||
	{ cat "$WEB_LOG_b" >&2; fail "b: the server did not ignore our Range"; }

# A stalled server: SIGTERM ends the wait.
web_start c "$www" "limit_rate 1m;"
"$BMAPTOOL" copy "$(web_url c disk.img.gz)" "$TEST_TMP/c" >"$out" 2>&1 &
pid=$!
on_exit "kill $pid 2>/dev/null"
sleep 1
kill -STOP "$WEB_PID_c"
on_exit "kill -CONT $WEB_PID_c 2>/dev/null"
sleep 1
kill -TERM "$pid"
for ((i = 0; i < 100; i++)); do
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
kill -0 "$pid" 2>/dev/null && fail "SIGTERM did not stop a stalled download within 10 s"
wait "$pid" && fail "a download stopped by SIGTERM exited 0"
kill -CONT "$WEB_PID_c"
grep -qi "interrupted" "$out" || { cat "$out" >&2; fail "the interruption is not named"; }

# A server that does not come back.
web_start d "$www" "limit_rate 2m;"
BMAP_URL_RETRY_DELAYS_MS=100,200,300,400,500 \
	"$BMAPTOOL" copy "$(web_url d disk.img.gz)" "$TEST_TMP/d" >"$out" 2>&1 &
pid=$!
on_exit "kill $pid 2>/dev/null"
sleep 1.5
web_kill d
wait "$pid" && fail "a copy from a server gone for good exited 0"
grep -q "cannot fetch image 'http://127.0.0.1:$WEB_PORT_d/disk.img.gz'.*gave up after 5 tries" "$out" ||
	{ cat "$out" >&2; fail "the copy that gave up does not name the URL and the tries"; }
grep -q "content is incomplete" "$out" || { cat "$out" >&2; fail "DEST is not called incomplete"; }
for i in 1 2 3 4 5; do
	grep -q "resuming in 0\.$i s ($i of 5)" "$out" ||
		{ cat "$out" >&2; fail "try $i of 5 did not wait the ${i}00 ms BMAP_URL_RETRY_DELAYS_MS gave"; }
done
log "PASS"
