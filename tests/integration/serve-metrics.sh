#!/bin/bash
# The dashboard's /metrics read by a parser nobody here wrote (Debian's
# python3-prometheus-client), its counters checked against `report
# --summary` and `report --format json` of the same journal, and the
# reports' CSV/JSON downloads byte for byte what `report --format csv|json`
# prints with the same filters.
#
# Through HTTP: `bmap-station serve --db` on 127.0.0.1, asked with curl.
# The journal is written through the journal's own C API (test_sync
# --write, test_journal --write-fixture). No daemon, no devices.

. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/serve.sh"

S=$BUILD_DIR/bmap-station
[[ -x $S && -x $BUILD_DIR/tests/test_sync && -x $BUILD_DIR/tests/test_journal ]] ||
	skip "not built"
need_cmd curl
PY=$(command -v /usr/bin/python3 || command -v python3) || skip "needs python3"
"$PY" -c 'import prometheus_client.parser' 2>/dev/null ||
	skip "needs Debian's python3-prometheus-client"

DB=$TEST_TMP/station.db
# 30 jobs of two profiles (success, verify_failed, 2 left running, hooks,
# forgotten serials), then the report fixture's six (a hostile serial,
# refused and ignored jobs, another profile).
"$BUILD_DIR/tests/test_sync" --write "$DB" st-1 30 0 2 || fail "cannot write the journal"
"$BUILD_DIR/tests/test_journal" --write-fixture "$DB" st-1 || fail "cannot add the fixture"
# sync copied up to job 20: 16 jobs behind.
printf 'station=st-1\nupdated=2026-11-26T05:00:00.250Z\npid=1\nstate=up\nlast_job=20\nlast_hook=0\nlast_forgotten=0\n' \
	>"$DB.sync"

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

serve_start m --db "$DB" --listen 127.0.0.1:0 || fail "serve did not start"
URL=$(serve_url m)

page /metrics
[[ $(<"$TEST_TMP/page.err") == '200 text/plain; version=0.0.4; charset=utf-8' ]] ||
	fail "/metrics' content type: $(<"$TEST_TMP/page.err")"
"$S" report --db "$DB" --summary --format json >"$TEST_TMP/summary.json" || fail "report --summary"
"$S" report --db "$DB" --format json >"$TEST_TMP/report.json" || fail "report --format json"

"$PY" - "$TEST_TMP/page" "$TEST_TMP/summary.json" "$TEST_TMP/report.json" "$DB" <<'PY' ||
import collections, json, os, sqlite3, sys
from prometheus_client.parser import text_string_to_metric_families

text = open(sys.argv[1], encoding='utf-8').read()
summary = json.load(open(sys.argv[2]))
jobs = json.load(open(sys.argv[3]))
db = sys.argv[4]

fams = {f.name: f for f in text_string_to_metric_families(text)}
def fail(msg):
    sys.exit('serve-metrics: ' + msg)

want_types = {
    'bmap_station_jobs': 'counter',
    'bmap_station_written_bytes': 'counter',
    'bmap_station_job_duration_seconds': 'histogram',
    'bmap_station_job_throughput_bytes_per_second': 'histogram',
    'bmap_station_cards': 'gauge',
    'bmap_station_journal_up': 'gauge',
    'bmap_station_journal_schema_version': 'gauge',
    'bmap_station_journal_size_bytes': 'gauge',
    'bmap_station_journal_last_job_timestamp_seconds': 'gauge',
    'bmap_station_sync_up': 'gauge',
    'bmap_station_sync_lag_rows': 'gauge',
    'bmap_station_sync_lag_seconds': 'gauge',
    'bmap_station_sync_last_success_timestamp_seconds': 'gauge',
}
for name, t in want_types.items():
    if name not in fams:
        fail('no family %s (have %s)' % (name, sorted(fams)))
    if fams[name].type != t:
        fail('%s is a %s, not a %s' % (name, fams[name].type, t))
    if not fams[name].documentation:
        fail('%s has no HELP' % name)
# Every line is a comment or a sample of a family with a TYPE.
for line in text.splitlines():
    if line and not line.startswith('#') and not line.startswith('bmap_station_'):
        fail('a line outside the namespace: %r' % line)

def samples(fam, suffix=''):
    return [s for s in fams[fam].samples if s.name == fam + suffix]

# Jobs per profile and outcome: the report's rows (running ones left out).
counted = collections.Counter((j['profile'] or '', j['outcome']) for j in jobs
                              if j['outcome'] != 'running')
got = {(s.labels['profile'], s.labels['outcome']): s.value
       for s in samples('bmap_station_jobs', '_total')}
if got != {k: float(v) for k, v in counted.items()}:
    fail('jobs_total %s != the report %s' % (got, dict(counted)))

# ... and report --summary's per-day counts, summed per profile.
per = collections.defaultdict(collections.Counter)
for row in summary:
    for k in ('passed', 'failed', 'verify_failed', 'removed', 'timeout', 'interrupted',
              'refused', 'cards'):
        per[row['profile'] or ''][k] += row[k]
running = collections.Counter(j['profile'] or '' for j in jobs if j['outcome'] == 'running')
for prof, c in per.items():
    m = lambda o: got.get((prof, o), 0)
    if c['passed'] != m('success'):
        fail('%s: summary passed %d, metrics %d' % (prof, c['passed'], m('success')))
    for o in ('failed', 'verify_failed', 'removed', 'timeout', 'interrupted', 'refused'):
        if c[o] != m(o):
            fail('%s: summary %s %d, metrics %d' % (prof, o, c[o], m(o)))
    ended = sum(v for (p, o), v in got.items() if p == prof and o != 'ignored')
    if c['cards'] != ended + running[prof]:
        fail('%s: summary cards %d, metrics %d + %d running' % (prof, c['cards'], ended,
                                                                 running[prof]))
