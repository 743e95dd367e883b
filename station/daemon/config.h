/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The station's configuration (libconfig): station settings, named slots and
 * the profiles (profile.h).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "profile.h"

struct slot_def {
	char *name;
	char *path; /* udev ID_PATH */
};

struct station_config {
	char *path;        /* the file it was read from */
	char *name;        /* station.name, default: the host name */
	char *database;    /* station.database */
	unsigned max_workers;      /* default 4 */
	char *require_tag;         /* default "bmap-station"; "" = any block disk */
	uint64_t max_device_size;  /* default 256 GiB; never touch anything bigger */
	unsigned job_timeout;      /* seconds, default 3600 */
	unsigned hook_timeout;     /* seconds a hook may run, default 10 */
	char *cache_dir;           /* decompress-once cache; "" = off */
	uint64_t cache_max_size;   /* bytes the cache may hold, default 32 GiB */
	bool cache_prefill;        /* fill each profile's entry before its cards, default true */
	char *sync_conninfo;       /* sync.conninfo (libpq), NULL: none */
	char *sync_station;        /* sync.station_name, NULL: name */
	char *serve_listen;        /* serve.listen, NULL: 127.0.0.1:8080 */
	char *serve_tls_cert;      /* serve.tls_cert (PEM), NULL: plain HTTP */
	char *serve_tls_key;       /* serve.tls_key (PEM) */
	char *serve_password_file; /* serve.password_file, NULL: no password */
	struct hooks hooks;
	struct slot_def *slots;
	size_t n_slots;
	struct profile *profiles;
	size_t n_profiles;
};

/* Loads and validates @path. On failure returns -errno and a malloc'd message
 * in *ret_error naming the file, the line and the setting
 * ("station.conf:12: profiles.[0].verify: must be readback, checksums or none"). */
int config_load(const char *path, struct station_config **ret_config, char **ret_error);
void config_free(struct station_config *cfg);

/* The slot name whose path equals @id_path, or NULL. */
const char *config_slot_name(const struct station_config *cfg, const char *id_path);

/* A reload keeps the journal the station opened at start: @cfg (the new
 * configuration) takes @old's database setting and @old gets @cfg's, to be
 * freed with it. An exchange, not a copy, so that it cannot fail: a copy
 * short of memory once left the setting NULL, and the next reload crashed. */
void config_keep_database(struct station_config *cfg, struct station_config *old);

/* Writes udev rules to @out that tag the disks in @cfg's slots (by ID_PATH)
 * and no others, never a system disk (asking `@helper system-disk`, @helper
 * being this program's absolute path). -EINVAL with a message in *ret_error
 * when there are no slots, or a slot's path, the tag or @helper cannot be
 * written into a rule literally; -EIO when @out fails. */
int config_udev_rules(const struct station_config *cfg, const char *helper, FILE *out,
		      char **ret_error);
