/*
 * Unit tests for the dashboard's report, chart and metrics pages, called
 * without HTTP: a journal with known jobs, a fake request (its arguments
 * from a key/value array) and a memstream reply. Downloads must equal
 * journal_report_filtered()'s bytes, pages must hold the right rows and
 * keep the filters, hostile values must come out escaped, every SVG must
 * parse as XML without scripts, and /metrics must count what the journal
 * holds. (tests/integration/serve-metrics.sh asks the same pages through
 * HTTP.)
 */
#include <errno.h>
#include <inttypes.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

#include "journal.h"
#include "report.h"
#include "serve-pages.h"
#include "serve.h"

/* A serial (and profile, error) meant to break out of HTML, SVG and CSV:
 * markup, both quotes, an ampersand and U+202E (a bidi override). */
static const char hostile[] = "<script>alert(1)</script>\"'&x\xe2\x80\xae" "evil";

struct fixture {
	char *dir, *path;
	struct journal *j;
	sqlite3 *db;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char *err = NULL;

	assert_non_null(f);
	f->dir = tu_mkdtemp();
	f->path = tu_path(f->dir, "journal.db");
	assert_int_equal(journal_open(f->path, false, &f->j, &err), 0);
	assert_int_equal(sqlite3_open_v2(f->path, &f->db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	sqlite3_busy_timeout(f->db, 5000);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	sqlite3_close(f->db);
	journal_close(f->j);
	tu_rmtree(f->dir);
	free(f->path);
	free(f->dir);
	free(f);
	return 0;
}

struct job {
	const char *profile, *slot, *serial;
	enum outcome o;
	const char *error;
	long ago;          /* started this many seconds ago */
	double duration;   /* < 0: NULL */
	double throughput; /* < 0: NULL */
	uint64_t bytes;
};

static int64_t add_job(struct fixture *f, const struct job *jb)
{
	struct job_start s = {
		.station = "st-1", .slot = jb->slot, .devnode = "/dev/sdx",
		.syspath = "/sys/devices/x/block/sdx", .diskseq = 7, .serial = jb->serial,
		.profile = jb->profile, .image = "/srv/a.img",
	};
	struct job_end e = { .outcome = jb->o, .error = jb->error, .bytes_written = jb->bytes };
	sqlite3_stmt *st = NULL;
	char started[40];
	time_t t = time(NULL) - jb->ago;
	struct tm tm;
	int64_t job;

	assert_int_equal(journal_job_once(f->j, &s, &e, &job), 0);
	gmtime_r(&t, &tm);
	strftime(started, sizeof(started), "%Y-%m-%dT%H:%M:%S.000Z", &tm);
	assert_int_equal(sqlite3_prepare_v2(f->db, "UPDATE jobs SET started = ?1, finished = ?1,"
					    " duration = ?2, throughput = ?3 WHERE job = ?4",
					    -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, started, -1, SQLITE_TRANSIENT);
	if (jb->duration >= 0)
		sqlite3_bind_double(st, 2, jb->duration);
	if (jb->throughput >= 0)
		sqlite3_bind_double(st, 3, jb->throughput);
	sqlite3_bind_int64(st, 4, job);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	return job;
}

/* ---- a fake request and reply ---- */

struct fake_req {
	struct serve_request req;
	const char *const *kv; /* key, value, ..., NULL */
};

static const char *fake_arg(const struct serve_request *req, const char *key)
{
	const struct fake_req *fr = (const struct fake_req *)req;

	for (size_t i = 0; fr->kv && fr->kv[i]; i += 2)
		if (strcmp(fr->kv[i], key) == 0)
			return fr->kv[i + 1];
	return NULL;
}

struct page {
	int status;
	char *body;
	size_t len;
	struct serve_reply reply;
};

static void render_ctx(const struct serve_ctx *ctx, serve_page_fn fn, const char *path,
		       const char *const *kv, struct page *p)
{
	struct fake_req fr = { { path, fake_arg, NULL }, kv };

	memset(p, 0, sizeof(*p));
	p->reply.body = open_memstream(&p->body, &p->len);
	assert_non_null(p->reply.body);
	p->status = fn(ctx, &fr.req, &p->reply);
	assert_int_equal(fclose(p->reply.body), 0);
	p->reply.body = NULL;
}

static void render(struct fixture *f, serve_page_fn fn, const char *path,
		   const char *const *kv, struct page *p)
{
	struct serve_ctx ctx = { .journal = f->j, .journal_path = f->path, .station_name = "st-1" };

	render_ctx(&ctx, fn, path, kv, p);
}

static char *report_bytes(struct journal *j, const struct report_filter *flt, bool oldest,
			  enum report_format fmt, size_t *ret_len)
{
	char *buf = NULL;
	FILE *m = open_memstream(&buf, ret_len);

	assert_non_null(m);
	assert_int_equal(journal_report_filtered(j, flt, oldest, fmt, m), 0);
	assert_int_equal(fclose(m), 0);
	return buf;
}

static void assert_same_bytes(const char *a, size_t na, const char *b, size_t nb)
{
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, na);
}

static void some_jobs(struct fixture *f)
{
	static const struct job jobs[] = {
		{ "pi", "slot-a", "A1", OUTCOME_SUCCESS, NULL, 7200, 20, 5e6, 100000000 },
		{ "pi", "slot-b", hostile, OUTCOME_SUCCESS, NULL, 3600, 40, 10e6, 400000000 },
		{ "pi", "slot-a", "A1", OUTCOME_VERIFY_FAILED, "verify: range 3 differs", 1800,
		  30, 4e6, 120000000 },
		{ "other", "slot-b", "B2", OUTCOME_REFUSED, "too small: 1 GB", 900, -1, -1, 0 },
		{ hostile, "slot-a", "C3", OUTCOME_FAILED, hostile, 600, 5, -1, 0 },
		{ "pi", "slot-b", "C3", OUTCOME_IGNORED, NULL, 300, -1, -1, 0 },
	};

	for (size_t i = 0; i < sizeof(jobs) / sizeof(jobs[0]); i++)
		add_job(f, &jobs[i]);
}

/* The downloads are byte for byte journal_report_filtered()'s. */
static void test_download_equals_report(void **state)
{
	struct fixture *f = *state;
	static const char *const fmts[] = { "csv", "json" };
	const char *const *filters[] = {
		(const char *const[]){ NULL },
		(const char *const[]){ "profile", "pi", NULL },
		(const char *const[]){ "outcome", "success", "slot", "slot-b", NULL },
		(const char *const[]){ "since", "today", "serial", "A1", NULL },
	};
	const struct report_filter want_flt[] = {
		{ 0 },
		{ .profile = "pi" },
		{ .outcome = "success", .slot = "slot-b" },
		{ .since = NULL, .serial = "A1" },
	};
	char today[JOURNAL_TIME_MAX];

	some_jobs(f);
	assert_int_equal(journal_parse_time("today", false, today), 0);
	for (size_t fi = 0; fi < 4; fi++) {
		for (size_t k = 0; k < 2; k++) {
			const char *kv[16];
			size_t n = 0, len;
			struct report_filter flt = want_flt[fi];
			struct page p;
			char *want;

			for (const char *const *a = filters[fi]; *a; a++)
				kv[n++] = *a;
			kv[n++] = "format";
			kv[n++] = fmts[k];
			kv[n] = NULL;
			if (fi == 3)
				flt.since = today;
			render(f, serve_reports_page, "/reports", kv, &p);
			assert_int_equal(p.status, 200);
			want = report_bytes(f->j, &flt, false, k ? REPORT_JSON : REPORT_CSV, &len);
			assert_true(len > 10);
			assert_same_bytes(p.body, p.len, want, len);
			assert_non_null(strstr(p.reply.content_type, k ? "json" : "text/csv"));
			assert_non_null(strstr(p.reply.disposition, "attachment"));
			free(want);
			free(p.body);
		}
	}
	/* history: the serial's jobs, oldest first, as `history SERIAL`. */
	{
		struct report_filter flt = { .serial = "A1" };
		struct page p;
		size_t len;
		char *want = report_bytes(f->j, &flt, true, REPORT_CSV, &len);

		render(f, serve_history_page, "/history",
		       (const char *const[]){ "serial", "A1", "format", "csv", NULL }, &p);
		assert_int_equal(p.status, 200);
		assert_same_bytes(p.body, p.len, want, len);
		free(want);
		free(p.body);
	}
}

/* The job numbers of an HTML report's rows, in order. */
static size_t table_jobs(const char *html, int64_t *jobs, size_t max)
{
	size_t n = 0;

	static const char row[] = "<tr><td class=\"num\">";

	for (const char *p = html; (p = strstr(p, row)) && n < max; p++)
		jobs[n++] = strtoll(p + strlen(row), NULL, 10);
	return n;
}

/* Page 2 of 3 of a filtered report holds its rows, and its links keep the filters. */
static void test_paging(void **state)
{
	struct fixture *f = *state;
	int64_t pi_jobs[32], got[64];
	size_t n_pi = 0, n;
	struct page p;
	const char *prev, *next;

	/* 25 jobs of profile "a b" (a space, to be encoded), 5 of another between them. */
	for (int i = 0; i < 30; i++) {
		struct job jb = { i % 6 == 5 ? "other" : "a b", "slot-a", "S", OUTCOME_SUCCESS,
				  NULL, 3000 - i * 10, 10, 1e6, 1000 };
		int64_t job = add_job(f, &jb);

		if (i % 6 != 5)
			pi_jobs[n_pi++] = job;
	}
	assert_int_equal(n_pi, 25);
	render(f, serve_reports_page, "/reports",
	       (const char *const[]){ "profile", "a b", "per", "10", "page", "2", NULL }, &p);
	assert_int_equal(p.status, 200);
	n = table_jobs(p.body, got, 64);
	assert_int_equal(n, 10);
	/* Newest first: page 2 is the 11th to the 20th newest. */
	for (size_t i = 0; i < 10; i++)
		assert_int_equal(got[i], pi_jobs[n_pi - 11 - i]);
	assert_non_null(strstr(p.body, "25 jobs, page 2 of 3."));
	prev = strstr(p.body, "rel=\"prev\" href=\"");
	next = strstr(p.body, "rel=\"next\" href=\"");
	assert_non_null(prev);
	assert_non_null(next);
	assert_int_equal(strncmp(prev + 17, "/reports?profile=a%20b&amp;per=10&amp;page=1\"", 45),
			 0);
	assert_int_equal(strncmp(next + 17, "/reports?profile=a%20b&amp;per=10&amp;page=3\"", 45),
			 0);
	/* The downloads keep the filters too, without the page. */
	assert_non_null(strstr(p.body, "href=\"/reports?profile=a%20b&amp;format=csv\""));
	free(p.body);

	/* The last page holds the 5 oldest; it has no next link. */
	render(f, serve_reports_page, "/reports",
	       (const char *const[]){ "profile", "a b", "per", "10", "page", "3", NULL }, &p);
	n = table_jobs(p.body, got, 64);
	assert_int_equal(n, 5);
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(got[i], pi_jobs[4 - i]);
	assert_null(strstr(p.body, "rel=\"next\""));
	free(p.body);

	/* Past the end: no rows, and "previous" goes to the last page. */
	render(f, serve_reports_page, "/reports",
	       (const char *const[]){ "profile", "a b", "per", "10", "page", "9", NULL }, &p);
	assert_int_equal(p.status, 200);
	assert_int_equal(table_jobs(p.body, got, 64), 0);
	assert_non_null(strstr(p.body, "rel=\"prev\" href=\"/reports?profile=a%20b&amp;per=10&amp;page=3\""));
	free(p.body);

	/* history pages oldest first. */
	render(f, serve_history_page, "/history",
	       (const char *const[]){ "serial", "S", "per", "7", NULL }, &p);
	n = table_jobs(p.body, got, 64);
	assert_int_equal(n, 7);
	assert_int_equal(got[0], 1);
	assert_int_equal(got[6], 7);
	assert_non_null(strstr(p.body, "rel=\"next\" href=\"/history?serial=S&amp;per=7&amp;page=2\""));
	free(p.body);
}

/* Checks that @body has no raw markup of @hostile and no U+202E. */
static void assert_escaped(const char *body)
{
	assert_null(strstr(body, "<script"));
	assert_null(strstr(body, "alert(1)</"));
	assert_null(strstr(body, "\xe2\x80\xae"));
	assert_null(strstr(body, "\"'&x"));
}

/* Fails on any script element or on* attribute in the tree under @n. */
static void assert_no_script(xmlNode *n)
{
	for (; n; n = n->next) {
		if (n->type != XML_ELEMENT_NODE)
			continue;
		assert_string_not_equal((const char *)n->name, "script");
		for (xmlAttr *a = n->properties; a; a = a->next)
			assert_false(strncmp((const char *)a->name, "on", 2) == 0);
		assert_no_script(n->children);
	}
}

static void assert_svg(const struct page *p)
{
	xmlDoc *doc;
	xmlNode *root;

	assert_int_equal(p->status, 200);
	assert_string_equal(p->reply.content_type, "image/svg+xml");
	doc = xmlReadMemory(p->body, (int)p->len, "chart.svg", NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!doc)
		fail_msg("not XML: %s", p->body);
	root = xmlDocGetRootElement(doc);
	assert_non_null(root);
	assert_string_equal((const char *)root->name, "svg");
	assert_no_script(root);
	xmlFreeDoc(doc);
}

/* A hostile serial, profile and error come out as text in HTML and SVG. */
static void test_hostile_escaped(void **state)
{
	struct fixture *f = *state;
	static const char *const charts[] = { "/charts/yield.svg", "/charts/throughput.svg",
					      "/charts/failures.svg" };
	struct page p;

	some_jobs(f);
	render(f, serve_reports_page, "/reports", NULL, &p);
	assert_int_equal(p.status, 200);
	assert_escaped(p.body);
	/* The serial as text, and its history link percent-encoded. */
	assert_non_null(strstr(p.body, "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;x?evil"));
	assert_non_null(strstr(p.body, "/history?serial=%3Cscript%3Ealert%281%29%3C%2Fscript%3E"
				       "%22%27%26x%E2%80%AEevil\""));
	free(p.body);
	render(f, serve_history_page, "/history", (const char *const[]){ "serial", hostile, NULL },
	       &p);
	assert_int_equal(p.status, 200);
	assert_escaped(p.body);
	assert_non_null(strstr(p.body, "<h1>History of <span class=\"serial\">&lt;script&gt;"));
	free(p.body);
	/* A hostile filter value echoed in the form. */
	render(f, serve_reports_page, "/reports", (const char *const[]){ "slot", hostile, NULL },
	       &p);
	assert_int_equal(p.status, 200);
	assert_escaped(p.body);
	free(p.body);
	for (size_t i = 0; i < 3; i++) {
		render(f, serve_chart_svg, charts[i], NULL, &p);
		assert_svg(&p);
		assert_escaped(p.body);
		free(p.body);
	}
	/* The hostile profile is in the yield chart, the serial in the
	 * throughput chart, the error in the failures chart: as text. */
	render(f, serve_chart_svg, "/charts/throughput.svg", NULL, &p);
	assert_non_null(strstr(p.body, "slot-b &lt;script&gt;alert(1)&lt;/sc"));
	free(p.body);
	render(f, serve_chart_svg, "/charts/yield.svg", NULL, &p);
	assert_non_null(strstr(p.body, "&lt;script&gt;"));
	free(p.body);
	render(f, serve_chart_svg, "/charts/failures.svg", NULL, &p);
	assert_non_null(strstr(p.body, "failed: &lt;script&gt;"));
	free(p.body);
	render(f, serve_charts_page, "/charts", NULL, &p);
	assert_int_equal(p.status, 200);
	assert_escaped(p.body);
	assert_non_null(strstr(p.body, "<img src=\"/charts/yield.svg?days=3\""));
	assert_non_null(strstr(p.body, "<img src=\"/charts/throughput.svg?days=3\""));
	assert_non_null(strstr(p.body, "<img src=\"/charts/failures.svg?days=3\""));
	free(p.body);
}

/* Every chart parses as XML, empty or not, for every period. */
static void test_svgs_parse(void **state)
{
	struct fixture *f = *state;
	static const char *const charts[] = { "/charts/yield.svg", "/charts/throughput.svg",
					      "/charts/failures.svg" };
	static const char *const days[] = { "1", "3", "7", "31" };
	struct page p;

	for (int round = 0; round < 2; round++) {
		if (round == 1)
			some_jobs(f);
		for (size_t i = 0; i < 3; i++)
			for (size_t d = 0; d < 4; d++) {
				render(f, serve_chart_svg, charts[i],
				       (const char *const[]){ "days", days[d], NULL }, &p);
				assert_svg(&p);
				free(p.body);
			}
	}
	/* More profiles than colours: the first are drawn, the page says so. */
	for (int i = 0; i < 12; i++) {
		char prof[16];
		struct job jb = { prof, "slot-a", "S", OUTCOME_SUCCESS, NULL, 60, 10, 1e6, 1 };

		snprintf(prof, sizeof(prof), "prof-%02d", i);
		add_job(f, &jb);
	}
	render(f, serve_chart_svg, "/charts/yield.svg", NULL, &p);
	assert_svg(&p);
	assert_null(strstr(p.body, "prof-11"));
	free(p.body);
	render(f, serve_charts_page, "/charts", NULL, &p);
	assert_non_null(strstr(p.body, "Only the first 8 profiles are drawn"));
	free(p.body);

	render(f, serve_chart_svg, "/charts/nope.svg", NULL, &p);
	assert_int_equal(p.status, 404);
	free(p.body);
	render(f, serve_chart_svg, "/charts/x/yield.svg", NULL, &p);
	assert_int_equal(p.status, 404);
	free(p.body);
	render(f, serve_chart_svg, "/charts/yield.svgx", NULL, &p);
	assert_int_equal(p.status, 404);
	free(p.body);
	render(f, serve_chart_svg, "/charts/yield.svg", (const char *const[]){ "days", "0", NULL },
	       &p);
	assert_int_equal(p.status, 400);
	free(p.body);
	render(f, serve_charts_page, "/charts", (const char *const[]){ "days", "x", NULL }, &p);
	assert_int_equal(p.status, 400);
	free(p.body);
}

/* Arguments the CLI refuses are a 400, never a report of something else. */
static void test_bad_args(void **state)
{
	struct fixture *f = *state;
	const char *const *bad[] = {
		(const char *const[]){ "since", "2026-13-01", NULL },
		(const char *const[]){ "until", "soon", NULL },
		(const char *const[]){ "since", "2026-11-27", "until", "2026-11-26", NULL },
		(const char *const[]){ "outcome", "nope", NULL },
		(const char *const[]){ "format", "xml", NULL },
		(const char *const[]){ "per", "0", NULL },
		(const char *const[]){ "per", "501", NULL },
		(const char *const[]){ "page", "0", NULL },
		(const char *const[]){ "page", "2x", NULL },
		(const char *const[]){ "station", "st-2", NULL },
		(const char *const[]){ "source", "line", NULL }, /* no --pg */
		(const char *const[]){ "source", "moon", NULL },
	};
	struct page p;

	some_jobs(f);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		render(f, serve_reports_page, "/reports", bad[i], &p);
		assert_int_equal(p.status, 400);
		assert_escaped(p.body);
		free(p.body);
	}
	render(f, serve_history_page, "/history", NULL, &p);
	assert_int_equal(p.status, 400);
	free(p.body);
}

static const char *metric_line(const char *body, const char *prefix)
{
	size_t l = strlen(prefix);

	for (const char *p = body; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, prefix, l) == 0 && p[l] == ' ')
			return p + l + 1;
	return NULL;
}

