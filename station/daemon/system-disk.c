/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Whether a whole disk is one the running system stands on (system-disk.h):
 * read from the mount table, the active swaps and /etc/fstab, each mount or
 * swap followed down through partitions, device-mapper/md slaves and loop
 * devices' backing files to the whole disks beneath it.
 */
#include <blkid/blkid.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "system-disk.h"
#include "util.h"

const struct system_disk_paths system_disk_default_paths = {
    .mountinfo = "/proc/self/mountinfo",
    .swaps = "/proc/swaps",
    .fstab = "/etc/fstab",
    .sysfs = "/sys",
    .dev = "/dev",
};

/* dm on md on partitions is three levels; a loop in sysfs would be a bug. */
#define MAX_LAYERS 16
/* A disk's names worth comparing with fstab: a few per partition. */
#define MAX_NAMES 512

enum name_kind { NAME_UUID, NAME_LABEL, NAME_PARTUUID, NAME_PARTLABEL };

struct disk_name {
	enum name_kind kind;
	char *value;
};

/* One check: what is known so far, and the disk's names once probed. */
struct check {
	const struct system_disk_paths *p;
	dev_t disk;
	const char *devnode; /* opened only when fstab names a file system by UUID, ... */
	int probe_fd;
	char **mounted; /* system mount points found in the mount table */
	size_t n_mounted;
	bool probed;
	struct disk_name names[MAX_NAMES];
	size_t n_names;
};

/* /proc and fstab write a space as \040, a tab as \011, ...: decoded in place. */
static void unescape_octal(char *s)
{
	char *w = s;

	for (const char *r = s; *r;) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 4;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
}

static bool system_mount_point(const char *mp)
{
	static const char *const exact[] = {"/", "/usr", "/var", "/efi", "/boot"};

	for (size_t i = 0; i < ARRAY_SIZE(exact); i++)
		if (strcmp(mp, exact[i]) == 0)
			return true;
	return strncmp(mp, "/boot/", 6) == 0;
}

/* "MAJOR:MINOR" from a sysfs "dev" file. */
static int read_devnum(const char *path, dev_t *ret)
{
	char buf[32];
	unsigned ma, mi;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	if (sscanf(buf, "%u:%u", &ma, &mi) != 2)
		return -EIO;
	*ret = makedev(ma, mi);
	return 0;
}

static bool on_disk(const struct check *c, dev_t dev, unsigned depth);

/* A loop device stands on the file system of its backing file (a live
 * system's squashfs, in a file on the stick it booted from). */
static bool loop_on_disk(const struct check *c, const char *path, unsigned depth)
{
	char file[PATH_MAX];
	struct stat st;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, file, sizeof(file) - 1);
	close(fd);
	if (n <= 0)
		return false;
	file[n] = '\0';
	file[strcspn(file, "\n")] = '\0';
	return file[0] == '/' && stat(file, &st) == 0 && on_disk(c, st.st_dev, depth + 1);
}

/* Whether block device @dev is @disk, a partition of it, or built on it
 * (dm-crypt, LVM, md: the slaves/ of each layer, followed down; a loop
 * device's backing file). */
static bool on_disk(const struct check *c, dev_t dev, unsigned depth)
{
	char path[PATH_MAX];
	bool found = false;
	struct dirent *e;
	dev_t parent;
	DIR *dir;

	if (dev == c->disk)
		return true;
	if (major(dev) == 0 || depth > MAX_LAYERS)
		return false;
	snprintf(path, sizeof(path), "%s/dev/block/%u:%u/partition", c->p->sysfs, major(dev),
		 minor(dev));
	if (access(path, F_OK) == 0) {
		/* The partition's directory sits in its disk's. */
		snprintf(path, sizeof(path), "%s/dev/block/%u:%u/../dev", c->p->sysfs, major(dev),
			 minor(dev));
		return read_devnum(path, &parent) == 0 && on_disk(c, parent, depth + 1);
	}
	snprintf(path, sizeof(path), "%s/dev/block/%u:%u/loop/backing_file", c->p->sysfs,
		 major(dev), minor(dev));
	if (access(path, F_OK) == 0)
		return loop_on_disk(c, path, depth);
	snprintf(path, sizeof(path), "%s/dev/block/%u:%u/slaves", c->p->sysfs, major(dev),
		 minor(dev));
	dir = opendir(path);
	if (!dir)
		return false;
	while (!found && (e = readdir(dir))) {
		char sub[PATH_MAX];
		dev_t slave;

		if (e->d_name[0] == '.' ||
		    (size_t)snprintf(sub, sizeof(sub), "%s/%s/dev", path, e->d_name) >= sizeof(sub))
			continue;
		found = read_devnum(sub, &slave) == 0 && on_disk(c, slave, depth + 1);
	}
	closedir(dir);
	return found;
}

