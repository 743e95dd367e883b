/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The dashboard's HTTP server (libmicrohttpd): listening, TLS, the password,
 * the limits on requests and connections, the headers every response
 * carries, and the glue from a request to a page of serve_routes[].
 *
 * Why a slow client cannot stall the others: MHD runs one internal polling
 * thread (epoll) over non-blocking sockets, so a client that sends half a
 * request or reads one byte a second only holds its own connection (until
 * the idle timeout, or the deadline on a request's head), never the thread;
 * and a few addresses cannot hold every connection (6 per address of 256).
 *
 * Why an expensive request cannot either: that thread renders only the
 * cheap pages (the live page, /api/live, the journal's reports a page at a
 * time, charts, metrics), whole into memory. The downloads (format=csv or
 * json), the line reports (source=line) and the line page, which may take
 * seconds or wait on PostgreSQL, go to serve-work.c's worker threads: the
 * connection is suspended meanwhile, resumed when the page is written,
 * and sent from its file. Beyond the workers' short queue: 503.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <microhttpd.h>
#include <systemd/sd-daemon.h>

#include "journal.h"
#include "manager.h"
#include "serve-internal.h"
#include "serve-pages.h"

/* Bounds (see bmap-station(8)). The memory limit covers the request line
 * and headers: beyond it MHD answers 414 or 431 itself. 256 connections
 * of 32 KiB are 8 MiB; a kiosk needs one or two per address, a browser
 * opens up to six. MHD's timeout counts idle time only: the head of a
 * request must also be complete SERVE_HEAD_S after the connection (or its
 * last answer), whatever trickles (serve-deadline.c). */
#define SERVE_MAX_CONNECTIONS 256
#define SERVE_MAX_PER_IP 6
#define SERVE_TIMEOUT_S 5
#define SERVE_HEAD_S 10
#define SERVE_CONN_MEMORY (32u * 1024)
#define SERVE_MAX_URL 2048

static const char csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; "
			  "img-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
			  "base-uri 'none'; form-action 'self'";

struct serve_state {
	struct serve_settings *set;
	struct serve_journal journal; /* the polling thread's */
	struct serve_pool *pool;
	struct serve_deadline *deadline;
};

int serve_parse_listen(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len,
		       bool *ret_loopback)
{
	char host[64];
	const char *colon, *h = s;
	size_t hl;
	char *end;
	unsigned long port;

	if (!s)
		return -EINVAL;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		h = s + 1;
		hl = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= sizeof(host) || !colon[1])
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end || port > 65535 || colon[1] == '-' || colon[1] == '+')
		return -EINVAL;
	memset(ret, 0, sizeof(*ret));
	if (s[0] != '[') {
		struct sockaddr_in *in = (struct sockaddr_in *)ret;

		if (strcmp(host, "localhost") == 0)
			snprintf(host, sizeof(host), "127.0.0.1");
		if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
			return -EINVAL;
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		*ret_len = sizeof(*in);
		*ret_loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ret;

		if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
			return -EINVAL;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*ret_len = sizeof(*in6);
		*ret_loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
	}
	return 0;
}

static void add_headers(struct MHD_Response *resp, const char *type, bool no_store)
{
	MHD_add_response_header(resp, "Content-Security-Policy", csp);
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				type ? type : "text/html; charset=utf-8");
	if (no_store)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
}

/* A short page of our own for the errors (no detail: that is logged). */
static enum MHD_Result reply_error(struct MHD_Connection *conn, unsigned status,
				   const char *text, bool auth)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char *body = NULL;
	int n;

	n = asprintf(&body, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
			    "<title>%u</title></head><body><p>%u %s</p></body></html>\n",
		     status, status, text);
	if (n < 0)
		return MHD_NO;
	resp = MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	add_headers(resp, NULL, true);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	if (auth)
		ret = MHD_queue_basic_auth_fail_response(conn, "bmap-station", resp);
	else
		ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* Compares all of both, so the time taken tells nothing of the password. */
static bool password_equal(const char *given, const char *want)
{
	size_t gl = strlen(given), wl = strlen(want);
	unsigned char diff = gl != wl;

	for (size_t i = 0; i < wl; i++)
		diff |= (unsigned char)(want[i] ^ (i < gl ? given[i] : 0));
	return diff == 0;
}

