/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The station's configuration: reading and validating the libconfig file into
 * struct station_config (every refusal names the file, the line and the
 * setting), and matching a device's identity against the profiles.
 */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libconfig.h>

#include "config.h"
#include "util.h"

#define CONFIG_DEFAULT_DATABASE "/var/lib/bmap-station/journal.db"
#define CONFIG_DEFAULT_MAX_WORKERS 4
#define CONFIG_MAX_WORKERS_LIMIT 64
#define CONFIG_DEFAULT_REQUIRE_TAG "bmap-station"
#define CONFIG_DEFAULT_MAX_DEVICE_SIZE (256ull << 30)
#define CONFIG_DEFAULT_JOB_TIMEOUT 3600
/* A station file is a few kilobytes; anything this big is not one. */
#define CONFIG_MAX_FILE_SIZE (16u << 20)

/* State of one config_load(): where messages point and where paths resolve. */
struct config_ctx {
	const char *path; /* as given, for messages */
	const char *text; /* the main file's contents */
	char *shown_dir;  /* dirname of @path as given, for included files' names */
	char *abs_dir;	  /* absolute directory of @path, for relative paths */
	char *error;
};

/* The settings each group may hold; anything else is a typo to report. */
static const char *const root_keys[] = {
    "station",
    "slots",
    "profiles",
    NULL,
};
static const char *const station_keys[] = {
    "name", "database", "max_workers", "require_tag", "max_device_size", "job_timeout",
    "hook_timeout", "hooks", "cache_dir", "cache_max_size", NULL,
};
static const char *const slot_keys[] = {
    "name",
    "path",
    NULL,
};
static const char *const profile_keys[] = {
    "name", "image", "bmap", "verify", "removable_only", "once_per_serial", "discard", "hooks",
    "match", NULL,
};
static const char *const hook_keys[] = {
    "on_insert", "on_start", "on_success", "on_failure", "on_remove", NULL,
};
static const char *const match_keys[] = {
    "slot", "bus", "vendor", "model", "serial", "min_size", "max_size", NULL,
};

static const char *const verify_names[] = {
    [VERIFY_READBACK] = "readback",
    [VERIFY_CHECKSUMS] = "checksums",
    [VERIFY_NONE] = "none",
};

const char *verify_mode_name(enum verify_mode m)
{
	if ((unsigned)m >= ARRAY_SIZE(verify_names))
		return "unknown";
	return verify_names[m];
}

/* "profiles.[1].match.serial"; @extra (if given) is appended as a member name. */
static void config_setting_path(const config_setting_t *s, const char *extra, char *buf,
				size_t size)
{
	const config_setting_t *chain[32];
	size_t n = 0, len = 0;

	buf[0] = '\0';
	for (; s && !config_setting_is_root(s) && n < ARRAY_SIZE(chain);
	     s = config_setting_parent(s))
		chain[n++] = s;
	while (n-- > 0 && len < size) {
		const char *name = config_setting_name(chain[n]);
		const char *dot = len ? "." : "";
		int w;

		if (name)
			w = snprintf(buf + len, size - len, "%s%s", dot, name);
		else
			w = snprintf(buf + len, size - len, "%s[%d]", dot,
				     config_setting_index(chain[n]));
		if (w < 0)
			break;
		len += (size_t)w;
	}
	if (extra && len < size)
		snprintf(buf + len, size - len, "%s%s", len ? "." : "", extra);
}

/* The file a setting came from: the main file, or an @include'd one (whose name
 * libconfig gives relative to the include directory, the config's own). */
static int config_setting_file(const struct config_ctx *c, const config_setting_t *s, char **ret)
{
	const char *f = s ? config_setting_source_file(s) : NULL;
	char *p;

	if (!f)
		p = strdup(c->path);
	else if (f[0] == '/' || !c->shown_dir)
		p = strdup(f);
	else if (asprintf(&p, "%s/%s", c->shown_dir, f) < 0)
		p = NULL;
	if (!p)
		return -ENOMEM;
	*ret = p;
	return 0;
}

