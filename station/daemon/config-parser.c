/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The libconfig helpers the station's configuration is read with, in the
 * manner of systemd's conf-parser: typed getters whose every refusal names
 * the file, the line and the setting (config_fail), unknown settings caught
 * with a "did you mean", paths resolved from the configuration's folder.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bmap.h"
#include "config-parser.h"
#include "util.h"

/* A station file is a few kilobytes; anything this big is not one. */
#define CONFIG_MAX_FILE_SIZE (16u << 20)

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
int config_fail(struct config_ctx *c, const config_setting_t *s, const char *member,
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
int config_check_members(struct config_ctx *c, const config_setting_t *group,
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
unsigned config_member_line(const config_setting_t *list, int index, const char *name)
{
	const config_setting_t *e = config_setting_get_elem(list, (unsigned)index);
	const config_setting_t *s = e ? config_setting_get_member(e, name) : NULL;

	return s ? config_setting_source_line(s) : 0;
}

int config_need_group(struct config_ctx *c, const config_setting_t *s)
{
	if (!config_setting_is_group(s))
		return config_fail(c, s, NULL, "must be a group { ... }");
	return 0;
}

/* A list of groups; an empty array "[]" is taken as an empty list. */
int config_need_list(struct config_ctx *c, const config_setting_t *s)
{
	if (config_setting_is_list(s) ||
	    (config_setting_is_array(s) && config_setting_length(s) == 0))
		return 0;
	return config_fail(c, s, NULL, "must be a list ( { ... }, ... )");
}

int config_get_string(struct config_ctx *c, const config_setting_t *s, bool allow_empty,
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

int config_dup_string(struct config_ctx *c, const config_setting_t *s, bool allow_empty, char **ret)
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
int config_dup_path(struct config_ctx *c, const config_setting_t *s, char **ret)
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

int config_dup_location(struct config_ctx *c, const config_setting_t *s, char **ret)
{
	const char *v = NULL;
	int r;

	r = config_get_string(c, s, false, &v);
	if (r < 0)
		return r;
	if (!bmap_location_is_url(v))
		return config_dup_path(c, s, ret);
	*ret = strdup(v);
	return *ret ? 0 : -ENOMEM;
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

int config_get_int(struct config_ctx *c, const config_setting_t *s, const char *what,
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
int config_get_size(struct config_ctx *c, const config_setting_t *s, uint64_t *ret)
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

int config_get_bool(struct config_ctx *c, const config_setting_t *s, bool *ret)
{
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return config_fail(c, s, NULL, "must be true or false");
	*ret = config_setting_get_bool(s);
	return 0;
}

/* The directory of @path as written ("." when none), and as an absolute path. */
int config_dirs(struct config_ctx *c)
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

int config_read_text(const char *path, char **ret)
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
