/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The station's configuration file: loading it (libconfig), the station
 * group's settings with their defaults, the named slots and the hooks, into
 * struct station_config; the profiles are profile.c's.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config-parser.h"
#include "config.h"
#include "util.h"

#define CONFIG_DEFAULT_DATABASE "/var/lib/bmap-station/journal.db"
#define CONFIG_DEFAULT_MAX_WORKERS 4
#define CONFIG_MAX_WORKERS_LIMIT 64
#define CONFIG_DEFAULT_REQUIRE_TAG "bmap-station"
#define CONFIG_DEFAULT_MAX_DEVICE_SIZE (256ull << 30)
#define CONFIG_DEFAULT_JOB_TIMEOUT 3600

/* The settings each group may hold; anything else is a typo to report. */
static const char *const root_keys[] = {
    "station",
    "slots",
    "profiles",
    "sync",
    "serve",
    NULL,
};
static const char *const sync_keys[] = {
    "conninfo",
    "station_name",
    NULL,
};
static const char *const serve_keys[] = {
    "listen",
    "tls_cert",
    "tls_key",
    "password_file",
    NULL,
};
static const char *const station_keys[] = {
    "name", "database", "max_workers", "require_tag", "max_device_size", "job_timeout",
    "hook_timeout", "hooks", "cache_dir", "cache_max_size", "cache_prefill", NULL,
};
static const char *const slot_keys[] = {
    "name",
    "path",
    NULL,
};
static const char *const hook_keys[] = {
    "on_insert", "on_start", "on_success", "on_failure", "on_remove", NULL,
};

const char *hook_event_name(enum hook_event e)
{
	return (unsigned)e < HOOK_EVENTS ? hook_keys[e] : "unknown";
}

/* hooks = { on_success = [ "/usr/local/bin/label", "%serial" ]; ... }: the
 * program's path is resolved like the other paths; arguments are kept as
 * written. */
int config_parse_hooks(struct config_ctx *c, const config_setting_t *g, struct hooks *h)
{
	int r = config_need_group(c, g);

	if (r < 0)
		return r;
	r = config_check_members(c, g, hook_keys);
	if (r < 0)
		return r;
	for (int e = 0; e < HOOK_EVENTS; e++) {
		const config_setting_t *s = config_setting_get_member(g, hook_keys[e]);
		int n;

		if (!s)
			continue;
		if (!config_setting_is_aggregate(s) || config_setting_is_group(s) ||
		    config_setting_length(s) < 1)
			return config_fail(c, s, NULL,
					   "must be a command: [ \"/path/to/program\", \"arg\", ... ]");
		n = config_setting_length(s);
		h->argv[e] = calloc((size_t)n + 1, sizeof(char *));
		if (!h->argv[e])
			return -ENOMEM;
		for (int i = 0; i < n; i++) {
			const config_setting_t *a = config_setting_get_elem(s, (unsigned)i);
			const char *v;

			if (i == 0) {
				r = config_dup_path(c, a, &h->argv[e][0]);
			} else {
				r = config_get_string(c, a, true, &v);
				if (r >= 0 && !(h->argv[e][i] = strdup(v)))
					r = -ENOMEM;
			}
			if (r < 0)
				return r;
		}
	}
	return 0;
}

void hooks_free(struct hooks *h)
{
	for (int e = 0; e < HOOK_EVENTS; e++) {
		for (char **a = h->argv[e]; a && *a; a++)
			free(*a);
		free(h->argv[e]);
		h->argv[e] = NULL;
	}
}

static int config_parse_station(struct config_ctx *c, const config_setting_t *st,
				struct station_config *cfg)
{
	const config_setting_t *s;
	long long n;
	int r;

	r = config_need_group(c, st);
	if (r < 0)
		return r;
	r = config_check_members(c, st, station_keys);
	if (r < 0)
		return r;

