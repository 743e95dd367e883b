/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * URLs: telling one from a path, rendering one for messages without its
 * credentials, and the libcurl request setup and error wording that every
 * request of libbmap shares (see url.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "url.h"
#include "util.h"
#include "version.h"

bool bmap_location_is_url(const char *location)
{
	static const char *const schemes[] = { "http://", "https://", "ftp://", "file:" };

	for (size_t i = 0; i < ARRAY_SIZE(schemes); i++)
		if (strncasecmp(location, schemes[i], strlen(schemes[i])) == 0)
			return true;
	return false;
}

/* Done by hand, not with curl_url_get(): that one normalises the URL (adds
 * a '/', changes case), and a user should see the URL given, less only the
 * userinfo. */
char *bmap_url_display(const char *url)
{
	const char *sep = strstr(url, "://"), *auth, *end, *at = NULL;
	char *out;

	if (!sep)
		return strdup(url);
	auth = sep + 3;
	end = auth + strcspn(auth, "/?#");
	for (const char *p = auth; p < end; p++)
		if (*p == '@')
			at = p;
	if (!at)
		return strdup(url);
	if (asprintf(&out, "%.*s%s", (int)(auth - url), url, at + 1) < 0)
		return NULL;
	return out;
}

int url_file_path(const char *url, char **ret_path)
{
	CURLU *h;
	char *host = NULL, *path = NULL;
	int r = -EINVAL;

	if (strncasecmp(url, "file:", 5) != 0)
		return 0;
	h = curl_url();
	if (!h)
		return -ENOMEM;
	if (curl_url_set(h, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(h, CURLUPART_PATH, &path, CURLU_URLDECODE) == CURLUE_OK) {
		if (curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host || !*host ||
		    strcasecmp(host, "localhost") == 0) {
			*ret_path = strdup(path);
			r = *ret_path ? 1 : -ENOMEM;
		}
	}
	curl_free(host);
	curl_free(path);
	curl_url_cleanup(h);
	return r;
}

void bmap_ctx_set_tls_insecure(struct bmap_ctx *ctx, bool insecure)
{
	ctx->tls_insecure = insecure;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

/* curl_global_init() is not thread-safe in every libcurl: once. */
static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

void url_xfer_reset(struct url_xfer *x)
{
	memset(x, 0, sizeof(*x));
}

static uint64_t parse_u64(const char *p, const char **end)
{
	uint64_t v = 0;

	while (*p >= '0' && *p <= '9') {
		if (v > (UINT64_MAX - 9) / 10)
			break;
		v = v * 10 + (uint64_t)(*p++ - '0');
	}
	*end = p;
	return v;
}

static size_t on_header(char *buf, size_t size, size_t n, void *userdata)
{
	url_header_line(userdata, buf, size * n);
	return size * n;
}

void url_header_line(struct url_xfer *x, const char *buf, size_t len)
{
	const char *p, *q;

	/* Each response (a redirect's too) starts with its status line. */
	if (len > 5 && strncmp(buf, "HTTP/", 5) == 0) {
		const char *sp = memchr(buf, ' ', len);
		size_t k;

		x->reason[0] = '\0';
		x->etag[0] = '\0';
		x->have_range = false;
		x->accept_ranges = false;
		if (sp && (size_t)(sp - buf) + 5 < len) {
			p = sp + 5; /* " 404 Not Found" -> "Not Found" */
			k = len - (size_t)(p - buf);
			while (k > 0 && (p[k - 1] == '\r' || p[k - 1] == '\n'))
				k--;
			if (k >= sizeof(x->reason))
				k = sizeof(x->reason) - 1;
			/* Printed in messages: printable ASCII only. */
			for (size_t i = 0; i < k; i++)
				x->reason[i] = p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '?';
			x->reason[k] = '\0';
		}
		return;
	}
	if (len > 5 && strncasecmp(buf, "ETag:", 5) == 0) {
		size_t k;

		p = buf + 5;
		while (p < buf + len && (*p == ' ' || *p == '\t'))
			p++;
		k = (size_t)(buf + len - p);
		while (k > 0 && (p[k - 1] == '\r' || p[k - 1] == '\n' || p[k - 1] == ' '))
			k--;
		if (k >= sizeof(x->etag))
			k = sizeof(x->etag) - 1;
		/* Keyed on and shown: printable ASCII only. */
		for (size_t i = 0; i < k; i++)
			x->etag[i] = p[i] > 0x20 && p[i] < 0x7f ? p[i] : '?';
		x->etag[k] = '\0';
		return;
	}
	if (len > 14 && strncasecmp(buf, "Accept-Ranges:", 14) == 0) {
		p = buf + 14;
		while (p < buf + len && (*p == ' ' || *p == '\t'))
			p++;
		x->accept_ranges = (size_t)(buf + len - p) >= 5 && strncasecmp(p, "bytes", 5) == 0;
		return;
	}
	if (len > 14 && strncasecmp(buf, "Content-Range:", 14) == 0) {
		char line[128];

		snprintf(line, sizeof(line), "%.*s", (int)(len - 14), buf + 14);
		p = line + strspn(line, " \t");
		if (strncasecmp(p, "bytes ", 6) != 0)
			return;
		p += 6;
		x->range_first = parse_u64(p, &q);
		if (q == p || *q != '-')
			return;
		(void)parse_u64(q + 1, &q);
		if (*q != '/')
			return;
		p = q + 1;
		x->range_total = *p == '*' ? UINT64_MAX : parse_u64(p, &q);
		x->have_range = true;
	}
}

/* libcurl stops at Content-Length and drops what came beyond it, telling
 * only its debug output: that is where a server sending more than it
 * announced shows. */
static int on_debug(CURL *easy, curl_infotype type, char *data, size_t size, void *userdata)
{
	struct url_xfer *x = userdata;

	(void)easy;
	if (type == CURLINFO_TEXT && size >= 12 && strncmp(data, "Excess found", 12) == 0)
		x->excess = true;
	return 0;
}

/* libcurl reads no further than Content-Length: bytes a server sent beyond
 * it are still in the socket when the connection is closed. */
static int on_close(void *userdata, curl_socket_t fd)
{
	struct url_xfer *x = userdata;
	char c;

	if (recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0)
		x->unread_at_close = true;
	return close(fd);
}

bool url_excess(CURL *easy, const struct url_xfer *x)
{
	const char *scheme = NULL;

	if (x->excess)
		return true;
	return x->unread_at_close &&
	       curl_easy_getinfo(easy, CURLINFO_SCHEME, &scheme) == CURLE_OK && scheme &&
	       strcasecmp(scheme, "http") == 0;
}

int url_easy_new(struct bmap_ctx *ctx, const char *url, struct url_xfer *x, CURL **ret)
{
	CURL *e;

	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK)
		return bmap_error(ctx, -ENOMEM, "cannot initialise libcurl: %s",
				  curl_easy_strerror(curl_init_rc));
	e = curl_easy_init();
	if (!e)
		return bmap_error(ctx, -ENOMEM, "out of memory setting up a URL request");
	url_xfer_reset(x);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	/* Only what an image may come from; a redirect may not lead to file:. */
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https,ftp,file");
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https,ftp");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(e, CURLOPT_MAXREDIRS, (long)URL_MAX_REDIRS);
	/* Credentials in the URL come first; ~/.netrc when it has none. */
	curl_easy_setopt(e, CURLOPT_NETRC, (long)CURL_NETRC_OPTIONAL);
	/* The user's own image server: a redirect may keep the login only to
	 * the same host (libcurl's default), never elsewhere. */
	curl_easy_setopt(e, CURLOPT_UNRESTRICTED_AUTH, 0L);
	curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_ANY);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 30L);
	/* A server that sends nothing for a minute has dropped us: the read
	 * fails and is resumed like a broken connection. */
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 60L);
	curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 256L * 1024);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "bmap-station/" BMAP_STATION_VERSION);
	/* A lab's own CA, as the curl command takes it (libcurl itself reads
	 * only its built-in bundle). */
	if (secure_getenv("CURL_CA_BUNDLE") && *secure_getenv("CURL_CA_BUNDLE"))
		curl_easy_setopt(e, CURLOPT_CAINFO, secure_getenv("CURL_CA_BUNDLE"));
	if (ctx->tls_insecure) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, on_debug);
	curl_easy_setopt(e, CURLOPT_DEBUGDATA, x);
	curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
	curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_close);
	curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, x);
	*ret = e;
	return 0;
}

