/* Unit tests for system-disk.c: which disks the system stands on, read from a
 * made-up mount table, swap list, fstab and sysfs (partitions, dm slaves). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "testutil.h"
#include "system-disk.h"

#define SDA makedev(8, 0)
#define SDB makedev(8, 16)
#define SDC makedev(8, 32)

struct fixture {
	char *dir;
	struct system_disk_paths p;
	char *mountinfo, *swaps, *fstab, *sysfs, *dev, *swapimg;
};

static void mkdirs(const char *dir, const char *rel)
{
	char *path = tu_path(dir, rel);

	for (char *s = path + strlen(dir) + 1; (s = strchr(s, '/')); s++) {
		*s = '\0';
		assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
		*s = '/';
	}
	assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
	free(path);
}

static void put(const char *dir, const char *rel, const char *text)
{
	char *path = tu_path(dir, rel);

	tu_write_file(path, text, strlen(text));
	free(path);
}

static void link_to(const char *dir, const char *rel, const char *target)
{
	char *path = tu_path(dir, rel);

	assert_int_equal(symlink(target, path), 0);
	free(path);
}

/* A swap area's signature as mkswap writes it: version 1 at 1024, the UUID
 * at 1036, the label at 1052, "SWAPSPACE2" at the end of the first 4 KiB. */
static void make_swap(const char *path, const char *label)
{
	static const unsigned char uuid[16] = {0x6c, 0x1f, 0x2a, 0x3b, 0x4c, 0x5d, 0x4e, 0x8f,
					       0x90, 0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07};
	uint32_t version = 1, last_page = 255;

	tu_truncate(path, 1 << 20);
	tu_pwrite(path, &version, 4, 1024);
	tu_pwrite(path, &last_page, 4, 1028);
	tu_pwrite(path, uuid, sizeof(uuid), 1036);
	tu_pwrite(path, label, strlen(label), 1052);
	tu_pwrite(path, "SWAPSPACE2", 10, 4096 - 10);
}
#define SWAP_UUID "6c1f2a3b-4c5d-4e8f-90a1-b2c3d4e5f607"

/*
 * sysfs: sda with partition sda1; sdb holding dm-0 (its slave); sdc plain.
 * Each /sys/dev/block/M:m is a link into /sys/block, as the kernel has it.
 */
static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->dir = tu_mkdtemp();
	f->sysfs = tu_path(f->dir, "sys");
	f->dev = tu_path(f->dir, "dev");
	f->mountinfo = tu_path(f->dir, "mountinfo");
	f->swaps = tu_path(f->dir, "swaps");
	f->fstab = tu_path(f->dir, "fstab");
	f->swapimg = tu_path(f->dir, "sdc.img");
	mkdirs(f->dir, "sys/block/sda/sda1");
	mkdirs(f->dir, "sys/block/sdb");
	mkdirs(f->dir, "sys/block/sdc");
	mkdirs(f->dir, "sys/block/dm-0/slaves");
	mkdirs(f->dir, "sys/dev/block");
	mkdirs(f->dir, "dev");
	put(f->dir, "sys/block/sda/dev", "8:0\n");
	put(f->dir, "sys/block/sda/sda1/dev", "8:1\n");
	put(f->dir, "sys/block/sda/sda1/partition", "1\n");
	put(f->dir, "sys/block/sdb/dev", "8:16\n");
	put(f->dir, "sys/block/sdc/dev", "8:32\n");
	put(f->dir, "sys/block/dm-0/dev", "254:0\n");
	link_to(f->dir, "sys/block/dm-0/slaves/sdb", "../../sdb");
	link_to(f->dir, "sys/dev/block/8:0", "../../block/sda");
	link_to(f->dir, "sys/dev/block/8:1", "../../block/sda/sda1");
	link_to(f->dir, "sys/dev/block/8:16", "../../block/sdb");
	link_to(f->dir, "sys/dev/block/8:32", "../../block/sdc");
	link_to(f->dir, "sys/dev/block/254:0", "../../block/dm-0");
	put(f->dir, "swaps", "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n");
	put(f->dir, "fstab", "# nothing\n");
	put(f->dir, "mountinfo", "");
	f->p = (struct system_disk_paths){.mountinfo = f->mountinfo,
					  .swaps = f->swaps,
					  .fstab = f->fstab,
					  .sysfs = f->sysfs,
					  .dev = f->dev};
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	tu_rmtree(f->dir);
	free(f->dir);
	free(f->sysfs);
	free(f->dev);
	free(f->mountinfo);
	free(f->swaps);
	free(f->fstab);
	free(f->swapimg);
	free(f);
	return 0;
}

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The answer for @disk, its reason in @why. */
static int check(const struct fixture *f, dev_t disk, const char *devnode, char *why)
{
	return system_disk_check(&f->p, disk, devnode, why, 256);
}

