#!/bin/bash
# The live page in a real browser (headless Chromium, tests/lib/browser.py)
# while a real station flashes real loop cards, one of them throttled so
# that its job takes a few seconds:
#  - the configured slots' tiles are there, and the throttled card's
#    progress bar and percentage advance while the page stays loaded (a
#    marker set on window survives, one navigation, one document fetched);
#  - hostile serials (`<script>window.__pwned=1</script>`, quotes closing an
#    attribute and an <img onerror>, a U+202E bidi override), given to the
#    cards by udev, show as text in the tiles, server-rendered and updated by
#    live.js alike: nothing runs (window.__pwned stays undefined), no element
#    comes from them, no CSP violation and no exception happen (injected
#    markup would have tried inline script and been refused), the override
#    does not reach the page;
#  - the tiles end with the cards' outcomes (pull: passed);
#  - a screenshot of the live page during the flashing is kept in
#    $BUILD_DIR/artifacts/serve-live.png (the README's picture is a copy).
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
. "$TESTS_DIR/lib/throttle.sh"
. "$TESTS_DIR/lib/serve.sh"
. "$TESTS_DIR/lib/browser.sh"
. "$TESTS_DIR/lib/postgres.sh"
need_station_env
need_browser
need_loops 2
throttle_init
ensure_udevd

ARTIFACTS=${BUILD_DIR:-$TEST_TMP}/artifacts
mkdir -p "$ARTIFACTS" || fail "cannot create $ARTIFACTS"

# Cards get their serial and port (ID_PATH, so each is in a configured slot)
# from a file next to the backing file: udev's IMPORT carries quotes, '<',
# '/' and the bidi override unchanged (tests/lib/hostile.py), ENV{}= would not.
mkdir -p "$CARD_DIR"
on_exit "rm -rf '$CARD_DIR'"
rule=/run/udev/rules.d/61-bmap-station-browser-$$.rules
cat >"$rule" <<RULE
SUBSYSTEM=="block", KERNEL=="loop*", ENV{DEVTYPE}=="disk", ATTR{loop/backing_file}=="$CARD_DIR/*.img", IMPORT{program}="/bin/cat \$attr{loop/backing_file}.props", ENV{ID_BUS}="loop", ENV{ID_VENDOR}="TestVendor", ENV{ID_MODEL}="LoopCard", TAG+="bmap-station"
RULE
on_exit "rm -f '$rule'; udevadm control --reload 2>/dev/null"
udevadm control --reload

serial_a='<script>window.__pwned=1</script>'
serial_b=$(printf '"\x27><img src=x onerror=window.__pwned=2>\xe2\x80\xaertl')
# card_props NAME SERIAL ID_PATH: in double quotes, which udev takes off (a
# value that starts with a quote and does not end with it is dropped).
card_props() {
	printf 'ID_SERIAL="%s"\nID_SERIAL_SHORT="%s"\nID_PATH=%s\n' "$2" "$2" "$3" >"$CARD_DIR/$1.img.props"
}
card_props a "$serial_a" "platform-browser-test-port-a"
card_props b "$serial_b" "platform-browser-test-port-b"

img=$TEST_TMP/disk.img
mk_image_bmap "$img" "size=8M data=0:6M"
db=$TEST_TMP/journal.db
conf=$TEST_TMP/station.conf
cat >"$conf" <<CONF
station = { name = "bench-1"; database = "$db"; max_workers = 2; max_device_size = "1G";
            cache_dir = "$TEST_TMP/cache"; };
slots = ( { name = "A"; path = "platform-browser-test-port-a"; },
          { name = "B"; path = "platform-browser-test-port-b"; } );
profiles = ( { name = "demo"; image = "$img"; removable_only = false; } );
CONF
start_station "$conf" throttled
station_ready "$db"
# The line page needs a PostgreSQL: without one that part is skipped.
pg=()
if [[ -n $PG_BIN && -x $PG_BIN/initdb && -x $PG_BIN/pg_ctl ]] && command -v psql >/dev/null &&
	command -v runuser >/dev/null && id -u "$PG_USER" >/dev/null 2>&1; then
	start_postgres
	pg=(--pg "$PG_CONNINFO")
else
	log "no PostgreSQL here (Debian's postgresql): the line page is not checked"
fi
serve_start s --config "$conf" "${pg[@]}" --listen 127.0.0.1:0 || fail "serve did not start"
url=$(serve_url s)

# A: at full speed, flashed before the page is opened (its tile comes
# rendered by the server). B: inserted once the page shows, at 1 MiB/s for
# writes, so its 6 MiB take about 6 s (its tile changes through live.js).
head -c 16M /dev/zero | tr '\0' '\245' >"$CARD_DIR/a.img"
head -c 16M /dev/zero | tr '\0' '\245' >"$CARD_DIR/b.img"
attach_card_at_speed "$CARD_DIR/a.img" 0 0
wait_for "$db" "select outcome from jobs where id_path='platform-browser-test-port-a'" success 30 ||
	fail "card A was not flashed"