bool url_is_http(CURL *easy)
{
	const char *scheme = NULL;

	return curl_easy_getinfo(easy, CURLINFO_SCHEME, &scheme) == CURLE_OK && scheme &&
	       strncasecmp(scheme, "http", 4) == 0;
}

long url_status(CURL *easy)
{
	long code = 0;

	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
	return code;
}

static const char *status_reason(long status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 407: return "Proxy Authentication Required";
	case 410: return "Gone";
	case 416: return "Range Not Satisfiable";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	}
	return "";
}

const char *url_status_text(long status, const struct url_xfer *x, char buf[static 96])
{
	/* HTTP/2 has no reason phrase: the usual one then. */
	const char *why = x && x->reason[0] ? x->reason : status_reason(status);

	snprintf(buf, 96, "HTTP %ld%s%s", status, *why ? " " : "", why);
	return buf;
}

int url_errno(CURLcode rc)
{
	switch (rc) {
	case CURLE_OK:
		return 0;
	case CURLE_REMOTE_FILE_NOT_FOUND:
	case CURLE_FILE_COULDNT_READ_FILE:
		return -ENOENT;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_LOGIN_DENIED:
	case CURLE_REMOTE_ACCESS_DENIED:
		return -EACCES;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
		return -EPERM;
	case CURLE_PARTIAL_FILE:
		return -EPIPE;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		return -EINVAL;
	default:
		return -EIO;
	}
}

int url_fail(struct bmap_ctx *ctx, const char *what, CURL *easy, CURLcode rc,
	     const struct url_xfer *x)
{
	char st[96];
	long status = url_status(easy);

	if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && status >= 300 && url_is_http(easy))) {
		int err = status == 404 || status == 410 ? -ENOENT
			  : status == 401 || status == 403 ? -EACCES
							  : -EIO;

		return bmap_error(ctx, err, "cannot fetch %s: %s%s", what,
				  url_status_text(status, x, st),
				  status == 401 ? " (give the login in ~/.netrc or the URL)" : "");
	}
	if (rc == CURLE_TOO_MANY_REDIRECTS)
		return bmap_error(ctx, -ELOOP,
				  "cannot fetch %s: more than %d redirects (a redirect loop?)", what,
				  URL_MAX_REDIRS);
	if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE)
		return bmap_error(ctx, url_errno(rc),
				  "cannot fetch %s: the server's certificate is not trusted "
				  "(%s); --insecure skips this check",
				  what, x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
	if (rc == CURLE_PARTIAL_FILE)
		return bmap_error(ctx, -EPROTO,
				  "cannot fetch %s: the server sent fewer bytes than it announced (%s)",
				  what, x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
	/* curl's own detail never holds the URL's credentials: it names hosts
	 * and counts, not URLs. */
	return bmap_error(ctx, url_errno(rc), "cannot fetch %s: %s", what,
			  x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
}
