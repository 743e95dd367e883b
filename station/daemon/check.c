/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * `bmap-station check`: the configuration, then every block disk present
 * with what `run` would do with it, decided by the same policy_decide().
 * Writes nothing; the journal, when there is one, is only read (for
 * once_per_serial).
 */
#include <errno.h>
#include <stdarg.h>
#include <libgen.h>
#include <libudev.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "bmap.h"
#include "config.h"
#include "device.h"
#include "journal.h"
#include "policy.h"
#include "sanitize.h"
#include "station.h"
#include "sync.h"
#include "util.h"

static const char *const verdict_words[] = {
    [POLICY_IGNORE] = "ignored: ",
    [POLICY_REFUSE] = "refused: ",
    [POLICY_FAIL] = "failed: ",
};

/* Problems: [0] `run` would fail (exit 1), [1] cards would fail until fixed
 * (an image not there yet: it may be copied in later). */
__attribute__((format(printf, 2, 3))) static void problem(unsigned *n, const char *fmt, ...)
{
	char line[PATH_MAX + 512], safe[PATH_MAX + 512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "bmap-station: %s\n", printable(line, safe, sizeof(safe)));
	(*n)++;
}

/* A file `run` will read: there, a regular file, readable. */
static void check_input(unsigned *n, const char *what, const char *path)
{
	struct stat st;

	/* A URL is not asked here: `check` must not hang on a server that
	 * does not answer. Its bmap is fetched when a card is decided below,
	 * and a card of a missing image fails naming the URL. */
	if (bmap_location_is_url(path))
		return;
	if (stat(path, &st) < 0 && errno == ENOENT)
		problem(n + 1, "warning: %s '%s' is not there: its cards fail until it is", what,
			path);
	else if (stat(path, &st) < 0)
		problem(n, "%s '%s': %m", what, path);
	else if (S_ISDIR(st.st_mode))
		problem(n, "%s '%s' is a directory, not a file", what, path);
	else if (access(path, R_OK) < 0)
		problem(n, "%s '%s' cannot be read by this user: %m", what, path);
}

static void check_hooks(unsigned *n, const char *owner, const struct hooks *h)
{
	for (int ev = 0; ev < HOOK_EVENTS; ev++) {
		const char *prog = h->argv[ev] ? h->argv[ev][0] : NULL;
		struct stat st;

		if (!prog)
			continue;
		if (stat(prog, &st) < 0)
			problem(n, "%s: the %s hook '%s': %m", owner, hook_event_name(ev), prog);
		else if (!S_ISREG(st.st_mode) || access(prog, X_OK) < 0)
			problem(n, "%s: the %s hook '%s' is not an executable file", owner,
				hook_event_name(ev), prog);
	}
}

/* The journal: an existing one must be a writable file; a new one needs a
 * writable folder on a writable file system. */