/* Root on dm-crypt/LVM over sdb, /boot on sda1: both disks are the system's. */
static void test_mounts_through_partitions_and_dm(void **state)
{
	struct fixture *f = *state;
	char why[256];

	put(f->dir, "mountinfo",
	    "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/mapper/root rw\n"
	    "30 22 8:1 / /boot rw,relatime shared:2 - vfat /dev/sda1 rw,fmask=0022\n"
	    "31 22 0:5 / /dev rw,nosuid shared:3 - devtmpfs udev rw\n");
	assert_int_equal(check(f, SDB, NULL, why), 1);
	assert_string_equal(why, "holds / (the root file system)");
	assert_int_equal(check(f, SDA, NULL, why), 1);
	assert_string_equal(why, "holds /boot");
	assert_int_equal(check(f, SDC, NULL, why), 0);
	assert_string_equal(why, "");

	/* A mount point written with \040 for a space; a data disk elsewhere is
	 * no system disk (the daemon's gate refuses it while it is mounted). */
	put(f->dir, "mountinfo",
	    "30 22 8:1 / /boot/my\\040efi rw shared:2 - vfat /dev/sda1 rw\n"
	    "31 22 8:32 / /srv/data rw shared:2 - ext4 /dev/sdc rw\n");
	assert_int_equal(check(f, SDA, NULL, why), 1);
	assert_string_equal(why, "holds /boot/my efi");
	assert_int_equal(check(f, SDC, NULL, why), 0);
}

/* A kiosk's read-only root: an overlay whose lower layer is a directory on
 * the disk; the test's own folder stands for it. */
static void test_overlay_root(void **state)
{
	struct fixture *f = *state;
	char text[1024], why[256];
	struct stat st;

	assert_int_equal(stat(f->dir, &st), 0);
	snprintf(
	    text, sizeof(text),
	    "40 1 0:50 / / rw shared:1 - overlay overlay rw,lowerdir=%s/sys,upperdir=/nonexistent,"
	    "workdir=/nonexistent\n",
	    f->dir);
	put(f->dir, "mountinfo", text);
	assert_int_equal(check(f, st.st_dev, NULL, why), 1);
	assert_string_equal(why, "holds / (the root file system)");
	assert_int_equal(check(f, SDC, NULL, why), 0);
}

/* A live system: "/" an overlay on a squashfs in loop0, whose backing file
 * is on the stick it booted from (the test's own file system here). */
static void test_root_on_loop_backing_file(void **state)
{
	struct fixture *f = *state;
	char text[1024], why[256];
	struct stat st;

	assert_int_equal(stat(f->dir, &st), 0);
	mkdirs(f->dir, "sys/block/loop0/loop");
	put(f->dir, "sys/block/loop0/dev", "7:0\n");
	snprintf(text, sizeof(text), "%s/fstab\n", f->dir);
	put(f->dir, "sys/block/loop0/loop/backing_file", text);
	link_to(f->dir, "sys/dev/block/7:0", "../../block/loop0");
	put(f->dir, "mountinfo", "25 1 7:0 / / ro shared:1 - squashfs /dev/loop0 ro\n");
	assert_int_equal(check(f, st.st_dev, NULL, why), 1);
	assert_string_equal(why, "holds / (the root file system)");
	assert_int_equal(check(f, SDC, NULL, why), 0);
}

/* A swap file counts for the disk its file system is on. */
static void test_active_swap_file(void **state)
{
	struct fixture *f = *state;
	char text[1024], why[256];
	struct stat st;

	assert_int_equal(stat(f->dir, &st), 0);
	snprintf(text, sizeof(text),
		 "Filename\tType\tSize\tUsed\tPriority\n%s/fstab file\t1024\t0\t-2\n", f->dir);
	put(f->dir, "swaps", text);
	assert_int_equal(check(f, st.st_dev, NULL, why), 1);
	assert_string_equal(why, "holds an active swap area");
	assert_int_equal(check(f, SDC, NULL, why), 0);
}

