/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The URL input of an image source: one libcurl transfer read on demand
 * (the caller's read drives curl, so nothing is fetched faster than it is
 * used, and no thread is needed), its response checked before the first
 * byte is handed on, and a broken connection resumed with a Range request
 * from the last byte received, a few times with backoff.
 *
 * Why an input under the codecs and not a thread writing into a pipe: the
 * codecs, the container and the format layers above read through
 * source_fill() alone and stay as they are, and the input still sees where
 * the reader is, which a pipe would hide (resuming needs the byte count of
 * what was handed on, a ranged fetch needs to know what is skipped).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "source-url.h"
#include "util.h"

static int url_nomem(struct url_in *u)
{
	return bmap_error(u->s->ctx, -ENOMEM, "out of memory fetching %s", u->s->what);
}

/* This response is what we asked for: a 2xx for the whole file, a 206 from
 * our Range (or a 200 whose first bytes we drop) for a resume. */
static int check_response(struct url_in *u)
{
	struct bmap_ctx *ctx = u->s->ctx;
	curl_off_t cl = -1;
	long status;

	curl_easy_getinfo(u->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
	if (!url_is_http(u->easy)) {
		if (u->start == 0 && cl >= 0)
			u->total = (uint64_t)cl;
		u->ok_once = true;
		return 0;
	}
	status = url_status(u->easy);
	if (u->x.accept_ranges)
		u->ranges_ok = true;
	if (u->head_req && status == 416) {
		/* An empty file has no first byte: asked again without Range. */
		u->no_head = true;
		return -EAGAIN;
	}
	if (status < 200 || status >= 300)
		return url_fail(ctx, u->s->what, u->easy, CURLE_OK, &u->x);
	if (u->head_req) {
		if (status == 206 && (!u->x.have_range || u->x.range_first != 0))
			return bmap_error(ctx, -EPROTO,
					  "cannot fetch %s: the server answered another range than "
					  "its first bytes",
					  u->s->what);
		if (status == 206) {
			u->ranges_ok = true;
			u->total = u->x.range_total;
		} else {
			u->head_req = false; /* the whole file comes */
			u->total = cl >= 0 ? (uint64_t)cl : URL_UNKNOWN;
		}
	} else if (u->start > 0 && status == 206) {
		if (!u->x.have_range || u->x.range_first != u->start)
			return bmap_error(ctx, -EPROTO,
					  "cannot resume %s at byte %" PRIu64
					  ": the server answered another range",
					  u->s->what, u->start);
		if (u->total != URL_UNKNOWN && u->x.range_total != URL_UNKNOWN &&
		    u->x.range_total != u->total)
			return bmap_error(ctx, -ESTALE,
					  "cannot resume %s: it changed on the server (%" PRIu64
					  " bytes, was %" PRIu64 ")",
					  u->s->what, u->x.range_total, u->total);
	} else if (u->start > 0) {
		/* The whole file again: what we have is dropped as it passes. */
		bmap_log(ctx, BMAP_LOG_WARNING,
			 "the server of %s ignored the range asked for: receiving its first %" PRIu64
			 " bytes again",
			 u->s->what, u->start);
		u->drop = u->start;
		if (cl >= 0 && u->total != URL_UNKNOWN && (uint64_t)cl != u->total)
			return bmap_error(ctx, -ESTALE,
					  "cannot resume %s: it changed on the server (%" PRId64
					  " bytes, was %" PRIu64 ")",
					  u->s->what, (int64_t)cl, u->total);
	} else if (cl >= 0) {
		u->total = (uint64_t)cl;
	}
	u->ok_once = true;
	return 0;
}

static size_t on_data(char *buf, size_t size, size_t n, void *userdata)
{
	struct url_in *u = userdata;
	size_t len = size * n, keep;
	int r;

	if (!u->checked) {
		u->checked = true;
		r = check_response(u);
		if (r < 0) {
			/* -EAGAIN (no_head): asked again once this one ends. */
			u->err = u->no_head ? 0 : r;
			return 0;
		}
	}
	keep = u->drop < len ? len - (size_t)u->drop : 0;
	if (u->cap - u->head - u->len < keep) {
		if (u->head > 0) {
			memmove(u->stash, u->stash + u->head, u->len);
			u->head = 0;
		}
		if (u->cap - u->len < keep) {
			uint8_t *p;

			/* Full: curl hands the same bytes again once resumed. */
			if (u->len > 0) {
				u->paused = true;
				return CURL_WRITEFUNC_PAUSE;
			}
			p = realloc(u->stash, keep);
			if (!p) {
				u->err = url_nomem(u);
				return 0;
			}
			u->stash = p;
			u->cap = keep;
		}
	}
	atomic_fetch_add(&u->received, len);
	memcpy(u->stash + u->head + u->len, buf + (len - keep), keep);
	u->drop -= len - keep;
	u->len += keep;
	u->pos += keep;
	return len;
}

static int start_request(struct url_in *u)
{
	char range[48];
	CURLMcode mc;

	u->checked = false;
	u->done = false;
	u->drop = 0;
	u->start = u->pos;
	url_xfer_reset(&u->x);
	u->head_req = u->pos == 0 && !u->ok_once && !u->no_head &&
		      strncasecmp(u->url, "http", 4) == 0;
	if (u->head_req)
		snprintf(range, sizeof(range), "0-%u", URL_HEAD_SIZE - 1);
	else if (u->start > 0)
		snprintf(range, sizeof(range), "%" PRIu64 "-", u->start);
	curl_easy_setopt(u->easy, CURLOPT_RANGE, u->head_req || u->start > 0 ? range : NULL);
	mc = curl_multi_add_handle(u->multi, u->easy);
	if (mc != CURLM_OK)
		return bmap_error(u->s->ctx, -EIO, "cannot fetch %s: %s", u->s->what,
				  curl_multi_strerror(mc));
	u->active = true;
	return 0;
}

int url_run(struct url_in *u, void (*done)(struct url_in *u, CURL *easy, CURLcode rc))
{
	CURLMsg *m;
	CURLMcode mc;
	int running, left;

	mc = curl_multi_perform(u->multi, &running);
	while (mc == CURLM_OK && (m = curl_multi_info_read(u->multi, &left)))
		if (m->msg == CURLMSG_DONE)
			done(u, m->easy_handle, m->data.result);
	if (mc != CURLM_OK)
		return bmap_error(u->s->ctx, -EIO, "cannot fetch %s: %s", u->s->what,
				  curl_multi_strerror(mc));
	return 0;
}

int url_wait(struct url_in *u)
{
	struct curl_waitfd wfd = { .fd = u->s->cancel_fd, .events = CURL_WAIT_POLLIN };
	CURLMcode mc;

	mc = curl_multi_poll(u->multi, wfd.fd >= 0 ? &wfd : NULL, wfd.fd >= 0 ? 1 : 0, 1000, NULL);
	if (mc != CURLM_OK)
		return bmap_error(u->s->ctx, -EIO, "cannot fetch %s: %s", u->s->what,
				  curl_multi_strerror(mc));
	if (wfd.fd >= 0 && wfd.revents)
		return -EINTR;
	return 0;
}

static void stream_done(struct url_in *u, CURL *easy, CURLcode rc)
{
	if (easy == u->easy) {
		u->done = true;
		u->rc = rc;
	}
}

/* Runs curl until it has bytes for us or ends. */
static int pump(struct url_in *u)
{
	int r = url_run(u, stream_done);


	if (r < 0 || u->done || u->len > 0 || u->err)
		return r;
	return url_wait(u);
}

bool url_resumable(CURLcode rc)
{
	switch (rc) {
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
}

/* Reads the value anew on every call: it is consulted only when a transfer
 * broke, and no state is kept between copies or threads. */
static int delays_from_env(int attempt)
{
	const char *v = getenv(URL_RETRY_DELAYS_ENV);
	int n = 0, last = -1;

	if (!v || !*v)
		return -1;
	while (*v) {
		char *end;
		long ms;

		if (*v < '0' || *v > '9')
			return -1;
		errno = 0;
		ms = strtol(v, &end, 10);
		if (errno || ms > URL_RETRY_DELAY_MAX_MS || (*end && *end != ','))
			return -1;
		if (++n <= attempt)
			last = (int)ms;
		v = *end ? end + 1 : end;
		if (*end && !*v)
			return -1; /* a trailing comma */
	}
	return last;
}

int url_retry_delay_ms(int attempt)
{
	int ms;

	if (attempt < 1)
		attempt = 1;
	if (attempt > URL_MAX_TRIES)
		attempt = URL_MAX_TRIES;
	ms = delays_from_env(attempt);
	return ms >= 0 ? ms : 1000 << (attempt - 1);
}

int url_backoff(struct url_in *u, int ms)
{
	struct pollfd p = { .fd = u->s->cancel_fd, .events = POLLIN };

	for (;;) {
		int n = poll(&p, 1, ms);

		if (n > 0)
			return -EINTR;
		if (n == 0 || errno != EINTR)
			return 0;
	}
}

/* The transfer ended: 0 at the file's clean end, 1 when a resume was
 * started, -errno. */
static int finish(struct url_in *u)
{
	struct bmap_ctx *ctx = u->s->ctx;
	CURLcode rc = u->rc;
	bool progress = u->pos > u->start;
	int r, delay;

	curl_multi_remove_handle(u->multi, u->easy);
	u->active = false;
	if (rc == CURLE_OK && !u->checked) {
		u->checked = true;
		r = check_response(u);
		if (r < 0 && !u->no_head)
			return r;
	}
	if (u->head_req && u->no_head) {
		r = start_request(u);
		return r < 0 ? r : 1;
	}
	if (rc == CURLE_OK) {
		/* The first bytes came: now the rest. */
		if (u->head_req && u->total != URL_UNKNOWN && u->pos < u->total &&
		    u->pos == URL_HEAD_SIZE && !url_excess(u->easy, &u->x)) {
			r = start_request(u);
			return r < 0 ? r : 1;
		}
		if (url_excess(u->easy, &u->x) || (u->total != URL_UNKNOWN && u->pos > u->total))
			return bmap_error(ctx, -EPROTO,
					  "cannot fetch %s: the server sent more bytes than it "
					  "announced (%" PRIu64 ")",
					  u->s->what, u->total);
		if (u->total != URL_UNKNOWN && u->pos < u->total)
			return bmap_error(ctx, -EPROTO,
					  "cannot fetch %s: the server sent fewer bytes than it "
					  "announced (%" PRIu64 " of %" PRIu64 ")",
					  u->s->what, u->pos, u->total);
		return 0;
	}
	if (!u->ok_once || !url_resumable(rc))
		return url_fail(ctx, u->s->what, u->easy, rc, &u->x);
	/* A server that answers and then ends at the same byte again is not
	 * a broken connection but a file shorter than it says. */
	if (rc == CURLE_PARTIAL_FILE && u->checked && !progress && u->start > 0)
		return bmap_error(ctx, -EPROTO,
				  "cannot fetch %s: the server sent fewer bytes than it announced "
				  "(it ends at byte %" PRIu64 " again: %s)",
				  u->s->what, u->pos, u->x.errbuf);
	if (progress)
		u->tries = 0;
	if (++u->tries > URL_MAX_TRIES)
		return bmap_error(ctx, url_errno(rc),
				  "cannot fetch %s: %s (gave up after %d tries to resume at byte "
				  "%" PRIu64 ")",
				  u->s->what, u->x.errbuf[0] ? u->x.errbuf : curl_easy_strerror(rc),
				  URL_MAX_TRIES, u->pos);
	delay = url_retry_delay_ms(u->tries);
	bmap_log(ctx, BMAP_LOG_WARNING, "%s: %s at byte %" PRIu64 "; resuming in %g s (%d of %d)",
		 u->s->what, u->x.errbuf[0] ? u->x.errbuf : curl_easy_strerror(rc), u->pos,
		 delay / 1000.0, u->tries, URL_MAX_TRIES);
	r = url_backoff(u, delay);
	if (r < 0)
		return r;
	r = start_request(u);
	return r < 0 ? r : 1;
}

static ssize_t url_read(struct bmap_source *s, void *buf, size_t len)
{
	struct url_in *u = s->input_state;
	int r;

	if (u->rg)
		return url_ranges_read(u, buf, len);
	for (;;) {
		if (u->len > 0) {
			size_t k = len < u->len ? len : u->len;

			memcpy(buf, u->stash + u->head, k);
			u->head += k;
			u->len -= k;
			if (u->len == 0)
				u->head = 0;
			return (ssize_t)k;
		}
		if (u->err)
			return u->err;
		if (u->done) {
			if (!u->active)
				return 0;
			r = finish(u);
			if (r < 0) {
				u->err = r;
				return r;
			}
			if (r == 0) {
				u->done = true;
				return 0;
			}
			continue;
		}
		if (u->paused) {
			u->paused = false;
			curl_easy_pause(u->easy, CURLPAUSE_CONT);
			continue;
		}
		r = pump(u);
		if (r < 0)
			return r;
	}
}

static uint64_t url_transferred(const struct bmap_source *s)
{
	struct url_in *u = s->input_state;

	return atomic_load(&u->received);
}

static int64_t url_skip(struct bmap_source *s, uint64_t n)
{
	struct url_in *u = s->input_state;

	/* The whole file comes anyway: the caller reads and drops. */
	return u->rg ? url_ranges_skip(u, n) : 0;
}

static void url_free(struct bmap_source *s)
{
	struct url_in *u = s->input_state;

	url_ranges_free(u);
	if (u->active)
		curl_multi_remove_handle(u->multi, u->easy);
	if (u->easy)
		curl_easy_cleanup(u->easy);
	if (u->multi)
		curl_multi_cleanup(u->multi);
	free(u->stash);
	free(u->url);
	free(u);
	s->input_state = NULL;
}

const struct source_input source_input_url = {
	.read = url_read,
	.want = url_ranges_want,
	.skip = url_skip,
	.transferred = url_transferred,
	.free = url_free,
};

int source_url_start(struct bmap_source *s, const char *url)
{
	struct url_in *u;
	int r;

	u = calloc(1, sizeof(*u));
	if (!u)
		return bmap_error(s->ctx, -ENOMEM, "out of memory opening %s", s->what);
	s->input = &source_input_url;
	s->input_state = u;
	u->s = s;
	u->total = URL_UNKNOWN;
	u->url = strdup(url);
	u->stash = malloc(URL_STASH_SIZE);
	if (!u->url || !u->stash)
		return url_nomem(u);
	u->cap = URL_STASH_SIZE;
	/* The easy handle first: it runs libcurl's global set-up, once. */
	r = url_easy_new(s->ctx, url, &u->x, &u->easy);
	if (r < 0)
		return r;
	u->multi = curl_multi_init();
	if (!u->multi)
		return url_nomem(u);
	curl_easy_setopt(u->easy, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(u->easy, CURLOPT_WRITEDATA, u);
	r = start_request(u);
	if (r < 0)
		return r;
	/* The response's status (404, a refused certificate) before the
	 * source is handed to anyone: nothing is written on such a failure. */
	while (!u->checked && !u->err && !u->done) {
		r = pump(u);
		if (r < 0)
			return r;
	}
	return u->err;
}
