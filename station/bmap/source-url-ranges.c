/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The ranged fetch of a raw image at a URL: once the caller said which
 * ranges it will read (bmap_source_want), and the server takes ranges, only
 * those are fetched (neighbours closer than URL_MERGE_GAP as one), a few
 * Range requests in flight on their own connections, each buffered up to a
 * cap and paused there; the reader gets their bytes in image order, and a
 * skip passes over unmapped bytes without fetching them. A range request
 * that breaks is asked again from its last byte received.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "source-url.h"
#include "util.h"

/* Requests in flight; one more slot for reading where no range was
 * planned (a caller reading unmapped bytes after all). */
#define URL_IN_FLIGHT 4
#define URL_SLOTS (URL_IN_FLIGHT + 1)
/* A gap this small between mapped ranges is fetched rather than costing a
 * request of its own (a request and its headers cost about 500 bytes and a
 * round trip). */
#define URL_MERGE_GAP (32u * 1024)
#define URL_RQ_BUF (2u * 1024 * 1024)

struct seg {
	uint64_t first, end;
};

struct rq {
	struct url_in *u;
	CURL *easy;
	struct url_xfer x;
	bool used, active, paused, done, checked;
	CURLcode rc;
	int err, tries;
	uint64_t asked;	  /* where the current request starts */
	uint64_t end;	  /* [first, end) is this request's span */
	uint64_t at;	  /* the offset of the next byte to arrive */
	uint64_t drop_to; /* bytes below it are dropped as they arrive */
	uint8_t *buf;	  /* [at - len, at) */
	size_t head, len;
};

struct url_ranges {
	struct seg *segs;
	size_t n_segs, next_seg; /* next_seg: the first not yet requested */
	struct rq rq[URL_SLOTS];
	uint64_t next; /* the offset of the next byte the reader gets */
};

static int rq_check(struct rq *r)
{
	struct url_in *u = r->u;
	long status = url_status(r->easy);

	if (status == 206 && r->x.have_range && r->x.range_first == r->asked)
		return 0;
	if (status < 200 || status >= 300)
		return url_fail(u->s->ctx, u->s->what, r->easy, CURLE_OK, &r->x);
	return bmap_error(u->s->ctx, -EPROTO,
			  "cannot fetch %s: the server did not answer the range from byte %" PRIu64
			  " (HTTP %ld)",
			  u->s->what, r->asked, status);
}

static size_t on_rq_data(char *buf, size_t size, size_t n, void *userdata)
{
	struct rq *r = userdata;
	size_t len = size * n, skip = 0, keep;

	if (!r->checked) {
		r->checked = true;
		r->err = rq_check(r);
		if (r->err < 0)
			return 0;
	}
	if (r->at < r->drop_to)
		skip = r->drop_to - r->at < len ? (size_t)(r->drop_to - r->at) : len;
	keep = len - skip;
	if (URL_RQ_BUF - r->head - r->len < keep) {
		memmove(r->buf, r->buf + r->head, r->len);
		r->head = 0;
		if (URL_RQ_BUF - r->len < keep) {
			r->paused = true;
			return CURL_WRITEFUNC_PAUSE;
		}
	}
	memcpy(r->buf + r->head + r->len, buf + skip, keep);
	r->len += keep;
	r->at += len;
	atomic_fetch_add(&r->u->received, len);
	return len;
}

static int rq_request(struct rq *r)
{
	struct url_in *u = r->u;
	char range[64];

	r->asked = r->at;
	r->checked = false;
	r->done = false;
	url_xfer_reset(&r->x);
	snprintf(range, sizeof(range), "%" PRIu64 "-%" PRIu64, r->at, r->end - 1);
	curl_easy_setopt(r->easy, CURLOPT_RANGE, range);
	if (curl_multi_add_handle(u->multi, r->easy) != CURLM_OK)
		return bmap_error(u->s->ctx, -EIO, "cannot fetch %s: cannot add a request",
				  u->s->what);
	r->active = true;
	return 0;
}