	s = config_setting_get_member(st, "name");
	if (s) {
		char *v;

		r = config_dup_string(c, s, false, &v);
		if (r < 0)
			return r;
		free(cfg->name);
		cfg->name = v;
	}
	s = config_setting_get_member(st, "database");
	if (s) {
		char *v;

		r = config_dup_path(c, s, &v);
		if (r < 0)
			return r;
		free(cfg->database);
		cfg->database = v;
	}
	s = config_setting_get_member(st, "max_workers");
	if (s) {
		r = config_get_int(c, s, "an integer", &n);
		if (r < 0)
			return r;
		if (n < 1 || n > CONFIG_MAX_WORKERS_LIMIT)
			return config_fail(c, s, NULL, "%lld is out of range (1..%d)", n,
					   CONFIG_MAX_WORKERS_LIMIT);
		cfg->max_workers = (unsigned)n;
	}
	s = config_setting_get_member(st, "require_tag");
	if (s) {
		char *v;

		r = config_dup_string(c, s, true, &v);
		if (r < 0)
			return r;
		free(cfg->require_tag);
		cfg->require_tag = v;
	}
	s = config_setting_get_member(st, "max_device_size");
	if (s) {
		r = config_get_size(c, s, &cfg->max_device_size);
		if (r < 0)
			return r;
		if (cfg->max_device_size == 0)
			return config_fail(c, s, NULL, "must be greater than 0");
	}
	s = config_setting_get_member(st, "job_timeout");
	if (s) {
		r = config_get_int(c, s, "an integer (seconds)", &n);
		if (r < 0)
			return r;
		if (n < 1 || n > INT_MAX)
			return config_fail(c, s, NULL, "%lld is out of range (1..%d seconds)", n,
					   INT_MAX);
		cfg->job_timeout = (unsigned)n;
	}
	s = config_setting_get_member(st, "cache_dir");
	if (s) {
		char *v;

		/* "" turns the cache off. */
		if (config_setting_type(s) == CONFIG_TYPE_STRING &&
		    !*config_setting_get_string(s)) {
			v = strdup("");
			r = v ? 0 : -ENOMEM;
		} else {
			r = config_dup_path(c, s, &v);
		}
		if (r < 0)
			return r;
		free(cfg->cache_dir);
		cfg->cache_dir = v;
	}
	s = config_setting_get_member(st, "cache_max_size");
	if (s) {
		r = config_get_size(c, s, &cfg->cache_max_size);
		if (r < 0)
			return r;
	}
	s = config_setting_get_member(st, "cache_prefill");
	if (s) {
		r = config_get_bool(c, s, &cfg->cache_prefill);
		if (r < 0)
			return r;
	}
	s = config_setting_get_member(st, "hook_timeout");
	if (s) {
		r = config_get_int(c, s, "an integer (seconds)", &n);
		if (r < 0)
			return r;
		if (n < 1 || n > 3600)
			return config_fail(c, s, NULL, "%lld is out of range (1..3600 seconds)", n);
		cfg->hook_timeout = (unsigned)n;
	}
	s = config_setting_get_member(st, "hooks");
	if (s) {
		r = config_parse_hooks(c, s, &cfg->hooks);
		if (r < 0)
			return r;
	}
	return 0;
}

static int config_parse_slots(struct config_ctx *c, const config_setting_t *list,
			      struct station_config *cfg)
{
	int n, r;

	r = config_need_list(c, list);
	if (r < 0)
		return r;
	n = config_setting_length(list);
	if (n == 0)
		return 0;
	cfg->slots = calloc((size_t)n, sizeof(*cfg->slots));
	if (!cfg->slots)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(list, (unsigned)i), *s;
		struct slot_def *slot = &cfg->slots[i];

		r = config_need_group(c, e);
		if (r < 0)
			return r;
		r = config_check_members(c, e, slot_keys);
		if (r < 0)
			return r;
		cfg->n_slots++;

		s = config_setting_get_member(e, "name");
		if (!s)
			return config_fail(c, e, "name", "missing: a slot needs a name");
		r = config_dup_string(c, s, false, &slot->name);
		if (r < 0)
			return r;
		for (int j = 0; j < i; j++)
			if (strcmp(cfg->slots[j].name, slot->name) == 0)
				return config_fail(
				    c, s, NULL,
				    "duplicate slot name \"%s\" (also slots.[%d], line %u)",
				    slot->name, j, config_member_line(list, j, "name"));

