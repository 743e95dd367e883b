/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What serve.c (the command line and settings) hands to serve-http.c (the
 * HTTP server), and the pages' functions serve-routes.c lists.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "serve.h"

struct serve_settings {
	struct serve_ctx ctx;   /* journal and journal_error: serve-http.c's */
	const char *listen;     /* as given, for messages */
	struct sockaddr_storage addr;
	socklen_t addr_len;
	bool loopback;
	char *tls_cert, *tls_key; /* PEM text, or NULL: plain HTTP */
	char *password;           /* HTTP Basic's, or NULL: none asked */
};

/* "127.0.0.1:8080", "[::1]:8080", "0.0.0.0:0": a numeric address and a
 * port. -EINVAL when @s is not one. */
int serve_parse_listen(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len,
		       bool *ret_loopback);

/* Serves until SIGTERM or SIGINT: 0, or -errno when it could not start. */
int serve_http_run(struct serve_settings *set);

/* serve-work.c: a read-only journal connection, one per thread: opened
 * when the file appears, reopened when it was replaced, a failing open
 * retried when the file changed or after 30 s. */
struct serve_journal {
	struct journal *journal;
	char *error; /* why there is no journal, for the pages */
	dev_t dev;
	ino_t ino;
	time_t last_try;
	struct stat tried, tried_wal; /* the files when opening last failed */
};
void serve_journal_refresh(struct serve_journal *s, const char *path);
void serve_journal_close(struct serve_journal *s);

/* serve-work.c: the pages that may take long, run by SERVE_WORKERS threads
 * with at most SERVE_QUEUE more waiting. */
#define SERVE_WORKERS 2
#define SERVE_QUEUE 4
struct serve_job {
	const struct serve_route *route;
	char *path;
	char **args; /* key, value, key, value... (the query, copied) */
	size_t n_args;
	void *conn; /* serve-http.c's */
	/* The answer: status (or -errno; -ECANCELED: the server stops), the
	 * body in the unlinked file fd (size bytes), the reply's headers. */
	int status, fd;
	uint64_t size;
	const char *content_type, *disposition;
	bool no_store;
	struct serve_job *next;
};
struct serve_pool;
int serve_job_add_arg(struct serve_job *job, const char *key, const char *value);
void serve_job_free(struct serve_job *job);
/* @done is called from a worker thread once a job has its answer. */
int serve_pool_start(const struct serve_settings *set, void (*done)(struct serve_job *job),
		     struct serve_pool **ret);
/* false: too many already (answer 503). Admitted, @admit(job) runs first,
 * before any worker can see the job. */
bool serve_pool_submit(struct serve_pool *p, struct serve_job *job,
		       void (*admit)(struct serve_job *job));
/* Waits for the running jobs; the waiting ones get -ECANCELED. */
void serve_pool_stop(struct serve_pool *p);

/* serve-deadline.c: a connection must send its request's head within
 * @seconds of starting (serve_conn_started) or of being re-armed after an
 * answer (serve_conn_arm(true)); serve_conn_arm(false) once it has. */
struct serve_deadline;
struct serve_conn;
int serve_deadline_start(unsigned seconds, struct serve_deadline **ret);
void serve_deadline_stop(struct serve_deadline *d);
struct serve_conn *serve_conn_started(struct serve_deadline *d, int fd);
void serve_conn_arm(struct serve_deadline *d, struct serve_conn *c, bool armed);
void serve_conn_closed(struct serve_deadline *d, struct serve_conn *c);

/* serve-line.c: a read-only connection to the line's PostgreSQL for any
 * thread: connecting gives up after 3 s, a statement after
 * @statement_timeout_ms, a vanished peer is noticed (keepalives,
 * tcp_user_timeout); after a failure none is tried for 10 s (NULL and the
 * failure's message at once). *ret_error never holds the password. */
struct pg_conn;
struct pg_conn *serve_pg_open(const char *conninfo, unsigned statement_timeout_ms,
			      char **ret_error);

/* The pages (serve-routes.c lists them). */
int serve_live_page(const struct serve_ctx *ctx, const struct serve_request *req,
		    struct serve_reply *reply);
int serve_live_json(const struct serve_ctx *ctx, const struct serve_request *req,
		    struct serve_reply *reply);
int serve_line_page(const struct serve_ctx *ctx, const struct serve_request *req,
		    struct serve_reply *reply);
int serve_static(const struct serve_ctx *ctx, const struct serve_request *req,
		 struct serve_reply *reply);