/*
 * Records "FILE:LINE: SETTING: message" for @s (with @member appended when the
 * setting in question is missing from the group @s) and returns -EINVAL. The
 * line is left out when there is none (a setting missing at the top level).
 */
static int config_fail(struct config_ctx *c, const config_setting_t *s, const char *member,
		       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int config_fail(struct config_ctx *c, const config_setting_t *s, const char *member,
		       const char *fmt, ...)
{
	char where[512], *file = NULL, *msg = NULL, *line = NULL;
	unsigned lineno = s ? config_setting_source_line(s) : 0;
	va_list ap;
	int r;

	if (c->error) /* keep the first */
		return -EINVAL;
	config_setting_path(s, member, where, sizeof(where));
	va_start(ap, fmt);
	r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (r < 0) {
		msg = NULL;
		goto out;
	}
	if (config_setting_file(c, s, &file) < 0)
		goto out;
	if (lineno > 0)
		r = asprintf(&line, "%s:%u: %s: %s", file, lineno, where, msg);
	else
		r = asprintf(&line, "%s: %s: %s", file, where, msg);
	if (r >= 0)
		c->error = line;
out:
	free(file);
	free(msg);
	return c->error ? -EINVAL : -ENOMEM;
}

/* Levenshtein distance of two short names, for "did you mean" hints. */
static unsigned config_distance(const char *a, const char *b)
{
	unsigned row[64], la = (unsigned)strlen(a), lb = (unsigned)strlen(b);

	if (la >= ARRAY_SIZE(row) || lb >= ARRAY_SIZE(row))
		return UINT_MAX;
	for (unsigned j = 0; j <= lb; j++)
		row[j] = j;
	for (unsigned i = 1; i <= la; i++) {
		unsigned diag = row[0];

		row[0] = i;
		for (unsigned j = 1; j <= lb; j++) {
			unsigned up = row[j], best = diag + (a[i - 1] != b[j - 1]);

			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			diag = up;
			row[j] = best;
		}
	}
	return row[lb];
}

/* Refuses any member of @group not in @known (NULL-terminated). */
static int config_check_members(struct config_ctx *c, const config_setting_t *group,
				const char *const *known)
{
	for (int i = 0; i < config_setting_length(group); i++) {
		const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
		const char *name = config_setting_name(s), *hint = NULL;
		unsigned best = 3; /* suggest only close names */
		size_t k;

		for (k = 0; known[k]; k++)
			if (strcmp(name, known[k]) == 0)
				break;
		if (known[k])
			continue;
		for (k = 0; known[k]; k++) {
			unsigned d = config_distance(name, known[k]);

			if (d < best) {
				best = d;
				hint = known[k];
			}
		}
		if (hint)
			return config_fail(c, s, NULL, "unknown setting (did you mean \"%s\"?)",
					   hint);
		return config_fail(c, s, NULL, "unknown setting");
	}
	return 0;
}

/* The line of @name in the @index'th group of @list (0 if none). */
static unsigned config_member_line(const config_setting_t *list, int index, const char *name)
{
	const config_setting_t *e = config_setting_get_elem(list, (unsigned)index);
	const config_setting_t *s = e ? config_setting_get_member(e, name) : NULL;

	return s ? config_setting_source_line(s) : 0;
}

static int config_need_group(struct config_ctx *c, const config_setting_t *s)
{
	if (!config_setting_is_group(s))
		return config_fail(c, s, NULL, "must be a group { ... }");
	return 0;
}

/* A list of groups; an empty array "[]" is taken as an empty list. */
static int config_need_list(struct config_ctx *c, const config_setting_t *s)
{
	if (config_setting_is_list(s) ||
	    (config_setting_is_array(s) && config_setting_length(s) == 0))
		return 0;
	return config_fail(c, s, NULL, "must be a list ( { ... }, ... )");
}

static int config_get_string(struct config_ctx *c, const config_setting_t *s, bool allow_empty,
			     const char **ret)
{
	const char *v = NULL;

	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return config_fail(c, s, NULL, "must be a string");
	v = config_setting_get_string(s);
	if (!allow_empty && (!v || !*v))
		return config_fail(c, s, NULL, "must not be empty");
	*ret = v ? v : "";
	return 0;
}

static int config_dup_string(struct config_ctx *c, const config_setting_t *s, bool allow_empty,
			     char **ret)
{
	const char *v = NULL;
	char *d;
	int r;

	r = config_get_string(c, s, allow_empty, &v);
	if (r < 0)
		return r;
	d = strdup(v);
	if (!d)
		return -ENOMEM;
	*ret = d;
	return 0;
}

/* @v as is when absolute, else relative to the config file's directory. */
static int config_dup_path(struct config_ctx *c, const config_setting_t *s, char **ret)
{
	const char *v = NULL;
	char *d;
	int r;

	r = config_get_string(c, s, false, &v);
	if (r < 0)
		return r;
	if (v[0] == '/') {
		d = strdup(v);
	} else {
		bool root = strcmp(c->abs_dir, "/") == 0;

		while (v[0] == '.' && v[1] == '/')
			v += 2 + strspn(v + 2, "/");
		if (asprintf(&d, "%s/%s", root ? "" : c->abs_dir, *v ? v : ".") < 0)
			d = NULL;
	}
	if (!d)
		return -ENOMEM;
	*ret = d;
	return 0;
}

static bool config_name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '_' || ch == '-' || ch == '*';
}

