/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The image cache filled before any card asks (station.cache_prefill): at
 * the station's start and after each SIGHUP, one process of its own (in
 * its own process group, at the station's priority) takes every profile in turn and asks the
 * cache for its entry exactly as a worker would (cache_acquire(), so the
 * same filler, the same checks, the same room in cache_max_size): an entry
 * already complete is left as it is, a missing one is filled and waited
 * for. A card that arrives meanwhile reads along that fill as along any
 * other (readers never wait). The station's loop never waits for it: it
 * forks it, reaps it as it reaps workers, and stops it (SIGTERM to its pid
 * at a reload, which leaves a fill that cards may be reading to finish; to
 * its whole group at shutdown, filler included, then waits for it). A
 * failed prefill is a warning: the profile's first card fills the entry.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bmap.h"
#include "cache.h"
#include "manager.h"
#include "policy.h"
#include "source.h"
#include "util.h"

#define PREFILL_KILL_GRACE 5.0 /* seconds between SIGTERM and SIGKILL at shutdown */

/* ---- the prefill process ---- */

static atomic_int prefill_cancel;
static volatile sig_atomic_t prefill_let_go;

/* SIGTERM: the station stops, and sent it to the whole group (the filler
 * stops too: the flag is the filler's cancel flag, its handler this one).
 * SIGUSR1: a reload; only this process stops, a fill under way goes on. */
static void on_term(int sig)
{
	if (sig == SIGUSR1)
		prefill_let_go = 1;
	prefill_cancel = 1;
}

enum prefill_result { PF_FILLED, PF_COMPLETE, PF_NOT_CACHED, PF_FAILED, PF_STOPPED };

/* One profile's entry: made complete (@u then holds it, so that the next
 * profile's fill cannot evict it), found complete, not a thing the cache
 * serves (@why says why), or failed (@why). */
/* The data a self-mapped image's entry takes: its map's, when it is known
 * before the image is read; else (a simg read as a stream) its virtual disk. */
static uint64_t self_data_size(struct bmap_source *src)
{
	struct bmap_map *m = NULL;
	uint64_t n;

	if (bmap_source_get_map(src, &m) < 0 || !m)
		return bmap_source_get_image_size(src);
	n = bmap_map_get_mapped_bytes(m);
	bmap_map_free(m);
	return n;
}

/* A profile's qcow2 or Android sparse image without a bmap: its entry
 * (unpacked once, with the bmap made of it: cache_acquire_self), as a
 * worker would ask; PF_NOT_CACHED for any other image (@why unset). */
static enum prefill_result prefill_self(const struct station_config *cfg, const struct profile *p,
					struct cache_use *u, double *ret_secs, char *why,
					size_t why_len)
{
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_source *src = NULL;
	struct bmap_map *map = NULL;
	_cleanup_close_ int image_fd = open_if_regular(p->image);
	enum prefill_result res = PF_NOT_CACHED;
	double t0 = now_monotonic();
	int r;

	if (!ctx || image_fd < 0)
		goto out;
	bmap_ctx_set_check_whole(ctx, false);
	r = bmap_source_open(ctx, p->image, &src);
	if (r < 0 || bmap_source_get_format(src) == BMAP_FORMAT_RAW)
		goto out;
	r = cache_acquire_self(ctx, cfg->cache_dir, cfg->cache_max_size, image_fd, p->image,
			       bmap_source_get_image_size(src), self_data_size(src),
			       &prefill_cancel, u, &map, why, why_len);
	if (r < 0) {
		res = r == -EINTR ? PF_STOPPED : PF_FAILED;
		goto out;
	}
	*ret_secs = now_monotonic() - t0;
	res = u->built ? PF_FILLED : PF_COMPLETE;
out:
	bmap_map_free(map);
	bmap_source_free(src);
	bmap_ctx_free(ctx);
	return res;
}