/* A path's file system (st_dev), or a block node's device (st_rdev), on the disk. */
static bool path_on_disk(const struct check *c, const char *path, bool node)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return false;
	if (node)
		return S_ISBLK(st.st_mode) && on_disk(c, st.st_rdev, 0);
	return on_disk(c, st.st_dev, 0);
}

/* An overlay (a read-only root with a tmpfs on top, as kiosks have it) stands
 * on the file systems of its lowerdir=, upperdir= and workdir=. */
static bool overlay_on_disk(const struct check *c, const char *opts)
{
	_cleanup_free_ char *copy = strdup(opts);
	char *save = NULL;

	if (!copy)
		return false;
	for (char *o = strtok_r(copy, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
		char *dirs = NULL, *save2 = NULL;

		if (strncmp(o, "lowerdir=", 9) == 0)
			dirs = o + 9;
		else if (strncmp(o, "upperdir=", 9) == 0 || strncmp(o, "workdir=", 8) == 0)
			dirs = strchr(o, '=') + 1;
		if (!dirs)
			continue;
		for (char *d = strtok_r(dirs, ":", &save2); d; d = strtok_r(NULL, ":", &save2)) {
			unescape_octal(d);
			if (d[0] == '/' && path_on_disk(c, d, false))
				return true;
		}
	}
	return false;
}

/* Splits @line at spaces into at most @max fields; returns how many. */
static size_t split_fields(char *line, char **fields, size_t max)
{
	size_t n = 0;
	char *save = NULL;

	for (char *f = strtok_r(line, " \t\n", &save); f && n < max;
	     f = strtok_r(NULL, " \t\n", &save))
		fields[n++] = f;
	return n;
}

/* The mount table: a system mount point on the disk, and which are mounted. */
static int check_mounts(struct check *c, char *why, size_t why_len)
{
	FILE *f = fopen(c->p->mountinfo, "re");
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	int r = 0;

	if (!f)
		return -errno;
	while (r == 0 && getline(&line, &cap, f) > 0) {
		char *fld[64], *mp, **grown;
		unsigned ma, mi;
		size_t n, sep;
		bool hit;

		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER */
		n = split_fields(line, fld, ARRAY_SIZE(fld));
		for (sep = 6; sep < n && strcmp(fld[sep], "-") != 0; sep++)
			;
		if (sep + 3 >= n || sscanf(fld[2], "%u:%u", &ma, &mi) != 2)
			continue;
		mp = fld[4];
		unescape_octal(mp);
		/* An automount point (x-systemd.automount) is not the file system
		 * yet: fstab says which one it will be. */
		if (!system_mount_point(mp) || strcmp(fld[sep + 1], "autofs") == 0)
			continue;
		grown = realloc(c->mounted, (c->n_mounted + 1) * sizeof(*c->mounted));
		if (!grown || !(grown[c->n_mounted] = strdup(mp))) {
			if (grown)
				c->mounted = grown;
			r = -ENOMEM;
			break;
		}
		c->mounted = grown;
		c->n_mounted++;
		/* btrfs and overlay have no device number of their own (major 0). */
		unescape_octal(fld[sep + 2]);
		hit = ma != 0 ? on_disk(c, makedev(ma, mi), 0)
			      : (fld[sep + 2][0] == '/' && path_on_disk(c, fld[sep + 2], true)) ||
				    (strcmp(fld[sep + 1], "overlay") == 0 &&
				     overlay_on_disk(c, fld[sep + 3]));
		if (hit) {
			snprintf(why, why_len, "holds %s",
				 strcmp(mp, "/") == 0 ? "/ (the root file system)" : mp);
			r = 1;
		}
	}
	fclose(f);
	return r;
}

/* Active swap areas: partitions, and files (on a file system of the disk). */
static int check_swaps(struct check *c, char *why, size_t why_len)
{
	FILE *f = fopen(c->p->swaps, "re");
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	int r = 0;

	if (!f)
		return -errno;
	while (r == 0 && getline(&line, &cap, f) > 0) {
		char *fld[2];

		/* Filename Type Size Used Priority; the first line is that header. */
		if (split_fields(line, fld, 2) < 2 || fld[0][0] != '/')
			continue;
		unescape_octal(fld[0]);
		if (path_on_disk(c, fld[0], strcmp(fld[1], "partition") == 0)) {
			snprintf(why, why_len, "holds an active swap area");
			r = 1;
		}
	}
	fclose(f);
	return r;
}

static int add_name(struct check *c, enum name_kind kind, const char *value)
{
	if (!value || !*value || c->n_names >= MAX_NAMES)
		return 0;
	c->names[c->n_names].value = strdup(value);
	if (!c->names[c->n_names].value)
		return -ENOMEM;
	c->names[c->n_names++].kind = kind;
	return 0;
}

/* UUID and LABEL of a file system at @off..@off+@size of the disk (0: all). */
static int probe_fs(struct check *c, uint64_t off, uint64_t size)
{
	blkid_probe pr = blkid_new_probe();
	const char *v;
	int r = 0;

	if (!pr)
		return -ENOMEM;
	if (blkid_probe_set_device(pr, c->probe_fd, (blkid_loff_t)off, (blkid_loff_t)size) < 0)
		goto out;
	blkid_probe_enable_partitions(pr, 0);
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_UUID | BLKID_SUBLKS_LABEL);
	if (blkid_do_safeprobe(pr) != 0)
		goto out;
	if (blkid_probe_lookup_value(pr, "UUID", &v, NULL) == 0)
		r = add_name(c, NAME_UUID, v);
	if (r == 0 && blkid_probe_lookup_value(pr, "LABEL", &v, NULL) == 0)
		r = add_name(c, NAME_LABEL, v);
out:
	blkid_free_probe(pr);
	return r;
}