/*
 * libconfig 1.5 reads a plain integer literal beyond 32 bits (5000000000, no
 * "L" suffix) as its low 32 bits, silently: "min_size = 8589934592" would be
 * 0, no bound at all. Later libconfig versions promote such literals to
 * 64 bits. To behave the same, look for "NAME = LITERAL" on the setting's line
 * of the main file (outside strings and comments) and take the literal when
 * its low 32 bits are what libconfig kept (@stored). Included files keep
 * libconfig's value. -ERANGE: the literal does not fit in 64 bits either.
 */
static int config_int_literal(const struct config_ctx *c, const config_setting_t *s,
			      long long stored, long long *ret)
{
	const char *name = config_setting_name(s), *p = c->text, *eol;
	unsigned line = config_setting_source_line(s);
	size_t nlen;

	if (!name || !p || line == 0 || config_setting_source_file(s))
		return -ENOENT;
	nlen = strlen(name);
	for (unsigned l = 1; l < line && p; l++) {
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	if (!p)
		return -ENOENT;
	for (eol = strchrnul(p, '\n'); p < eol; p++) {
		const char *q = p + nlen;
		unsigned long long v;
		long long lit;
		bool neg = false;
		char *end;

		if (*p == '"') { /* skip the string, escapes included */
			for (p++; p < eol && *p != '"'; p++)
				if (*p == '\\' && p + 1 < eol)
					p++;
			continue;
		}
		if (*p == '#' || (p[0] == '/' && p[1] == '/'))
			break;
		if (p[0] == '/' && p[1] == '*') {
			const char *close = strstr(p + 2, "*/");

			if (!close || close >= eol)
				break;
			p = close + 1;
			continue;
		}
		if (strncmp(p, name, nlen) != 0 || (p > c->text && config_name_char(p[-1])) ||
		    config_name_char(*q))
			continue;
		q += strspn(q, " \t\r\n");
		if (*q != '=' && *q != ':')
			continue;
		q++;
		q += strspn(q, " \t\r\n");
		if (*q == '-' || *q == '+')
			neg = *q++ == '-';
		if (*q < '0' || *q > '9')
			continue;
		errno = 0;
		if (q[0] == '0' && (q[1] == 'x' || q[1] == 'X'))
			v = strtoull(q, &end, 16);
		else
			v = strtoull(q, &end, 10);
		if (errno == ERANGE || v > (unsigned long long)LLONG_MAX)
			return -ERANGE;
		if (end == q || *end == 'L' || *end == '.' || *end == 'e' || *end == 'E')
			continue;
		lit = neg ? -(long long)v : (long long)v;
		if ((int32_t)(uint32_t)(unsigned long long)lit != (int32_t)stored)
			continue;
		*ret = lit;
		return 0;
	}
	return -ENOENT;
}

static int config_get_int(struct config_ctx *c, const config_setting_t *s, const char *what,
			  long long *ret)
{
	long long v;
	int r;

	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
		v = config_setting_get_int64(s);
		r = config_int_literal(c, s, v, &v);
		if (r == -ERANGE)
			return config_fail(c, s, NULL, "number too large");
		break;
	case CONFIG_TYPE_INT64:
		v = config_setting_get_int64(s);
		break;
	default:
		return config_fail(c, s, NULL, "must be %s", what);
	}
	*ret = v;
	return 0;
}

