/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * `bmap-station check`: the configuration, then every block disk present
 * with what `run` would do with it, decided by the same policy_decide().
 * Writes nothing; the journal, when there is one, is only read (for
 * once_per_serial).
 */
#include <libudev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "device.h"
#include "journal.h"
#include "policy.h"
#include "sanitize.h"
#include "station.h"
#include "util.h"

static const char *const verdict_words[] = {
    [POLICY_IGNORE] = "ignored: ",
    [POLICY_REFUSE] = "refused: ",
    [POLICY_FAIL] = "failed: ",
};

static void check_device(const struct station_config *cfg, struct journal *j,
			 const struct device *d, FILE *out)
{
	const char *slot = d->id_path ? config_slot_name(cfg, d->id_path) : NULL;
	char why[1100], safe[1100], h[32], ser[64], dev[64];

	if (d->size == 0) {
		snprintf(why, sizeof(why), "no medium");
	} else {
		struct policy_decision pd;

		policy_decide(cfg, d, slot, j, &pd);
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
	char *err = NULL;
	int ret = EXIT_FAILURE;

	if (config_load(config_path, &cfg, &err) < 0) {
		fprintf(stderr, "bmap-station: %s\n", err ? err : "cannot load the configuration");
		free(err);
		return EXIT_FAILURE;
	}
	fprintf(out, "configuration %s: ok\n", config_path);
	fprintf(out, "station '%s', journal %s, up to %u workers, require_tag '%s'\n", cfg->name,
		cfg->database, cfg->max_workers, cfg->require_tag);
	for (size_t i = 0; i < cfg->n_profiles; i++)
		fprintf(out, "profile %s: image %s, verify %s%s%s\n", cfg->profiles[i].name,
			cfg->profiles[i].image, verify_mode_name(cfg->profiles[i].verify),
			cfg->profiles[i].removable_only ? ", removable only" : "",
			cfg->profiles[i].discard ? ", discard" : "");
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
				check_device(cfg, j, &d, out);
			device_clear(&d);
		}
		udev_device_unref(u);
	}
	ret = EXIT_SUCCESS;
out:
	if (en)
		udev_enumerate_unref(en);
	if (udev)
		udev_unref(udev);
	journal_close(j);
	config_free(cfg);
	return ret;
}