static int rq_start(struct url_in *u, uint64_t first, uint64_t end)
{
	struct rq *r = NULL;
	int ret;

	for (size_t i = 0; i < URL_SLOTS && !r; i++)
		if (!u->rg->rq[i].used)
			r = &u->rg->rq[i];
	if (!r)
		return -EAGAIN;
	if (!r->easy) {
		ret = url_easy_new(u->s->ctx, u->url, &r->x, &r->easy);
		if (ret < 0)
			return ret;
		curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_rq_data);
		curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
	}
	if (!r->buf && !(r->buf = malloc(URL_RQ_BUF)))
		return bmap_error(u->s->ctx, -ENOMEM, "out of memory fetching %s", u->s->what);
	r->u = u;
	r->used = true;
	r->paused = false;
	r->err = 0;
	r->tries = 0;
	r->end = end;
	r->at = first;
	r->drop_to = first;
	r->head = r->len = 0;
	return rq_request(r);
}

static void rq_release(struct url_in *u, struct rq *r)
{
	if (r->active)
		curl_multi_remove_handle(u->multi, r->easy);
	r->active = r->used = r->paused = r->done = false;
	r->len = r->head = 0;
}

static void rq_done(struct url_in *u, CURL *easy, CURLcode rc)
{
	for (size_t i = 0; i < URL_SLOTS; i++) {
		struct rq *r = &u->rg->rq[i];

		if (r->used && r->active && r->easy == easy) {
			r->done = true;
			r->rc = rc;
		}
	}
}

/* @r's transfer ended: 0 when all its span came (or it is to be asked
 * again), -errno. */
static int rq_finish(struct url_in *u, struct rq *r)
{
	struct bmap_ctx *ctx = u->s->ctx;
	bool progress = r->at > r->asked;
	int ret, delay;

	curl_multi_remove_handle(u->multi, r->easy);
	r->active = false;
	r->done = false;
	if (r->err < 0)
		return r->err;
	if (r->rc == CURLE_OK && !r->checked) {
		r->checked = true;
		ret = rq_check(r);
		if (ret < 0)
			return ret;
	}
	if (r->rc == CURLE_OK && r->at == r->end)
		return 0;
	if (r->rc == CURLE_OK)
		return bmap_error(ctx, -EPROTO,
				  "cannot fetch %s: the server sent %" PRIu64 " bytes of the range "
				  "from byte %" PRIu64 ", not %" PRIu64,
				  u->s->what, r->at - r->asked, r->asked, r->end - r->asked);
	if (!url_resumable(r->rc))
		return url_fail(ctx, u->s->what, r->easy, r->rc, &r->x);
	if (progress)
		r->tries = 0;
	if (++r->tries > URL_MAX_TRIES)
		return bmap_error(ctx, url_errno(r->rc),
				  "cannot fetch %s: %s (gave up after %d tries to resume at byte "
				  "%" PRIu64 ")",
				  u->s->what, r->x.errbuf[0] ? r->x.errbuf : curl_easy_strerror(r->rc),
				  URL_MAX_TRIES, r->at);
	delay = url_retry_delay_ms(r->tries);
	bmap_log(ctx, BMAP_LOG_WARNING, "%s: %s at byte %" PRIu64 "; resuming in %g s (%d of %d)",
		 u->s->what, r->x.errbuf[0] ? r->x.errbuf : curl_easy_strerror(r->rc), r->at,
		 delay / 1000.0, r->tries, URL_MAX_TRIES);
	ret = url_backoff(u, delay);
	return ret < 0 ? ret : rq_request(r);
}

/* Requests for the next planned ranges, up to URL_IN_FLIGHT at once. */
static int fill_window(struct url_in *u)
{
	struct url_ranges *g = u->rg;
	size_t busy = 0;

	for (size_t i = 0; i < URL_SLOTS; i++)
		busy += g->rq[i].used;
	while (busy < URL_IN_FLIGHT && g->next_seg < g->n_segs) {
		struct seg *sg = &g->segs[g->next_seg];
		int r;

		if (sg->end <= g->next) {
			g->next_seg++;
			continue;
		}
		r = rq_start(u, sg->first > g->next ? sg->first : g->next, sg->end);
		if (r < 0)
			return r;
		g->next_seg++;
		busy++;
	}
	return 0;
}