/* "4G", "512M", "1.5T", "4GiB", "4GB" (all binary), or an integer of bytes. */
static int config_get_size(struct config_ctx *c, const config_setting_t *s, uint64_t *ret)
{
	const char *v = NULL;
	long long n;
	uint64_t size;
	size_t digits;
	int r;

	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		if (config_setting_type(s) != CONFIG_TYPE_INT &&
		    config_setting_type(s) != CONFIG_TYPE_INT64)
			return config_fail(c, s, NULL,
					   "must be a size such as \"4G\" or a number of bytes");
		r = config_get_int(c, s, "a size", &n);
		if (r < 0)
			return r;
		if (n < 0)
			return config_fail(c, s, NULL, "%lld is not a size", n);
		*ret = (uint64_t)n;
		return 0;
	}
	v = config_setting_get_string(s);
	if (!v)
		v = "";
	/* parse_size() takes anything strtod() does ("0x10", "1e3", "inf"): not here. */
	digits = strspn(v, "0123456789");
	if (v[digits] == '.')
		digits += 1 + strspn(v + digits + 1, "0123456789");
	if (digits == 0 || v[0] == '.' ||
	    strspn(v + digits, "kKmMgGtTiIbB") != strlen(v + digits) || parse_size(v, &size) < 0)
		return config_fail(
		    c, s, NULL, "\"%s\" is not a size (bytes, or a number with K, M, G or T)", v);
	*ret = size;
	return 0;
}

static int config_get_bool(struct config_ctx *c, const config_setting_t *s, bool *ret)
{
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return config_fail(c, s, NULL, "must be true or false");
	*ret = config_setting_get_bool(s);
	return 0;
}

const char *hook_event_name(enum hook_event e)
{
	return (unsigned)e < HOOK_EVENTS ? hook_keys[e] : "unknown";
}

/* hooks = { on_success = [ "/usr/local/bin/label", "%serial" ]; ... }: the
 * program's path is resolved like the other paths; arguments are kept as
 * written. */
static int config_parse_hooks(struct config_ctx *c, const config_setting_t *g, struct hooks *h)
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

static void hooks_free(struct hooks *h)
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

