/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Whether a whole disk is one the running system stands on: it holds (through
 * partitions, device-mapper or md layers, loop devices' backing files) /,
 * /usr, /var, /efi, /boot or a mount below /boot, an active swap area, or a swap area or one of those
 * mount points that /etc/fstab lists and that is not mounted yet. The udev
 * rules ask (`bmap-station system-disk`) and never tag such a disk.
 */
#pragma once

#include <stdio.h>
#include <sys/types.h>

/* Where the answers come from; tests point them at files of their own. */
struct system_disk_paths {
	const char *mountinfo; /* /proc/self/mountinfo */
	const char *swaps;     /* /proc/swaps */
	const char *fstab;     /* /etc/fstab */
	const char *sysfs;     /* /sys: partitions, holders' slaves */
	const char *dev;       /* /dev: fstab's /dev/... and /dev/disk/by-* names */
};

extern const struct system_disk_paths system_disk_default_paths;

/*
 * 1 when @disk is a system disk, with the reason in @why ("holds /boot");
 * 0 when it is not; -errno when that cannot be known (a table that cannot be
 * read, a disk that cannot be): the caller must then treat it as a system
 * disk. @devnode (the disk's node, or NULL) is opened for reading only when
 * fstab names a file system or partition by UUID=, LABEL=, PARTUUID= or
 * PARTLABEL= that is not mounted, to compare those with the disk's own.
 * @p: NULL for the system's own tables.
 */
int system_disk_check(const struct system_disk_paths *p, dev_t disk, const char *devnode,
		      char *why, size_t why_len);

/*
 * `bmap-station system-disk MAJOR:MINOR [DEVNODE]`, for IMPORT{program} in
 * the udev rules: prints BMAP_STATION_DISK=candidate, or
 * BMAP_STATION_DISK=system and BMAP_STATION_SYSTEM_DISK=<why>, to @out and
 * returns 0; anything else (a bad argument, a table that cannot be read)
 * prints the error to stderr and returns 1, and the rules tag nothing.
 */
int system_disk_command(int argc, char **argv, FILE *out);
