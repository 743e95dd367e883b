/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The dashboard's static files (/static/NAME), embedded in the program so
 * that the pages need nothing from outside: style.css (every page's one
 * stylesheet) and live.js (the live page's polling of /api/live).
 *
 * live.js builds nothing from HTML strings: every value is set with
 * textContent or as a property, so a hostile serial stays text even if the
 * server's escaping were missed (and the CSP forbids inline script anyway).
 */
#include <string.h>

#include "serve-internal.h"

static const char style_css[] =
	":root { --bg: #f4f5f7; --fg: #1d2329; --muted: #5d6873; --tile: #fff;\n"
	"  --pass: #1e7d32; --pass-bg: #d9f2dd; --fail: #b3261e; --fail-bg: #fbdad7;\n"
	"  --busy: #0b5cad; --line: #d4d8dd; }\n"
	"* { box-sizing: border-box; }\n"
	"body { margin: 0; font: 16px/1.4 system-ui, sans-serif; background: var(--bg);\n"
	"  color: var(--fg); }\n"
	"nav { display: flex; gap: 1em; padding: .6em 1em; background: var(--fg); }\n"
	"nav a { color: #dfe4e8; text-decoration: none; }\n"
	"nav a.active { color: #fff; font-weight: bold; border-bottom: 2px solid #fff; }\n"
	"main { padding: 1em; }\n"
	"h1 { margin: 0 0 .2em; font-size: 1.5em; }\n"
	"header.live p { margin: .1em 0; color: var(--muted); }\n"
	"#journal-state:empty { display: none; }\n"
	"#journal-state { padding: .6em; background: #fff3cd; border: 1px solid #e0c36c; }\n"
	"#tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(15em, 1fr));\n"
	"  gap: 1em; margin-top: 1em; }\n"
	".tile { background: var(--tile); border: 2px solid var(--line); border-radius: 8px;\n"
	"  padding: .7em; overflow-wrap: anywhere; }\n"
	".tile h2 { margin: 0; font-size: 1.25em; }\n"
	".tile .state { margin: .2em 0; font-weight: bold; text-transform: uppercase;\n"
	"  color: var(--muted); }\n"
	".tile progress { width: 100%; height: 1em; }\n"
	".tile dl { display: grid; grid-template-columns: auto 1fr; gap: 0 .6em; margin: .4em 0; }\n"
	".tile dt { color: var(--muted); }\n"
	".tile dd { margin: 0; font-variant-numeric: tabular-nums; }\n"
	".tile .error { color: var(--fail); margin: .2em 0; }\n"
	".tile .error:empty, .tile .pull:empty { display: none; }\n"
	".tile .pull { font-weight: bold; font-size: 1.2em; margin: .2em 0; }\n"
	".state-writing, .state-verifying, .state-downloading { border-color: var(--busy); }\n"
	".state-writing .state, .state-verifying .state, .state-downloading .state\n"
	"  { color: var(--busy); }\n"
	".state-empty { opacity: .55; }\n"
	".pull-passed { background: var(--pass-bg); border-color: var(--pass); }\n"
	".pull-passed .state, .pull-passed .pull { color: var(--pass); }\n"
	".pull-failed { background: var(--fail-bg); border-color: var(--fail); }\n"
	".pull-failed .state, .pull-failed .pull { color: var(--fail); }\n"
	".state-refused { border-color: #a06800; }\n"
	"table { border-collapse: collapse; background: var(--tile); margin: .5em 0 1.5em; }\n"
	"th, td { border: 1px solid var(--line); padding: .25em .6em; text-align: left; }\n"
	"th { background: #e9ecef; }\n"
	"td.num { text-align: right; font-variant-numeric: tabular-nums; }\n"
	"td.outcome-success { color: var(--pass); }\n"
	"td.outcome-failed, td.outcome-verify_failed, td.outcome-timeout,\n"
	"  td.outcome-removed { color: var(--fail); }\n"
	"body.stale #tiles { opacity: .5; }\n"
	".notice { padding: .6em; background: #fff3cd; border: 1px solid #e0c36c; }\n";

static const char live_js[] =
	"'use strict';\n"
	"(function () {\n"
	"  function text(v) { return v === null || v === undefined ? '-' : String(v); }\n"
	"  function left(s) {\n"
	"    if (s === null || s === undefined) return '-';\n"
	"    var h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, x = s % 60;\n"
	"    var mm = (h ? (m < 10 ? '0' : '') : '') + m;\n"
	"    return (h ? h + ':' : '') + mm + ':' + (x < 10 ? '0' : '') + x;\n"
	"  }\n"
	"  function el(parent, tag, cls) {\n"
	"    var e = document.createElement(tag);\n"
	"    if (cls) e.className = cls;\n"
	"    parent.appendChild(e);\n"
	"    return e;\n"
	"  }\n"
	"  function make(id) {\n"
	"    var s = document.createElement('section'), dl;\n"
	"    s.id = id;\n"
	"    el(s, 'h2', 'slot');\n"
	"    el(s, 'p', 'state');\n"
	"    var bar = el(s, 'progress', 'bar');\n"
	"    bar.max = 100;\n"
	"    dl = el(s, 'dl');\n"
	"    [['serial', 'serial'], ['profile', 'profile'], ['device', 'devnode'],\n"
	"     ['done', 'percent'], ['MB/s', 'mbps'], ['left', 'left'], ['last', 'outcome']]\n"
	"      .forEach(function (p) { el(dl, 'dt').textContent = p[0]; el(dl, 'dd', p[1]); });\n"
	"    el(s, 'p', 'error');\n"
	"    el(s, 'p', 'pull');\n"
	"    return s;\n"
	"  }\n"
	"  function set(s, cls, v) { var e = s.querySelector('.' + cls); if (e) e.textContent = v; }\n"
	"  function update(t, s) {\n"
	"    s.className = t['class'];\n"
	"    set(s, 'slot', text(t.slot !== null ? t.slot : t.devnode));\n"
	"    set(s, 'state', text(t.state));\n"
	"    s.querySelector('.bar').value = t.state === 'done' ? 100 :\n"
	"      t.percent === null ? 0 : Math.min(t.percent, 100);\n"
	"    set(s, 'serial', text(t.serial));\n"
	"    set(s, 'profile', text(t.profile));\n"
	"    set(s, 'devnode', text(t.devnode));\n"
	"    set(s, 'percent', t.percent === null ? '-' : t.percent + '%');\n"
	"    set(s, 'mbps', t.mbps === null ? '-' : t.mbps.toFixed(1));\n"
	"    set(s, 'left', left(t.seconds_left));\n"
	"    set(s, 'outcome', text(t.last_outcome));\n"
	"    set(s, 'error', t.error === null ? '' : t.error);\n"
	"    set(s, 'pull', t.pull === null ? '' : 'pull: ' + t.pull);\n"
	"  }\n"
	"  function show(d) {\n"
	"    var box = document.getElementById('tiles'), seen = {}, i, s;\n"
	"    var js = document.getElementById('journal-state');\n"
	"    js.textContent = d.journal !== 'ok' ? text(d.message) : d.tiles.length ? '' :\n"
	"      'No card yet: the tiles appear when cards are plugged in.';\n"
	"    var td = d.today || {};\n"
	"    ['flashed', 'passed', 'failed', 'refused'].forEach(function (k) {\n"
	"      document.getElementById('today-' + k).textContent = text(td[k]);\n"
	"    });\n"
	"    document.getElementById('today-yield').textContent =\n"
	"      td.yield_pct === null || td.yield_pct === undefined ? '-' : td.yield_pct.toFixed(1) + '%';\n"
	"    document.getElementById('updated').textContent = text(d.updated);\n"
	"    for (i = 0; i < d.tiles.length; i++) {\n"
	"      var t = d.tiles[i];\n"
	"      s = document.getElementById(t.id);\n"
	"      if (!s || s.parentNode !== box) s = make(t.id);\n"
	"      update(t, s);\n"
	"      box.appendChild(s);\n"
	"      seen[t.id] = true;\n"
	"    }\n"
	"    Array.prototype.slice.call(box.children).forEach(function (c) {\n"
	"      if (!seen[c.id]) box.removeChild(c);\n"
	"    });\n"
	"    document.body.classList.remove('stale');\n"
	"  }\n"
	"  function poll() {\n"
	"    fetch('/api/live', { cache: 'no-store', credentials: 'same-origin' })\n"
	"      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })\n"
	"      .then(show)\n"
	"      .catch(function () { document.body.classList.add('stale'); })\n"
	"      .then(function () { setTimeout(poll, 400); });\n"
	"  }\n"
	"  poll();\n"
	"})();\n";

static const struct {
	const char *path, *type, *body;
	size_t len;
} files[] = {
	{ "/static/style.css", "text/css; charset=utf-8", style_css, sizeof(style_css) - 1 },
	{ "/static/live.js", "text/javascript; charset=utf-8", live_js, sizeof(live_js) - 1 },
};

int serve_static(const struct serve_ctx *ctx, const struct serve_request *req,
		 struct serve_reply *reply)
{
	(void)ctx;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (strcmp(req->path, files[i].path) != 0)
			continue;
		reply->content_type = files[i].type;
		fwrite(files[i].body, 1, files[i].len, reply->body);
		return 200;
	}
	fputs("Not Found\n", reply->body);
	reply->content_type = "text/plain; charset=utf-8";
	return 404;
}