/* The disk's names, read once: its partitions' PARTUUID and PARTLABEL, and
 * the UUID and LABEL of the file system on it or in each partition. */
static int probe_names(struct check *c)
{
	blkid_probe pr;
	blkid_partlist ls;
	uint64_t size = 0;
	int r = 0;

	struct stat st;

	if (c->probed)
		return 0;
	c->probed = true;
	if (!c->devnode)
		return 0;
	c->probe_fd = open(c->devnode, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	/* No medium (a card reader without a card): nothing on it to name. */
	if (c->probe_fd < 0)
		return errno == ENOMEDIUM ? 0 : -errno;
	if (fstat(c->probe_fd, &st) < 0)
		return -errno;
	/* A node that is another device would answer for the wrong disk. */
	if (S_ISBLK(st.st_mode) ? st.st_rdev != c->disk : !S_ISREG(st.st_mode))
		return -ENODEV;
	if (S_ISBLK(st.st_mode) ? ioctl(c->probe_fd, BLKGETSIZE64, &size) < 0 || size == 0
				: st.st_size == 0)
		return 0;
	r = probe_fs(c, 0, 0);
	if (r < 0)
		return r;
	pr = blkid_new_probe();
	if (!pr)
		return -ENOMEM;
	if (blkid_probe_set_device(pr, c->probe_fd, 0, 0) < 0)
		goto out;
	blkid_probe_enable_superblocks(pr, 0);
	blkid_probe_enable_partitions(pr, 1);
	blkid_probe_set_partitions_flags(pr, BLKID_PARTS_ENTRY_DETAILS);
	if (blkid_do_safeprobe(pr) != 0)
		goto out;
	ls = blkid_probe_get_partitions(pr);
	for (int i = 0; r == 0 && ls && i < blkid_partlist_numof_partitions(ls); i++) {
		blkid_partition par = blkid_partlist_get_partition(ls, i);
		blkid_loff_t start = blkid_partition_get_start(par);
		blkid_loff_t len = blkid_partition_get_size(par);

		r = add_name(c, NAME_PARTUUID, blkid_partition_get_uuid(par));
		if (r == 0)
			r = add_name(c, NAME_PARTLABEL, blkid_partition_get_name(par));
		if (r == 0 && start > 0 && len > 0)
			r = probe_fs(c, (uint64_t)start * 512, (uint64_t)len * 512);
	}
out:
	blkid_free_probe(pr);
	return r;
}

/* fstab's "UUID=x", "LABEL=x", ... (quotes allowed) and /dev/disk/by-x/ names. */
static bool parse_tag(char *spec, enum name_kind *kind, char **value)
{
	static const struct {
		const char *tag, *link;
		enum name_kind kind;
	} tags[] = {
	    {"UUID=", "disk/by-uuid/", NAME_UUID},
	    {"LABEL=", "disk/by-label/", NAME_LABEL},
	    {"PARTUUID=", "disk/by-partuuid/", NAME_PARTUUID},
	    {"PARTLABEL=", "disk/by-partlabel/", NAME_PARTLABEL},
	};

	for (size_t i = 0; i < ARRAY_SIZE(tags); i++) {
		size_t tl = strlen(tags[i].tag), ll = strlen(tags[i].link);
		char *v = NULL;

		if (strncasecmp(spec, tags[i].tag, tl) == 0)
			v = spec + tl;
		else if (strncmp(spec, "/dev/", 5) == 0 && strncmp(spec + 5, tags[i].link, ll) == 0)
			v = spec + 5 + ll;
		if (!v)
			continue;
		if ((v[0] == '"' || v[0] == '\'') && strlen(v) >= 2 && v[strlen(v) - 1] == v[0]) {
			v[strlen(v) - 1] = '\0';
			v++;
		}
		/* udev's links write unsafe bytes as \xHH. */
		for (char *r = v, *w = v;; r++) {
			if (r[0] == '\\' && r[1] == 'x' && isxdigit((unsigned char)r[2]) &&
			    isxdigit((unsigned char)r[3])) {
				char hex[3] = {r[2], r[3], '\0'};

				*w++ = (char)strtol(hex, NULL, 16);
				r += 3;
			} else if (!(*w++ = *r)) {
				break;
			}
		}
		*kind = tags[i].kind;
		*value = v;
		return true;
	}
	return false;
}

/* Whether fstab's @spec names the disk: a node or link that exists now, or
 * else one of the disk's own names. */
static int spec_on_disk(struct check *c, char *spec)
{
	static const char *const links[] = {
	    [NAME_UUID] = "disk/by-uuid", [NAME_PARTUUID] = "disk/by-partuuid"};
	char path[PATH_MAX];
	enum name_kind kind;
	struct stat st;
	char *value;
	int r;

	if (strncmp(spec, "/dev/", 5) == 0) {
		snprintf(path, sizeof(path), "%s/%s", c->p->dev, spec + 5);
		if (stat(path, &st) == 0 && S_ISBLK(st.st_mode))
			return on_disk(c, st.st_rdev, 0);
	}
	if (!parse_tag(spec, &kind, &value))
		return 0;
	/* A UUID's link, once udev made it, says which device has it: a card
	 * flashed with the system's own image then stays a card. */
	if ((kind == NAME_UUID || kind == NAME_PARTUUID) && !strchr(value, '/')) {
		snprintf(path, sizeof(path), "%s/%s/%s", c->p->dev, links[kind], value);
		if (stat(path, &st) == 0 && S_ISBLK(st.st_mode))
			return on_disk(c, st.st_rdev, 0);
	}
	r = probe_names(c);
	if (r < 0)
		return r;
	for (size_t i = 0; i < c->n_names; i++) {
		bool uuid = kind == NAME_UUID || kind == NAME_PARTUUID;

		if (c->names[i].kind == kind && (uuid ? strcasecmp(c->names[i].value, value)
						      : strcmp(c->names[i].value, value)) == 0)
			return 1;
	}
	return 0;
}

/* fstab: swap areas, and system mount points not mounted yet (/boot during
 * the boot, or a boot key mounted only for kernel updates, "noauto"). */
static int check_fstab(struct check *c, char *why, size_t why_len)
{
	FILE *f = fopen(c->p->fstab, "re");
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	int r = 0;

	if (!f)
		return errno == ENOENT ? 0 : -errno;
	while (r == 0 && getline(&line, &cap, f) > 0) {
		char *fld[3];
		bool swap, mounted = false;

		if (line[strspn(line, " \t")] == '#' || split_fields(line, fld, 3) < 3)
			continue;
		unescape_octal(fld[0]);
		unescape_octal(fld[1]);
		swap = strcmp(fld[2], "swap") == 0;
		if (!swap && !system_mount_point(fld[1]))
			continue;
		/* A mounted one was answered from the mount table, by device. */
		for (size_t i = 0; !swap && i < c->n_mounted; i++)
			mounted = mounted || strcmp(c->mounted[i], fld[1]) == 0;
		if (mounted)
			continue;
		r = spec_on_disk(c, fld[0]);
		if (r > 0)
			snprintf(why, why_len, "holds %s listed in %s",
				 swap ? "a swap area" : fld[1], c->p->fstab);
	}
	fclose(f);
	return r;
}

int system_disk_check(const struct system_disk_paths *p, dev_t disk, const char *devnode, char *why,
		      size_t why_len)
{
	struct check c = {.p = p ? p : &system_disk_default_paths,
			  .disk = disk,
			  .devnode = devnode,
			  .probe_fd = -1};
	int r;

	why[0] = '\0';
	r = check_mounts(&c, why, why_len);
	if (r == 0)
		r = check_swaps(&c, why, why_len);
	if (r == 0)
		r = check_fstab(&c, why, why_len);
	for (size_t i = 0; i < c.n_mounted; i++)
		free(c.mounted[i]);
	free(c.mounted);
	for (size_t i = 0; i < c.n_names; i++)
		free(c.names[i].value);
	if (c.probe_fd >= 0)
		close(c.probe_fd);
	return r;
}

/* udev takes a value up to the end of its line: keep it one printable line. */
static void print_value(FILE *out, const char *s)
{
	for (; *s; s++)
		fputc((unsigned char)*s >= 0x20 && *s != 0x7f && *s != '"' && *s != '\\' ? *s : '?',
		      out);
}

int system_disk_command(int argc, char **argv, FILE *out)
{
	unsigned ma, mi;
	char why[512], end;
	int r;

	if (argc < 1 || argc > 2 || sscanf(argv[0], "%u:%u%c", &ma, &mi, &end) != 2) {
		fprintf(stderr,
			"bmap-station: usage: bmap-station system-disk MAJOR:MINOR [DEVNODE]\n");
		return 1;
	}
	r = system_disk_check(NULL, makedev(ma, mi), argc == 2 ? argv[1] : NULL, why, sizeof(why));
	if (r < 0) {
		fprintf(
		    stderr,
		    "bmap-station: system-disk: cannot tell whether %u:%u holds the system: %s\n",
		    ma, mi, strerror(-r));
		return 1;
	}
	if (r == 0) {
		fprintf(out, "BMAP_STATION_DISK=candidate\n");
	} else {
		fprintf(out, "BMAP_STATION_DISK=system\nBMAP_STATION_SYSTEM_DISK=");
		print_value(out, why);
		fputc('\n', out);
	}
	return fflush(out) == 0 ? 0 : 1;
}