static enum prefill_result prefill_one(const struct station_config *cfg, const struct profile *p,
				       struct cache_use *u, double *ret_secs, char *why,
				       size_t why_len)
{
	bool url = bmap_location_is_url(p->image);
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_source *src = NULL;
	struct bmap_map *map = NULL;
	_cleanup_free_ char *bmap_path = NULL;
	_cleanup_close_ int image_fd = -1;
	enum prefill_result res = PF_FAILED;
	char signer[41] = "";
	double t0;
	int r;

	if (!ctx)
		return snprintf(why, why_len, "out of memory"), PF_FAILED;
	/* The bmap as a worker finds it. */
	if (p->bmap) {
		bmap_path = strdup(p->bmap);
		if (!bmap_path) {
			snprintf(why, why_len, "out of memory");
			goto out;
		}
	} else if (url) {
		r = bmap_discover_url(ctx, p->image, &bmap_path);
		if (r < 0 && r != -ENOENT) {
			snprintf(why, why_len, "%s", bmap_ctx_get_error(ctx));
			goto out;
		}
	} else if (bmap_discover(p->image, &bmap_path) < 0) {
		bmap_path = NULL;
	}
	if (!bmap_path && !url && p->sig.mode == SIG_REQUIRED) {
		/* The worker refuses every card of it: nothing to fill. */
		snprintf(why, why_len,
			 "the profile has signature = \"required\" and the image '%s' no bmap",
			 p->image);
		res = PF_NOT_CACHED;
		goto out;
	}
	if (!bmap_path && !url) {
		res = prefill_self(cfg, p, u, ret_secs, why, why_len);
		if (res != PF_NOT_CACHED)
			goto out;
	}
	if (!bmap_path) {
		snprintf(why, why_len,
			 "no bmap found for the image '%s' (the cache holds only data a bmap's "
			 "checksums verify; set bmap in the profile)",
			 p->image);
		res = url ? PF_FAILED : PF_NOT_CACHED;
		goto out;
	}
	if (!url) {
		image_fd = open_if_regular(p->image);
		if (image_fd < 0) {
			snprintf(why, why_len, "'%s' is not a regular file: nothing to cache",
				 p->image);
			res = PF_NOT_CACHED;
			goto out;
		}
		/* Its headers only: the filler checks a compressed file whole. */
		bmap_ctx_set_check_whole(ctx, false);
		r = bmap_source_open(ctx, p->image, &src);
		bmap_ctx_set_check_whole(ctx, true);
		if (r < 0) {
			snprintf(why, why_len, "%s", bmap_ctx_get_error(ctx));
			goto out;
		}
		if (bmap_source_get_compression(src) == BMAP_COMP_RAW) {
			snprintf(why, why_len,
				 "'%s' is not compressed: cards are written straight from it",
				 p->image);
			res = PF_NOT_CACHED;
			goto out;
		}
	}
	/* The bmap's signature as the profile's rule says: nothing is filled
	 * for a bmap the worker would refuse. */
	r = policy_load_bmap(ctx, bmap_path, &p->sig, &map, signer);
	if (r < 0) {
		snprintf(why, why_len, "%s", bmap_ctx_get_error(ctx));
		goto out;
	}
	t0 = now_monotonic();
	r = cache_acquire(ctx, cfg->cache_dir, cfg->cache_max_size, url ? -1 : image_fd, p->image,
			  map, &prefill_cancel, u, why, why_len);
	if (r < 0) {
		res = r == -EINTR ? PF_STOPPED : PF_FAILED;
		goto out;
	}
	if (!u->filling) {
		res = PF_COMPLETE;
		goto out;
	}
	log_info("image cache prefill: profile %s: %s '%s' from %s", p->name,
		 u->built ? "filling" : "following the fill of", u->path, p->image);
	r = cache_finished(u, why, why_len);
	*ret_secs = now_monotonic() - t0;
	if (r < 0) {
		res = r == -EINTR && prefill_cancel ? PF_STOPPED : PF_FAILED;
		cache_release(u);
		goto out;
	}
	res = PF_FILLED;
out:
	bmap_source_free(src);
	bmap_map_free(map);
	bmap_ctx_free(ctx);
	return res;
}

static _Noreturn void prefill_run(const struct station_config *cfg)
{
	struct sigaction sa = {.sa_handler = on_term};
	struct cache_use *held = calloc(cfg->n_profiles ? cfg->n_profiles : 1, sizeof(*held));
	unsigned failed = 0;
	sigset_t none;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* No nice of its own: the filler it forks feeds the cards that come
	 * meanwhile (their workers step back to WORKER_FOLLOW_NICE behind a
	 * filler), so it runs at the priority a worker's filler has. */
	if (!held) {
		log_warn("image cache prefill: out of memory; each profile's first card fills its "
			 "entry");
		_exit(EXIT_FAILURE);
	}
	for (size_t i = 0; i < cfg->n_profiles && !prefill_cancel; i++) {
		const struct profile *p = &cfg->profiles[i];
		char why[1024] = "";
		double secs = 0;

		held[i] = (struct cache_use)CACHE_USE_NULL;
		switch (prefill_one(cfg, p, &held[i], &secs, why, sizeof(why))) {
		case PF_FILLED: {
			/* Named as the fill renamed it. */
			size_t n = strlen(held[i].path);

			if (n > 5 && strcmp(held[i].path + n - 5, ".part") == 0)
				n -= 5;
			else if (n > 4 && strcmp(held[i].path + n - 4, ".img") == 0)
				n -= 4; /* (a self-mapped entry: complete when it is served) */
			log_info("image cache prefill: profile %s: '%.*s.img' complete in %.1f s",
				 p->name, (int)n, held[i].path, secs);
			break;
		}
		case PF_COMPLETE:
			log_info("image cache prefill: profile %s: '%s' is complete already",
				 p->name, held[i].path);
			break;
		case PF_NOT_CACHED:
			log_info("image cache prefill: profile %s: nothing to prefill: %s", p->name,
				 why);
			break;
		case PF_STOPPED:
			break;
		case PF_FAILED:
			failed++;
			log_warn("image cache prefill: profile %s: failed: %s; its cards are written "
				 "as before (the first one fills the entry)",
				 p->name, why);
			break;
		}
	}
	/* Stopped with the station: its filler, which had the same SIGTERM,
	 * has removed its part before the station is told this one ended. */
	if (prefill_cancel && !prefill_let_go)
		while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
			;
	/* The entries held are let go with the process. */
	_exit(prefill_cancel ? 2 : failed ? 1 : 0);
}

