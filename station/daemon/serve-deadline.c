/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The dashboard's deadline on a request's head: a connection must deliver
 * its request line and headers (and its TLS handshake) within a few
 * seconds of connecting or of its previous answer, else it is shut down.
 *
 * Why: libmicrohttpd's connection timeout counts idle time only, so a
 * client sending one header byte every few seconds is never dropped, and
 * a few addresses of such clients fill every connection slot. MHD 0.9.75
 * has no absolute deadline of its own; serve-http.c tells this file when
 * a connection starts, when its headers are complete, when an answer is
 * done and when it closes, and one thread here shuts down (shutdown(2):
 * MHD then sees the end and closes it) the ones past their deadline.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "manager.h"
#include "serve-internal.h"

struct serve_conn {
	int fd;
	bool armed;
	struct timespec deadline;
	struct serve_conn *prev, *next;
};

struct serve_deadline {
	unsigned seconds;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool quit;
	struct serve_conn *head;
	pthread_t thread;
};

static struct timespec now_plus(unsigned s)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_sec += s;
	return t;
}

static bool past(const struct timespec *now, const struct timespec *t)
{
	return now->tv_sec > t->tv_sec || (now->tv_sec == t->tv_sec && now->tv_nsec >= t->tv_nsec);
}

static void *watch(void *arg)
{
	struct serve_deadline *d = arg;
	struct timespec now, tick;
	unsigned cut;

	pthread_mutex_lock(&d->lock);
	while (!d->quit) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		cut = 0;
		for (struct serve_conn *c = d->head; c; c = c->next) {
			if (!c->armed || !past(&now, &c->deadline))
				continue;
			/* Under the lock: the connection cannot be closed (and
			 * its fd reused) meanwhile, serve_conn_closed() waits. */
			shutdown(c->fd, SHUT_RDWR);
			c->armed = false;
			cut++;
		}
		if (cut)
			log_notice("serve: closed %u connection(s) whose request was not complete "
				   "within %u s",
				   cut, d->seconds);
		clock_gettime(CLOCK_MONOTONIC, &tick);
		tick.tv_sec += 1;
		while (!d->quit && pthread_cond_timedwait(&d->wake, &d->lock, &tick) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

int serve_deadline_start(unsigned seconds, struct serve_deadline **ret)
{
	struct serve_deadline *d = calloc(1, sizeof(*d));
	pthread_condattr_t attr;
	int r;

	if (!d)
		return -ENOMEM;
	d->seconds = seconds;
	pthread_mutex_init(&d->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&d->wake, &attr);
	pthread_condattr_destroy(&attr);
	r = -pthread_create(&d->thread, NULL, watch, d);
	if (r < 0) {
		pthread_cond_destroy(&d->wake);
		pthread_mutex_destroy(&d->lock);
		free(d);
		return r;
	}
	*ret = d;
	return 0;
}

void serve_deadline_stop(struct serve_deadline *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->lock);
	d->quit = true;
	pthread_cond_signal(&d->wake);
	pthread_mutex_unlock(&d->lock);
	pthread_join(d->thread, NULL);
	while (d->head) {
		struct serve_conn *c = d->head;

		d->head = c->next;
		free(c);
	}
	pthread_cond_destroy(&d->wake);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

struct serve_conn *serve_conn_started(struct serve_deadline *d, int fd)
{
	struct serve_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->fd = fd;
	c->armed = true;
	c->deadline = now_plus(d->seconds);
	pthread_mutex_lock(&d->lock);
	c->next = d->head;
	if (d->head)
		d->head->prev = c;
	d->head = c;
	pthread_mutex_unlock(&d->lock);
	return c;
}

void serve_conn_arm(struct serve_deadline *d, struct serve_conn *c, bool armed)
{
	if (!c)
		return;
	pthread_mutex_lock(&d->lock);
	c->armed = armed;
	if (armed)
		c->deadline = now_plus(d->seconds);
	pthread_mutex_unlock(&d->lock);
}

void serve_conn_closed(struct serve_deadline *d, struct serve_conn *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&d->lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		d->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&d->lock);
	free(c);
}