/* The client's address, for the log. */
static void client_name(struct MHD_Connection *conn, char *buf, size_t len)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	snprintf(buf, len, "?");
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)len);
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf,
			  (socklen_t)len);
}

static bool authorized(struct serve_state *s, struct MHD_Connection *conn)
{
	char *pass = NULL, *user, addr[INET6_ADDRSTRLEN];
	bool ok;

	if (!s->set->password)
		return true;
	/* Any user name: the password is the station's one secret. */
	user = MHD_basic_auth_get_username_password(conn, &pass);
	ok = user && pass && password_equal(pass, s->set->password);
	/* A browser asks first without a password: only a wrong one is news
	 * (never what was tried). */
	if (!ok && pass) {
		client_name(conn, addr, sizeof(addr));
		log_notice("serve: wrong password from %s", addr);
	}
	if (pass) {
		explicit_bzero(pass, strlen(pass));
		MHD_free(pass);
	}
	MHD_free(user);
	return ok;
}

/*
 * Without a password, only a Host that is an address or localhost: a web
 * page elsewhere could otherwise point a name of its own at 127.0.0.1 (DNS
 * rebinding) and read the dashboard from the browser of someone at the
 * station. With a password such a page has no credentials to send.
 */
static bool host_allowed(struct serve_state *s, struct MHD_Connection *conn)
{
	const char *host, *end;
	char name[64], buf[sizeof(struct in6_addr)];
	size_t n;

	if (s->set->password)
		return true;
	host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
	/* HTTP/1.0 without Host: no browser sends that. */
	if (!host)
		return true;
	if (host[0] == '[') {
		end = strchr(host, ']');
		if (!end || (end[1] && end[1] != ':'))
			return false;
		host++;
	} else {
		end = strchr(host, ':');
		if (!end)
			end = host + strlen(host);
	}
	n = (size_t)(end - host);
	if (n == 0 || n >= sizeof(name))
		return false;
	memcpy(name, host, n);
	name[n] = '\0';
	return strcasecmp(name, "localhost") == 0 || inet_pton(AF_INET, name, buf) == 1 ||
	       inet_pton(AF_INET6, name, buf) == 1;
}

static const struct serve_route *route_find(const char *path)
{
	const struct serve_route *best = NULL;
	size_t best_len = 0;

	for (const struct serve_route *r = serve_routes; r->path; r++) {
		size_t l = strlen(r->path);

		if (strcmp(r->path, path) == 0)
			return r;
		/* A prefix route ends in '/'; "/" itself is the home page only. */
		if (l > 1 && r->path[l - 1] == '/' && strncmp(r->path, path, l) == 0 &&
		    l > best_len) {
			best = r;
			best_len = l;
		}
	}
	return best;
}

static const char *request_arg(const struct serve_request *req, const char *key)
{
	return MHD_lookup_connection_value(req->impl, MHD_GET_ARGUMENT_KIND, key);
}

/* What must not run on the polling thread (see the top). */
static bool expensive(const struct serve_route *route, struct MHD_Connection *conn)
{
	const char *format, *source;

	if (route->fn == serve_line_page)
		return true;
	if (route->fn != serve_reports_page && route->fn != serve_history_page)
		return false;
	format = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "format");
	source = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "source");
	return (format && *format && strcmp(format, "html") != 0) ||
	       (source && strcmp(source, "line") == 0);
}

static enum MHD_Result copy_arg(void *cls, enum MHD_ValueKind kind, const char *key,
				const char *value)
{
	(void)kind;
	return serve_job_add_arg(cls, key, value) < 0 ? MHD_NO : MHD_YES;
}

/* From a worker: the job has its answer; the polling thread sends it. */
static void job_done(struct serve_job *job)
{
	MHD_resume_connection(job->conn);
}

static void job_admit(struct serve_job *job)
{
	MHD_suspend_connection(job->conn);
}

