/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The dashboard's worker threads and its journal handles.
 *
 * Why workers: the pages that can take seconds (a download of every job,
 * a report of the line's PostgreSQL, the line page) must not hold the one
 * thread that answers the live page. serve-http.c hands them here: a
 * small fixed number of threads, each with its own read-only journal
 * connection (SQLite connections are not shared between threads), and a
 * short queue; beyond it the request is refused (503) rather than queued
 * without bound. A worker writes the page into an unlinked temporary file,
 * which the server then sends from the file: a 90 MB download is never
 * held in memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
#include "manager.h"
#include "serve-internal.h"

/* A journal that cannot be opened is tried again when its file changed,
 * else at most this often: opening runs PRAGMA quick_check, which a big
 * damaged file makes slow. */
#define SERVE_JOURNAL_RETRY_S 30
#define SERVE_WORKER_NICE 10

struct serve_pool {
	const struct serve_settings *set;
	void (*done)(struct serve_job *job);
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct serve_job *head, *tail;
	unsigned queued, busy;
	bool quit;
	unsigned n_threads;
	pthread_t threads[SERVE_WORKERS];
	struct serve_journal journals[SERVE_WORKERS];
};

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

void serve_journal_refresh(struct serve_journal *s, const char *path)
{
	struct journal *j = NULL;
	struct stat st, wal;
	char *err = NULL, *wal_path = NULL;
	time_t now = time(NULL);
	int r;

	if (stat(path, &st) < 0) {
		int e = errno;

		journal_close(s->journal);
		s->journal = NULL;
		free(s->error);
		if (asprintf(&s->error, e == ENOENT
				     ? "the journal %s does not exist yet: no station has run here"
				     : "cannot read the journal %s: %s",
			     path, strerror(e)) < 0)
			s->error = NULL;
		return;
	}
	if (s->journal && st.st_dev == s->dev && st.st_ino == s->ino)
		return;
	/* A station creating or migrating the journal writes its -wal first. */
	if (asprintf(&wal_path, "%s-wal", path) < 0 || stat(wal_path, &wal) < 0)
		memset(&wal, 0, sizeof(wal));
	free(wal_path);
	if (!s->journal && s->error && s->last_try && now - s->last_try < SERVE_JOURNAL_RETRY_S &&
	    same_file(&st, &s->tried) && same_file(&wal, &s->tried_wal))
		return;
	s->last_try = now;
	s->tried = st;
	s->tried_wal = wal;
	r = journal_open(path, true, &j, &err);
	journal_close(s->journal);
	s->journal = NULL;
	free(s->error);
	s->error = NULL;
	if (r < 0) {
		log_warn("serve: %s", err ? err : "cannot open the journal");
		s->error = err ? err : strdup("cannot open the journal");
		return;
	}
	free(err);
	s->journal = j;
	s->dev = st.st_dev;
	s->ino = st.st_ino;
}

void serve_journal_close(struct serve_journal *s)
{
	journal_close(s->journal);
	free(s->error);
	memset(s, 0, sizeof(*s));
}

static const char *job_arg(const struct serve_request *req, const char *key)
{
	const struct serve_job *job = req->impl;

	for (size_t i = 0; i < job->n_args; i++)
		if (strcmp(job->args[2 * i], key) == 0)
			return job->args[2 * i + 1];
	return NULL;
}

int serve_job_add_arg(struct serve_job *job, const char *key, const char *value)
{
	char **a = realloc(job->args, (job->n_args + 1) * 2 * sizeof(*a));

	if (!a)
		return -ENOMEM;
	job->args = a;
	a[2 * job->n_args] = strdup(key);
	a[2 * job->n_args + 1] = strdup(value ? value : "");
	job->n_args++;
	if (!a[2 * job->n_args - 2] || !a[2 * job->n_args - 1])
		return -ENOMEM;
	return 0;
}

void serve_job_free(struct serve_job *job)
{
	if (!job)
		return;
	for (size_t i = 0; i < 2 * job->n_args; i++)
		free(job->args[i]);
	free(job->args);
	free(job->path);
	if (job->fd >= 0)
		close(job->fd);
	free(job);
}

/* The page into an unlinked file of its own (O_TMPFILE: nothing to clean
 * up, whatever happens to the process). */
static void job_run(struct serve_pool *p, struct serve_journal *jr, struct serve_job *job)
{
	const char *tmp = getenv("TMPDIR");
	struct serve_request req = { .path = job->path, .arg = job_arg, .impl = job };
	struct serve_reply reply = { 0 };
	struct serve_ctx ctx = p->set->ctx;
	int fd, fd2, status;
	off_t size;

	serve_journal_refresh(jr, ctx.journal_path);
	ctx.journal = jr->journal;
	ctx.journal_error = jr->error;
	fd = open(tmp && *tmp ? tmp : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		job->status = -errno;
		return;
	}
	fd2 = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	reply.body = fd2 < 0 ? NULL : fdopen(fd2, "w");
	if (!reply.body) {
		job->status = -errno;
		if (fd2 >= 0)
			close(fd2);
		close(fd);
		return;
	}
	status = job->route->fn(&ctx, &req, &reply);
	size = ftello(reply.body);
	if (fclose(reply.body) != 0 && status >= 0)
		status = -EIO;
	if (size < 0 && status >= 0)
		status = -EIO;
	job->status = status;
	job->content_type = reply.content_type;
	job->disposition = reply.disposition;
	job->no_store = reply.no_store;
	job->size = (uint64_t)(size < 0 ? 0 : size);
	job->fd = fd;
}

static void *worker(void *arg)
{
	struct serve_pool *p = arg;
	struct serve_journal *jr;
	struct serve_job *job;
	unsigned me;

	/* Behind the polling thread for the CPU (Linux: per thread): on a
	 * station's two cores a download must not slow the live page. */
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), SERVE_WORKER_NICE) < 0)
		log_info("serve: worker: setpriority: %m");
	pthread_mutex_lock(&p->lock);
	me = p->n_threads++;
	jr = &p->journals[me];
	for (;;) {
		while (!p->head && !p->quit)
			pthread_cond_wait(&p->wake, &p->lock);
		job = p->head;
		if (!job)
			break;
		p->head = job->next;
		if (!p->head)
			p->tail = NULL;
		p->queued--;
		if (p->quit) {
			/* Stopping: what waits is refused, not started. */
			job->status = -ECANCELED;
		} else {
			p->busy++;
			pthread_mutex_unlock(&p->lock);
			job_run(p, jr, job);
			pthread_mutex_lock(&p->lock);
			p->busy--;
		}
		pthread_mutex_unlock(&p->lock);
		p->done(job);
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int serve_pool_start(const struct serve_settings *set, void (*done)(struct serve_job *job),
		     struct serve_pool **ret)
{
	struct serve_pool *p = calloc(1, sizeof(*p));
	unsigned started = 0;
	int r = 0;

	if (!p)
		return -ENOMEM;
	p->set = set;
	p->done = done;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->wake, NULL);
	for (; started < SERVE_WORKERS; started++) {
		r = -pthread_create(&p->threads[started], NULL, worker, p);
		if (r < 0)
			break;
	}
	if (r < 0) {
		pthread_mutex_lock(&p->lock);
		p->quit = true;
		pthread_cond_broadcast(&p->wake);
		pthread_mutex_unlock(&p->lock);
		for (unsigned i = 0; i < started; i++)
			pthread_join(p->threads[i], NULL);
		free(p);
		return r;
	}
	*ret = p;
	return 0;
}

bool serve_pool_submit(struct serve_pool *p, struct serve_job *job,
		       void (*admit)(struct serve_job *job))
{
	bool ok;

	pthread_mutex_lock(&p->lock);
	ok = !p->quit && p->queued + p->busy < SERVE_WORKERS + SERVE_QUEUE;
	if (ok) {
		admit(job);
		job->next = NULL;
		if (p->tail)
			p->tail->next = job;
		else
			p->head = job;
		p->tail = job;
		p->queued++;
		pthread_cond_signal(&p->wake);
	}
	pthread_mutex_unlock(&p->lock);
	return ok;
}

void serve_pool_stop(struct serve_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->quit = true;
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < SERVE_WORKERS; i++)
		pthread_join(p->threads[i], NULL);
	for (unsigned i = 0; i < SERVE_WORKERS; i++)
		serve_journal_close(&p->journals[i]);
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
