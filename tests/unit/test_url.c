/* Unit tests for the URL helpers: telling a URL from a path, rendering one
 * without its credentials, file: URLs as paths, bmap_fetch_small() and the
 * bmap discovery on file: URLs (no server needed), and the resume schedule
 * with and without its test hook. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "bmap-private.h"
#include "source-url.h"
#include "url.h"
#include "util.h"

static void test_is_url(void **state)
{
	(void)state;
	assert_true(bmap_location_is_url("http://h/x"));
	assert_true(bmap_location_is_url("HTTPS://h/x"));
	assert_true(bmap_location_is_url("ftp://h/x"));
	assert_true(bmap_location_is_url("file:///x"));
	assert_true(bmap_location_is_url("file:x"));
	assert_false(bmap_location_is_url("/srv/http://x"));
	assert_false(bmap_location_is_url("disk.img"));
	assert_false(bmap_location_is_url("-"));
	assert_false(bmap_location_is_url("sftp://h/x"));
}

static void check_display(const char *url, const char *want)
{
	char *got = bmap_url_display(url);

	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void test_display_drops_credentials(void **state)
{
	(void)state;
	check_display("http://u:pw@h:8080/a/b.img?q=1", "http://h:8080/a/b.img?q=1");
	check_display("https://u@h/x", "https://h/x");
	/* The last '@' of the authority ends the userinfo ('@' in a password). */
	check_display("ftp://u:p@ss@h/x", "ftp://h/x");
	/* An '@' in the path or the query is not userinfo. */
	check_display("http://h/a@b?c=d@e", "http://h/a@b?c=d@e");
	check_display("http://u:pw@h?x@y", "http://h?x@y");
	check_display("http://h/x", "http://h/x");
	check_display("disk.img", "disk.img");
}

