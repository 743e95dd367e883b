/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * `bmap-station serve`: its command line and the settings it runs with
 * (listen address, TLS, password, the journal and PostgreSQL it reads).
 * The HTTP server itself (libmicrohttpd, limits, headers, routing) is
 * serve-http.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include "config.h"
#include "manager.h"
#include "serve-internal.h"

#define DEFAULT_CONFIG "/etc/bmap-station/station.conf"
#define DEFAULT_LISTEN "127.0.0.1:8080"

static const char serve_help[] =
	"Usage: bmap-station serve [--config FILE | --db FILE] [--pg CONNINFO]\n"
	"                          [--listen ADDR:PORT]\n"
	"\n"
	"Serve the station's read-only web dashboard: the live page of its slots\n"
	"(/, updated twice a second from /api/live), the line page of every\n"
	"station (/line, from the central PostgreSQL that 'sync' fills). Only GET\n"
	"and HEAD are answered; nothing a request does changes anything.\n"
	"\n"
	"  -c, --config FILE   configuration (default " DEFAULT_CONFIG "):\n"
	"                      station.database, serve.listen, serve.tls_cert,\n"
	"                      serve.tls_key, serve.password_file, sync.conninfo\n"
	"      --db FILE       the journal to read, instead of the configuration's\n"
	"      --pg CONNINFO   the line's PostgreSQL (libpq string or URI), instead\n"
	"                      of sync.conninfo; none: the line page says so\n"
	"      --listen ADDR:PORT\n"
	"                      where to listen (default serve.listen, else\n"
	"                      " DEFAULT_LISTEN "; [::1]:PORT for IPv6; port 0 picks\n"
	"                      one, logged). Anywhere but a loopback address is\n"
	"                      refused unless TLS (serve.tls_cert, serve.tls_key)\n"
	"                      and a password (serve.password_file) are configured\n"
	"  -h, --help          show this help\n";

/* A certificate chain, a key or a password: small. Bounded so that a wrong
 * path (a device, /dev/zero, a huge file) is an error at once rather than
 * memory or a server that never starts. */
#define SERVE_FILE_MAX (1u << 20)
#define SERVE_FILE_MAX_S "1048576"

/* All of @path (a regular file of 1..SERVE_FILE_MAX bytes) as a string. */
static int read_file(const char *path, const char *what, char **ret, char **ret_error)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		if (asprintf(ret_error, "cannot read the %s %s: %s", what, path, strerror(-r)) < 0)
			*ret_error = NULL;
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
	} else if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		if (asprintf(ret_error, "the %s %s is not a regular file", what, path) < 0)
			*ret_error = NULL;
	} else if (st.st_size <= 0 || (uint64_t)st.st_size > SERVE_FILE_MAX) {
		r = -EINVAL;
		if (asprintf(ret_error, "the %s %s is %s", what, path,
			     st.st_size <= 0 ? "empty"
						 : "too big (at most " SERVE_FILE_MAX_S " bytes)") < 0)
			*ret_error = NULL;
	} else if (!(buf = malloc(SERVE_FILE_MAX + 1))) {
		r = -ENOMEM;
	}
	/* Counted here, not trusted from fstat: the file may grow meanwhile. */
	while (r == 0 && len <= SERVE_FILE_MAX) {
		n = read(fd, buf + len, SERVE_FILE_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			r = -errno;
		else if (n == 0)
			break;
		else
			len += (size_t)n;
	}
	close(fd);
	if (r == 0 && (len == 0 || len > SERVE_FILE_MAX)) {
		r = -EINVAL;
		if (asprintf(ret_error, "the %s %s is %s", what, path,
			     len ? "too big (at most " SERVE_FILE_MAX_S " bytes)" : "empty") < 0)
			*ret_error = NULL;
	}
	if (r < 0) {
		if (buf)
			explicit_bzero(buf, len);
		free(buf);
		if (!*ret_error &&
		    asprintf(ret_error, "cannot read the %s %s: %s", what, path, strerror(-r)) < 0)
			*ret_error = NULL;
		return r;
	}
	buf[len] = '\0';
	*ret = buf;
	return 0;
}

/* The first line of @path, the password (never logged). */
static int read_password(const char *path, char **ret, char **ret_error)
{
	char *text = NULL;
	size_t n;
	int r;

	r = read_file(path, "password file", &text, ret_error);
	if (r < 0)
		return r;
	n = strcspn(text, "\r\n");
	if (n == 0) {
		explicit_bzero(text, strlen(text));
		free(text);
		if (asprintf(ret_error, "the password file %s holds no password on its first line",
			     path) < 0)
			*ret_error = NULL;
		return -EINVAL;
	}
	explicit_bzero(text + n, strlen(text + n));
	text[n] = '\0';
	*ret = text;
	return 0;
}

