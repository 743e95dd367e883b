/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Device identity (udev properties, sysfs, native MMC attributes) and the
 * safety gate: a disk that is mounted, held, holds / or an active swap,
 * read-only or bigger than the station allows is never written.
 */
#include <blkid/blkid.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libudev.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "device.h"
#include "util.h"

static char *dup_or_null(const char *s)
{
	return s && *s ? strdup(s) : NULL;
}

/* A sysfs attribute, trimmed; NULL when absent or empty. */
static char *attr(struct udev_device *u, const char *name)
{
	const char *v = udev_device_get_sysattr_value(u, name);
	char *s, *end;

	if (!v)
		return NULL;
	s = strdup(v);
	if (!s)
		return NULL;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	if (!*s) {
		free(s);
		return NULL;
	}
	return s;
}

/* CURRENT_TAGS, not TAGS: TAGS is sticky, and keeps a tag that a rule gave
 * the device for an earlier medium (a loop device reused, a reader whose
 * card was swapped for one the rules no longer tag). */
static bool has_tag(struct udev_device *u, const char *tag)
{
	struct udev_list_entry *e;

	udev_list_entry_foreach(e, udev_device_get_current_tags_list_entry(u))
		if (strcmp(udev_list_entry_get_name(e), tag) == 0)
			return true;
	return false;
}

int device_from_udev(struct udev_device *u, const char *tag, struct device *d)
{
	const char *v;
	char *s;

	memset(d, 0, sizeof(*d));
	d->syspath = dup_or_null(udev_device_get_syspath(u));
	d->sysname = dup_or_null(udev_device_get_sysname(u));
	d->devnode = dup_or_null(udev_device_get_devnode(u));
	d->devnum = udev_device_get_devnum(u);
	if (!d->syspath || !d->sysname) {
		device_clear(d);
		return -ENOMEM;
	}
	v = udev_device_get_property_value(u, "DISKSEQ");
	if (v)
		d->diskseq = strtoull(v, NULL, 10);
	s = attr(u, "size");
	if (s)
		d->size = strtoull(s, NULL, 10) * 512; /* sysfs counts 512-byte sectors */
	free(s);
	s = attr(u, "removable");
	d->removable = s && strcmp(s, "1") == 0;
	free(s);
	s = attr(u, "ro");
	d->read_only = s && strcmp(s, "1") == 0;
	free(s);
	d->tagged = !tag || !*tag || has_tag(u, tag);

	v = udev_device_get_property_value(u, "ID_SERIAL_SHORT");
	if (!v)
		v = udev_device_get_property_value(u, "ID_SERIAL");
	d->serial = dup_or_null(v);
	d->vendor = dup_or_null(udev_device_get_property_value(u, "ID_VENDOR"));
	d->model = dup_or_null(udev_device_get_property_value(u, "ID_MODEL"));
	d->bus = dup_or_null(udev_device_get_property_value(u, "ID_BUS"));
	d->id_path = dup_or_null(udev_device_get_property_value(u, "ID_PATH"));

	v = udev_device_get_property_value(u, "BMAP_STATION_CARD_READER");
	d->in_reader = v && strcmp(v, "1") == 0;

	/* Native MMC/SD: the card's own identity lives on the mmc device. A USB
	 * reader's ID_SERIAL names the reader, not the card. */
	d->mmc_cid = attr(u, "device/cid");
	if (d->mmc_cid) {
		d->mmc_serial = attr(u, "device/serial");
		d->mmc_manfid = attr(u, "device/manfid");
		d->mmc_oemid = attr(u, "device/oemid");
		d->mmc_name = attr(u, "device/name");
		d->mmc_date = attr(u, "device/date");
		if (!d->bus)
			d->bus = strdup("mmc");
		d->in_reader = false;
		if (d->mmc_serial) {
			d->reader_serial = d->serial;
			d->serial = strdup(d->mmc_serial);
		}
		if (!d->model && d->mmc_name)
			d->model = strdup(d->mmc_name);
	}
	return 0;
}

