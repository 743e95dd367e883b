/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Small files from a path or a URL (a bmap, a signature) read whole into
 * memory with a size cap, and the discovery of a bmap next to an image URL
 * and of a signature next to a bmap URL that uses them.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "url.h"
#include "util.h"

struct small_buf {
	uint8_t *data;
	size_t len, cap, max;
	bool too_big;
	bool bad_status;
	CURL *easy;
};

static size_t on_small_data(char *buf, size_t size, size_t n, void *userdata)
{
	struct small_buf *b = userdata;
	size_t len = size * n;
	long status;

	/* An error page is not the file: stop at its first byte. */
	if (url_is_http(b->easy) && ((status = url_status(b->easy)) < 200 || status >= 300)) {
		b->bad_status = true;
		return 0;
	}
	if (len > b->max - b->len) {
		b->too_big = true;
		return 0;
	}
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64 * 1024;
		uint8_t *p;

		while (cap < b->len + len + 1)
			cap *= 2;
		p = realloc(b->data, cap);
		if (!p)
			return 0;
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, buf, len);
	b->len += len;
	return len;
}

static int fetch_url(struct bmap_ctx *ctx, const char *url, size_t max, void **ret,
		     size_t *ret_len)
{
	struct small_buf b = { .max = max };
	_cleanup_free_ char *shown_url = bmap_url_display(url), *disp = NULL;
	struct url_xfer x;
	CURLcode rc;
	curl_off_t cl = -1;
	long status;
	int r;

	if (!shown_url || asprintf(&disp, "'%s'", shown_url) < 0) {
		disp = NULL;
		return bmap_error(ctx, -ENOMEM, "out of memory");
	}
	r = url_easy_new(ctx, url, &x, &b.easy);
	if (r < 0)
		return r;
	curl_easy_setopt(b.easy, CURLOPT_WRITEFUNCTION, on_small_data);
	curl_easy_setopt(b.easy, CURLOPT_WRITEDATA, &b);
	/* A small file: a server that stalls is given up on sooner. */
	curl_easy_setopt(b.easy, CURLOPT_LOW_SPEED_TIME, 30L);
	/* @max 0: whether it is there (a HEAD request; SIZE for FTP). */
	if (max == 0)
		curl_easy_setopt(b.easy, CURLOPT_NOBODY, 1L);
	rc = curl_easy_perform(b.easy);
	status = url_status(b.easy);
	if (b.too_big) {
		r = bmap_error(ctx, -EFBIG, "%s is too large (more than %zu bytes)", disp, max);
	} else if (rc != CURLE_OK || b.bad_status ||
		   (url_is_http(b.easy) && (status < 200 || status >= 300))) {
		r = url_fail(ctx, disp, b.easy, b.bad_status ? CURLE_WRITE_ERROR : rc, &x);
	} else if (max > 0 &&
		   ((curl_easy_getinfo(b.easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) ==
			     CURLE_OK &&
		     cl >= 0 && (uint64_t)cl != b.len) ||
		    url_excess(b.easy, &x))) {
		r = bmap_error(ctx, -EPROTO,
			       "cannot fetch %s: the server sent %s bytes than it announced "
			       "(Content-Length %" PRId64 ")",
			       disp, cl < 0 || (uint64_t)cl <= b.len ? "more" : "fewer",
			       (int64_t)cl);
	} else if (!b.data && !(b.data = malloc(1))) {
		r = bmap_error(ctx, -ENOMEM, "out of memory");
	} else {
		b.data[b.len] = '\0';
		*ret = b.data;
		*ret_len = b.len;
		b.data = NULL;
		r = 0;
	}
	curl_easy_cleanup(b.easy);
	free(b.data);
	return r;
}