		s = config_setting_get_member(e, "path");
		if (!s)
			return config_fail(c, e, "path",
					   "missing: slot \"%s\" needs the port's ID_PATH",
					   slot->name);
		r = config_dup_string(c, s, false, &slot->path);
		if (r < 0)
			return r;
		for (int j = 0; j < i; j++)
			if (strcmp(cfg->slots[j].path, slot->path) == 0)
				return config_fail(
				    c, s, NULL,
				    "slot \"%s\" has the same path as slot \"%s\" (line %u)",
				    slot->name, cfg->slots[j].name,
				    config_member_line(list, j, "path"));
	}
	return 0;
}

/* sync = { conninfo = "postgresql://..."; station_name = "line-1"; }: for
 * `bmap-station sync` and the reports' --pg. Checked by libpq there (and by
 * `check`), never shown with its password. */
static int config_parse_sync(struct config_ctx *c, const config_setting_t *g,
			     struct station_config *cfg)
{
	const config_setting_t *s;
	int r = config_need_group(c, g);

	if (r < 0)
		return r;
	r = config_check_members(c, g, sync_keys);
	if (r < 0)
		return r;
	s = config_setting_get_member(g, "conninfo");
	if (s) {
		r = config_dup_string(c, s, false, &cfg->sync_conninfo);
		if (r < 0)
			return r;
	}
	s = config_setting_get_member(g, "station_name");
	if (s) {
		r = config_dup_string(c, s, false, &cfg->sync_station);
		if (r < 0)
			return r;
	}
	return 0;
}

/* serve = { listen = "127.0.0.1:8080"; tls_cert = "..."; tls_key = "...";
 * password_file = "..."; }: for `bmap-station serve`, which checks that a
 * listen address off loopback comes with TLS and a password. The files
 * are paths, resolved like the other paths and read by serve. */
static int config_parse_serve(struct config_ctx *c, const config_setting_t *g,
			      struct station_config *cfg)
{
	const config_setting_t *s;
	int r = config_need_group(c, g);

	if (r < 0)
		return r;
	r = config_check_members(c, g, serve_keys);
	if (r < 0)
		return r;
	s = config_setting_get_member(g, "listen");
	if (s && (r = config_dup_string(c, s, false, &cfg->serve_listen)) < 0)
		return r;
	s = config_setting_get_member(g, "tls_cert");
	if (s && (r = config_dup_path(c, s, &cfg->serve_tls_cert)) < 0)
		return r;
	s = config_setting_get_member(g, "tls_key");
	if (s && (r = config_dup_path(c, s, &cfg->serve_tls_key)) < 0)
		return r;
	s = config_setting_get_member(g, "password_file");
	if (s && (r = config_dup_path(c, s, &cfg->serve_password_file)) < 0)
		return r;
	return 0;
}

static int config_defaults(struct station_config *cfg)
{
	char host[HOST_NAME_MAX + 1];

	if (gethostname(host, sizeof(host)) < 0 || !host[0])
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	cfg->name = strdup(host);
	cfg->database = strdup(CONFIG_DEFAULT_DATABASE);
	cfg->require_tag = strdup(CONFIG_DEFAULT_REQUIRE_TAG);
	cfg->cache_dir = strdup("/var/cache/bmap-station");
	if (!cfg->name || !cfg->database || !cfg->require_tag || !cfg->cache_dir)
		return -ENOMEM;
	cfg->cache_max_size = 32ull << 30;
	cfg->cache_prefill = true;
	cfg->max_workers = CONFIG_DEFAULT_MAX_WORKERS;
	cfg->max_device_size = CONFIG_DEFAULT_MAX_DEVICE_SIZE;
	cfg->job_timeout = CONFIG_DEFAULT_JOB_TIMEOUT;
	cfg->hook_timeout = 10;
	return 0;
}

static void config_set_error(char **ret_error, char *msg)
{
	if (ret_error)
		*ret_error = msg;
	else
		free(msg);
}