void device_clear(struct device *d)
{
	char **fields[] = { &d->syspath,   &d->sysname,    &d->devnode,    &d->serial,
			    &d->reader_serial, &d->vendor, &d->model,      &d->bus,
			    &d->id_path,   &d->mmc_cid,    &d->mmc_serial, &d->mmc_manfid,
			    &d->mmc_oemid, &d->mmc_name,   &d->mmc_date };

	for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
		free(*fields[i]);
		*fields[i] = NULL;
	}
}

bool device_never_candidate(const struct device *d)
{
	const char *n = d->sysname;

	if (!n)
		return true;
	/* mmcblk0boot0, mmcblk0boot1, mmcblk0rpmb: eMMC hardware partitions. */
	if (strncmp(n, "mmcblk", 6) == 0 && (strstr(n, "boot") || strstr(n, "rpmb")))
		return true;
	if (d->syspath) {
		char path[PATH_MAX];

		/* Partitions carry a "partition" attribute. */
		snprintf(path, sizeof(path), "%s/partition", d->syspath);
		if (access(path, F_OK) == 0)
			return true;
		/* Only eMMC boot partitions have force_ro: they are refused
		 * whatever a udev rule renamed them to. */
		snprintf(path, sizeof(path), "%s/force_ro", d->syspath);
		if (access(path, F_OK) == 0)
			return true;
	}
	return false;
}

/* The whole disk (major:minor) holding block device @dev. */
static dev_t whole_disk(dev_t dev)
{
	char path[PATH_MAX], buf[32];
	ssize_t n;
	int fd;
	unsigned ma, mi;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/partition", major(dev), minor(dev));
	if (access(path, F_OK) != 0)
		return dev;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/../dev", major(dev), minor(dev));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dev;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return dev;
	buf[n] = '\0';
	if (sscanf(buf, "%u:%u", &ma, &mi) != 2)
		return dev;
	return makedev(ma, mi);
}

/* Any mount whose source is the disk or one of its partitions. */
static bool is_mounted(dev_t disk, char *what, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		unsigned ma, mi;
		char mnt[1024];

		if (sscanf(line, "%*u %*u %u:%u %*s %1023s", &ma, &mi, mnt) != 3)
			continue;
		if (ma == 0)
			continue; /* virtual file systems */
		if (whole_disk(makedev(ma, mi)) == disk) {
			snprintf(what, len, "mounted on %s", mnt);
			found = true;
		}
	}
	fclose(f);
	return found;
}

static bool holds_swap(dev_t disk)
{
	FILE *f = fopen("/proc/swaps", "re");
	char line[4096];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char name[1024];
		struct stat st;

		if (sscanf(line, "%1023s", name) != 1 || name[0] != '/')
			continue;
		if (stat(name, &st) == 0 && S_ISBLK(st.st_mode) && whole_disk(st.st_rdev) == disk)
			found = true;
	}
	fclose(f);
	return found;
}

