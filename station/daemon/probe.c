/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Reading a profile's bmap away from the event loop: a bmap can take long
 * to parse (millions of ranges, or a hostile one) and the station must go
 * on seeing cards meanwhile. A probe is a child process that loads the
 * bmap, verifies its signature as the profile says, and writes back what
 * the decision needs (image size, the bmap's SHA-256, the signer, or why
 * the signature is refused) in one line; its facts are kept, keyed by the
 * identity of the bmap file, of its signature files and keyring and by the
 * profile's signature rule, so each version of a bmap is read once, not once
 * per card. A bmap at a URL (or looked for next to an image URL) has no
 * identity to stat without asking its server: its facts are keyed on the
 * URL and the rule, and kept for PROBE_URL_TTL seconds, after which the next
 * card probes again (a bmap replaced on the server is seen within that
 * time; the worker's own check of the bmap's SHA-256 catches the rest).
 * Cards that wait for a probe are CARD_PROBING; they go on when it ends.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bmap.h"
#include "manager.h"
#include "policy.h"
#include "util.h"

#define PROBE_TIMEOUT 120.0 /* seconds: then the bmap counts as unreadable */
#define PROBES_KEPT 32	    /* facts of this many bmap versions are kept */
#define PROBE_URL_TTL 60.0  /* seconds a URL's facts are trusted */

enum probe_state { PROBE_RUNNING, PROBE_DONE, PROBE_FAILED, PROBE_REFUSED };

struct probe {
	struct probe *next;
	char *image;   /* the profile's image (a URL's is asked whether it is there) */
	char *path;    /* the bmap, or the image URL the bmap is looked for next to */
	bool discover; /* path is the image URL */
	bool url;      /* keyed on the URL and a time, not on a file's identity */
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
	char *sig_key; /* the signature rule and files it was verified with */
	enum probe_state state;
	struct bmap_facts facts;
	char why[600];
	char bmap[2048]; /* the bmap found, when discover */
	pid_t pid;
	int fd;
	double started, used, finished;
};

/* What else the verdict depends on: the profile's rule, and the files it
 * reads besides the bmap (BMAP.asc, BMAP.sig, the keyring, the default
 * keyring's pubring.kbx), each by identity. Malloc'd, or NULL. */