static void assert_metric(const char *body, const char *sample, double want)
{
	const char *v = metric_line(body, sample);

	if (!v)
		fail_msg("no sample %s in:\n%s", sample, body);
	assert_float_equal(strtod(v, NULL), want, 1e-9);
}

/* /metrics counts what the journal holds, escapes labels, and reads sync's state. */
static void test_metrics(void **state)
{
	struct fixture *f = *state;
	const struct live_row live[] = {
		{ .syspath = "/sys/a", .slot = "a", .state = "writing" },
		{ .syspath = "/sys/b", .slot = "b", .state = "writing" },
		{ .syspath = "/sys/c", .slot = "c", .state = "done" },
		{ .syspath = "/sys/d", .slot = "d", .state = "strange" },
	};
	char *sync_path = NULL;
	struct job jb = { "q\"b\\c\nd", "slot-a", "Z", OUTCOME_SUCCESS, NULL, 60, 400, 3e6, 7 };
	struct page p;
	int64_t last;

	some_jobs(f);
	add_job(f, &jb);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(journal_live_set(f->j, &live[i]), 0);
	/* A job still running is no counter: it would go down when it ends. */
	{
		struct job_start s = { .slot = "slot-c", .profile = "pi" };

		assert_int_equal(journal_job_start(f->j, &s, &last), 0);
	}
	render(f, serve_metrics_page, "/metrics", NULL, &p);
	assert_int_equal(p.status, 200);
	assert_string_equal(p.reply.content_type, "text/plain; version=0.0.4; charset=utf-8");
	assert_metric(p.body, "bmap_station_journal_up", 1);
	assert_non_null(strstr(p.body, "# TYPE bmap_station_jobs_total counter\n"));
	assert_non_null(strstr(p.body, "# TYPE bmap_station_job_duration_seconds histogram\n"));
	assert_metric(p.body, "bmap_station_jobs_total{profile=\"pi\",outcome=\"success\"}", 2);
	assert_metric(p.body, "bmap_station_jobs_total{profile=\"pi\",outcome=\"verify_failed\"}", 1);
	assert_metric(p.body, "bmap_station_jobs_total{profile=\"pi\",outcome=\"ignored\"}", 1);
	assert_metric(p.body, "bmap_station_jobs_total{profile=\"other\",outcome=\"refused\"}", 1);
	assert_null(strstr(p.body, "outcome=\"running\""));
	assert_metric(p.body, "bmap_station_written_bytes_total{profile=\"pi\"}", 620000000);
	/* The label value escaped as the format says. */
	assert_metric(p.body, "bmap_station_jobs_total{profile=\"q\\\"b\\\\c\\nd\",outcome=\"success\"}",
		      1);
	/* pi's successes took 20 s and 40 s at 5 and 10 MB/s. */
	assert_metric(p.body, "bmap_station_job_duration_seconds_bucket{profile=\"pi\",le=\"10\"}", 0);
	assert_metric(p.body, "bmap_station_job_duration_seconds_bucket{profile=\"pi\",le=\"30\"}", 1);
	assert_metric(p.body, "bmap_station_job_duration_seconds_bucket{profile=\"pi\",le=\"60\"}", 2);
	assert_metric(p.body, "bmap_station_job_duration_seconds_bucket{profile=\"pi\",le=\"+Inf\"}",
		      2);
	assert_metric(p.body, "bmap_station_job_duration_seconds_sum{profile=\"pi\"}", 60);
	assert_metric(p.body, "bmap_station_job_duration_seconds_count{profile=\"pi\"}", 2);
	assert_metric(p.body,
		      "bmap_station_job_throughput_bytes_per_second_bucket{profile=\"pi\",le=\"5e+06\"}",
		      1);
	assert_metric(p.body,
		      "bmap_station_job_throughput_bytes_per_second_bucket{profile=\"pi\",le=\"1e+07\"}",
		      2);
	assert_metric(p.body, "bmap_station_job_throughput_bytes_per_second_sum{profile=\"pi\"}",
		      15e6);
	assert_metric(p.body, "bmap_station_cards{state=\"writing\"}", 2);
	assert_metric(p.body, "bmap_station_cards{state=\"done\"}", 1);
	assert_metric(p.body, "bmap_station_cards{state=\"waiting\"}", 0);
	assert_metric(p.body, "bmap_station_cards{state=\"other\"}", 1);
	{
		sqlite3_stmt *st = NULL;

		assert_int_equal(sqlite3_prepare_v2(f->db, "PRAGMA user_version", -1, &st, NULL),
				 SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_metric(p.body, "bmap_station_journal_schema_version",
			      sqlite3_column_int(st, 0));
		assert_true(sqlite3_column_int(st, 0) > 0);
		sqlite3_finalize(st);
	}
	assert_non_null(metric_line(p.body, "bmap_station_journal_size_bytes"));
	assert_non_null(metric_line(p.body, "bmap_station_journal_last_job_timestamp_seconds"));
	/* No sync ever ran: no sync metrics. */
	assert_null(strstr(p.body, "bmap_station_sync_"));
	free(p.body);

	/* sync copied up to job 3: the other jobs (4 ended, 1 running) lag. */
	assert_true(asprintf(&sync_path, "%s.sync", f->path) > 0);
	tu_write_file(sync_path, "station=st-1\nupdated=2026-11-26T05:00:00.500Z\npid=1\nstate=up\n"
				 "last_job=3\nlast_hook=0\nlast_forgotten=0\n", 95);
	render(f, serve_metrics_page, "/metrics", NULL, &p);
	assert_int_equal(p.status, 200);
	assert_metric(p.body, "bmap_station_sync_up", 1);
	assert_metric(p.body, "bmap_station_sync_lag_rows{table=\"jobs\"}", (double)(last - 3));
	assert_metric(p.body, "bmap_station_sync_lag_rows{table=\"hooks\"}", 0);
	assert_metric(p.body, "bmap_station_sync_last_success_timestamp_seconds", 1795669200.5);
	/* The oldest job not synced (job 4) started 900 s ago. */
	assert_true(strtod(metric_line(p.body, "bmap_station_sync_lag_seconds"), NULL) >= 899);
	free(p.body);
	free(sync_path);
}

/* Without a journal (serve started before the station made it) the pages
 * say why, and /metrics says the journal is down. */
static void test_no_journal(void **state)
{
	struct fixture *f = *state;
	struct serve_ctx ctx = { .journal_path = f->path, .journal_error = "journal <x>: none yet" };
	static const struct {
		serve_page_fn fn;
		const char *path;
	} pages[] = {
		{ serve_reports_page, "/reports" }, { serve_history_page, "/history" },
		{ serve_charts_page, "/charts" }, { serve_chart_svg, "/charts/yield.svg" },
	};
	struct page p;

	for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
		render_ctx(&ctx, pages[i].fn, pages[i].path,
			   (const char *const[]){ "serial", "A1", NULL }, &p);
		assert_int_equal(p.status, 503);
		if (pages[i].fn != serve_chart_svg)
			assert_non_null(strstr(p.body, "journal &lt;x&gt;: none yet"));
		free(p.body);
	}
	render_ctx(&ctx, serve_metrics_page, "/metrics", NULL, &p);
	assert_int_equal(p.status, 200);
	assert_metric(p.body, "bmap_station_journal_up", 0);
	assert_null(strstr(p.body, "bmap_station_jobs_total"));
	free(p.body);
}

