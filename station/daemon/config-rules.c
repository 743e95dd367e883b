/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * `bmap-station udev-rules`: udev rules written from the configuration's
 * slots, tagging the disks in the station's own ports and nothing else (the
 * packaged rules/90-bmap-station.rules takes every USB disk and SD card).
 * Either way the disk the system stands on is left alone (system-disk.c).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

/* What a rule may hold between its quotes and still match literally: no
 * quote, no backslash, none of udev's glob characters (* ? [ ] |), no space
 * (IMPORT{program} splits its command at spaces), no newline. ID_PATH values
 * are made of these ("pci-0000:00:14.0-usb-0:1.2:1.0-scsi-0:0:0:0"). */
static bool rule_literal(const char *s, const char *extra)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("._-", *s) || (*s && strchr(extra, *s))))
			return false;
	return true;
}

/* A comment stays one line, whatever a slot's name holds. */
static void comment_text(FILE *out, const char *s)
{
	for (; *s; s++)
		fputc((unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f ? *s : '?', out);
}

static int rules_fail(char **ret_error, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int rules_fail(char **ret_error, const char *fmt, ...)
{
	char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (ret_error && vasprintf(&msg, fmt, ap) >= 0)
		*ret_error = msg;
	va_end(ap);
	return -EINVAL;
}

int config_udev_rules(const struct station_config *cfg, const char *helper, FILE *out,
		      char **ret_error)
{
	const char *tag = cfg->require_tag && *cfg->require_tag ? cfg->require_tag : "bmap-station";

	if (cfg->n_slots == 0)
		return rules_fail(
		    ret_error,
		    "%s: no slots: name the station's ports (slots = ( { name; path; } ))"
		    " first; the packaged 90-bmap-station.rules takes every USB disk and"
		    " SD card",
		    cfg->path);
	if (!rule_literal(tag, ""))
		return rules_fail(ret_error,
				  "%s: station.require_tag \"%s\" cannot be a udev tag (letters, "
				  "digits, '.', '_', '-')",
				  cfg->path, tag);
	if (!helper || helper[0] != '/' || !rule_literal(helper, "/+"))
		return rules_fail(
		    ret_error,
		    "the program's path \"%s\" cannot go into a udev rule (an absolute "
		    "path of letters, digits and / . _ + -)",
		    helper ? helper : "");
	for (size_t i = 0; i < cfg->n_slots; i++)
		if (!rule_literal(cfg->slots[i].path, ":+@,"))
			return rules_fail(ret_error,
					  "slot \"%s\": path \"%s\" is no ID_PATH a rule can match "
					  "(letters, digits and : . _ + @ , -)",
					  cfg->slots[i].name, cfg->slots[i].path);

	fprintf(out, "# bmap-station: the disks in this station's slots, and only those, are\n"
		     "# tagged for it, kept from desktops and named by their slot. Written by\n"
		     "# `bmap-station udev-rules` from ");
	comment_text(out, cfg->path);
	fprintf(out,
		"; write it again when the\n"
		"# slots change. As /etc/udev/rules.d/90-bmap-station.rules it replaces the\n"
		"# packaged rules of that name (every USB disk and SD card); then run\n"
		"#   udevadm control --reload && udevadm trigger --action=change "
		"--subsystem-match=block\n"
		"# Never tagged, in a slot or not: partitions, eMMC hardware partitions, and\n"
		"# the disk the system stands on (/, /usr, /var, /efi, /boot and below, a swap\n"
		"# area; mounted or listed in /etc/fstab: bmap-station system-disk).\n"
		"\n"
		"ACTION==\"remove\", GOTO=\"bmap_station_end\"\n"
		"SUBSYSTEM!=\"block\", GOTO=\"bmap_station_end\"\n"
		"ENV{DEVTYPE}!=\"disk\", GOTO=\"bmap_station_end\"\n"
		"KERNEL==\"mmcblk*boot*|mmcblk*rpmb\", GOTO=\"bmap_station_end\"\n"
		"TEST==\"force_ro\", GOTO=\"bmap_station_end\"\n"
		"\n");
	for (size_t i = 0; i < cfg->n_slots; i++) {
		fprintf(out, "# slot ");
		comment_text(out, cfg->slots[i].name);
		fprintf(out, "\nENV{ID_PATH}==\"%s\", GOTO=\"bmap_station_slot\"\n",
			cfg->slots[i].path);
	}
	fprintf(out,
		"GOTO=\"bmap_station_end\"\n"
		"\n"
		"LABEL=\"bmap_station_slot\"\n"
		"# Fail closed: only a disk the helper says is no system disk goes on (a\n"
		"# helper that is missing or fails leaves the disk alone).\n"
		"ENV{BMAP_STATION_DISK}=\"\"\n"
		"IMPORT{program}=\"%s system-disk $major:$minor $devnode\"\n"
		"ENV{BMAP_STATION_DISK}!=\"candidate\", GOTO=\"bmap_station_end\"\n"
		"TAG+=\"%s\"\n"
		"# Only the station's user writes cards (group bmap-station-cards). On a line\n"
		"# of its own: udev drops a line whose GROUP it cannot resolve.\n"
		"GROUP=\"bmap-station-cards\", MODE=\"0660\"\n"
		"ENV{UDISKS_IGNORE}=\"1\", ENV{UDISKS_AUTO}=\"0\"\n"
		"ATTR{removable}==\"1\", ENV{ID_BUS}==\"usb\", "
		"ENV{BMAP_STATION_CARD_READER}=\"1\"\n"
		"SYMLINK+=\"bmap-station/slot/$env{ID_PATH}\"\n"
		"\n"
		"LABEL=\"bmap_station_end\"\n",
		helper, tag);
	return fflush(out) == 0 && !ferror(out) ? 0 : -EIO;
}
