#!/bin/bash
# Regression: an expensive request froze the whole server. The pages ran
# on MHD's one polling thread, so a line report against a PostgreSQL that
# accepts TCP and never answers held /api/live for the 10 s of libpq's
# connect_timeout, and CSV downloads of a big journal queued up behind
# each other in front of it.
#
# Here, while a line report against such a socket (a python listener of
# this test's, stopped by pid) and four CSV downloads of a journal of
# 100k jobs run, /api/live is asked ten times: each answer must come
# within 2 s (they take milliseconds; the bound is a wide margin, the
# line report alone takes 3 s). The downloads must still be whole.

. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/serve.sh"

S=$BUILD_DIR/bmap-station
[[ -x $S && -x $BUILD_DIR/tests/test_sync ]] || skip "not built"
need_cmd curl
need_cmd python3
need_cmd sqlite3

# A journal of 100k jobs: 50 written through the journal's API, doubled
# in SQL (every column but the key).
DB=$TEST_TMP/big.db
"$BUILD_DIR/tests/test_sync" --write "$DB" st1 50 0 || fail "writer"
cols=$(sqlite3 "$DB" "SELECT group_concat(name, ',') FROM pragma_table_info('jobs')
	WHERE name <> 'job'") || fail "sqlite3 $DB"
for ((i = 0; i < 11; i++)); do
	sqlite3 "$DB" "INSERT INTO jobs ($cols) SELECT $cols FROM jobs" || fail "doubling"
done
jobs=$(sqlite3 "$DB" "SELECT count(*) FROM jobs")
log "journal of $jobs jobs"

# A "PostgreSQL" that accepts and never says a word.
cat >"$TEST_TMP/mute.py" <<'PY'
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(16)
print(s.getsockname()[1], flush=True)
held = []
while True:
    c, _ = s.accept()
    held.append(c)
PY
python3 "$TEST_TMP/mute.py" >"$TEST_TMP/mute.port" &
MUTE=$!
on_exit "kill $MUTE 2>/dev/null"
for ((i = 0; i < 50; i++)); do [[ -s $TEST_TMP/mute.port ]] && break; sleep 0.1; done
PORT=$(<"$TEST_TMP/mute.port")
[[ -n $PORT ]] || fail "the mute listener did not start"

serve_start s --db "$DB" --pg "host=127.0.0.1 port=$PORT dbname=line user=x" \
	--listen 127.0.0.1:0 || fail "serve did not start"
URL=$(serve_url s)
curl -sS -m 10 -o /dev/null "$URL/api/live" || fail "/api/live before anything"

# A line report against the mute socket gives up after connect_timeout
# (3 s); right after, the line is not tried again: answered at once.
t=$(curl -sS -m 8 -o "$TEST_TMP/line1.html" -w '%{time_total}' "$URL/reports?source=line") ||
	fail "a line report against a mute PostgreSQL took over 8 s"
log "line report against the mute socket: ${t}s"
t=$(curl -sS -m 2 -o "$TEST_TMP/line2.html" -w '%{time_total}' "$URL/reports?source=line") ||
	fail "the second line report (backing off) took over 2 s"
log "line report while backing off: ${t}s"
sleep 10 # the back-off over: the next one waits on the socket again

# The expensive ones, in the background.
start=$(date +%s.%N)
curl -sS -m 60 --interface 127.0.0.20 -o "$TEST_TMP/line.html" -w "%{http_code}" \
	"$URL/reports?source=line" \
	>"$TEST_TMP/line.code" 2>&1 &
LINE=$!
BG=($LINE)
for ((i = 0; i < 4; i++)); do
	curl -sS -m 120 --interface 127.0.0.$((21 + i)) -o "$TEST_TMP/dl$i.csv" -w '%{http_code}' \
		"$URL/reports?format=csv" >"$TEST_TMP/dl$i.code" 2>&1 &
	BG+=($!)
done
on_exit "kill ${BG[*]} 2>/dev/null"
sleep 0.3

for ((i = 0; i < 10; i++)); do
	t=$(curl -sS -m 2 -o "$TEST_TMP/live.json" -w '%{time_total}' "$URL/api/live") ||
		fail "/api/live #$i got no answer within 2 s while the expensive requests ran"
	python3 -m json.tool "$TEST_TMP/live.json" >/dev/null || fail "/api/live #$i: not JSON"
	log "/api/live #$i: ${t}s"
	sleep 0.2
done
wait "${BG[@]}"
end=$(date +%s.%N)
log "the expensive requests took $(python3 -c "print(round($end - $start, 1))") s"

code=$(<"$TEST_TMP/line.code")
[[ $code == 502 ]] || fail "/reports?source=line against the mute socket: $code, not 502"
grep -q "connecting" "$TEST_TMP/line.html" || fail "the line report does not say why"
"$S" report --db "$DB" --format csv >"$TEST_TMP/cli.csv" || fail "report --format csv"
for ((i = 0; i < 4; i++)); do
	code=$(<"$TEST_TMP/dl$i.code")
	if [[ $code == 503 ]]; then
		log "download $i: 503 (every worker busy)"
		continue
	fi
	[[ $code == 200 ]] || fail "download $i: $code"
	cmp -s "$TEST_TMP/dl$i.csv" "$TEST_TMP/cli.csv" || fail "download $i differs from report"
done
log "downloads whole ($(wc -c <"$TEST_TMP/cli.csv") bytes each)"

# Beyond the two workers and four waiting: 503 with Retry-After at once,
# never a queue without bound; the admitted ones still whole.
BG=()
for ((i = 0; i < 10; i++)); do
	# From addresses of their own: 6 connections per address.
	curl -sS -m 120 --interface 127.0.0.$((50 + i)) -o "$TEST_TMP/many$i.csv" \
		-D "$TEST_TMP/many$i.h" -w "%{http_code}" \
		"$URL/reports?format=csv" >"$TEST_TMP/many$i.code" 2>&1 &
	BG+=($!)
done
wait "${BG[@]}"
n503=0
for ((i = 0; i < 10; i++)); do
	code=$(<"$TEST_TMP/many$i.code")
	case $code in
	200) cmp -s "$TEST_TMP/many$i.csv" "$TEST_TMP/cli.csv" || fail "download $i of 10 differs" ;;
	503) n503=$((n503 + 1))
		tr -d '\r' <"$TEST_TMP/many$i.h" | grep -qx "Retry-After: 5" ||
			fail "a 503 without Retry-After" ;;
	*) fail "download $i of 10: $code" ;;
	esac
done
((n503 >= 4)) || fail "10 downloads at once: only $n503 refused (at most 6 admitted)"
log "10 downloads at once: $((10 - n503)) served whole, $n503 refused with 503"

exit 0
