/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A block disk as the station sees it: identity from udev and sysfs, and the
 * safety gate every write must pass.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct udev_device;

struct device {
	char *syspath;
	char *sysname; /* "sdb", "mmcblk0", "loop3" */
	char *devnode;
	dev_t devnum;
	uint64_t diskseq; /* 0 when the kernel has none */
	uint64_t size;    /* bytes; 0 = no media */
	bool removable;
	bool read_only;
	bool tagged; /* carries the configured udev tag */
	/* The medium sits in a card reader whose serial is the reader's, not
	 * the card's (udev's BMAP_STATION_CARD_READER=1, set by the rules for
	 * USB disks with removable media); never for native MMC/SD. */
	bool in_reader;
	char *serial, *reader_serial, *vendor, *model, *bus, *id_path;
	char *mmc_cid, *mmc_serial, *mmc_manfid, *mmc_oemid, *mmc_name, *mmc_date;
};

/* Fills @d from a udev device ("block"/"disk"). @tag: required tag or NULL/"" */
int device_from_udev(struct udev_device *u, const char *tag, struct device *d);
void device_clear(struct device *d);
/* Never candidates: partitions, and eMMC hardware partitions: by name
 * (mmcblkNbootM, mmcblkNrpmb) and by sysfs force_ro, which only they have. */
bool device_never_candidate(const struct device *d);

/* The safety gate's checks that need no open fd: returns 0 when the device may
 * be written, or -errno with a reason in @why (mounted, held, holds / or swap,
 * read-only, too big). */
int device_gate(const struct device *d, uint64_t max_device_size, char *why, size_t why_len);

/* The medium behind @fd is still the one udev announced with DISKSEQ
 * @expected: 0, or -ESTALE with the reason in @why. 0 as well when either
 * side has no DISKSEQ (old kernels). */
int device_diskseq_check(int fd, uint64_t expected, char *why, size_t why_len);
/* The same through a read-only open of @devnode, done before the device is
 * opened for writing; 0 when @devnode cannot be opened (the writer's open
 * reports that). */
int device_diskseq_check_node(const char *devnode, uint64_t expected, char *why, size_t why_len);

/* Partition table or file system found by libblkid on @fd ("gpt 1234-...",
 * "dos 0x1234abcd", "ext4 UUID", or "none"); malloc'd. */
char *device_probe_content(int fd);