ssize_t url_ranges_read(struct url_in *u, void *buf, size_t len)
{
	struct url_ranges *g = u->rg;
	int ret;

	for (;;) {
		struct rq *r = NULL;

		if (g->next >= u->total)
			return 0;
		/* What the whole-file transfer brought first. */
		if (u->len > 0) {
			size_t k = len < u->len ? len : u->len;

			memcpy(buf, u->stash + u->head, k);
			u->head += k;
			u->len -= k;
			g->next += k;
			return (ssize_t)k;
		}
		for (size_t i = 0; i < URL_SLOTS; i++) {
			struct rq *q = &g->rq[i];

			if (!q->used)
				continue;
			if (q->end <= g->next)
				rq_release(u, q); /* passed over */
			else if (q->at - q->len <= g->next && !r)
				r = q;
		}
		if (!r) {
			/* Nothing planned here: read up to the next plan. */
			uint64_t end = u->total;

			for (size_t i = g->next_seg; i < g->n_segs; i++)
				if (g->segs[i].end > g->next) {
					end = g->segs[i].first > g->next ? g->segs[i].first
									  : g->segs[i].end;
					if (g->segs[i].first <= g->next)
						g->next_seg = i + 1;
					break;
				}
			ret = rq_start(u, g->next, end);
			if (ret < 0)
				return ret;
			continue;
		}
		/* Bytes of r below the reader were skipped. */
		if (r->at - r->len < g->next) {
			uint64_t k = g->next - (r->at - r->len);

			if (k > r->len)
				k = r->len;
			r->head += (size_t)k;
			r->len -= (size_t)k;
			if (r->at < g->next && r->drop_to < g->next)
				r->drop_to = g->next;
		}
		if (r->len > 0) {
			size_t k = len < r->len ? len : r->len;

			memcpy(buf, r->buf + r->head, k);
			r->head += k;
			r->len -= k;
			g->next += k;
			if (!r->active && r->at == r->end && r->len == 0)
				rq_release(u, r);
			return (ssize_t)k;
		}
		if (r->paused) {
			r->paused = false;
			curl_easy_pause(r->easy, CURLPAUSE_CONT);
			continue;
		}
		if (r->done) {
			ret = rq_finish(u, r);
			if (ret < 0)
				return ret;
			continue;
		}
		ret = fill_window(u);
		if (ret >= 0)
			ret = url_run(u, rq_done);
		if (ret >= 0 && !r->done && r->len == 0 && !r->paused)
			ret = url_wait(u);
		if (ret < 0)
			return ret;
	}
}

int64_t url_ranges_skip(struct url_in *u, uint64_t n)
{
	struct url_ranges *g = u->rg;
	uint64_t k = u->len < n ? u->len : n;

	/* The stash first; beyond it nothing is fetched for a skip. */
	u->head += (size_t)k;
	u->len -= (size_t)k;
	g->next += k;
	n -= k;
	if (n > u->total - g->next)
		n = u->total - g->next;
	g->next += n;
	return (int64_t)(k + n);
}

void url_ranges_want(struct bmap_source *s, const struct bmap_map *map)
{
	struct url_in *u = s->input_state;
	struct url_ranges *g;
	size_t n = bmap_map_get_range_count(map);

	/* Only a server that said it takes ranges, for a file of known size
	 * that is still coming. */
	if (u->rg || !u->ok_once || !u->active || u->err || u->total == URL_UNKNOWN ||
	    !u->ranges_ok || u->drop > 0 || !url_is_http(u->easy))
		return;
	g = calloc(1, sizeof(*g));
	if (!g || !(g->segs = calloc(n ? n : 1, sizeof(*g->segs)))) {
		free(g);
		return; /* the whole file then */
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t off, len, end;

		bmap_map_range_bytes(map, i, &off, &len);
		end = off + len < u->total ? off + len : u->total;
		if (end <= u->pos)
			continue; /* here already */
		if (off < u->pos)
			off = u->pos;
		if (g->n_segs > 0 && off <= g->segs[g->n_segs - 1].end + URL_MERGE_GAP)
			g->segs[g->n_segs - 1].end = end;
		else
			g->segs[g->n_segs++] = (struct seg){ off, end };
	}
	/* The whole-file transfer ends here; its stash is read first. */
	curl_multi_remove_handle(u->multi, u->easy);
	u->active = false;
	g->next = u->pos - u->len;
	u->rg = g;
	bmap_log(s->ctx, BMAP_LOG_DEBUG, "%s: fetching %zu ranges of the bmap only", s->what,
		 g->n_segs);
}

void url_ranges_free(struct url_in *u)
{
	struct url_ranges *g = u->rg;

	if (!g)
		return;
	for (size_t i = 0; i < URL_SLOTS; i++) {
		if (g->rq[i].active)
			curl_multi_remove_handle(u->multi, g->rq[i].easy);
		if (g->rq[i].easy)
			curl_easy_cleanup(g->rq[i].easy);
		free(g->rq[i].buf);
	}
	free(g->segs);
	free(g);
	u->rg = NULL;
}