enum { OPT_DB = 0x100, OPT_PG, OPT_LISTEN };

int serve_command(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "db", required_argument, NULL, OPT_DB },
		{ "pg", required_argument, NULL, OPT_PG },
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	const char *config = DEFAULT_CONFIG, *db = NULL, *pg = NULL, *listen = NULL;
	struct station_config *cfg = NULL;
	struct serve_settings set = { 0 };
	bool config_given = false;
	char *err = NULL, host[256];
	int c, r, ret = EXIT_FAILURE;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			config_given = true;
			break;
		case OPT_DB:
			db = optarg;
			break;
		case OPT_PG:
			pg = optarg;
			break;
		case OPT_LISTEN:
			listen = optarg;
			break;
		case 'h':
			fputs(serve_help, stdout);
			return EXIT_SUCCESS;
		default:
			fprintf(stderr, "Try 'bmap-station serve --help' for more information.\n");
			return 2;
		}
	}
	if (optind < argc || (db && config_given)) {
		fprintf(stderr, "bmap-station: serve: %s\nTry 'bmap-station serve --help' for more "
				"information.\n",
			optind < argc ? "unexpected argument" : "give --config or --db, not both");
		return 2;
	}
	/* With --db the configuration is not read: a journal copied to a
	 * laptop is served without the station's settings. */
	if (!db) {
		if (config_load(config, &cfg, &err) < 0) {
			fprintf(stderr, "bmap-station: %s\n", err ? err : "cannot load configuration");
			free(err);
			return EXIT_FAILURE;
		}
	}
	set.ctx.config = cfg;
	set.ctx.journal_path = db ? db : cfg->database;
	set.ctx.pg_conninfo = pg ? pg : cfg ? cfg->sync_conninfo : NULL;
	if (cfg)
		set.ctx.station_name = cfg->sync_station ? cfg->sync_station : cfg->name;
	if (!set.ctx.station_name) {
		if (gethostname(host, sizeof(host)) < 0 || !host[0])
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		set.ctx.station_name = host;
	}
	set.listen = listen ? listen : cfg && cfg->serve_listen ? cfg->serve_listen
								 : DEFAULT_LISTEN;
	r = serve_parse_listen(set.listen, &set.addr, &set.addr_len, &set.loopback);
	if (r < 0) {
		fprintf(stderr, "bmap-station: serve: %s: not ADDR:PORT with a numeric address "
				"(127.0.0.1:8080, [::1]:8080)\n",
			set.listen);
		ret = 2;
		goto out;
	}
	if (cfg && (!cfg->serve_tls_cert) != (!cfg->serve_tls_key)) {
		fprintf(stderr, "bmap-station: serve: %s: give serve.tls_cert and serve.tls_key "
				"together\n",
			config);
		goto out;
	}
	/* Anyone on the network could read the journal otherwise, and a
	 * password sent in clear text is none. */
	if (!set.loopback && !(cfg && cfg->serve_tls_cert && cfg->serve_password_file)) {
		fprintf(stderr, "bmap-station: serve: refusing to listen on %s, which is not a "
				"loopback address, without TLS and a password: set serve.tls_cert, "
				"serve.tls_key and serve.password_file in %s\n",
			set.listen, db ? DEFAULT_CONFIG " (use --config, not --db)" : config);
		ret = 2;
		goto out;
	}
	if (cfg && cfg->serve_tls_cert) {
		if (read_file(cfg->serve_tls_cert, "TLS certificate (serve.tls_cert)",
			      &set.tls_cert, &err) < 0 ||
		    read_file(cfg->serve_tls_key, "TLS key (serve.tls_key)", &set.tls_key, &err) < 0)
			goto out_err;
	}
	if (cfg && cfg->serve_password_file &&
	    read_password(cfg->serve_password_file, &set.password, &err) < 0)
		goto out_err;

	r = serve_http_run(&set);
	ret = r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
	goto out;
out_err:
	fprintf(stderr, "bmap-station: serve: %s\n", err ? err : "out of memory");
	free(err);
out:
	free(set.tls_cert);
	if (set.tls_key) {
		explicit_bzero(set.tls_key, strlen(set.tls_key));
		free(set.tls_key);
	}
	if (set.password) {
		explicit_bzero(set.password, strlen(set.password));
		free(set.password);
	}
	config_free(cfg);
	return ret;
}