int bmap_url_identity(struct bmap_ctx *ctx, const char *url, struct bmap_url_identity *ret)
{
	_cleanup_free_ char *shown_url = bmap_url_display(url), *disp = NULL;
	struct bmap_url_identity id = { .last_modified = -1, .length = -1 };
	struct url_xfer x;
	curl_off_t v = -1;
	CURLcode rc;
	CURL *easy;
	long status;
	int r;

	_cleanup_free_ char *path = NULL;
	struct stat st;

	if (!shown_url || asprintf(&disp, "'%s'", shown_url) < 0) {
		disp = NULL;
		return bmap_error(ctx, -ENOMEM, "out of memory");
	}
	/* A file: URL is a local file, as everywhere else: its identity is
	 * what stat says (a replaced file has another mtime). */
	r = url_file_path(url, &path);
	if (r < 0)
		return bmap_error(ctx, r, "cannot read %s: only local file: URLs are read", disp);
	if (r > 0) {
		if (stat(path, &st) < 0)
			return bmap_error(ctx, -errno, "cannot stat %s: %m", disp);
		id.last_modified = (int64_t)st.st_mtim.tv_sec;
		id.length = (int64_t)st.st_size;
		snprintf(id.etag, sizeof(id.etag), "%ju-%ju-%ld", (uintmax_t)st.st_dev,
			 (uintmax_t)st.st_ino, st.st_mtim.tv_nsec);
		*ret = id;
		return 0;
	}
	r = url_easy_new(ctx, url, &x, &easy);
	if (r < 0)
		return r;
	curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
	curl_easy_setopt(easy, CURLOPT_FILETIME, 1L);
	curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, 30L);
	rc = curl_easy_perform(easy);
	status = url_status(easy);
	if (rc != CURLE_OK || (url_is_http(easy) && (status < 200 || status >= 300))) {
		r = url_fail(ctx, disp, easy, rc, &x);
	} else {
		snprintf(id.etag, sizeof(id.etag), "%s", x.etag);
		if (curl_easy_getinfo(easy, CURLINFO_FILETIME_T, &v) == CURLE_OK && v >= 0)
			id.last_modified = (int64_t)v;
		v = -1;
		if (curl_easy_getinfo(easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &v) == CURLE_OK &&
		    v >= 0)
			id.length = (int64_t)v;
		*ret = id;
		r = 0;
	}
	curl_easy_cleanup(easy);
	return r;
}

static int fetch_file(struct bmap_ctx *ctx, const char *path, size_t max, void **ret,
		      size_t *ret_len)
{
	_cleanup_close_ int fd = -1;
	struct stat st;
	uint8_t *buf;
	ssize_t n;

	/* O_NONBLOCK: a FIFO nobody writes to would block open() for ever. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return bmap_error(ctx, -errno, "cannot open '%s': %m", path);
	if (fstat(fd, &st) < 0)
		return bmap_error(ctx, -errno, "cannot stat '%s': %m", path);
	if (!S_ISREG(st.st_mode))
		return bmap_error(ctx, S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL,
				  "'%s' is not a regular file", path);
	if (max > 0 && (uint64_t)st.st_size > max)
		return bmap_error(ctx, -EFBIG, "'%s' is too large (%" PRIu64 " bytes, limit %zu)",
				  path, (uint64_t)st.st_size, max);
	buf = malloc(max == 0 ? 1 : (size_t)st.st_size + 1);
	if (buf && max == 0) {
		/* Only whether it is there. */
		buf[0] = '\0';
		*ret = buf;
		*ret_len = 0;
		return 0;
	}
	if (!buf)
		return bmap_error(ctx, -ENOMEM, "out of memory reading '%s'", path);
	/* One byte more than the size: a file that grew is not cut short. */
	n = loop_read(fd, buf, (size_t)st.st_size + 1);
	if (n < 0 || (size_t)n > (size_t)st.st_size) {
		free(buf);
		return n < 0 ? bmap_error(ctx, (int)n, "cannot read '%s': %s", path,
					  strerror((int)-n))
			     : bmap_error(ctx, -EAGAIN, "'%s' changed while it was read", path);
	}
	buf[n] = '\0';
	*ret = buf;
	*ret_len = (size_t)n;
	return 0;
}

int bmap_fetch_small(struct bmap_ctx *ctx, const char *location, size_t max, void **ret,
		     size_t *ret_len)
{
	_cleanup_free_ char *path = NULL;
	int r = url_file_path(location, &path);

	if (r < 0)
		return bmap_error(ctx, r, "cannot read '%s': only local file: URLs are read",
				  location);
	if (r > 0)
		return fetch_file(ctx, path, max, ret, ret_len);
	if (bmap_location_is_url(location))
		return fetch_url(ctx, location, max, ret, ret_len);
	return fetch_file(ctx, location, max, ret, ret_len);
}