static void check_journal(unsigned *n, const char *path)
{
	char dir[PATH_MAX];
	struct statvfs vfs;
	struct stat st;

	if (stat(path, &st) == 0) {
		if (!S_ISREG(st.st_mode))
			problem(n, "journal '%s' is not a regular file", path);
		else if (access(path, W_OK) < 0)
			problem(n, "journal '%s' cannot be written by this user: %m", path);
		return;
	}
	if (errno != ENOENT) {
		problem(n, "journal '%s': %m", path);
		return;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	dirname(dir);
	if (stat(dir, &st) < 0)
		problem(n, "journal folder '%s' (for '%s'): %m; create it or change database", dir,
			path);
	else if (!S_ISDIR(st.st_mode))
		problem(n, "journal folder '%s' is not a directory", dir);
	else if (statvfs(dir, &vfs) == 0 && (vfs.f_flag & ST_RDONLY))
		problem(n, "journal folder '%s' is on a read-only file system", dir);
	else if (access(dir, W_OK | X_OK) < 0)
		problem(n, "journal folder '%s' cannot be written by this user: %m", dir);
}

/* sync.conninfo: `sync` would fail on it, `run` does not read it. libpq's
 * message is shown without the password (sync_conninfo_shown()). */
static void check_sync(unsigned n[2], const struct station_config *cfg)
{
	char *shown = NULL, *err = NULL;

	if (!cfg->sync_conninfo)
		return;
	if (sync_conninfo_shown(cfg->sync_conninfo, &shown, &err) < 0)
		problem(n + 1, "warning: sync.conninfo: %s; `bmap-station sync` refuses it",
			err ? err : "out of memory");
	free(shown);
	free(err);
}

/* What `run` would fail on before it flashes anything (@n[0]), and what
 * its cards would fail on (@n[1]). */
static void check_config(const struct station_config *cfg, unsigned n[2])
{
	char owner[300];

	check_journal(n, cfg->database);
	check_hooks(n, "station", &cfg->hooks);
	check_sync(n, cfg);
	for (size_t i = 0; i < cfg->n_profiles; i++) {
		const struct profile *p = &cfg->profiles[i];

		snprintf(owner, sizeof(owner), "profile %s", p->name);
		check_input(n, "image", p->image);
		if (p->bmap)
			check_input(n, "bmap", p->bmap);
		/* An unreadable keyring refuses every card of the profile: a
		 * problem, not a warning. */
		if (p->sig.keyring && access(p->sig.keyring, R_OK) < 0)
			problem(n, "%s: keyring '%s': %m", owner, p->sig.keyring);
		else if (p->sig.keyring)
			check_input(n, "keyring", p->sig.keyring);
		check_hooks(n, owner, &p->hooks);
	}
}

static void check_device(const struct station_config *cfg, struct journal *j,
			 const struct device *d, FILE *out, unsigned *problems)
{
	const char *slot = d->id_path ? config_slot_name(cfg, d->id_path) : NULL;
	char why[1100], safe[1100], h[32], ser[64], dev[64];

	if (d->size == 0) {
		snprintf(why, sizeof(why), "no medium");
	} else {
		struct policy_decision pd;

		policy_decide(cfg, d, slot, j, policy_bmap_facts_now, NULL, &pd);
		/* A configuration that cannot work for this slot's cards. */
		if (pd.profile && pd.profile->once_per_serial && d->in_reader)
			problem(problems,
				"profile %s asks once_per_serial of %s%s%s, a card reader: its cards "
				"have no serial of their own",
				pd.profile->name, d->devnode ? d->devnode : d->sysname,
				slot ? ", slot " : "", slot ? slot : "");
		if (pd.verdict == POLICY_QUEUE)
			snprintf(why, sizeof(why), "profile %s%s%s", pd.profile->name,
				 slot ? ", slot " : "", slot ? slot : "");
		else
			snprintf(why, sizeof(why), "%s%s", verdict_words[pd.verdict], pd.why);
		policy_decision_clear(&pd);
	}
	fprintf(out, "%-14s %-20s %-10s %s\n",
		printable(d->devnode ? d->devnode : d->sysname, dev, sizeof(dev)),
		printable(d->serial, ser, sizeof(ser)), human_size(d->size, h),
		printable(why, safe, sizeof(safe)));
}

int station_check(const char *config_path, FILE *out)
{
	struct station_config *cfg = NULL;
	struct journal *j = NULL;
	struct udev *udev = NULL;
	struct udev_enumerate *en = NULL;
	struct udev_list_entry *e;
	char *err = NULL, a[PATH_MAX], b[PATH_MAX], c[256];
	unsigned problems[2] = {0, 0};
	int ret = EXIT_FAILURE;

	if (config_load(config_path, &cfg, &err) < 0) {
		fprintf(stderr, "bmap-station: %s\n", err ? err : "cannot load the configuration");
		free(err);
		return EXIT_FAILURE;
	}
	check_config(cfg, problems);
	if (problems[0])
		fprintf(out, "configuration %s: %u problem(s), `run` would fail (see above)\n",
			printable(config_path, a, sizeof(a)), problems[0]);
	else if (problems[1])
		fprintf(out, "configuration %s: valid, %u warning(s) (see above)\n",
			printable(config_path, a, sizeof(a)), problems[1]);
	else
		fprintf(out, "configuration %s: ok\n", printable(config_path, a, sizeof(a)));
	fprintf(out, "station '%s', journal %s, up to %u workers, require_tag '%s'\n",
		printable(cfg->name, a, sizeof(a)), printable(cfg->database, b, sizeof(b)),
		cfg->max_workers, printable(cfg->require_tag, c, sizeof(c)));
	if (cfg->sync_conninfo) {
		char *shown = NULL;

		if (sync_conninfo_shown(cfg->sync_conninfo, &shown, NULL) == 0)
			fprintf(out, "sync: as station '%s' into %s\n",
				printable(cfg->sync_station ? cfg->sync_station : cfg->name, a,
					  sizeof(a)),
				printable(shown, b, sizeof(b)));
		free(shown);
	}
	for (size_t i = 0; i < cfg->n_profiles; i++) {
		/* A URL without its password. */
		_cleanup_free_ char *image = bmap_url_display(cfg->profiles[i].image);

		fprintf(out, "profile %s: image %s, verify %s%s%s%s\n",
			printable(cfg->profiles[i].name, a, sizeof(a)),
			printable(image ? image : "?", b, sizeof(b)),
			verify_mode_name(cfg->profiles[i].verify),
			cfg->profiles[i].removable_only ? ", removable only" : "",
			cfg->profiles[i].discard ? ", discard" : "",
			cfg->profiles[i].sig.mode == SIG_REQUIRED ? ", signature required" : "");
	}
	/* once_per_serial asks the journal; none yet means no serial passed. */
	if (access(cfg->database, F_OK) == 0 && journal_open(cfg->database, true, &j, &err) < 0) {
		fprintf(stderr, "bmap-station: %s\n", err ? err : "cannot open the journal");
		free(err);
		goto out;
	}

	udev = udev_new();
	en = udev ? udev_enumerate_new(udev) : NULL;
	if (!en) {
		fprintf(stderr, "bmap-station: cannot talk to udev\n");
		goto out;
	}
	udev_enumerate_add_match_subsystem(en, "block");
	udev_enumerate_add_match_property(en, "DEVTYPE", "disk");
	udev_enumerate_add_match_is_initialized(en);
	udev_enumerate_scan_devices(en);
	fprintf(out, "\n%-14s %-20s %-10s %s\n", "DEVICE", "SERIAL", "SIZE", "PROFILE OR WHY NOT");
	udev_list_entry_foreach(e, udev_enumerate_get_list_entry(en))
	{
		struct udev_device *u =
		    udev_device_new_from_syspath(udev, udev_list_entry_get_name(e));
		struct device d;

		if (!u)
			continue;
		if (device_from_udev(u, cfg->require_tag, &d) == 0) {
			if (!device_never_candidate(&d))
				check_device(cfg, j, &d, out, problems);
			device_clear(&d);
		}
		udev_device_unref(u);
	}
	if (problems[0])
		fprintf(out, "\nconfiguration %s: %u problem(s) (see above)\n",
			printable(config_path, a, sizeof(a)), problems[0]);
	ret = problems[0] ? EXIT_FAILURE : EXIT_SUCCESS;
out:
	if (en)
		udev_enumerate_unref(en);
	if (udev)
		udev_unref(udev);
	journal_close(j);
	config_free(cfg);
	return ret;
}