static char *sig_key_of(const char *bmap, const struct sig_policy *sig)
{
	const char *home = getenv("GNUPGHOME"), *user = getenv("HOME");
	char *files[4] = {NULL}, *key = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&key, &len);

	if (!f)
		return NULL;
	fprintf(f, "%d|%s", sig ? (int)sig->mode : 0, sig && sig->keyring ? sig->keyring : "-");
	for (char **fp = sig ? sig->fingerprints : NULL; fp && *fp; fp++)
		fprintf(f, "|%s", *fp);
	if (asprintf(&files[0], "%s.asc", bmap) < 0)
		files[0] = NULL;
	if (asprintf(&files[1], "%s.sig", bmap) < 0)
		files[1] = NULL;
	if (sig && sig->keyring)
		files[2] = strdup(sig->keyring);
	else if (home && *home ? asprintf(&files[2], "%s/pubring.kbx", home) < 0
			       : asprintf(&files[2], "%s/.gnupg/pubring.kbx", user ? user : "") < 0)
		files[2] = NULL;
	for (size_t i = 0; i < 3; i++) {
		struct stat st;

		if (files[i] && stat(files[i], &st) == 0)
			fprintf(f, "|%ju:%ju:%jd:%ld.%ld:%ld.%ld", (uintmax_t)st.st_dev,
				(uintmax_t)st.st_ino, (intmax_t)st.st_size, (long)st.st_mtim.tv_sec,
				st.st_mtim.tv_nsec, (long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
		else
			fprintf(f, "|-");
		free(files[i]);
	}
	if (fclose(f) != 0) {
		free(key);
		return NULL;
	}
	return key;
}

static bool same_file(const struct probe *p, const char *image, const char *path, bool discover,
		      const struct stat *st, const char *sig_key)
{
	if (p->url && p->state != PROBE_RUNNING && now_monotonic() - p->finished > PROBE_URL_TTL)
		return false;
	return strcmp(p->path, path) == 0 && strcmp(p->image, image) == 0 &&
	       p->discover == discover && p->sig_key && sig_key &&
	       strcmp(p->sig_key, sig_key) == 0 && p->dev == st->st_dev && p->ino == st->st_ino &&
	       p->size == st->st_size && p->mtime.tv_sec == st->st_mtim.tv_sec &&
	       p->mtime.tv_nsec == st->st_mtim.tv_nsec && p->ctime.tv_sec == st->st_ctim.tv_sec &&
	       p->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

static void probe_free(struct probe *p)
{
	if (p->fd >= 0)
		close(p->fd);
	free(p->path);
	free(p->image);
	free(p->sig_key);
	free(p);
}

/* The oldest finished entries go once more than PROBES_KEPT are known. */
static void probes_trim(struct station *st)
{
	for (;;) {
		struct probe **oldest = NULL;
		unsigned n = 0;

		for (struct probe **p = &st->probes; *p; p = &(*p)->next) {
			n++;
			if ((*p)->state != PROBE_RUNNING &&
			    (!oldest || (*p)->used < (*oldest)->used))
				oldest = p;
		}
		if (n <= PROBES_KEPT || !oldest)
			return;
		struct probe *victim = *oldest;

		*oldest = victim->next;
		probe_free(victim);
	}
}

/* The child: reads the bmap, writes one line, ends. */
static _Noreturn void probe_child(const char *image, const char *path, bool discover,
				   const struct sig_policy *sig, int fd)
{
	struct bmap_facts f;
	char why[512], line[sizeof(f.bmap) + 200];
	int n, r;

	r = policy_bmap_facts_now(NULL, image, discover ? NULL : path, sig, &f, why, sizeof(why));
	if (r == -EKEYREJECTED)
		n = snprintf(line, sizeof(line), "refuse %s\n", why);
	else if (r < 0)
		n = snprintf(line, sizeof(line), "error %s\n", why);
	else
		n = snprintf(line, sizeof(line), "ok %" PRIu64 " %s %s %s\n", f.image_size, f.sha256,
			     f.signer[0] ? f.signer : "-", f.bmap[0] ? f.bmap : "-");
	_exit(loop_write(fd, line, (size_t)n) < 0 ? EXIT_FAILURE : EXIT_SUCCESS);
}

static int probe_start(struct station *st, const char *image, const char *path, bool discover,
		       const struct sig_policy *sig, char *sig_key, const struct stat *s)
{
	struct probe *p = calloc(1, sizeof(*p));
	pid_t parent = getpid();
	int fds[2];

	if (!p) {
		free(sig_key);
		return -ENOMEM;
	}
	p->fd = -1;
	p->path = strdup(path);
	p->image = strdup(image);
	p->sig_key = sig_key;
	p->discover = discover;
	p->url = discover || bmap_location_is_url(path) || bmap_location_is_url(image);
	if (!p->path || !p->image || pipe2(fds, O_CLOEXEC) < 0) {
		probe_free(p);
		return -ENOMEM;
	}
	fflush(stderr);
	p->pid = fork();
	if (p->pid < 0) {
		int r = -errno;

		close(fds[0]);
		close(fds[1]);
		probe_free(p);
		return r;
	}
	if (p->pid == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(EXIT_FAILURE);
		close(fds[0]);
		probe_child(image, path, discover, sig, fds[1]);
	}
	close(fds[1]);
	p->fd = fds[0];
	p->dev = s->st_dev;
	p->ino = s->st_ino;
	p->size = s->st_size;
	p->mtime = s->st_mtim;
	p->ctime = s->st_ctim;
	p->state = PROBE_RUNNING;
	p->started = p->used = now_monotonic();
	p->next = st->probes;
	st->probes = p;
	probes_trim(st);
	return 0;
}

int probe_bmap_facts(void *userdata, const char *image, const char *bmap,
		     const struct sig_policy *sig, struct bmap_facts *ret, char *why,
		     size_t why_len)
{
	struct station *st = userdata;
	bool discover = !bmap;
	struct stat s = {0};
	char *sig_key;
	int r;

	if (discover)
		bmap = image;
	/* A bmap file that is not there, or not a file, fails at once, with
	 * the loader's words. A URL is only asked for in the probe. */
	if (!discover && !bmap_location_is_url(bmap) && (stat(bmap, &s) < 0 || !S_ISREG(s.st_mode)))
		return policy_bmap_facts_now(NULL, image, bmap, sig, ret, why, why_len);
	sig_key = sig_key_of(bmap, sig);
	if (!sig_key) {
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	for (struct probe *p = st->probes; p; p = p->next) {
		if (!same_file(p, image, bmap, discover, &s, sig_key))
			continue;
		free(sig_key);
		p->used = now_monotonic();
		switch (p->state) {
		case PROBE_RUNNING:
			return -EAGAIN;
		case PROBE_DONE:
			*ret = p->facts;
			snprintf(ret->bmap, sizeof(ret->bmap), "%s", p->bmap);
			return 0;
		case PROBE_FAILED:
			snprintf(why, why_len, "%s", p->why);
			return -EINVAL;
		case PROBE_REFUSED:
			snprintf(why, why_len, "%s", p->why);
			return -EKEYREJECTED;
		}
	}
	r = probe_start(st, image, bmap, discover, sig, sig_key, &s);
	if (r < 0) {
		snprintf(why, why_len, "cannot start reading the bmap: %s", strerror(-r));
		return r;
	}
	return -EAGAIN;
}

static void probe_finish(struct probe *p, int status)
{
	char line[sizeof(p->bmap) + 200];
	ssize_t n = loop_read(p->fd, line, sizeof(line) - 1);
	_cleanup_free_ char *shown = bmap_url_display(p->path);
	char *nl;
	int at = 0;

	close(p->fd);
	p->fd = -1;
	p->pid = 0;
	p->state = PROBE_FAILED;
	p->finished = now_monotonic();
	line[n > 0 ? n : 0] = '\0';
	if ((nl = strchr(line, '\n')))
		*nl = '\0';
	if (strncmp(line, "ok ", 3) == 0 &&
	    sscanf(line + 3, "%" SCNu64 " %64[0-9a-f] %40[0-9A-F-] %n", &p->facts.image_size,
		   p->facts.sha256, p->facts.signer, &at) == 3 &&
	    at > 0 && strlen(p->facts.sha256) == 64) {
		p->state = PROBE_DONE;
		snprintf(p->bmap, sizeof(p->bmap), "%s", strcmp(line + 3 + at, "-") ? line + 3 + at : "");
		if (strcmp(p->facts.signer, "-") == 0)
			p->facts.signer[0] = '\0';
	} else if (strncmp(line, "refuse ", 7) == 0) {
		p->state = PROBE_REFUSED;
		snprintf(p->why, sizeof(p->why), "%.590s", line + 7);
	} else if (strncmp(line, "error ", 6) == 0)
		snprintf(p->why, sizeof(p->why), "%.590s", line + 6);
	else if (!p->why[0] && WIFSIGNALED(status))
		snprintf(p->why, sizeof(p->why), "reading the bmap %s failed (signal %d)", shown ? shown : "",
			 WTERMSIG(status));
	else if (!p->why[0])
		snprintf(p->why, sizeof(p->why), "reading the bmap %s failed (status %d)", shown ? shown : "",
			 WEXITSTATUS(status));
}

bool probe_reaped(struct station *st, pid_t pid, int status)
{
	for (struct probe *p = st->probes; p; p = p->next)
		if (p->state == PROBE_RUNNING && p->pid == pid) {
			probe_finish(p, status);
			card_probed(st);
			return true;
		}
	return false;
}

void probe_check_timers(struct station *st)
{
	double now = now_monotonic();

	for (struct probe *p = st->probes; p; p = p->next)
		if (p->state == PROBE_RUNNING && !p->why[0] && now - p->started > PROBE_TIMEOUT) {
			_cleanup_free_ char *shown = bmap_url_display(p->path);

			snprintf(p->why, sizeof(p->why),
				 "reading the bmap %s took longer than %.0f s (a pipe with no "
				 "writer, a file too large, or a server that does not answer?)",
				 shown ? shown : "", PROBE_TIMEOUT);
			log_warn("%s", p->why);
			kill(p->pid, SIGKILL);
		}
}

void probe_free_all(struct station *st)
{
	while (st->probes) {
		struct probe *p = st->probes;

		st->probes = p->next;
		if (p->state == PROBE_RUNNING)
			kill(p->pid, SIGKILL);
		probe_free(p);
	}
}
