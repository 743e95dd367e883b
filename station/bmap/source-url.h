/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Internal to the URL input: its state, shared by the whole-file transfer
 * (source-url.c) and the ranged fetch of a raw image's mapped ranges
 * (source-url-ranges.c), and the helpers both use.
 */
#pragma once

#include <stdatomic.h>

#include "source-codec.h"
#include "url.h"

#define URL_STASH_SIZE (1024u * 1024)
/* Resumes in a row that bring no byte before the copy fails; waits of 1, 2,
 * 4, 8 and 16 s between them (half a minute: a server restarting), see
 * url_retry_delay_ms(). */
#define URL_MAX_TRIES 5
/* The test hook for that schedule: milliseconds, comma-separated, one per
 * try (the last repeats); the tests' servers gone for good need not make
 * the suite wait half a minute. Documented in bmaptool(1). */
#define URL_RETRY_DELAYS_ENV "BMAP_URL_RETRY_DELAYS_MS"
#define URL_RETRY_DELAY_MAX_MS (10 * 60 * 1000)
#define URL_UNKNOWN UINT64_MAX
/* An http(s) image is first asked for this much (a Range request), then for
 * the rest: a raw image whose mapped ranges are fetched alone then costs no
 * more than this of a whole-file transfer cut off (the server would have
 * filled the socket buffers, megabytes, before the cut). */
#define URL_HEAD_SIZE (1024u * 1024)

struct url_ranges;

struct url_in {
	struct bmap_source *s;
	CURLM *multi;
	CURL *easy;
	char *url; /* as given, credentials and all: never printed */
	struct url_xfer x;

	/* Body bytes received and not yet read. */
	uint8_t *stash;
	size_t cap, head, len;

	bool active;  /* the easy handle is in the multi handle */
	bool paused;  /* the write callback paused the transfer: stash full */
	bool done;    /* the transfer finished, with rc */
	CURLcode rc;
	bool checked; /* this response's status was checked */
	bool ok_once; /* a response was accepted: a break can be resumed */
	int err;      /* a callback's failure (detail in the context) */
	bool head_req; /* this request asks for the first URL_HEAD_SIZE bytes */
	bool no_head;  /* the server refused that (416): asked plainly */
	bool ranges_ok; /* the server takes Range requests */

	uint64_t pos;	/* bytes of the file received (into the stash) */
	uint64_t start; /* where the current request started */
	uint64_t drop;	/* bytes to drop: a server that ignored our Range */
	uint64_t total; /* the file's length, URL_UNKNOWN until a server says */
	int tries;
	atomic_uint_fast64_t received; /* from the network, for progress */
	/* Set by want(): the mapped ranges are fetched on their own, the
	 * stash holding what the whole-file transfer had brought. */
	struct url_ranges *rg;
};


/* Whether a transfer that failed with @rc may be tried again. */
bool url_resumable(CURLcode rc);
/* The wait before resume number @attempt (1..URL_MAX_TRIES), in ms: the
 * default schedule, or URL_RETRY_DELAYS_ENV's when it is set and valid (a
 * malformed value is ignored whole, so a typo cannot make a copy retry in a
 * tight loop). The one place the schedule is decided. */
int url_retry_delay_ms(int attempt);
/* Waits @ms next to the cancel fd: 0, or -EINTR. */
int url_backoff(struct url_in *u, int ms);
/* Runs curl once; each transfer that ended is handed to @done. */
int url_run(struct url_in *u, void (*done)(struct url_in *u, CURL *easy, CURLcode rc));
/* Waits for the network (at most a second) next to the cancel fd: 0, or
 * -EINTR when cancelled. */
int url_wait(struct url_in *u);

/* bmap_source_want() for a URL: switches to fetching @map's ranges alone
 * when the server takes ranges. */
void url_ranges_want(struct bmap_source *s, const struct bmap_map *map);
ssize_t url_ranges_read(struct url_in *u, void *buf, size_t len);
int64_t url_ranges_skip(struct url_in *u, uint64_t n);
void url_ranges_free(struct url_in *u);
