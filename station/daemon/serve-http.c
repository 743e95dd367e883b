/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The dashboard's HTTP server (libmicrohttpd): listening, TLS, the password,
 * the limits on requests and connections, the headers every response
 * carries, and the glue from a request to a page of serve_routes[].
 *
 * Why a slow client cannot stall the others: MHD runs one internal polling
 * thread (epoll) over non-blocking sockets, and every page is rendered
 * whole into memory before a byte is sent, so a client that sends half a
 * request or reads one byte a second only holds its own connection (until
 * the connection timeout), never the thread. That thread is also the only
 * one that calls the pages, as serve.h promises.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <microhttpd.h>
#include <systemd/sd-daemon.h>

#include "journal.h"
#include "manager.h"
#include "serve-internal.h"

/* Bounds (see --help and bmap-station(8)). The memory limit covers the
 * request line and headers: beyond it MHD answers 414 or 431 itself. */
#define SERVE_MAX_CONNECTIONS 64
#define SERVE_MAX_PER_IP 16
#define SERVE_TIMEOUT_S 15
#define SERVE_CONN_MEMORY (32u * 1024)
#define SERVE_MAX_URL 2048
/* A journal that cannot be opened is tried again when its file changed,
 * else at most this often: opening runs PRAGMA quick_check, which a big
 * damaged file makes slow, on the thread that serves everyone. */
#define SERVE_JOURNAL_RETRY_S 30

static const char csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; "
			  "img-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
			  "base-uri 'none'; form-action 'self'";

struct serve_state {
	struct serve_settings *set;
	struct journal *journal;
	dev_t dev;
	ino_t ino;
	char *journal_error; /* why there is no journal, for the pages */
	time_t last_try;
	struct stat tried, tried_wal; /* the files when opening last failed */
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

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* The journal as it is now: opened (read-only) when it appears, reopened
 * when the file was replaced, else the one connection kept open (a WAL
 * reader sees every commit). A failing open is retried when the file
 * changed (a station created or migrated it) or after SERVE_JOURNAL_RETRY_S,
 * not at every request of a kiosk polling twice a second. */
static void journal_refresh(struct serve_state *s)
{
	const char *path = s->set->ctx.journal_path;
	struct journal *j = NULL;
	struct stat st, wal;
	char *err = NULL, *wal_path = NULL;
	time_t now = time(NULL);
	int r;

	if (stat(path, &st) < 0) {
		int e = errno;

		journal_close(s->journal);
		s->journal = NULL;
		free(s->journal_error);
		if (asprintf(&s->journal_error, e == ENOENT
				     ? "the journal %s does not exist yet: no station has run here"
				     : "cannot read the journal %s: %s",
			     path, strerror(e)) < 0)
			s->journal_error = NULL;
		return;
	}
	if (s->journal && st.st_dev == s->dev && st.st_ino == s->ino)
		return;
	/* A station creating or migrating the journal writes its -wal first. */
	if (asprintf(&wal_path, "%s-wal", path) < 0 || stat(wal_path, &wal) < 0)
		memset(&wal, 0, sizeof(wal));
	free(wal_path);
	if (!s->journal && s->journal_error && s->last_try &&
	    now - s->last_try < SERVE_JOURNAL_RETRY_S && same_file(&st, &s->tried) &&
	    same_file(&wal, &s->tried_wal))
		return;
	s->last_try = now;
	s->tried = st;
	s->tried_wal = wal;
	r = journal_open(path, true, &j, &err);
	journal_close(s->journal);
	s->journal = NULL;
	free(s->journal_error);
	s->journal_error = NULL;
	if (r < 0) {
		log_warn("serve: %s", err ? err : "cannot open the journal");
		s->journal_error = err ? err : strdup("cannot open the journal");
		return;
	}
	free(err);
	s->journal = j;
	s->dev = st.st_dev;
	s->ino = st.st_ino;
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

static bool authorized(struct serve_state *s, struct MHD_Connection *conn)
{
	char *pass = NULL, *user;
	bool ok;

	if (!s->set->password)
		return true;
	/* Any user name: the password is the station's one secret. */
	user = MHD_basic_auth_get_username_password(conn, &pass);
	ok = user && pass && password_equal(pass, s->set->password);
	if (pass) {
		explicit_bzero(pass, strlen(pass));
		MHD_free(pass);
	}
	MHD_free(user);
	return ok;
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
	/* Read-only: nothing else is answered, whatever the body. */
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "Method Not Allowed", false);
	if (strlen(url) > SERVE_MAX_URL)
		return reply_error(conn, MHD_HTTP_URI_TOO_LONG, "URI Too Long", false);
	route = route_find(url);
	if (!route)
		return reply_error(conn, MHD_HTTP_NOT_FOUND, "Not Found", false);

	journal_refresh(s);
	ctx = s->set->ctx;
	ctx.journal = s->journal;
	ctx.journal_error = s->journal_error;
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
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
	const union MHD_DaemonInfo *info;
	struct MHD_Daemon *d;
	sigset_t mask;
	char addr[INET6_ADDRSTRLEN] = "?";
	int sig, r = 0;

	if (set->addr.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (set->tls_cert)
		flags |= MHD_USE_TLS;
	journal_refresh(&s);
	if (!s.journal)
		log_warn("serve: %s; the pages say so until it can be read",
			 s.journal_error ? s.journal_error : "no journal");

	/* The server's thread must not take the signals the main thread
	 * waits for: blocked before it starts, it inherits the mask. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);

	d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, &s,
			     MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
			     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&set->addr,
			     MHD_OPTION_CONNECTION_LIMIT, (unsigned)SERVE_MAX_CONNECTIONS,
			     MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)SERVE_MAX_PER_IP,
			     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)SERVE_TIMEOUT_S,
			     MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)SERVE_CONN_MEMORY,
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
	MHD_stop_daemon(d);
out:
	journal_close(s.journal);
	free(s.journal_error);
	return r;
}