/* @route's page to a worker, the connection suspended until it is done. */
static enum MHD_Result job_submit(struct serve_state *s, struct MHD_Connection *conn,
				  const char *url, const struct serve_route *route,
				  void **state)
{
	struct serve_job *job = calloc(1, sizeof(*job));
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (!job)
		return MHD_NO;
	job->fd = -1;
	job->route = route;
	job->conn = conn;
	job->path = strdup(url);
	if (!job->path ||
	    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, copy_arg, job) < 0 ||
	    (job->n_args && !job->args[2 * job->n_args - 1])) {
		serve_job_free(job);
		return MHD_NO;
	}
	/* Suspended by the pool once admitted, before a worker can see it
	 * (and resume it); refused, it was never suspended. */
	if (serve_pool_submit(s->pool, job, job_admit)) {
		*state = job;
		return MHD_YES;
	}
	serve_job_free(job);
	log_notice("serve: %s: every worker busy, answered 503", url);
	resp = MHD_create_response_from_buffer(strlen("busy, try again\n"), "busy, try again\n",
					       MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	add_headers(resp, "text/plain; charset=utf-8", true);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "5");
	ret = MHD_queue_response(conn, MHD_HTTP_SERVICE_UNAVAILABLE, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* A worker's answer, sent from its file. */
static enum MHD_Result job_reply(struct MHD_Connection *conn, struct serve_job *job)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (job->status == -ECANCELED)
		return reply_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "Service Unavailable",
				   false);
	if (job->status < 0 || job->fd < 0) {
		log_err("serve: %s: %s", job->path, strerror(job->status < 0 ? -job->status : EIO));
		return reply_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "Internal Server Error",
				   false);
	}
	resp = MHD_create_response_from_fd(job->size, job->fd);
	if (!resp)
		return MHD_NO;
	job->fd = -1; /* the response's now */
	add_headers(resp, job->content_type, job->no_store);
	if (job->disposition)
		MHD_add_response_header(resp, "Content-Disposition", job->disposition);
	ret = MHD_queue_response(conn, (unsigned)job->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static struct serve_conn *conn_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? ci->socket_context : NULL;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **state,
			 enum MHD_RequestTerminationCode toe)
{
	struct serve_state *s = cls;

	(void)toe;
	if (*state && *state != cls)
		serve_job_free(*state);
	*state = NULL;
	/* Kept alive: the next request's head has the same deadline. */
	serve_conn_arm(s->deadline, conn_of(conn), true);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	struct serve_state *s = cls;
	const union MHD_ConnectionInfo *ci;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		*socket_context = ci ? serve_conn_started(s->deadline, ci->connect_fd) : NULL;
	} else {
		/* Before MHD closes the socket: its fd is not shut down later. */
		serve_conn_closed(s->deadline, *socket_context);
		*socket_context = NULL;
	}
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size, void **state)
{
	struct serve_state *s = cls;
	struct serve_request req = { .path = url, .arg = request_arg, .impl = conn };
	struct serve_reply reply = { 0 };
	struct serve_ctx ctx;
	const struct serve_route *route;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char *body = NULL;
	size_t len = 0;
	int status;

	(void)version;
	(void)upload_data;
	/* The head is complete: no deadline until the answer is sent. */
	if (!*state)
		serve_conn_arm(s->deadline, conn_of(conn), false);
	/* Resumed: a worker's answer. */
	if (*state && *state != s)
		return job_reply(conn, *state);
	/* The first call has the headers; a GET's second call (no body)
	 * is where MHD expects the answer, and keeps the connection alive
	 * then (the live page polls over one connection). Anything with a
	 * body is answered at once, and its connection closed. */
	if (!*state && (*upload_data_size == 0) && (strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
						      strcmp(method, MHD_HTTP_METHOD_HEAD) == 0)) {
		*state = s;
		return MHD_YES;
	}
	/* A GET's body means nothing here: read and dropped (the connection
	 * timeout and memory limit bound it); the answer comes at its end. */
	if (*state && *upload_data_size) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (!authorized(s, conn))
		return reply_error(conn, MHD_HTTP_UNAUTHORIZED, "Unauthorized", true);
	if (!host_allowed(s, conn))
		return reply_error(conn, MHD_HTTP_FORBIDDEN,
				   "Forbidden: open the dashboard by its address or localhost", false);
	/* Read-only: nothing else is answered, whatever the body. */
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "Method Not Allowed", false);
	if (strlen(url) > SERVE_MAX_URL)
		return reply_error(conn, MHD_HTTP_URI_TOO_LONG, "URI Too Long", false);
	route = route_find(url);
	if (!route)
		return reply_error(conn, MHD_HTTP_NOT_FOUND, "Not Found", false);

	if (expensive(route, conn))
		return job_submit(s, conn, url, route, state);

	serve_journal_refresh(&s->journal, s->set->ctx.journal_path);
	ctx = s->set->ctx;
	ctx.journal = s->journal.journal;
	ctx.journal_error = s->journal.error;
	reply.body = open_memstream(&body, &len);
	if (!reply.body)
		return reply_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "Internal Server Error",
				   false);
	status = route->fn(&ctx, &req, &reply);
	if (fclose(reply.body) != 0 && status >= 0)
		status = -ENOMEM;
	if (status < 0) {
		log_err("serve: %s: %s", url, strerror(-status));
		free(body);
		return reply_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "Internal Server Error",
				   false);
	}
	resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	add_headers(resp, reply.content_type, reply.no_store);
	if (reply.disposition)
		MHD_add_response_header(resp, "Content-Disposition", reply.disposition);
	ret = MHD_queue_response(conn, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return ret;
}