browser_script "$url" "$serial_a" "$serial_b" "$ARTIFACTS/serve-live.png" "$TEST_TMP/page-open" \
	>"$TEST_TMP/browser.out" 2>&1 <<'PY' &
import json, sys
from browser import Browser

url, serial_a, serial_b, shot, opened = sys.argv[1:6]
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"

def check(ok, what):
    if not ok:
        print("serve-browser: FAIL:", what, file=sys.stderr)
        sys.exit(1)

def tile(slot):
    return p.evaluate(f"""(() => {{
        const s = document.getElementById('slot-{slot}');
        if (!s) return null;
        const t = c => (s.querySelector('.' + c) || {{}}).textContent;
        return {{cls: s.className, state: t('state'), serial: t('serial'), percent: t('percent'),
                 bar: s.querySelector('.bar').value, pull: t('pull'), text: s.textContent}};
    }})()""")

with Browser(width=1024, height=640, timeout=20) as b:
    p = b.page
    status = p.navigate(url + "/")
    check(status == 200, f"GET / answered {status}")
    p.evaluate("window.__marker = 'loaded-once'")
    p.wait_for("document.getElementById('slot-A') && document.getElementById('slot-B')")
    check(tile("B")["state"] == "empty", f"slot B before its card: {tile('B')}")
    open(opened, "w").close()  # the test inserts card B now

    # B's tile fills and its progress advances while the page stays loaded.
    p.wait_for("(() => { const v = document.querySelector('#slot-B .bar').value;"
               " return v > 0 && v < 80; })()", timeout=30)
    first = tile("B")
    p.wait_for(f"document.querySelector('#slot-B .bar').value >= {first['bar']} + 5", timeout=20)
    second = tile("B")
    print("B first:", json.dumps(first), "\nB then:", json.dumps(second))
    check(first["state"] in ("writing", "verifying"), f"B's state: {first}")
    # The text follows the bar (a card already done shows "-" and a full bar).
    check(second["bar"] > first["bar"] and first["percent"] == f"{first['bar']}%"
          and second["percent"] in (f"{second['bar']}%", "-"),
          f"the progress did not grow: {first['percent']} then {second['percent']}")
    p.screenshot(shot)
    check(p.evaluate("window.__marker") == "loaded-once", "the page was reloaded (the marker is gone)")
    docs = [r for r in p.responses if r["type"] == "Document"]
    check(p.navigations == 1 and len(docs) == 1, f"{p.navigations} navigations, documents {docs}")
    polls = [r for r in p.responses if r["url"].endswith("/api/live")]
    check(len(polls) >= 2, f"live.js fetched /api/live {len(polls)} times")

    # The hostile serials: text, in the server's HTML and after live.js.
    a = tile("A")
    check(a["serial"] == serial_a, f"A's serial shows as {a['serial']!r}, not {serial_a!r}")
    shown_b = "".join("?" if c in BIDI else c for c in serial_b)
    p.wait_for(f"document.querySelector('#slot-B .serial').textContent === {json.dumps(shown_b)}")
    check(not any(c in BIDI for c in p.evaluate("document.body.textContent")),
          "a bidi override reached the page's text")
    check(p.evaluate("typeof window.__pwned") == "undefined", "a hostile serial ran script")
    check(p.evaluate("document.querySelectorAll('img, [onerror]').length") == 0,
          "a hostile serial made an element")
    check(p.evaluate("document.scripts.length") == 1, "scripts: "
          + json.dumps(p.evaluate("[...document.scripts].map(s => s.outerHTML)")))
    raw = p.evaluate("fetch('/', {cache: 'no-store'}).then(r => r.text())")
    check(serial_a not in raw and "<img" not in raw and "\u202e" not in raw,
          "the server's HTML holds the hostile markup")
    check("window.__pwned=1" in raw, "the server's HTML does not show A's serial")

    # The end: B's job passes, the tile says so.
    p.wait_for("document.getElementById('slot-B').classList.contains('pull-passed')", timeout=30)
    check(tile("B")["pull"] == "pull: passed", f"B at the end: {tile('B')}")
    check(tile("A")["pull"] == "pull: passed", f"A at the end: {tile('A')}")
    b.pump(0.5)
    check(not p.violations, f"CSP violations: {p.violations}")
    check(not p.exceptions, f"exceptions: {p.exceptions}")
    check(p.evaluate("typeof window.__pwned") == "undefined", "a hostile serial ran script")
    print("ok:", len(polls), "polls")
PY
page=$!
on_exit "kill $page 2>/dev/null"
for ((i = 0; i < 300; i++)); do
	[[ -e $TEST_TMP/page-open ]] && break
	kill -0 "$page" 2>/dev/null || break
	sleep 0.1