int bmap_map_load_location(struct bmap_ctx *ctx, const char *location,
			   struct bmap_map **ret_map)
{
	_cleanup_free_ char *disp = NULL;
	void *buf = NULL;
	size_t len = 0;
	int r;

	if (!bmap_location_is_url(location))
		return bmap_map_load(ctx, location, ret_map);
	disp = bmap_url_display(location);
	if (!disp)
		return bmap_error(ctx, -ENOMEM, "out of memory");
	r = bmap_fetch_small(ctx, location, BMAP_FILE_MAX_SIZE, &buf, &len);
	if (r == -ENOENT)
		return r; /* the detail already says "HTTP 404 Not Found" */
	if (r < 0)
		return r;
	r = bmap_map_parse(ctx, disp, buf, len, ret_map);
	free(buf);
	return r;
}

/* The path part of @url: [*ret_start, *ret_end) (the query and fragment
 * after it). */
static void url_path(const char *url, size_t *ret_start, size_t *ret_end)
{
	const char *sep = strstr(url, "://"), *p;

	if (sep)
		p = sep + 3 + strcspn(sep + 3, "/?#");
	else
		p = strchr(url, ':') ? strchr(url, ':') + 1 : url; /* file:path */
	*ret_start = (size_t)(p - url);
	*ret_end = *ret_start + strcspn(p, "?#");
}

char *bmap_location_add_suffix(const char *location, const char *suffix)
{
	size_t start, end;
	char *out;

	if (!bmap_location_is_url(location)) {
		if (asprintf(&out, "%s%s", location, suffix) < 0)
			return NULL;
		return out;
	}
	url_path(location, &start, &end);
	/* No path: "/" first, as Python's urlunparse makes it (the reference). */
	if (asprintf(&out, "%.*s%s%s%s", (int)end, location,
		     start == end && strstr(location, "://") ? "/" : "", suffix, location + end) < 0)
		return NULL;
	return out;
}

int bmap_discover_url(struct bmap_ctx *ctx, const char *image_url, char **ret_url)
{
	_cleanup_free_ char *base = strdup(image_url);
	size_t start, end;

	if (!base)
		return bmap_error(ctx, -ENOMEM, "out of memory");
	for (;;) {
		char *cand, *dot, *slash;
		void *buf = NULL;
		size_t len;
		int r;

		url_path(base, &start, &end);
		cand = bmap_location_add_suffix(base, ".bmap");
		if (!cand)
			return bmap_error(ctx, -ENOMEM, "out of memory");
		/* Whether it is there: a HEAD request (for a file, a stat). */
		r = bmap_fetch_small(ctx, cand, 0, &buf, &len);
		free(buf);
		if (r == 0) {
			*ret_url = cand;
			return 0;
		}
		free(cand);
		if (r != -ENOENT)
			return r;
		/* One extension off the path's last component. */
		slash = memrchr(base + start, '/', end - start);
		dot = memrchr(base + start, '.', end - start);
		if (!dot || (slash && dot <= slash + 1))
			return -ENOENT;
		memmove(dot, base + end, strlen(base + end) + 1);
	}
}

int bmap_sig_discover_url(struct bmap_ctx *ctx, const char *bmap_url, char **ret_url)
{
	static const char *const suffixes[] = { ".asc", ".sig" };

	for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++) {
		_cleanup_free_ char *u = bmap_location_add_suffix(bmap_url, suffixes[i]);
		_cleanup_free_ void *none = NULL;
		size_t len;
		int r;

		if (!u)
			return bmap_error(ctx, -ENOMEM, "out of memory");
		/* max 0: whether it is there (a HEAD request). */
		r = bmap_fetch_small(ctx, u, 0, &none, &len);
		if (r == 0) {
			*ret_url = u;
			u = NULL;
			return 0;
		}
		if (r != -ENOENT)
			return r;
	}
	return -ENOENT;
}
