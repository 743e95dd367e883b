#!/bin/bash
# The browser harness itself (tests/lib/browser.py), against a page a real
# nginx serves with a strict Content-Security-Policy: the page's external
# script computes a value from a per-run number and paints the page, which
# only a real browser does; an inline script the CSP forbids must not run and
# the harness must report the violation; console messages and exceptions
# are collected; the screenshot is a valid PNG of the viewport's size showing
# the colour the script painted; a reload is seen; a --wait-for that never
# comes true fails; and Chromium (its whole process group) is gone after
# the harness ends, also when it is stopped by Ctrl-C or SIGTERM or killed.
source "$TESTS_DIR/lib/common.sh"
source "$TESTS_DIR/lib/webserver.sh"
source "$TESTS_DIR/lib/browser.sh"

need_nginx
need_browser

www=$TEST_TMP/www
mkdir -p "$www"
nonce=$((RANDOM * 32768 + RANDOM + 1000))
# What app.js computes: the digits of 7*n+3 reversed (a browser must run it).
expect=$(rev <<<"$((nonce * 7 + 3))")

cat >"$www/index.html" <<'HTML'
<!doctype html>
<html><head><meta charset="utf-8"><title>harness</title>
<link rel="stylesheet" href="/style.css"></head>
<body><div id="out">static</div>
<script>window.__inline = 1; document.getElementById('out').textContent = 'inline ran';</script>
<script src="/app.js"></script>
</body></html>
HTML
cat >"$www/style.css" <<'CSS'
html, body { margin: 0; height: 100%; }
#out { font: 20px sans-serif; color: #fff; padding: 4px; }
CSS
cat >"$www/app.js" <<'JS'
const n = Number(new URLSearchParams(location.search).get('n'));
const v = String(n * 7 + 3).split('').reverse().join('');
document.getElementById('out').textContent = 'js:' + v;
document.body.style.backgroundColor = 'rgb(12, 200, 34)';
console.log('app ready ' + n);
setTimeout(() => { throw new Error('harness-exception-' + n); }, 0);
JS
echo '<!doctype html><p>clean</p>' >"$www/clean.html"

csp="default-src 'none'; script-src 'self' 'report-sample'; style-src 'self'; img-src 'self'"
web_start h "$www" "
	types { text/html html; application/javascript js; text/css css; }
	add_header Content-Security-Policy \"$csp\" always;"
page=$(web_url h "index.html?n=$nonce")

# 1. The page as a browser runs it.
browser --verbose --width 640 --height 360 --report "$TEST_TMP/report.json" \
	--url "$page" \
	--wait-for "document.getElementById('out').textContent.startsWith('js:')" \
	--eval "document.getElementById('out').textContent" \
	--eval "typeof window.__inline" \
	--eval "getComputedStyle(document.body).backgroundColor" \
	--sleep 0.3 --screenshot "$TEST_TMP/shot.png" \
	>"$TEST_TMP/out" 2>"$TEST_TMP/err" || { cat "$TEST_TMP/err" >&2; fail "the harness failed on $page"; }
mapfile -t got <"$TEST_TMP/out"
[[ ${got[0]:-} == "\"js:$expect\"" ]] || fail "the external script's result: got '${got[0]:-}', expected js:$expect"
[[ ${got[1]:-} == '"undefined"' ]] || fail "the inline script the CSP forbids ran (typeof window.__inline: ${got[1]:-})"
[[ ${got[2]:-} == '"rgb(12, 200, 34)"' ]] || fail "the body's colour: ${got[2]:-}"

pid=$(sed -n 's/^browser: chromium pid \([0-9]*\),.*/\1/p' "$TEST_TMP/err")
[[ -n $pid ]] || fail "the harness did not say Chromium's pid"
kill -0 "$pid" 2>/dev/null && fail "Chromium ($pid) still runs after the harness ended"
pgrep -g "$pid" >/dev/null && fail "processes of Chromium's group $pid still run: $(pgrep -g "$pid" | tr '\n' ' ')"

# The browser fetched the script and the style sheet (nginx saw it).
grep -q '^GET /app.js 200 ' "$WEB_LOG_h" || fail "nobody fetched app.js: $(cat "$WEB_LOG_h")"
grep -q '^GET /style.css 200 ' "$WEB_LOG_h" || fail "nobody fetched style.css"

# 2. What the harness collected.
"$BROWSER_PYTHON" - "$TEST_TMP/report.json" "$nonce" "$csp" <<'PY' || fail "the harness's report is wrong (above)"
import json, sys
r = json.load(open(sys.argv[1])); nonce = sys.argv[2]; csp = sys.argv[3]
bad = []
v = r["violations"]
if not any(x.get("effective") in ("script-src-elem", "script-src") and x.get("blocked") == "inline"
           for x in v):
    bad.append(f"no violation of script-src by the inline script: {v}")
if not any("window.__inline" in (x.get("sample") or "") for x in v):
    bad.append(f"the violation's sample does not show the inline script: {v}")
if not any("Content Security Policy" in (e.get("text") or "") for e in r["log"] + r["console"]):
    bad.append(f"Chromium's own CSP message was not collected: {r['log']}")
if {"type": "log", "text": f"app ready {nonce}"} not in r["console"]:
    bad.append(f"console.log not collected: {r['console']}")