done
[[ -e $TEST_TMP/page-open ]] || { cat "$TEST_TMP/browser.out" >&2; fail "the live page did not open"; }
attach_card_at_speed "$CARD_DIR/b.img" 1M 64M
wait "$page" || { cat "$TEST_TMP/browser.out" >&2; fail "the live page in Chromium (above)"; }
cat "$TEST_TMP/browser.out" >&2
size=$(png "$ARTIFACTS/serve-live.png") || fail "the screenshot is not a valid PNG"
[[ $size == "1024 640" ]] || fail "the screenshot is $size, not 1024 640"

# The jobs are over. The reports page, filtered through its form as a
# person would (slot B, success): its CSV link gives, byte for byte, what
# `report --format csv` prints with the same filters; the hostile serial
# is text in the table. The line page, from PostgreSQL once `sync` copied
# the journal there: the slots' jobs with their serials as text.
wait_for "$db" "select count(*) from jobs where outcome='success'" 2 10 || fail "two jobs did not pass"
if ((${#pg[@]})); then
	"$BMAP_STATION" sync --config "$conf" "${pg[@]}" --once >"$TEST_TMP/sync.log" 2>&1 ||
		fail "sync --once failed: $(cat "$TEST_TMP/sync.log")"
fi
browser_script "$url" "$serial_a" "$serial_b" "$TEST_TMP/page.csv" "${#pg[@]}" \
	"$ARTIFACTS/serve-line.png" >"$TEST_TMP/browser2.out" 2>&1 <<'PY' ||
import json, sys
from browser import Browser

url, serial_a, serial_b, csv_out, have_pg, shot = sys.argv[1:7]
shown_b = "".join("?" if c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069" else c
                  for c in serial_b)

def check(ok, what):
    if not ok:
        print("serve-browser: FAIL:", what, file=sys.stderr)
        sys.exit(1)

def cells(selector):
    return p.evaluate(f"[...document.querySelectorAll({json.dumps(selector)})].map(e => e.textContent)")

def inert(page):
    check(p.evaluate("typeof window.__pwned") == "undefined", f"{page}: a hostile serial ran script")
    check(p.evaluate("document.querySelectorAll('img, [onerror]').length") == 0,
          f"{page}: a hostile serial made an element")
    check("\u202e" not in p.evaluate("document.body.textContent"), f"{page}: a bidi override shows")
    b.pump(0.3)
    check(not p.violations and not p.exceptions,
          f"{page}: violations {p.violations}, exceptions {p.exceptions}")

with Browser(width=1024, height=640, timeout=20) as b:
    p = b.page
    check(p.navigate(url + "/reports") == 200, "GET /reports")
    serials = cells("table.jobs td")
    check(serial_a in serials and shown_b in serials, f"the table's cells: {serials}")
    inert("/reports")
    status = p.expect_navigation("""(() => {
        const f = document.querySelector('form.filters');
        f.elements['slot'].value = 'B';
        f.elements['outcome'].value = 'success';
        f.submit(); })()""")
    check(status == 200, f"the filtered report answered {status}")
    serials = cells("table.jobs td")
    check(shown_b in serials and serial_a not in serials, f"the filtered table: {serials}")
    inert("/reports filtered")
    href = p.evaluate("[...document.querySelectorAll('p.downloads a')]"
                      ".find(a => a.textContent === 'CSV').href")
    check(href and "format=csv" in href and "slot=B" in href, f"the CSV link: {href}")
    data = p.evaluate(f"fetch({json.dumps(href)}).then(r => r.arrayBuffer())"
                      ".then(x => Array.from(new Uint8Array(x)))")
    with open(csv_out, "wb") as f:
        f.write(bytes(data))
    print("CSV link:", href, len(data), "bytes")

    if have_pg != "0":
        check(p.navigate(url + "/line") == 200, "GET /line")
        p.wait_for("document.querySelector('#station-bench-1 table.slots')")
        rows = cells("#station-bench-1 tr.slot")
        check(len(rows) == 2 and any(serial_a in r for r in rows) and any(shown_b in r for r in rows),
              f"the line page's slots: {rows}")
        inert("/line")
        p.screenshot(shot)
        print("line page:", rows)
PY
	{ cat "$TEST_TMP/browser2.out" >&2; fail "the reports or line page in Chromium (above)"; }
cat "$TEST_TMP/browser2.out" >&2
"$BMAP_STATION" report --db "$db" --slot B --outcome success --format csv >"$TEST_TMP/cli.csv" ||
	fail "report --format csv failed"
[[ $(wc -l <"$TEST_TMP/cli.csv") -eq 2 ]] || fail "report --slot B: $(cat "$TEST_TMP/cli.csv")"
cmp "$TEST_TMP/page.csv" "$TEST_TMP/cli.csv" ||
	fail "the page's CSV download differs from report --format csv: $(diff "$TEST_TMP/page.csv" "$TEST_TMP/cli.csv")"
if ((${#pg[@]})); then
	size=$(png "$ARTIFACTS/serve-line.png") || fail "the line page's screenshot is not a valid PNG"
	[[ $size == "1024 640" ]] || fail "the line page's screenshot is $size, not 1024 640"
fi
log "PASS: tiles advanced live, hostile serials stayed text, the CSV download is report's; screenshots in $ARTIFACTS"