static int config_parse_match(struct config_ctx *c, const config_setting_t *g, struct match *m)
{
	const struct {
		const char *key;
		char **dst;
	} globs[] = {
	    {"slot", &m->slot},	  {"bus", &m->bus},	  {"vendor", &m->vendor},
	    {"model", &m->model}, {"serial", &m->serial},
	};
	const config_setting_t *s, *smin, *smax;
	int r;

	r = config_need_group(c, g);
	if (r < 0)
		return r;
	r = config_check_members(c, g, match_keys);
	if (r < 0)
		return r;
	for (size_t i = 0; i < ARRAY_SIZE(globs); i++) {
		s = config_setting_get_member(g, globs[i].key);
		if (!s)
			continue;
		r = config_dup_string(c, s, false, globs[i].dst);
		if (r < 0)
			return r;
	}
	smin = config_setting_get_member(g, "min_size");
	if (smin) {
		r = config_get_size(c, smin, &m->min_size);
		if (r < 0)
			return r;
	}
	smax = config_setting_get_member(g, "max_size");
	if (smax) {
		r = config_get_size(c, smax, &m->max_size);
		if (r < 0)
			return r;
		/* 0 means "no bound" inside; written out it is surely a mistake. */
		if (m->max_size == 0)
			return config_fail(c, smax, NULL,
					   "must be greater than 0 (leave it out for no bound)");
	}
	if (smin && smax && m->min_size > m->max_size) {
		char lo[32], hi[32];

		human_size(m->min_size, lo);
		human_size(m->max_size, hi);
		if (strcmp(lo, hi) == 0)
			return config_fail(c, smin, NULL,
					   "%" PRIu64 " bytes is above max_size %" PRIu64
					   " bytes: no device can fit",
					   m->min_size, m->max_size);
		return config_fail(c, smin, NULL, "%s is above max_size %s: no device can fit", lo,
				   hi);
	}
	return 0;
}

static int config_parse_profile(struct config_ctx *c, const config_setting_t *e, struct profile *p)
{
	const config_setting_t *s;
	int r;

	p->verify = VERIFY_READBACK;
	p->removable_only = true;

	r = config_need_group(c, e);
	if (r < 0)
		return r;
	r = config_check_members(c, e, profile_keys);
	if (r < 0)
		return r;

	s = config_setting_get_member(e, "name");
	if (!s)
		return config_fail(c, e, "name", "missing: a profile needs a name");
	r = config_dup_string(c, s, false, &p->name);
	if (r < 0)
		return r;

	s = config_setting_get_member(e, "image");
	if (!s)
		return config_fail(c, e, "image", "missing: profile \"%s\" needs an image",
				   p->name);
	r = config_dup_path(c, s, &p->image);
	if (r < 0)
		return r;

	s = config_setting_get_member(e, "bmap");
	if (s) {
		r = config_dup_path(c, s, &p->bmap);
		if (r < 0)
			return r;
	}

	s = config_setting_get_member(e, "verify");
	if (s) {
		const char *v = NULL;
		size_t i;

		r = config_get_string(c, s, true, &v);
		if (r < 0)
			return r;
		for (i = 0; i < ARRAY_SIZE(verify_names); i++)
			if (strcmp(v, verify_names[i]) == 0)
				break;
		if (i == ARRAY_SIZE(verify_names))
			return config_fail(c, s, NULL, "\"%s\" is not readback, checksums or none",
					   v);
		p->verify = (enum verify_mode)i;
	}

	s = config_setting_get_member(e, "removable_only");
	if (s) {
		r = config_get_bool(c, s, &p->removable_only);
		if (r < 0)
			return r;
	}

	s = config_setting_get_member(e, "once_per_serial");
	if (s) {
		r = config_get_bool(c, s, &p->once_per_serial);
		if (r < 0)
			return r;
	}

	s = config_setting_get_member(e, "discard");
	if (s) {
		r = config_get_bool(c, s, &p->discard);
		if (r < 0)
			return r;
	}

	s = config_setting_get_member(e, "hooks");
	if (s) {
		r = config_parse_hooks(c, s, &p->hooks);
		if (r < 0)
			return r;
	}

	s = config_setting_get_member(e, "match");
	if (s) {
		r = config_parse_match(c, s, &p->match);
		if (r < 0)
			return r;
	}
	return 0;
}

static int config_parse_profiles(struct config_ctx *c, const config_setting_t *root,
				 struct station_config *cfg)
{
	const config_setting_t *list = config_setting_get_member(root, "profiles");
	int n, r;