/* Non-empty holders/ of the disk or of any of its partitions (dm, md, ...). */
static bool is_held(const char *syspath)
{
	char path[PATH_MAX];
	DIR *dir;
	struct dirent *e;
	bool held = false;

	snprintf(path, sizeof(path), "%s/holders", syspath);
	dir = opendir(path);
	if (dir) {
		while ((e = readdir(dir)))
			if (e->d_name[0] != '.')
				held = true;
		closedir(dir);
	}
	if (held)
		return true;
	dir = opendir(syspath);
	if (!dir)
		return false;
	while (!held && (e = readdir(dir))) {
		char sub[PATH_MAX];
		DIR *h;
		struct dirent *he;

		if (e->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s/partition", syspath, e->d_name);
		if (access(sub, F_OK) != 0)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s/holders", syspath, e->d_name);
		h = opendir(sub);
		if (!h)
			continue;
		while ((he = readdir(h)))
			if (he->d_name[0] != '.')
				held = true;
		closedir(h);
	}
	closedir(dir);
	return held;
}

int device_gate(const struct device *d, uint64_t max_device_size, char *why, size_t why_len)
{
	struct stat root;
	char what[1100];

	if (!d->devnode)
		return snprintf(why, why_len, "no device node"), -ENODEV;
	if (d->size == 0)
		return snprintf(why, why_len, "no medium"), -ENOMEDIUM;
	if (max_device_size && d->size > max_device_size) {
		char h1[32], h2[32];

		snprintf(why, why_len, "%s is larger than max_device_size %s (a system disk?)",
			 human_size(d->size, h1), human_size(max_device_size, h2));
		return -EFBIG;
	}
	if (stat("/", &root) == 0 && whole_disk(root.st_dev) == d->devnum)
		return snprintf(why, why_len, "holds the root file system"), -EBUSY;
	if (holds_swap(d->devnum))
		return snprintf(why, why_len, "holds an active swap area"), -EBUSY;
	if (is_mounted(d->devnum, what, sizeof(what)))
		return snprintf(why, why_len, "%s", what), -EBUSY;
	if (d->syspath && is_held(d->syspath))
		return snprintf(why, why_len, "held by another device (holders/)"), -EBUSY;
	if (d->read_only)
		return snprintf(why, why_len, "read-only"), -EROFS;
	return 0;
}

char *device_probe_content(int fd)
{
	blkid_probe pr = blkid_new_probe();
	const char *type = NULL, *id = NULL;
	char *out = NULL, path[64];
	int rfd;

	if (!pr)
		return strdup("unknown");
	/* libblkid reads with unaligned buffers, which the worker's O_DIRECT fd
	 * refuses: probe through a plain read-only descriptor of the same
	 * open device (allowed next to our O_EXCL one; a read-only close does
	 * not make udev re-probe). */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	rfd = open(path, O_RDONLY | O_CLOEXEC);
	if (rfd < 0) {
		blkid_free_probe(pr);
		return strdup("unknown");
	}
	if (blkid_probe_set_device(pr, rfd, 0, 0) == 0) {
		blkid_probe_enable_partitions(pr, 1);
		blkid_probe_set_partitions_flags(pr, BLKID_PARTS_ENTRY_DETAILS);
		blkid_probe_enable_superblocks(pr, 1);
		blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_UUID |
							      BLKID_SUBLKS_LABEL);
		if (blkid_do_safeprobe(pr) == 0) {
			if (blkid_probe_lookup_value(pr, "PTTYPE", &type, NULL) == 0)
				blkid_probe_lookup_value(pr, "PTUUID", &id, NULL);
			else if (blkid_probe_lookup_value(pr, "TYPE", &type, NULL) == 0)
				blkid_probe_lookup_value(pr, "UUID", &id, NULL);
		}
	}
	if (type && asprintf(&out, "%s%s%s", type, id ? " " : "", id ? id : "") < 0)
		out = NULL;
	blkid_free_probe(pr);
	close(rfd);
	return out ? out : strdup("none");
}

int device_diskseq_check(int fd, uint64_t expected, char *why, size_t why_len)
{
	uint64_t seq = 0;

	/* Kernels before 5.15 have no DISKSEQ: nothing to compare. */
	if (!expected || ioctl(fd, BLKGETDISKSEQ, &seq) < 0 || !seq || seq == expected)
		return 0;
	snprintf(why, why_len,
		 "the medium changed since it was seen (DISKSEQ %" PRIu64 ", now %" PRIu64
		 "): nothing was written",
		 expected, seq);
	return -ESTALE;
}

int device_diskseq_check_node(const char *devnode, uint64_t expected, char *why, size_t why_len)
{
	int fd, r;

	if (!expected)
		return 0;
	/* Read-only, so that a changed medium is refused before anything
	 * opens it for writing (closing it does not make udev re-probe). An
	 * open that fails is left to the real open, which says why. */
	fd = open(devnode, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return 0;
	r = device_diskseq_check(fd, expected, why, why_len);
	close(fd);
	return r;
}
