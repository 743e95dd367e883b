/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Inside the configuration reader only (config.c, profile.c): the libconfig
 * helpers of config-parser.c, and the section parsers those files share.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <libconfig.h>

#include "config.h"

/* State of one config_load(): where messages point and where paths resolve. */
struct config_ctx {
	const char *path; /* as given, for messages */
	const char *text; /* the main file's contents */
	char *shown_dir;  /* dirname of @path as given, for included files' names */
	char *abs_dir;	  /* absolute directory of @path, for relative paths */
	char *error;
};

/*
 * Records "FILE:LINE: SETTING: message" for @s (with @member appended when the
 * setting in question is missing from the group @s) and returns -EINVAL. The
 * line is left out when there is none (a setting missing at the top level).
 */
int config_fail(struct config_ctx *c, const config_setting_t *s, const char *member,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Refuses any member of @group not in @known (NULL-terminated). */
int config_check_members(struct config_ctx *c, const config_setting_t *group,
			 const char *const *known);
/* The line of @name in the @index'th group of @list (0 if none). */
unsigned config_member_line(const config_setting_t *list, int index, const char *name);
int config_need_group(struct config_ctx *c, const config_setting_t *s);
/* A list of groups; an empty array "[]" is taken as an empty list. */
int config_need_list(struct config_ctx *c, const config_setting_t *s);

int config_get_string(struct config_ctx *c, const config_setting_t *s, bool allow_empty,
		      const char **ret);
int config_dup_string(struct config_ctx *c, const config_setting_t *s, bool allow_empty,
		      char **ret);
/* @v as is when absolute, else relative to the config file's directory. */
int config_dup_path(struct config_ctx *c, const config_setting_t *s, char **ret);
/* A profile's image or bmap: a URL (http://, https://, ftp://, file:) as
 * given, a path as config_dup_path() makes it: a URL joined to the config's
 * folder would name a file that is not there. */
int config_dup_location(struct config_ctx *c, const config_setting_t *s, char **ret);
int config_get_int(struct config_ctx *c, const config_setting_t *s, const char *what,
		   long long *ret);
/* "4G", "512M", "1.5T", "4GiB", "4GB" (all binary), or an integer of bytes. */
int config_get_size(struct config_ctx *c, const config_setting_t *s, uint64_t *ret);
int config_get_bool(struct config_ctx *c, const config_setting_t *s, bool *ret);

/* The directory of @c->path as written, and as an absolute path. */
int config_dirs(struct config_ctx *c);
/* The whole file, NUL-terminated (libconfig's own reader opens without O_CLOEXEC). */
int config_read_text(const char *path, char **ret);

/* Section parsers shared between config.c and profile.c. */
int config_parse_hooks(struct config_ctx *c, const config_setting_t *g, struct hooks *h);
void hooks_free(struct hooks *h);
int config_parse_profiles(struct config_ctx *c, const config_setting_t *root,
			  struct station_config *cfg);