	if (!list)
		return config_fail(c, root, "profiles",
				   "no profiles: the station would never write a card");
	r = config_need_list(c, list);
	if (r < 0)
		return r;
	n = config_setting_length(list);
	if (n == 0)
		return config_fail(c, list, NULL,
				   "no profiles: the station would never write a card");
	cfg->profiles = calloc((size_t)n, sizeof(*cfg->profiles));
	if (!cfg->profiles)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);

		cfg->n_profiles++;
		r = config_parse_profile(c, e, &cfg->profiles[i]);
		if (r < 0)
			return r;
		for (int j = 0; j < i; j++)
			if (strcmp(cfg->profiles[j].name, cfg->profiles[i].name) == 0)
				return config_fail(
				    c, config_setting_get_member(e, "name"), NULL,
				    "duplicate profile name \"%s\" (also profiles.[%d], line %u)",
				    cfg->profiles[i].name, j, config_member_line(list, j, "name"));
	}
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
	cfg->max_workers = CONFIG_DEFAULT_MAX_WORKERS;
	cfg->max_device_size = CONFIG_DEFAULT_MAX_DEVICE_SIZE;
	cfg->job_timeout = CONFIG_DEFAULT_JOB_TIMEOUT;
	cfg->hook_timeout = 10;
	return 0;
}

/* The directory of @path as written ("." when none), and as an absolute path. */
static int config_dirs(struct config_ctx *c)
{
	const char *slash = strrchr(c->path, '/');
	char *cwd = NULL;
	int r = 0;

	if (!slash)
		c->shown_dir = NULL;
	else if (slash == c->path)
		c->shown_dir = strdup("/");
	else
		c->shown_dir = strndup(c->path, (size_t)(slash - c->path));
	if (slash && !c->shown_dir)
		return -ENOMEM;
	if (c->path[0] == '/') {
		c->abs_dir = strdup(c->shown_dir);
		return c->abs_dir ? 0 : -ENOMEM;
	}
	cwd = getcwd(NULL, 0);
	if (!cwd)
		return -errno;
	if (!c->shown_dir)
		c->abs_dir = strdup(cwd);
	else if (asprintf(&c->abs_dir, "%s/%s", strcmp(cwd, "/") ? cwd : "", c->shown_dir) < 0)
		c->abs_dir = NULL;
	if (!c->abs_dir)
		r = -ENOMEM;
	free(cwd);
	return r;
}