if not per or sum(got.values()) < 30:
    fail('too few jobs counted: %s' % got)

# Bytes written per profile.
want_bytes = collections.Counter()
for j in jobs:
    if j['outcome'] != 'running':
        want_bytes[j['profile'] or ''] += j['bytes_written'] or 0
gb = {s.labels['profile']: s.value for s in samples('bmap_station_written_bytes', '_total')}
if gb != {k: float(v) for k, v in want_bytes.items()}:
    fail('written_bytes_total %s != %s' % (gb, dict(want_bytes)))

# Histograms: the successful jobs with a duration, per profile.
for fam, col in (('bmap_station_job_duration_seconds', 'duration'),
                 ('bmap_station_job_throughput_bytes_per_second', 'throughput')):
    vals = collections.defaultdict(list)
    for j in jobs:
        if j['outcome'] == 'success' and j['duration'] is not None and j[col] is not None:
            vals[j['profile'] or ''].append(j[col])
    counts = {s.labels['profile']: s.value for s in samples(fam, '_count')}
    sums = {s.labels['profile']: s.value for s in samples(fam, '_sum')}
    if counts != {p: float(len(v)) for p, v in vals.items()}:
        fail('%s_count %s != %s' % (fam, counts, {p: len(v) for p, v in vals.items()}))
    for p, v in vals.items():
        if abs(sums[p] - sum(v)) > 1e-6 * max(1, sum(v)):
            fail('%s_sum{%s} %s != %s' % (fam, p, sums[p], sum(v)))
        buckets = sorted(((float(s.labels['le']), s.value) for s in samples(fam, '_bucket')
                          if s.labels['profile'] == p))
        prev = 0
        for le, n in buckets:
            if n < prev or n != sum(1 for x in v if x <= le):
                fail('%s{%s} bucket le=%s holds %s' % (fam, p, le, n))
            prev = n
        if buckets[-1][0] != float('inf') or buckets[-1][1] != len(v):
            fail('%s{%s}: no +Inf bucket of every job' % (fam, p))

# The journal's health.
one = lambda fam: fams[fam].samples[0].value
con = sqlite3.connect(db)
if one('bmap_station_journal_up') != 1:
    fail('journal_up is not 1')
if one('bmap_station_journal_schema_version') != con.execute('PRAGMA user_version').fetchone()[0]:
    fail('schema_version differs from PRAGMA user_version')
size = os.path.getsize(db) + (os.path.getsize(db + '-wal') if os.path.exists(db + '-wal') else 0)
if one('bmap_station_journal_size_bytes') != size:
    fail('journal_size_bytes %s != %s' % (one('bmap_station_journal_size_bytes'), size))
# Sync: 36 jobs, 20 copied.
lag = {s.labels['table']: s.value for s in fams['bmap_station_sync_lag_rows'].samples}
if lag['jobs'] != con.execute('SELECT count(*) FROM jobs WHERE job > 20').fetchone()[0]:
    fail('sync_lag_rows{jobs} %s' % lag)
if lag['hooks'] != con.execute('SELECT count(*) FROM hooks').fetchone()[0] or lag['hooks'] < 1:
    fail('sync_lag_rows{hooks} %s' % lag)
if one('bmap_station_sync_last_success_timestamp_seconds') != 1795669200.25:
    fail('sync_last_success_timestamp_seconds')
if one('bmap_station_sync_up') != 1 or one('bmap_station_sync_lag_seconds') <= 0:
    fail('sync_up / sync_lag_seconds')
print('serve-metrics: %d families parsed, counters agree with report and --summary'
      % len(fams), file=sys.stderr)
PY
	fail "the metrics disagree with the journal"

# --- the downloads: byte for byte `report --format csv|json` ---------------
HOSTILE=$'x,"q"\n$(touch PWNED)`id`'
# same "PAGE_ARGS" -- REPORT_ARGS...
same() {
	local args=()
	while [[ $1 != -- ]]; do args+=("$1"); shift; done
	shift
	page "${args[@]}"
	"$S" "$@" --db "$DB" >"$TEST_TMP/cli" 2>"$TEST_TMP/cli.err" ||
		fail "bmap-station $* failed: $(<"$TEST_TMP/cli.err")"
	[[ -s $TEST_TMP/cli ]] || fail "bmap-station $* printed nothing"
	cmp "$TEST_TMP/page" "$TEST_TMP/cli" >&2 ||
		fail "${args[*]} differs from bmap-station $*"
	log "${args[*]}: same as bmap-station $* ($(wc -c <"$TEST_TMP/cli") bytes)"
}
for f in csv json; do
	same /reports format=$f -- report --format $f
	same /reports format=$f profile=pi -- report --format $f --profile pi
	same /reports format=$f outcome=verify_failed slot=slot-a -- report --format $f \
		--outcome verify_failed --slot slot-a
	same /reports format=$f since=2026-11-26 until=2026-11-26 -- report --format $f \
		--since 2026-11-26 --until 2026-11-26
	same /reports format=$f since=today -- report --format $f --since today
	same /reports format=$f "serial=$HOSTILE" -- report --format $f --serial "$HOSTILE"
	same /history format=$f serial=A1 -- history A1 --format $f
done
page /reports format=csv
[[ $(<"$TEST_TMP/page.err") == '200 text/csv; charset=utf-8' ]] ||
	fail "the CSV download is not text/csv: $(<"$TEST_TMP/page.err")"
log "PASS"