/* fstab names what is not mounted (yet) by the disk's own names, read from
 * the disk: here a swap area with a UUID and a label. */
static void test_fstab_names(void **state)
{
	struct fixture *f = *state;
	char why[256];

	make_swap(f->swapimg, "swappy");
	put(f->dir, "fstab", "UUID=" SWAP_UUID " none swap sw 0 0\n");
	assert_int_equal(check(f, SDC, f->swapimg, why), 1);
	assert_true(starts_with(why, "holds a swap area listed in "));
	put(f->dir, "fstab",
	    "# upper case and quotes, as people write them\n"
	    "UUID=\""
	    "6C1F2A3B-4C5D-4E8F-90A1-B2C3D4E5F607"
	    "\" none swap sw 0 0\n");
	assert_int_equal(check(f, SDC, f->swapimg, why), 1);
	put(f->dir, "fstab", "LABEL=swappy /boot ext4 noauto 0 2\n");
	assert_int_equal(check(f, SDC, f->swapimg, why), 1);
	assert_true(starts_with(why, "holds /boot listed in "));
	put(f->dir, "fstab", "/dev/disk/by-label/swap\\x70y /var ext4 defaults 0 2\n");
	assert_int_equal(check(f, SDC, f->swapimg, why), 1);

	/* Other names, other mount points, a disk without a medium. */
	put(f->dir, "fstab", "UUID=0000 none swap sw 0 0\nLABEL=swappy /srv ext4 defaults 0 2\n");
	assert_int_equal(check(f, SDC, f->swapimg, why), 0);
	put(f->dir, "fstab", "LABEL=swappy /boot ext4 noauto 0 2\n");
	assert_int_equal(check(f, SDC, NULL, why), 0);
}

/* A mounted system mount point is answered by device, not by fstab's name:
 * a card flashed with the system's own image (same UUIDs) stays a card. An
 * automount point is not the file system yet: fstab's name counts. */
static void test_fstab_mounted_or_automounted(void **state)
{
	struct fixture *f = *state;
	char why[256];

	make_swap(f->swapimg, "swappy");
	put(f->dir, "fstab", "LABEL=swappy /boot ext4 defaults 0 2\n");
	put(f->dir, "mountinfo", "30 22 8:1 / /boot rw shared:2 - ext4 /dev/sda1 rw\n");
	assert_int_equal(check(f, SDC, f->swapimg, why), 0);
	assert_int_equal(check(f, SDA, f->swapimg, why), 1);
	put(f->dir, "mountinfo", "30 22 0:44 / /boot rw shared:2 - autofs systemd-1 rw,fd=45\n");
	assert_int_equal(check(f, SDC, f->swapimg, why), 1);
	assert_true(starts_with(why, "holds /boot listed in "));
}

/* What cannot be read is not "no": the rules then tag nothing. */
static void test_unreadable_tables(void **state)
{
	struct fixture *f = *state;
	char why[256];

	make_swap(f->swapimg, "swappy");
	assert_int_equal(unlink(f->mountinfo), 0);
	assert_int_equal(check(f, SDC, NULL, why), -ENOENT);
	put(f->dir, "mountinfo", "");
	assert_int_equal(unlink(f->swaps), 0);
	assert_int_equal(check(f, SDC, NULL, why), -ENOENT);
	put(f->dir, "swaps", "");
	/* No fstab at all is an answer: nothing listed. */
	assert_int_equal(unlink(f->fstab), 0);
	assert_int_equal(check(f, SDC, f->swapimg, why), 0);
	/* A node that cannot be opened when fstab needs its names. */
	put(f->dir, "fstab", "UUID=" SWAP_UUID " none swap sw 0 0\n");
	assert_int_equal(check(f, SDC, "/nonexistent/sdc", why), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_mounts_through_partitions_and_dm, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_overlay_root, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_root_on_loop_backing_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_active_swap_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fstab_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fstab_mounted_or_automounted, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unreadable_tables, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