if not any(f"harness-exception-{nonce}" in e["description"] for e in r["exceptions"]):
    bad.append(f"the thrown exception not collected: {r['exceptions']}")
docs = [x for x in r["responses"] if x["type"] == "Document"]
if not docs or docs[0]["status"] != 200 or \
        {k.lower(): v for k, v in docs[0]["headers"].items()}.get("content-security-policy") != csp:
    bad.append(f"the document's response: {docs}")
if r["navigations"] != 1:
    bad.append(f"{r['navigations']} navigations, expected 1")
for b in bad:
    print("browser-harness:", b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY

# 3. The screenshot: a PNG of the viewport, painted by the script.
size=$(png "$TEST_TMP/shot.png") || fail "the screenshot is not a valid PNG"
[[ $size == "640 360" ]] || fail "the screenshot is $size, expected 640 360"
px=$(png "$TEST_TMP/shot.png" 320 300) || fail "cannot decode the screenshot"
[[ $px == "12 200 34" ]] || fail "the screenshot's pixel (320,300) is '$px', expected the page's 12 200 34"
px=$(png "$TEST_TMP/shot.png" 12 12) || fail "cannot decode the screenshot"
[[ $px != "12 200 34" ]] || fail "no text drawn at (12,12): the screenshot is one colour there"

# 4. --expect-clean: fails on that page, passes on a clean one; --wait-for
# that never comes true fails within its timeout.
browser --url "$page" --expect-clean 2>"$TEST_TMP/err" &&
	fail "--expect-clean passed on a page that threw and violated its CSP"
grep -q 'not clean' "$TEST_TMP/err" || fail "--expect-clean's reason: $(cat "$TEST_TMP/err")"
browser --timeout 2 --url "$(web_url h clean.html)" --expect-clean --eval '"clean"' \
	--wait-for "window.never === 1" >"$TEST_TMP/out" 2>"$TEST_TMP/err" &&
	fail "--wait-for passed for an expression that is never true"
[[ $(cat "$TEST_TMP/out") == '"clean"' ]] || fail "--expect-clean failed on a clean page: $(cat "$TEST_TMP/err")"
grep -q 'timed out after 2.0s' "$TEST_TMP/err" || fail "--wait-for's reason: $(cat "$TEST_TMP/err")"

# 5. As a module: a reload is seen (a marker on window is gone, two
# navigations), which the dashboard tests rely on to tell "updated live".
browser_script "$page" <<'PY' || fail "the module's reload check failed (above)"
import sys
from browser import Browser
with Browser(width=320, height=200) as b:
    p = b.page
    p.navigate(sys.argv[1])
    p.evaluate("window.__marker = 42")
    assert p.evaluate("window.__marker") == 42
    assert p.navigations == 1, p.navigations
    p.evaluate("location.reload()")
    p.wait_for("document.readyState === 'complete' && window.__marker === undefined")
    b.pump(0.2)
    assert p.navigations == 2, f"{p.navigations} navigations after a reload"
    assert p.wait_for("document.querySelector('#out')")  # a node is truthy
PY

# 6. Stopped from outside: SIGINT (Ctrl-C) and SIGTERM unwind and stop
# Chromium; SIGKILL leaves it to PR_SET_PDEATHSIG. (A background job starts
# with SIGINT ignored: a launcher gives Python its Ctrl-C back, then execs.)
declare -A want_rc=([INT]=130 [TERM]=143 [KILL]=137)
for sig in INT TERM KILL; do
	: >"$TEST_TMP/err"
	loads=$(grep -c '^GET /index.html' "$WEB_LOG_h")
	"$BROWSER_PYTHON" -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
os.execv(sys.executable, [sys.executable] + sys.argv[1:])' "$TESTS_DIR/lib/browser.py" \
		--verbose --url "$page" --sleep 60 >/dev/null 2>"$TEST_TMP/err" &
	hpid=$!
	on_exit "kill -KILL $hpid 2>/dev/null"
	cpid=
	for ((i = 0; i < 300; i++)); do
		cpid=$(sed -n 's/^browser: chromium pid \([0-9]*\),.*/\1/p' "$TEST_TMP/err")
		[[ -n $cpid ]] && (($(grep -c '^GET /index.html' "$WEB_LOG_h") > loads)) && break
		sleep 0.1
	done
	[[ -n $cpid ]] || fail "the harness did not start Chromium: $(cat "$TEST_TMP/err")"
	kill -0 "$cpid" || fail "Chromium ($cpid) is not running while the harness waits"
	kill -"$sig" "$hpid"
	wait "$hpid"
	rc=$?
	[[ $rc == "${want_rc[$sig]}" ]] || fail "the harness exited $rc on SIG$sig, expected ${want_rc[$sig]}"
	for ((i = 0; i < 100; i++)); do
		pgrep -g "$cpid" >/dev/null || break
		sleep 0.1
	done
	pgrep -g "$cpid" >/dev/null && ps -o pid,ppid,pgid,stat,etime,args -g "$cpid" | cut -c1-150 >&2 && cat "$TEST_TMP/err" >&2 && fail "Chromium's group $cpid still runs 10 s after SIG$sig to the harness"
	log "SIG$sig to the harness: Chromium ($cpid) and its group are gone"
done

log "PASS: the harness drove Chromium (js:$expect), saw the CSP violation, the console, the exception, the reload, and a 640x360 screenshot"
