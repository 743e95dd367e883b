/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The worker process that flashes one card (see worker.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bmap.h"
#include "policy.h"
#include "cache.h"
#include "device.h"
#include "source.h"
#include "util.h"
#include "worker.h"

static atomic_int worker_cancel;
/* Written by the SIGTERM handler: a read of the image that waits on a pipe
 * (a FIFO whose writer stalled) polls this fd too and ends at once. The
 * flag alone cannot end that wait (the read restarts after EINTR), so the
 * worker sat there until its SIGKILL, KILL_GRACE later, unsynced and
 * without a result. */
static int worker_cancel_pipe[2] = { -1, -1 };

/* How much a worker that reads along a cache fill steps back for its filler. */
#define WORKER_FOLLOW_NICE 5

static void on_term(int sig)
{
	int saved = errno;

	(void)sig;
	worker_cancel = 1;
	if (worker_cancel_pipe[1] >= 0)
		(void)!write(worker_cancel_pipe[1], "x", 1);
	errno = saved;
}

struct wctx {
	int fd;
	const char *phase;
	struct cache_use *download; /* a URL's fill this card reads along */
};

__attribute__((format(printf, 2, 3))) static void emit(int fd, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	/* One message per line: no newline may hide inside a text. */
	for (int i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[n++] = '\n';
	(void)loop_write(fd, line, (size_t)n);
}

static void on_progress(void *userdata, uint64_t done, uint64_t total)
{
	struct wctx *w = userdata;
	uint64_t got, size;

	/* While the image comes from its server, the card follows it: what
	 * `status` shows is the download. */
	if (w->download && cache_download(w->download, &got, &size) > 0) {
		emit(w->fd, "progress downloading %" PRIu64 " %" PRIu64, got, size);
		return;
	}
	emit(w->fd, "progress %s %" PRIu64 " %" PRIu64, w->phase, done, total);
}

static int finish(int fd, const char *outcome, uint64_t bytes, const uint8_t *data,
		  const uint8_t *readback, const char *error)
{
	char h1[65] = "-", h2[65] = "-";

	if (data)
		hex_encode(data, 32, h1);
	if (readback)
		hex_encode(readback, 32, h2);
	if (error)
		emit(fd, "error %s", error);
	emit(fd, "result %s %" PRIu64 " %s %s", outcome, bytes, h1, h2);
	return strcmp(outcome, "success") == 0 ? 0 : 1;
}

/*
 * After a failed copy or read-back: was the card pulled? The daemon learns
 * it from udev or the device's size, but the worker's own I/O often fails
 * first (a write past the new end: ENOSPC; a read: end of device), and its
 * result would then read 'failed' or 'verify_failed' for a card that is
 * simply gone. A medium of size 0, or a device that answers ENODEV, ENXIO
 * or ENOMEDIUM, is gone (bmap_target_medium_gone()): the result is then
 * 'removed'.
 */
static int finish_failed(int fd, struct bmap_target *dst, int err, const char *outcome,
			 const char *phase, uint64_t bytes, const uint8_t *data, const char *error)
{
	char why[1024];

	if (err == -EINTR)
		return finish(fd, "interrupted", bytes, data, NULL, error);
	if (bmap_target_medium_gone(dst, err)) {
		snprintf(why, sizeof(why), "the card was removed while %s: %s", phase, error);
		return finish(fd, "removed", bytes, data, NULL, why);
	}
	return finish(fd, outcome, bytes, data, NULL, error);
}

/* The image's source: the file open as @image_fd when there is one (the
 * one the cache is keyed on, whatever the name holds by now), by a
 * description of its own (its offset is not shared with the filler's,
 * which reads @image_fd); else @image by its name. The message is in @why. */
/* After a range of a card copied from the image cache failed its
 * checksum: the fill's verdict when the card read along it, else the
 * complete entry checked again (cache_entry_check: removed if damaged).
 * 0 when the cache is not at fault, -EINTR, or -errno with @why. */
static int cache_at_fault(struct cache_use *cache, struct bmap_source *src,
			  const struct bmap_map *map, char *why, size_t why_len)
{
	if (cache->filling)
		return cache_finished(cache, why, why_len);
	return cache_entry_check(cache, bmap_source_get_fd(src), map, &worker_cancel, why,
				 why_len);
}

static int open_image(struct bmap_ctx *ctx, const char *image, int image_fd,
		      struct bmap_source **ret, char *why, size_t why_len)
{
	char self[64];
	int fd, r;

	if (image_fd < 0) {
		r = bmap_source_open_cancel(ctx, image, worker_cancel_pipe[0], ret);
	} else {
		snprintf(self, sizeof(self), "/proc/self/fd/%d", image_fd);
		fd = open(self, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			return snprintf(why, why_len,
					"cannot open the image file '%s' again through %s: %m "
					"(is /proc mounted?)",
					image, self),
			       -errno;
		r = bmap_source_open_fd_cancel(ctx, fd, image, worker_cancel_pipe[0], ret);
	}
	if (r < 0)
		snprintf(why, why_len, "%s", bmap_ctx_get_error(ctx));
	return r;
}

/* A self-mapped image without a bmap, with the cache: unpacked there once
 * (cache-self.c), then copied from the entry with the bmap made of it, as
 * a compressed image's entry. 0 with *@src and *@map replaced; -1 when the
 * cache cannot serve (a note says why; the image is read straight); a fill
 * that failed (a simg's wrong CRC32: never served, never read straight)
 * fails the card: finish()'s value + 1. */
static int worker_cache_self(struct bmap_ctx *ctx, const struct worker_job *job, int fd,
			     int image_fd, struct cache_use *cache, struct bmap_source **src,
			     struct bmap_map **map)
{
	const char *format = bmap_format_name(bmap_source_get_format(*src));
	struct bmap_source *cached = NULL;
	struct bmap_map *entry_map = NULL;
	char why[1024];
	int r, cfd;

	r = cache_acquire_self(ctx, job->cache_dir, job->cache_max_size, image_fd, job->image,
			       bmap_source_get_image_size(*src),
			       *map ? bmap_map_get_mapped_bytes(*map) : bmap_source_get_image_size(*src),
			       &worker_cancel, cache, &entry_map, why, sizeof(why));
	if (r == -EINTR)
		return finish(fd, "interrupted", 0, NULL, NULL, why) + 1;
	if (r < 0 && cache->fill_failed)
		return finish(fd, "failed", 0, NULL, NULL, why) + 1;
	if (r < 0) {
		emit(fd, "note cache not used for the %s image: %s", format, why);
		return -1;
	}
	cfd = cache->data_fd;
	cache->data_fd = -1;
	if (bmap_source_open_raw_fd(ctx, cfd, cache->path, &cached) < 0) {
		emit(fd, "note cache not used: %s", bmap_ctx_get_error(ctx));
		bmap_map_free(entry_map);
		cache_release(cache);
		return -1;
	}
	bmap_source_free(*src);
	*src = cached;
	bmap_map_free(*map);
	*map = entry_map;
	emit(fd, "note cache %s: %s (the %s image's virtual disk, with the bmap made of it)",
	     cache->built ? "built" : "used", cache->path, format);
	return 0;
}

int worker_run(const struct worker_job *job, int fd)
{
	struct bmap_target_opts topts = { .mode = BMAP_TARGET_WRITE };
	struct bmap_copy_opts copts = { .cancel = &worker_cancel, .progress = on_progress };
	struct wctx w = { .fd = fd, .phase = "writing" };
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_source *src = NULL;
	struct bmap_target *dst = NULL;
	struct bmap_map *map = NULL;
	struct cache_use cache = CACHE_USE_NULL;
	struct bmap_copy_result cres;
	struct bmap_verify_result vres;
	_cleanup_free_ char *bmap_path = NULL, *content = NULL, *shown = NULL;
	bool url = bmap_location_is_url(job->image);
	char signer[41] = "";
	bool self_map = false, self_stream = false, unchecked = false;
	struct sigaction sa = { .sa_handler = on_term };
	sigset_t all;
	char reason[1024];
	_cleanup_close_ int image_fd = -1;
	int r, ret;

	/* The daemon blocks signals for its signalfd; the child must not. The
	 * handlers come first: a SIGTERM sent right after the fork (a pulled
	 * card, a job_timeout) is pending until the unblock, and would kill
	 * the worker by default action, unsynced and without a result. */
	if (pipe2(worker_cancel_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		worker_cancel_pipe[0] = worker_cancel_pipe[1] = -1;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	copts.progress_userdata = &w;
	/* verify = none: not even the bmap's range checksums as data passes. */
	copts.no_verify = job->verify == VERIFY_NONE;

	shown = bmap_url_display(job->image);
	if (!ctx || !shown) {
		bmap_ctx_free(ctx);
		return finish(fd, "failed", 0, NULL, NULL, "out of memory");
	}
	/* A card is never written straight from the network: a slow or
	 * broken server would leave it half written, and N cards would
	 * download the image N times. */
	if (url && !(job->cache_dir && *job->cache_dir)) {
		ret = finish(fd, "failed", 0, NULL, NULL,
			     "the image is a URL, which needs the image cache: set "
			     "station.cache_dir");
		goto out;
	}

	/* The map first: its image size decides whether the card is big enough. */
	if (job->bmap) {
		bmap_path = strdup(job->bmap);
	} else if (url) {
		r = bmap_discover_url(ctx, job->image, &bmap_path);
		if (r < 0 && r != -ENOENT) {
			ret = finish(fd, "failed", 0, NULL, NULL, bmap_ctx_get_error(ctx));
			goto out;
		}
	} else if (bmap_discover(job->image, &bmap_path) < 0) {
		bmap_path = NULL;
	}
	if (url && !bmap_path) {
		char why[PATH_MAX + 128];

		snprintf(why, sizeof(why),
			 "no bmap found next to the image URL %s: set bmap in the profile", shown);
		ret = finish(fd, "failed", 0, NULL, NULL, why);
		goto out;
	}
	/* The cache is keyed on and filled from the file opened here, with
	 * the source: what a rename onto the image's name brings later is
	 * another job's. */
	if (job->cache_dir && *job->cache_dir && !url)
		image_fd = open_if_regular(job->image);
	/* With the cache, only the image's headers are read here: its filler
	 * checks a compressed file whole before any of it reaches a card, and
	 * a complete entry was checked when it was filled (a .tar.gz would
	 * otherwise be decoded once per card for the check alone). An image
	 * the cache does not serve is opened again with the check, below. */
	unchecked = image_fd >= 0;
	bmap_ctx_set_check_whole(ctx, !unchecked);
	/* A URL is opened by the cache's filler, once for every card. */
	r = url ? 0 : open_image(ctx, job->image, image_fd, &src, reason, sizeof(reason));
	bmap_ctx_set_check_whole(ctx, true);
	if (r < 0) {
		ret = finish(fd, "failed", 0, NULL, NULL, reason);
		goto out;
	}
	/* A qcow2 or Android sparse image without a bmap brings its own map
	 * (its virtual disk's data, without checksums); a sparse image read
	 * as a stream tells it only as it is read (copied with source_map). */
	if (!bmap_path && bmap_source_get_format(src) != BMAP_FORMAT_RAW) {
		r = bmap_source_get_map(src, &map);
		if (r == -EAGAIN) {
			self_stream = true;
			copts.source_map = true;
		} else if (r < 0) {
			ret = finish(fd, "failed", 0, NULL, NULL, bmap_ctx_get_error(ctx));
			goto out;
		}
		self_map = true;
		emit(fd, "note the map comes from the %s image itself (no bmap: its data "
			 "carries no checksums%s)",
		     bmap_format_name(bmap_source_get_format(src)),
		     job->verify == VERIFY_CHECKSUMS
			     ? "; verify = checksums checks nothing more: use verify = readback"
			     : "");
	}
	if (!bmap_path && !self_map && !url && bmap_source_get_raw_fd(src) < 0) {
		char why[PATH_MAX + 96];

		snprintf(why, sizeof(why),
			 "no bmap found for the compressed image '%s': set bmap in the profile",
			 job->image);
		ret = finish(fd, "failed", 0, NULL, NULL, why);
		goto out;
	}
	if (!bmap_path && job->sig && job->sig->mode == SIG_REQUIRED) {
		/* A self-mapped image's own map is signed by no one either. */
		ret = finish(fd, "refused", 0, NULL, NULL,
			     "the bmap is gone, and the profile has signature = \"required\": "
			     "nothing was written");
		goto out;
	}
	/* The signature is verified again here, on the bytes this worker
	 * parses: what the probe verified may have been replaced since. */
	if (bmap_path)
		r = policy_load_bmap(ctx, bmap_path, job->sig, &map, signer);
	else if (!self_map)
		r = bmap_map_from_file(ctx, bmap_source_get_raw_fd(src), job->image, 4096, &map);
	else
		r = 0;
	if (r < 0) {
		ret = finish(fd, r == -EKEYREJECTED ? "refused" : "failed", 0, NULL, NULL,
			     bmap_ctx_get_error(ctx));
		goto out;
	}
	if (bmap_path && strcmp(signer, job->signer ? job->signer : "") != 0) {
		char why[256];

		snprintf(why, sizeof(why),
			 "the bmap's signer changed since the job was recorded (%s, now %s): "
			 "nothing was written; put the card in again",
			 job->signer ? job->signer : "unsigned", signer[0] ? signer : "unsigned");
		ret = finish(fd, "failed", 0, NULL, NULL, why);
		goto out;
	}
	/* The journal's row names the bmap the job was queued with: a bmap
	 * replaced since then is not silently used under that name. */
	if (bmap_path && job->bmap_sha256) {
		char hex[65], why[PATH_MAX + 256];

		hex_encode(bmap_map_get_file_sha256(map), 32, hex);
		if (strcmp(hex, job->bmap_sha256) != 0) {
			_cleanup_free_ char *bmap_shown = bmap_url_display(bmap_path);

			snprintf(why, sizeof(why),
				 "the bmap '%s' changed since the job was recorded (sha256 %.12s..., "
				 "now %.12s...): nothing was written; put the card in again to use "
				 "the new one",
				 bmap_shown ? bmap_shown : "?", job->bmap_sha256, hex);
			ret = finish(fd, "failed", 0, NULL, NULL, why);
			goto out;
		}
	}

	/* A compressed image is decompressed once into the cache and every
	 * card is copied from there; without the cache, straight from it. */
	if (job->cache_dir && *job->cache_dir && self_map) {
		r = worker_cache_self(ctx, job, fd, image_fd, &cache, &src, &map);
		if (r > 0) {
			ret = r - 1;
			goto out;
		}
		if (r == 0) {
			self_stream = false;
			copts.source_map = false;
			unchecked = false;
			copts.source_checked = job->verify == VERIFY_READBACK;
		}
	} else if (job->cache_dir && *job->cache_dir &&
		   (url || bmap_source_get_compression(src) != BMAP_COMP_RAW)) {
		char why[512];

		if ((url || image_fd >= 0) &&
		    cache_acquire(ctx, job->cache_dir, job->cache_max_size, url ? -1 : image_fd,
				  job->image, map, &worker_cancel, &cache, why, sizeof(why)) == 0) {
			struct bmap_source *cached = NULL;

			/* An entry is the raw image, whatever its first bytes
			 * look like (or before they are filled). */
			int cfd = cache.data_fd;

			cache.data_fd = -1;
			if (bmap_source_open_raw_fd(ctx, cfd, cache.path, &cached) == 0) {
				bmap_source_free(src);
				src = cached;
				unchecked = false;
				/* The entry was checked against the map as it was
				 * filled, and the card is read back against it: its
				 * data is not hashed again on the way to the card. */
				copts.source_checked = job->verify == VERIFY_READBACK;
				/* Written from as far as it is filled. The filler
				 * feeds every card: on a busy machine it gets the CPU
				 * first (its process keeps the nice value it was
				 * forked with; the cards' workers step back). */
				if (cache.filling) {
					if (url)
						w.download = &cache;
					copts.wait = cache_wait;
					copts.wait_userdata = &cache;
					errno = 0;
					if (nice(WORKER_FOLLOW_NICE) < 0 && errno)
						emit(fd, "note cannot lower the worker's priority: %m");
				}
				emit(fd, "note cache %s: %s%s", cache.built ? "built" : "used", cache.path,
				     cache.filling ? " (read while it is filled)" : "");
			} else {
				emit(fd, "note cache not used: %s", bmap_ctx_get_error(ctx));
			}
		} else {
			emit(fd, "note cache not used: %s", why);
		}
		if (url && !src) {
			char msg[1024];

			snprintf(msg, sizeof(msg),
				 "the image %s cannot be had through the image cache (it is never "
				 "written straight from the network): %s",
				 shown, cache.path ? bmap_ctx_get_error(ctx) : why);
			ret = finish(fd, "failed", 0, NULL, NULL, msg);
			goto out;
		}
	}

	if (unchecked && bmap_source_get_compression(src) != BMAP_COMP_RAW) {
		bmap_source_free(src);
		src = NULL;
		r = open_image(ctx, job->image, image_fd, &src, reason, sizeof(reason));
		if (r < 0) {
			ret = finish(fd, "failed", 0, NULL, NULL, reason);
			goto out;
		}
	}

	/* A sparse image read as a stream: its map is known once it is
	 * read, its disk's size from its header. */
	topts.image_size = map ? bmap_map_get_image_size(map) : bmap_source_get_image_size(src);
	/* A card swapped since its event is refused before any open for
	 * writing; the check on the writing fd below closes the race. */
	if (device_diskseq_check_node(job->devnode, job->diskseq, reason, sizeof(reason)) < 0) {
		ret = finish(fd, "refused", 0, NULL, NULL, reason);
		goto out;
	}
	r = bmap_target_open(ctx, job->devnode, &topts, &dst);
	if (r < 0) {
		/* Nothing was written: a refusal, with the library's reason. */
		ret = finish(fd, "refused", 0, NULL, NULL, bmap_ctx_get_error(ctx));
		goto out;
	}
	if (device_diskseq_check(bmap_target_get_fd(dst), job->diskseq, reason, sizeof(reason)) < 0) {
		ret = finish(fd, "refused", 0, NULL, NULL, reason);
		goto out;
	}
	content = device_probe_content(bmap_target_get_fd(dst));
	emit(fd, "content-before %s", content);

	r = bmap_copy(ctx, src, map, dst, &copts, &cres);
	if (r < 0) {
		char why[PATH_MAX + 256];

		/* A range's checksum, hashed on the way: data read while it
		 * was filled is checked here too, so a bad image may fail here
		 * first (the filler's verdict, which comes soon after, names
		 * it); from a complete entry (verify = checksums, none) it is
		 * the entry's damage, found by the copy itself. */
		if (r == -EBADMSG && (cache.filling || cache.path)) {
			int c = cache_at_fault(&cache, src, map, why, sizeof(why));

			if (c == -EINTR) {
				r = c;
			} else if (c < 0) {
				ret = finish(fd, "failed", 0, NULL, NULL, why);
				goto out;
			}
		}
		ret = finish_failed(fd, dst, r, "failed", "writing", 0, NULL,
				    bmap_ctx_get_error(ctx));
		goto out;
	}
	/* The stream's map, now that it was read to its end, for the discard
	 * and the read-back. */
	if (self_stream && bmap_source_get_map(src, &map) < 0) {
		ret = finish_failed(fd, dst, -EIO, "failed", "writing", cres.bytes_written,
				    cres.data_sha256, bmap_ctx_get_error(ctx));
		goto out;
	}
	if (job->discard) {
		char note[512];

		r = worker_discard(ctx, dst, map, &worker_cancel, note, sizeof(note));
		if (r < 0) {
			ret = finish_failed(fd, dst, r, "failed", "discarding", cres.bytes_written,
					    cres.unhashed ? NULL : cres.data_sha256,
					    bmap_ctx_get_error(ctx));
			goto out;
		}
		emit(fd, "note %s", note);
	}

	copts.wait = NULL;
	w.download = NULL;
	if (job->verify == VERIFY_READBACK) {
		struct bmap_source *again = NULL;

		w.phase = "verifying";
		/* Without range checksums the image itself is read again. */
		if (!bmap_map_has_range_checksums(map) &&
		    open_image(ctx, job->image, image_fd, &again, reason, sizeof(reason)) < 0) {
			ret = finish(fd, "verify_failed", cres.bytes_written, cres.data_sha256, NULL,
				     reason);
			goto out;
		}
		r = bmap_verify(ctx, dst, map, again, &copts, &vres);
		bmap_source_free(again);
		/* Not hashed on the way, the copy's digest is the map's: what
		 * the card should hold, not what it was given. A failed row
		 * records none. */
		const uint8_t *data = cres.unhashed && r < 0 ? NULL : cres.data_sha256;

		if (r == -EBADMSG && cres.unhashed) {
			char why[PATH_MAX + 256];
			int c;

			/* The card, the image (a fill that fails its checks) or
			 * the entry may be at fault. */
			c = cache_at_fault(&cache, src, map, why, sizeof(why));
			if (c == -EINTR) {
				ret = finish_failed(fd, dst, c, "verify_failed", "verifying",
						    cres.bytes_written, NULL,
						    "interrupted while the card's read-back failure "
						    "was told apart from the image cache's");
				goto out;
			}
			if (c < 0) {
				ret = finish(fd, "failed", cres.bytes_written, NULL, NULL, why);
				goto out;
			}
		}
		if (r < 0) {
			ret = finish_failed(fd, dst, r, "verify_failed", "verifying",
					    cres.bytes_written, data, bmap_ctx_get_error(ctx));
			goto out;
		}
	}
	/* Read while it was filled: every mapped range was checked against
	 * the bmap here as it was copied (and read back, with verify =
	 * readback), so the card does not wait for the filler to check the
	 * rest of the image (a gzip or zstd stream to its end). A fill
	 * that failed meanwhile fails it (with verify = none too, which checked
	 * nothing itself). */
	if (cache.filling) {
		char why[1024];

		r = cache_fill_status(&cache, why, sizeof(why));
		if (r < 0) {
			ret = finish(fd, "failed", cres.bytes_written, cres.data_sha256, NULL, why);
			goto out;
		}
		if (r > 0)
			emit(fd, "note cache: the card's data passed its checks; the filler still "
				 "checks the rest of the image");
	}
	free(content);
	content = device_probe_content(bmap_target_get_fd(dst));
	emit(fd, "content-after %s", content);
	ret = finish(fd, "success", cres.bytes_written, cres.data_sha256,
		     job->verify == VERIFY_READBACK ? vres.data_sha256 : NULL, NULL);
out:
	bmap_target_free(dst);
	bmap_map_free(map);
	bmap_source_free(src);
	cache_release(&cache);
	bmap_ctx_free(ctx);
	return ret;
}

int worker_parse_line(char *line, struct worker_msg *m)
{
	char *sp = strchr(line, ' ');
	const char *rest = sp ? sp + 1 : "";

	memset(m, 0, sizeof(*m));
	if (sp)
		*sp = '\0';
	if (strcmp(line, "progress") == 0) {
		m->type = WMSG_PROGRESS;
		if (sscanf(rest, "%15s %" SCNu64 " %" SCNu64, m->phase, &m->done, &m->total) != 3)
			return -EINVAL;
	} else if (strcmp(line, "content-before") == 0) {
		m->type = WMSG_CONTENT_BEFORE;
		m->text = rest;
	} else if (strcmp(line, "content-after") == 0) {
		m->type = WMSG_CONTENT_AFTER;
		m->text = rest;
	} else if (strcmp(line, "result") == 0) {
		m->type = WMSG_RESULT;
		if (sscanf(rest, "%31s %" SCNu64 " %64s %64s", m->outcome, &m->bytes, m->data_sha256,
			   m->readback_sha256) != 4)
			return -EINVAL;
	} else if (strcmp(line, "error") == 0) {
		m->type = WMSG_ERROR;
		m->text = rest;
	} else if (strcmp(line, "note") == 0) {
		m->type = WMSG_NOTE;
		m->text = rest;
	} else {
		return -EINVAL;
	}
	return 0;
}