/* The whole file, NUL-terminated (libconfig's own reader opens without O_CLOEXEC). */
static int config_read_text(const char *path, char **ret)
{
	struct stat st;
	size_t len = 0, cap = 4096;
	char *buf = NULL, *nb;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out_close;
	}
	if (S_ISDIR(st.st_mode)) {
		r = -EISDIR;
		goto out_close;
	}
	for (;;) {
		ssize_t n;

		if (!buf || len + 1 >= cap) {
			if (buf)
				cap *= 2;
			if (cap > CONFIG_MAX_FILE_SIZE) {
				r = -EFBIG;
				goto out_free;
			}
			nb = realloc(buf, cap);
			if (!nb) {
				r = -ENOMEM;
				goto out_free;
			}
			buf = nb;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out_free;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*ret = buf;
	buf = NULL;
	r = 0;
out_free:
	free(buf);
out_close:
	close(fd);
	return r;
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
	for (size_t i = 0; i < cfg->n_profiles; i++) {
		struct profile *p = &cfg->profiles[i];

		free(p->name);
		free(p->image);
		free(p->bmap);
		free(p->match.slot);
		free(p->match.bus);
		free(p->match.vendor);
		free(p->match.model);
		free(p->match.serial);
		hooks_free(&p->hooks);
	}
	hooks_free(&cfg->hooks);
	free(cfg->profiles);
	free(cfg->path);
	free(cfg->name);
	free(cfg->database);
	free(cfg->require_tag);
	free(cfg->cache_dir);
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

/*
 * A given glob fits a known value it matches. An unknown value fits only "*"
 * ("anything, even unknown"); but for the slot, a device in no named slot
 * never fits a profile that names one: slot = "*" means "any named slot".
 */
static bool config_glob_fits(const char *glob, const char *value, bool is_slot)
{
	if (!glob)
		return true;
	if (!value)
		return !is_slot && strcmp(glob, "*") == 0;
	return fnmatch(glob, value, 0) == 0;
}

/* Counts the given keys of @p that fit; says in @why what the first misfit was. */
static bool config_profile_fits(const struct profile *p, const struct device_identity *id,
				const char *slot_name, unsigned *ret_fitting, char *why,
				size_t why_size)
{
	const struct match *m = &p->match;
	const struct {
		const char *key, *glob, *value;
	} globs[] = {
	    {"slot", m->slot, slot_name},      {"bus", m->bus, id->bus},
	    {"vendor", m->vendor, id->vendor}, {"model", m->model, id->model},
	    {"serial", m->serial, id->serial},
	};
	char have[32], want[32];
	unsigned fitting = 0;
	bool fits = true;

	why[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(globs); i++) {
		bool ok;

		if (!globs[i].glob)
			continue;
		ok = config_glob_fits(globs[i].glob, globs[i].value, i == 0);
		fitting += ok;
		if (ok || !fits)
			continue;
		fits = false;
		if (i == 0 && !slot_name)
			snprintf(why, why_size,
				 "profile \"%s\": the device is in no named slot, "
				 "the profile wants slot \"%s\"",
				 p->name, m->slot);
		else if (!globs[i].value)
			snprintf(why, why_size, "profile \"%s\": %s unknown does not match \"%s\"",
				 p->name, globs[i].key, globs[i].glob);
		else
			snprintf(why, why_size, "profile \"%s\": %s \"%s\" does not match \"%s\"",
				 p->name, globs[i].key, globs[i].value, globs[i].glob);
	}
	if (m->min_size) {
		bool ok = id->size >= m->min_size;

		fitting += ok;
		if (!ok && fits) {
			fits = false;
			human_size(id->size, have);
			human_size(m->min_size, want);
			if (strcmp(have, want) == 0)
				snprintf(why, why_size,
					 "profile \"%s\": size %" PRIu64
					 " bytes is below min_size %" PRIu64 " bytes",
					 p->name, id->size, m->min_size);
			else
				snprintf(why, why_size,
					 "profile \"%s\": size %s is below min_size %s", p->name,
					 have, want);
		}
	}
	if (m->max_size) {
		bool ok = id->size <= m->max_size;

		fitting += ok;
		if (!ok && fits) {
			fits = false;
			human_size(id->size, have);
			human_size(m->max_size, want);
			if (strcmp(have, want) == 0)
				snprintf(why, why_size,
					 "profile \"%s\": size %" PRIu64
					 " bytes is above max_size %" PRIu64 " bytes",
					 p->name, id->size, m->max_size);
			else
				snprintf(why, why_size,
					 "profile \"%s\": size %s is above max_size %s", p->name,
					 have, want);
		}
	}
	*ret_fitting = fitting;
	return fits;
}

/*
 * The reason handed out through *ret_why lives here: valid until the next
 * config_match() call, and not thread-safe (the daemon matches in its one
 * thread).
 */
static char config_why[512];

const struct profile *config_match(const struct station_config *cfg,
				   const struct device_identity *id, const char *slot_name,
				   const char **ret_why)
{
	char why[sizeof(config_why)];
	unsigned best = 0;
	bool have_best = false;

	if (!cfg || !id || cfg->n_profiles == 0) {
		if (ret_why)
			*ret_why = "no profiles";
		return NULL;
	}
	for (size_t i = 0; i < cfg->n_profiles; i++) {
		unsigned fitting;

		if (config_profile_fits(&cfg->profiles[i], id, slot_name, &fitting, why,
					sizeof(why)))
			return &cfg->profiles[i];
		/* The closest misfit: most keys fitting, the earliest on a tie. */
		if (!have_best || fitting > best) {
			have_best = true;
			best = fitting;
			memcpy(config_why, why, sizeof(config_why));
		}
	}
	if (ret_why)
		*ret_why = config_why;
	return NULL;
}
