#!/bin/bash
# The dashboard's reports of the whole line (source=line, station=NAME):
# read from a real PostgreSQL that `bmap-station sync` filled from three
# stations, the CSV/JSON downloads are byte for byte what `report --pg
# CONNINFO --format csv|json` prints with the same filters, and the HTML
# table shows every station's rows with a station column.
#
# Through HTTP: `bmap-station serve --db l1.db --pg CONNINFO` on 127.0.0.1,
# asked with curl.

. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/serve.sh"
. "$TESTS_DIR/lib/postgres.sh"

S=$BUILD_DIR/bmap-station
[[ -x $S && -x $BUILD_DIR/tests/test_sync ]] || skip "not built"
need_cmd curl
need_postgres
start_postgres

for s in l1 l2 l3; do
	"$BUILD_DIR/tests/test_sync" --write "$TEST_TMP/$s.db" "$s" 12 0 1 || fail "writer"
	"$S" sync --db "$TEST_TMP/$s.db" --pg "$PG_CONNINFO" --station "$s" --once 2>/dev/null ||
		fail "sync --once $s failed"
done

# page PATH [KEY=VALUE...]: GET PATH?KEY=VALUE... (values URL-encoded by
# curl) into $TEST_TMP/page; "STATUS CONTENT-TYPE" into $TEST_TMP/page.err.
# Fails unless 200 (page_status: any status).
page_status() {
	local path=$1 a=() kv
	shift
	for kv; do a+=(--data-urlencode "$kv"); done
	curl -sS -G -o "$TEST_TMP/page" -w '%{http_code} %{content_type}' "${a[@]}" \
		"$URL$path" >"$TEST_TMP/page.err" 2>&1 || fail "GET $path: $(<"$TEST_TMP/page.err")"
}
page() {
	page_status "$@"
	[[ $(<"$TEST_TMP/page.err") == "200 "* ]] || fail "GET $*: $(<"$TEST_TMP/page.err")"
}

serve_start l --db "$TEST_TMP/l1.db" --pg "$PG_CONNINFO" --listen 127.0.0.1:0 ||
	fail "serve did not start"
URL=$(serve_url l)

# same PAGE_ARGS... -- REPORT_ARGS...
same() {
	local args=()
	while [[ $1 != -- ]]; do args+=("$1"); shift; done
	shift
	page "${args[@]}"
	"$S" "$@" --pg "$PG_CONNINFO" >"$TEST_TMP/cli" 2>"$TEST_TMP/cli.err" ||
		fail "bmap-station $* failed: $(<"$TEST_TMP/cli.err")"
	[[ -s $TEST_TMP/cli ]] || fail "bmap-station $* printed nothing"
	cmp "$TEST_TMP/page" "$TEST_TMP/cli" >&2 || fail "${args[*]} differs from bmap-station $*"
	log "${args[*]}: same as bmap-station $* --pg ($(wc -c <"$TEST_TMP/cli") bytes)"
}
for f in csv json; do
	same /reports source=line format=$f -- report --format $f
	same /reports source=line format=$f station=l2 -- report --format $f --station l2
	same /reports source=line format=$f outcome=verify_failed since=today -- report \
		--format $f --outcome verify_failed --since today
	same /history source=line format=$f serial=l3-card-4 -- history l3-card-4 --format $f
done
# The local journal is not the line: without source=line, l1's rows only.
page /reports format=csv
grep -q '^[0-9]*,.*,l2,' "$TEST_TMP/page" && fail "the station's report holds l2's rows"

page /reports source=line per=100
for s in l1 l2 l3; do
	grep -q "<td>$s</td>" "$TEST_TMP/page" || fail "the line's table has no row of $s"
done
grep -q '<th>Station</th>' "$TEST_TMP/page" || fail "the line's table has no station column"
grep -q 'source=line' "$TEST_TMP/page" || fail "the line's links do not keep source=line"

# PostgreSQL down: a 502 page naming no password, not a report of nothing.
postgres_stop
page_status /reports source=line
[[ $(<"$TEST_TMP/page.err") == "502 "* ]] || fail "not a 502: $(<"$TEST_TMP/page.err")"
grep -q 'cannot be read' "$TEST_TMP/page" || fail "the 502 page says nothing"
log "PASS"