int config_load(const char *path, struct station_config **ret_config, char **ret_error)
{
	struct config_ctx c = {.path = path};
	struct station_config *cfg = NULL;
	const config_setting_t *root, *s;
	char *text = NULL, *msg = NULL;
	config_t lc;
	int r;

	if (!path || !ret_config)
		return -EINVAL;

	config_init(&lc);
	r = config_read_text(path, &text);
	if (r < 0) {
		if (asprintf(&msg, "%s: cannot read the configuration: %s", path, strerror(-r)) < 0)
			msg = NULL;
		goto out;
	}
	c.text = text;
	r = config_dirs(&c);
	if (r < 0) {
		if (asprintf(&msg, "%s: %s", path, strerror(-r)) < 0)
			msg = NULL;
		goto out;
	}

	/* @include "x.conf" is relative to the configuration's directory. */
	config_set_include_dir(&lc, c.abs_dir);
	if (config_read_string(&lc, text) != CONFIG_TRUE) {
		const char *f = config_error_file(&lc), *file = f ? f : path;
		char *shown = NULL;

		/* An error inside an @include'd file names that file. */
		if (f && f[0] != '/' && c.shown_dir) {
			if (asprintf(&shown, "%s/%s", c.shown_dir, f) < 0)
				shown = NULL;
			else
				file = shown;
		}
		if (asprintf(&msg, "%s:%d: %s", file, config_error_line(&lc),
			     config_error_text(&lc)) < 0)
			msg = NULL;
		free(shown);
		r = -EINVAL;
		goto out;
	}

	cfg = calloc(1, sizeof(*cfg));
	if (!cfg) {
		r = -ENOMEM;
		goto out;
	}
	cfg->path = strdup(path);
	if (!cfg->path) {
		r = -ENOMEM;
		goto out;
	}
	r = config_defaults(cfg);
	if (r < 0)
		goto out;

	root = config_root_setting(&lc);
	r = config_check_members(&c, root, root_keys);
	if (r < 0)
		goto out_invalid;
	s = config_setting_get_member(root, "station");
	if (s) {
		r = config_parse_station(&c, s, cfg);
		if (r < 0)
			goto out_invalid;
	}
	s = config_setting_get_member(root, "slots");
	if (s) {
		r = config_parse_slots(&c, s, cfg);
		if (r < 0)
			goto out_invalid;
	}
	s = config_setting_get_member(root, "sync");
	if (s) {
		r = config_parse_sync(&c, s, cfg);
		if (r < 0)
			goto out_invalid;
	}
	s = config_setting_get_member(root, "serve");
	if (s) {
		r = config_parse_serve(&c, s, cfg);
		if (r < 0)
			goto out_invalid;
	}
	r = config_parse_profiles(&c, root, cfg);
	if (r < 0)
		goto out_invalid;

	*ret_config = cfg;
	cfg = NULL;
	r = 0;
	goto out;

out_invalid:
	msg = c.error;
	c.error = NULL;
out:
	if (r < 0)
		config_set_error(ret_error, msg);
	config_free(cfg);
	config_destroy(&lc);
	free(c.error);
	free(c.shown_dir);
	free(c.abs_dir);
	free(text);
	return r;
}

void config_free(struct station_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->n_slots; i++) {
		free(cfg->slots[i].name);
		free(cfg->slots[i].path);
	}
	free(cfg->slots);
	for (size_t i = 0; i < cfg->n_profiles; i++)
		profile_free(&cfg->profiles[i]);
	hooks_free(&cfg->hooks);
	free(cfg->profiles);
	free(cfg->path);
	free(cfg->name);
	free(cfg->database);
	free(cfg->require_tag);
	free(cfg->cache_dir);
	free(cfg->sync_conninfo);
	free(cfg->sync_station);
	free(cfg->serve_listen);
	free(cfg->serve_tls_cert);
	free(cfg->serve_tls_key);
	free(cfg->serve_password_file);
	free(cfg);
}

const char *config_slot_name(const struct station_config *cfg, const char *id_path)
{
	if (!cfg || !id_path)
		return NULL;
	for (size_t i = 0; i < cfg->n_slots; i++)
		if (strcmp(cfg->slots[i].path, id_path) == 0)
			return cfg->slots[i].name;
	return NULL;
}

void config_keep_database(struct station_config *cfg, struct station_config *old)
{
	char *db = cfg->database;

	cfg->database = old->database;
	old->database = db;
}