static void check_suffix(const char *loc, const char *want)
{
	char *got = bmap_location_add_suffix(loc, ".asc");

	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void test_add_suffix(void **state)
{
	(void)state;
	check_suffix("/srv/x.bmap", "/srv/x.bmap.asc");
	check_suffix("x.bmap?", "x.bmap?.asc"); /* a path: no query */
	check_suffix("http://h/x.bmap?t=1#f", "http://h/x.bmap.asc?t=1#f");
	check_suffix("https://u:p@h:1/a/x.bmap", "https://u:p@h:1/a/x.bmap.asc");
	check_suffix("http://h?q", "http://h/.asc?q");
	check_suffix("file:///srv/x.bmap", "file:///srv/x.bmap.asc");
}

static void test_file_url_path(void **state)
{
	char *p = NULL;

	(void)state;
	assert_int_equal(url_file_path("file:///srv/a%20b.img", &p), 1);
	assert_string_equal(p, "/srv/a b.img");
	free(p);
	assert_int_equal(url_file_path("file://localhost/srv/x", &p), 1);
	assert_string_equal(p, "/srv/x");
	free(p);
	assert_int_equal(url_file_path("file://elsewhere/srv/x", &p), -EINVAL);
	assert_int_equal(url_file_path("http://h/x", &p), 0);
}

static void header(struct url_xfer *x, const char *line)
{
	url_header_line(x, line, strlen(line));
}

static void test_header_lines(void **state)
{
	struct url_xfer x;

	(void)state;
	url_xfer_reset(&x);
	header(&x, "HTTP/1.1 206 Partial Content\r\n");
	assert_string_equal(x.reason, "Partial Content");
	header(&x, "content-range: bytes 1048576-2097151/4194304\r\n");
	assert_true(x.have_range);
	assert_int_equal(x.range_first, 1048576);
	assert_int_equal(x.range_total, 4194304);
	header(&x, "Accept-Ranges: bytes\r\n");
	assert_true(x.accept_ranges);
	/* A redirect's next response forgets them. */
	header(&x, "HTTP/2 404\r\n");
	assert_false(x.have_range);
	assert_false(x.accept_ranges);
	assert_string_equal(x.reason, "");
	header(&x, "Content-Range: bytes 0-9/*\r\n");
	assert_true(x.have_range);
	assert_int_equal(x.range_total, UINT64_MAX);

	/* Server input: control bytes never reach a message, numbers past
	 * 64 bits and malformed ranges are not taken. */
	url_xfer_reset(&x);
	header(&x, "HTTP/1.1 500 a\033[2Jb\x01\r\n");
	assert_string_equal(x.reason, "a?[2Jb?");
	header(&x, "Content-Range: bytes 99999999999999999999999-1/2\r\n");
	assert_false(x.have_range);
	header(&x, "Content-Range: bytes */100\r\n");
	assert_false(x.have_range);
	header(&x, "Content-Range: items 0-1/2\r\n");
	assert_false(x.have_range);
	header(&x, "Accept-Ranges: none\r\n");
	assert_false(x.accept_ranges);
	header(&x, "HTTP/1.1 200 "
		   "a-reason-phrase-much-longer-than-the-sixty-four-bytes-kept-for-it-in-messages\r\n");
	assert_int_equal(strlen(x.reason), sizeof(x.reason) - 1);
}

static void test_fetch_small_file_url(void **state)
{
	char dir[] = "/tmp/test_url.XXXXXX", path[256], url[300];
	struct bmap_ctx *ctx = bmap_ctx_new();
	void *buf = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/small", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("0123456789", f);
	fclose(f);

	snprintf(url, sizeof(url), "file://%s", path);
	assert_int_equal(bmap_fetch_small(ctx, url, 100, &buf, &len), 0);
	assert_int_equal(len, 10);
	assert_memory_equal(buf, "0123456789", 11); /* NUL-terminated */
	free(buf);
	assert_int_equal(bmap_fetch_small(ctx, path, 9, &buf, &len), -EFBIG);
	/* 0: only whether it is there. */
	assert_int_equal(bmap_fetch_small(ctx, url, 0, &buf, &len), 0);
	assert_int_equal(len, 0);
	free(buf);
	snprintf(url, sizeof(url), "file://%s/missing", dir);
	assert_int_equal(bmap_fetch_small(ctx, url, 100, &buf, &len), -ENOENT);

	unlink(path);
	rmdir(dir);
	bmap_ctx_free(ctx);
}

/* ".bmap" goes on the path, before the query; then one extension off. */
static void test_discover_url_candidates(void **state)
{
	char dir[] = "/tmp/test_url.XXXXXX", path[256], url[300], *found = NULL;
	struct bmap_ctx *ctx = bmap_ctx_new();
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/disk.bmap", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);

	snprintf(url, sizeof(url), "file://%s/disk.img.zst", dir);
	assert_int_equal(bmap_discover_url(ctx, url, &found), 0);
	snprintf(url, sizeof(url), "file://%s/disk.bmap", dir);
	assert_string_equal(found, url);
	free(found);

	snprintf(url, sizeof(url), "file://%s/other.img", dir);
	assert_int_equal(bmap_discover_url(ctx, url, &found), -ENOENT);

	unlink(path);
	rmdir(dir);
	bmap_ctx_free(ctx);
}

/* The default waits (1, 2, 4, 8, 16 s) hold unless BMAP_URL_RETRY_DELAYS_MS
 * is set and well formed: url-resume.sh runs on the hook, so the default is
 * checked here, where checking it costs no waiting. */
static void test_retry_delays(void **state)
{
	static const char *const bad[] = { "", "x", "-5", "+5", "5,", ",5", "5,,6", "5;6",
					   "5 ", "600001", "99999999999999999999" };

	(void)state;
	assert_int_equal(unsetenv(URL_RETRY_DELAYS_ENV), 0);
	for (int i = 1; i <= URL_MAX_TRIES; i++)
		assert_int_equal(url_retry_delay_ms(i), 1000 << (i - 1));
	assert_int_equal(url_retry_delay_ms(0), 1000);
	assert_int_equal(url_retry_delay_ms(URL_MAX_TRIES + 3), 16000);

	assert_int_equal(setenv(URL_RETRY_DELAYS_ENV, "50,0,600000", 1), 0);
	assert_int_equal(url_retry_delay_ms(1), 50);
	assert_int_equal(url_retry_delay_ms(2), 0);
	assert_int_equal(url_retry_delay_ms(3), 600000);
	assert_int_equal(url_retry_delay_ms(5), 600000); /* the last repeats */
	assert_int_equal(setenv(URL_RETRY_DELAYS_ENV, "7", 1), 0);
	assert_int_equal(url_retry_delay_ms(4), 7);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(setenv(URL_RETRY_DELAYS_ENV, bad[i], 1), 0);
		for (int t = 1; t <= URL_MAX_TRIES; t++)
			assert_int_equal(url_retry_delay_ms(t), 1000 << (t - 1));
	}
	assert_int_equal(unsetenv(URL_RETRY_DELAYS_ENV), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_is_url),
		cmocka_unit_test(test_display_drops_credentials),
		cmocka_unit_test(test_add_suffix),
		cmocka_unit_test(test_file_url_path),
		cmocka_unit_test(test_header_lines),
		cmocka_unit_test(test_fetch_small_file_url),
		cmocka_unit_test(test_discover_url_candidates),
		cmocka_unit_test(test_retry_delays),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
