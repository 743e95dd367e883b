/*
 * Regression tests: non-finite numbers and XML-forbidden characters broke
 * the dashboard. A live row whose rate is 9e999 (infinity to SQLite) made
 * /api/live print "mbps":inf, which JSON.parse refuses (the kiosk went
 * stale), and a profile holding U+FFFE made /charts/yield.svg ill-formed
 * XML. Here such rows are rendered without HTTP: the JSON must parse
 * (python3's json module, skipped without python3), the HTML must hold no
 * "inf", every SVG must parse with libxml2. The process's CPU is bounded
 * (RLIMIT_CPU, a wide margin): an axis whose steps never reach an infinite
 * bar must fail the test, not hang it.
 */
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#include "journal.h"
#include "serve-internal.h"
#include "serve-pages.h"
#include "serve.h"

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

static void sql(struct fixture *f, const char *q)
{
	char *err = NULL;

	if (sqlite3_exec(f->db, q, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", q, err);
}

static const char *no_arg(const struct serve_request *req, const char *key)
{
	(void)req;
	(void)key;
	return NULL;
}

struct page {
	int status;
	char *body;
	size_t len;
	struct serve_reply reply;
};

static void render(struct fixture *f, serve_page_fn fn, const char *path, struct page *p)
{
	struct serve_ctx ctx = { .journal = f->j, .journal_path = f->path, .station_name = "st-1" };
	struct serve_request req = { path, no_arg, NULL };

	memset(p, 0, sizeof(*p));
	p->reply.body = open_memstream(&p->body, &p->len);
	assert_non_null(p->reply.body);
	p->status = fn(&ctx, &req, &p->reply);
	assert_int_equal(fclose(p->reply.body), 0);
	assert_int_equal(p->status, 200);
}

/* @p's body parses as JSON (python3's json module, which refuses inf). */
static void assert_json(struct fixture *f, const struct page *p)
{
	char *file = tu_path(f->dir, "live.json");
	FILE *out = fopen(file, "we");
	pid_t pid;
	int st;

	assert_non_null(out);
	assert_int_equal(fwrite(p->body, 1, p->len, out), p->len);
	assert_int_equal(fclose(out), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 1);
		execlp("python3", "python3", "-c",
		       "import json, sys\n"
		       "json.load(open(sys.argv[1]), parse_constant=lambda c: sys.exit(1))",
		       file, (char *)NULL);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	free(file);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
		skip();
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("not JSON: %s", p->body);
}

static void assert_svg(const struct page *p)
{
	xmlDoc *doc = xmlReadMemory(p->body, (int)p->len, "chart.svg", NULL,
				    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);

	if (!doc)
		fail_msg("not XML: %s", p->body);
	assert_string_equal((const char *)xmlDocGetRootElement(doc)->name, "svg");
	xmlFreeDoc(doc);
}

/* Live rows whose rate is infinite, minus infinite or tiny: the JSON
 * parses, the HTML says "-" rather than "inf". */
static void test_live_rate_not_finite(void **state)
{
	struct fixture *f = *state;
	struct page p;

	sql(f, "INSERT INTO live (syspath, station, slot, devnode, serial, profile, state, job,"
	       " done, total, rate, last_outcome, updated) VALUES"
	       " ('/sys/a', 'st-1', 'A', '/dev/sda', 'S1', 'p', 'writing', 1, 10, 1000, 9e999,"
	       "  NULL, 'now'),"
	       " ('/sys/b', 'st-1', 'B', '/dev/sdb', 'S2', 'p', 'writing', 2, 10, 1000, -9e999,"
	       "  NULL, 'now'),"
	       " ('/sys/c', 'st-1', 'C', '/dev/sdc', 'S3', 'p', 'writing', 3, 0,"
	       "  9000000000000000000, 1e-300, NULL, 'now')");
	render(f, serve_live_json, "/api/live", &p);
	assert_null(strstr(p.body, "inf"));
	assert_json(f, &p);
	free(p.body);
	render(f, serve_live_page, "/", &p);
	assert_null(strstr(p.body, "inf"));
	assert_null(strstr(p.body, "nan"));
	free(p.body);
}

/* U+FFFE and U+FFFF in a profile and a serial, an infinite throughput:
 * every chart parses as XML; the HTML pages carry '?' for them. */
static void test_charts_xml_forbidden(void **state)
{
	static const char *const charts[] = { "/charts/yield.svg", "/charts/throughput.svg",
					      "/charts/failures.svg" };
	struct fixture *f = *state;
	struct job_start s = { .station = "st-1", .slot = "A", .devnode = "/dev/sdx",
			       .syspath = "/sys/x", .diskseq = 1,
			       .serial = "ser\xef\xbf\xbf" "ial", .profile = "pro\xef\xbf\xbe" "file",
			       .image = "/srv/a.img" };
	struct job_end e = { .outcome = OUTCOME_FAILED, .error = "bad\xef\xbf\xbe", .bytes_written = 1 };
	struct page p;
	int64_t job;

	assert_int_equal(journal_job_once(f->j, &s, &e, &job), 0);
	s.serial = "other";
	e.outcome = OUTCOME_SUCCESS;
	e.error = NULL;
	assert_int_equal(journal_job_once(f->j, &s, &e, &job), 0);
	sql(f, "UPDATE jobs SET duration = 0, throughput = 9e999");
	for (size_t i = 0; i < 3; i++) {
		render(f, serve_chart_svg, charts[i], &p);
		assert_svg(&p);
		assert_null(strstr(p.body, "\xef\xbf\xbe"));
		assert_null(strstr(p.body, "\xef\xbf\xbf"));
		assert_null(strstr(p.body, "inf"));
		free(p.body);
	}
	render(f, serve_charts_page, "/charts", &p);
	assert_null(strstr(p.body, "\xef\xbf\xbe"));
	assert_null(strstr(p.body, "inf"));
	free(p.body);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_live_rate_not_finite),
		T(test_charts_xml_forbidden),
	};
#undef T
	/* Minutes of CPU where a second is plenty: a loop that never ends
	 * is killed (SIGXCPU), a failure. */
	struct rlimit cpu = { 120, 120 };

	setrlimit(RLIMIT_CPU, &cpu);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