/* ---- the station's side ---- */

void prefill_start(struct station *st)
{
	pid_t pid, parent = getpid();

	if (!st->cfg->cache_prefill || !st->cfg->cache_dir || !*st->cfg->cache_dir ||
	    !st->cfg->n_profiles || st->stopping)
		return;
	if (st->prefill_pid > 0) {
		/* Still ending after a SIGHUP: started once it is reaped. */
		st->prefill_again = true;
		return;
	}
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		log_warn("image cache prefill: cannot fork: %m; each profile's first card fills "
			 "its entry");
		return;
	}
	if (pid == 0) {
		/* It dies with the station (its filler then ends too, as a
		 * worker's does), and is stopped as a group with its filler. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(EXIT_FAILURE);
		setpgid(0, 0);
		for (struct card *c = st->cards; c; c = c->next)
			if (c->pipe_fd >= 0)
				close(c->pipe_fd);
		prefill_run(st->cfg);
	}
	/* Both sides set the group, so that a kill(-pid) right after the fork
	 * finds it. */
	setpgid(pid, pid);
	st->prefill_pid = pid;
	st->prefill_kill_at = 0;
	st->prefill_again = false;
	st->prefill_started = now_monotonic();
	log_info("image cache prefill started (pid %d): %zu profile(s) into %s", (int)pid,
		 st->cfg->n_profiles, st->cfg->cache_dir);
}

void prefill_stop(struct station *st, bool group)
{
	if (st->prefill_pid <= 0)
		return;
	if (group) {
		/* The filler too: nobody will read what it makes. */
		kill(-st->prefill_pid, SIGTERM);
		if (!st->prefill_kill_at)
			st->prefill_kill_at = now_monotonic() + PREFILL_KILL_GRACE;
		log_info("image cache prefill (pid %d) stopped: the station stops",
			 (int)st->prefill_pid);
	} else {
		/* A fill under way goes on (cards may be reading it; the next
		 * prefill follows it when its profile is still there). */
		kill(st->prefill_pid, SIGUSR1);
		log_info("image cache prefill (pid %d) stopped for the new configuration",
			 (int)st->prefill_pid);
	}
}

bool prefill_reaped(struct station *st, pid_t pid, int status)
{
	if (pid <= 0 || pid != st->prefill_pid)
		return false;
	st->prefill_pid = 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		log_info("image cache prefill finished (pid %d) in %.1f s", (int)pid,
			 now_monotonic() - st->prefill_started);
	else if (WIFEXITED(status) && WEXITSTATUS(status) == 1)
		log_warn("image cache prefill finished (pid %d) in %.1f s, some profiles failed "
			 "(above)",
			 (int)pid, now_monotonic() - st->prefill_started);
	else if (WIFEXITED(status) && WEXITSTATUS(status) == 2)
		log_info("image cache prefill (pid %d) ended, stopped", (int)pid);
	else
		log_warn("image cache prefill (pid %d) ended by signal %d", (int)pid,
			 WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	if (st->prefill_again)
		prefill_start(st);
	return true;
}

bool prefill_running(const struct station *st)
{
	return st->prefill_pid > 0;
}

void prefill_check_timers(struct station *st)
{
	/* The group is named by its leader's pid, which is not reused before
	 * it is reaped. */
	if (st->prefill_pid > 0 && st->prefill_kill_at && now_monotonic() > st->prefill_kill_at) {
		log_warn("image cache prefill (pid %d) did not stop within %.0f s: killed with "
			 "its filler",
			 (int)st->prefill_pid, PREFILL_KILL_GRACE);
		kill(-st->prefill_pid, SIGKILL);
		st->prefill_kill_at = 0;
	}
}