/* Finds @path in serve_routes[] as serve.h says: exact, or the longest
 * prefix ending in '/' ("/" itself is exact). */
static serve_page_fn route(const char *path)
{
	const struct serve_route *best = NULL;

	for (const struct serve_route *r = serve_routes; r->path; r++) {
		size_t l = strlen(r->path);

		if (strcmp(r->path, path) == 0)
			return r->fn;
		if (l > 1 && r->path[l - 1] == '/' && strncmp(r->path, path, l) == 0 &&
		    (!best || strlen(best->path) < l))
			best = r;
	}
	return best ? best->fn : NULL;
}

static void test_routes(void **state)
{
	(void)state;
	assert_ptr_equal(route("/reports"), serve_reports_page);
	assert_ptr_equal(route("/history"), serve_history_page);
	assert_ptr_equal(route("/charts"), serve_charts_page);
	assert_ptr_equal(route("/charts/yield.svg"), serve_chart_svg);
	assert_ptr_equal(route("/metrics"), serve_metrics_page);
	assert_null(route("/reports/x"));
}

int main(int argc, char **argv)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_download_equals_report),
		T(test_paging),
		T(test_hostile_escaped),
		T(test_svgs_parse),
		T(test_bad_args),
		T(test_metrics),
		T(test_no_journal),
		cmocka_unit_test(test_routes),
	};
#undef T

	(void)argc;
	(void)argv;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