__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt,
							      va_list ap)
{
	char line[512];
	size_t n;

	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';
	log_notice("serve: %s", line);
}

int serve_http_run(struct serve_settings *set)
{
	struct serve_state s = { .set = set };
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG |
			 MHD_ALLOW_SUSPEND_RESUME;
	const union MHD_DaemonInfo *info;
	struct MHD_Daemon *d;
	sigset_t mask;
	char addr[INET6_ADDRSTRLEN] = "?";
	int sig, r = 0;

	if (set->addr.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (set->tls_cert)
		flags |= MHD_USE_TLS;
	serve_journal_refresh(&s.journal, set->ctx.journal_path);
	if (!s.journal.journal)
		log_warn("serve: %s; the pages say so until it can be read",
			 s.journal.error ? s.journal.error : "no journal");

	/* The server's thread must not take the signals the main thread
	 * waits for: blocked before it starts, it inherits the mask. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	r = serve_deadline_start(SERVE_HEAD_S, &s.deadline);
	if (r == 0)
		r = serve_pool_start(set, job_done, &s.pool);
	if (r < 0) {
		fprintf(stderr, "bmap-station: serve: cannot start the workers: %s\n",
			strerror(-r));
		goto out;
	}

	d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, &s,
			     MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
			     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&set->addr,
			     MHD_OPTION_CONNECTION_LIMIT, (unsigned)SERVE_MAX_CONNECTIONS,
			     MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)SERVE_MAX_PER_IP,
			     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)SERVE_TIMEOUT_S,
			     MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)SERVE_CONN_MEMORY,
			     MHD_OPTION_NOTIFY_COMPLETED, on_completed, &s,
			     MHD_OPTION_NOTIFY_CONNECTION, on_connection, &s,
			     set->tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END,
			     set->tls_cert, MHD_OPTION_HTTPS_MEM_KEY, set->tls_key,
			     MHD_OPTION_END);
	if (!d) {
		r = -errno ? -errno : -EIO;
		fprintf(stderr, "bmap-station: serve: cannot listen on %s: %s\n", set->listen,
			errno ? strerror(errno) : "libmicrohttpd refused to start");
		goto out;
	}
	if (set->addr.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&set->addr)->sin6_addr, addr,
			  sizeof(addr));
	else
		inet_ntop(AF_INET, &((struct sockaddr_in *)&set->addr)->sin_addr, addr,
			  sizeof(addr));
	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	/* Tests listen on port 0 and read the port from this line. */
	log_info("serve: listening on %s://%s%s%s:%u/ (journal %s%s)",
		 set->tls_cert ? "https" : "http", set->addr.ss_family == AF_INET6 ? "[" : "",
		 addr, set->addr.ss_family == AF_INET6 ? "]" : "", info ? info->port : 0,
		 set->ctx.journal_path, set->password ? ", password required" : "");
	sd_notify(0, "READY=1");
	while (sigwait(&mask, &sig) != 0 || (sig != SIGTERM && sig != SIGINT))
		;
	sd_notify(0, "STOPPING=1");
	log_info("serve: stopping");
	/* The workers first: each resumes its connection, which MHD must
	 * have back before it stops. */
	serve_pool_stop(s.pool);
	s.pool = NULL;
	MHD_stop_daemon(d);
out:
	serve_pool_stop(s.pool);
	serve_deadline_stop(s.deadline);
	serve_journal_close(&s.journal);
	return r;
}
