/*
 * Unit tests for the safety gate (device.c) on fake identities: what no
 * machine here has (eMMC boot and RPMB partitions, dm holders) is built as a
 * fake sysfs folder. The root check uses the real dev_t of this machine's
 * "/", which the gate only compares and never opens. The gate on real loop
 * cards (mounted, swap, read-only, too big, DISKSEQ) is in
 * tests/integration/station-gate.sh.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "testutil.h"
#include "device.h"

/* A device number no disk has: majors are below 4096. */
#define NOBODY makedev(4095, 1048000)

static struct device fake(const char *sysname, const char *syspath)
{
	struct device d = { 0 };

	d.sysname = (char *)sysname;
	d.syspath = (char *)syspath;
	d.devnode = (char *)"/dev/fake-card";
	d.devnum = NOBODY;
	d.size = 32ULL << 20;
	d.tagged = true;
	return d;
}

static void touch(const char *dir, const char *name)
{
	char *p = tu_path(dir, name);

	tu_write_file(p, "0\n", 2);
	free(p);
}

static char *subdir(const char *dir, const char *name)
{
	char *p = tu_path(dir, name);

	assert_int_equal(mkdir(p, 0755), 0);
	return p;
}

static void test_never_emmc_hw_partitions_by_name(void **state)
{
	static const char *const never[] = { "mmcblk0boot0", "mmcblk0boot1", "mmcblk1boot0",
					     "mmcblk0rpmb", "mmcblk12rpmb" };
	static const char *const maybe[] = { "mmcblk0", "mmcblk1", "sdb", "loop3", "nvme0n1" };
	struct device d;

	(void)state;
	for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
		d = fake(never[i], NULL);
		assert_true(device_never_candidate(&d));
	}
	for (size_t i = 0; i < sizeof(maybe) / sizeof(maybe[0]); i++) {
		d = fake(maybe[i], NULL);
		assert_false(device_never_candidate(&d));
	}
	d = fake(NULL, NULL);
	assert_true(device_never_candidate(&d));
}

/* An eMMC boot partition is known by its force_ro attribute too, whatever
 * its name. */
static void test_never_emmc_boot_by_force_ro(void **state)
{
	char *dir = tu_mkdtemp(), *sys = subdir(dir, "mmcblk2");
	struct device d = fake("mmcblk2", sys);

	(void)state;
	assert_false(device_never_candidate(&d));
	touch(sys, "force_ro");
	assert_true(device_never_candidate(&d));
	tu_rmtree(dir);
	free(sys);
	free(dir);
}

static void test_never_partition(void **state)
{
	char *dir = tu_mkdtemp(), *sys = subdir(dir, "sdb1");
	struct device d = fake("sdb1", sys);

	(void)state;
	assert_false(device_never_candidate(&d));
	touch(sys, "partition");
	assert_true(device_never_candidate(&d));
	tu_rmtree(dir);
	free(sys);
	free(dir);
}

/* The whole disk of @dev, as sysfs tells (the gate's own rule, redone). */
static dev_t disk_of(dev_t dev)
{
	char path[PATH_MAX], buf[32] = "";
	unsigned ma, mi;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/partition", major(dev), minor(dev));
	if (access(path, F_OK) != 0)
		return dev;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/../dev", major(dev), minor(dev));
	f = fopen(path, "re");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	assert_int_equal(sscanf(buf, "%u:%u", &ma, &mi), 2);
	return makedev(ma, mi);
}

/* The disk holding "/" here, given as a card: refused, and not for being
 * mounted (that check comes later and would say "mounted on /"). */
static void test_gate_refuses_root_disk(void **state)
{
	struct device d = fake("vda", NULL);
	struct stat root;
	char why[256] = "";

	(void)state;
	assert_int_equal(stat("/", &root), 0);
	if (major(root.st_dev) == 0)
		skip(); /* "/" on overlayfs or tmpfs: no disk to refuse */
	d.devnum = disk_of(root.st_dev);
	assert_int_equal(device_gate(&d, 0, why, sizeof(why)), -EBUSY);
	assert_string_equal(why, "holds the root file system");
}

static void test_gate_too_big(void **state)
{
	struct device d = fake("sdb", NULL);
	char why[256] = "";

	(void)state;
	d.size = 2ULL << 30;
	assert_int_equal(device_gate(&d, 1ULL << 30, why, sizeof(why)), -EFBIG);
	assert_non_null(strstr(why, "is larger than max_device_size"));
	/* The limit is inclusive, and 0 means none. */
	assert_int_equal(device_gate(&d, 2ULL << 30, why, sizeof(why)), 0);
	assert_int_equal(device_gate(&d, 0, why, sizeof(why)), 0);
}

static void test_gate_read_only(void **state)
{
	struct device d = fake("sdb", NULL);
	char why[256] = "";

	(void)state;
	d.read_only = true;
	assert_int_equal(device_gate(&d, 0, why, sizeof(why)), -EROFS);
	assert_string_equal(why, "read-only");
}

static void test_gate_no_medium_no_node(void **state)
{
	struct device d = fake("sdb", NULL);
	char why[256] = "";

	(void)state;
	d.size = 0;
	assert_int_equal(device_gate(&d, 0, why, sizeof(why)), -ENOMEDIUM);
	assert_string_equal(why, "no medium");
	d = fake("sdb", NULL);
	d.devnode = NULL;
	assert_int_equal(device_gate(&d, 0, why, sizeof(why)), -ENODEV);
	assert_string_equal(why, "no device node");
}

/* A dm or md device on the disk, or on one of its partitions. */
static void test_gate_held(void **state)
{
	char *dir = tu_mkdtemp(), *sys = subdir(dir, "sdb"), *holders = subdir(sys, "holders");
	char *part = subdir(sys, "sdb1"), *pholders = subdir(part, "holders");
	struct device d = fake("sdb", sys);
	char why[256] = "";

	(void)state;
	assert_int_equal(device_gate(&d, 0, why, sizeof(why)), 0);
	touch(part, "partition");
	touch(pholders, "dm-1");
	assert_int_equal(device_gate(&d, 0, why, sizeof(why)), -EBUSY);
	assert_string_equal(why, "held by another device (holders/)");
	tu_rmtree(part);
	assert_int_equal(device_gate(&d, 0, why, sizeof(why)), 0);
	touch(holders, "md0");
	assert_int_equal(device_gate(&d, 0, why, sizeof(why)), -EBUSY);
	tu_rmtree(dir);
	free(pholders);
	free(part);
	free(holders);
	free(sys);
	free(dir);
}

static void test_gate_passes_a_plain_card(void **state)
{
	struct device d = fake("sdb", NULL);
	char why[256] = "untouched";

	(void)state;
	assert_int_equal(device_gate(&d, 1ULL << 30, why, sizeof(why)), 0);
	assert_string_equal(why, "untouched");
}

/* Without a DISKSEQ on either side there is nothing to compare: the check
 * passes (a mismatch needs a real disk: see station-gate.sh). */
static void test_diskseq_unknown_passes(void **state)
{
	char *dir = tu_mkdtemp(), *file = tu_path(dir, "f");
	char why[256] = "untouched";
	int fd;

	(void)state;
	tu_truncate(file, 4096);
	fd = open(file, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(device_diskseq_check(fd, 7, why, sizeof(why)), 0);
	assert_int_equal(device_diskseq_check(fd, 0, why, sizeof(why)), 0);
	close(fd);
	assert_int_equal(device_diskseq_check_node(file, 7, why, sizeof(why)), 0);
	assert_int_equal(device_diskseq_check_node("/nonexistent/dev/sdz", 7, why, sizeof(why)),
			 0);
	assert_string_equal(why, "untouched");
	tu_rmtree(dir);
	free(file);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_never_emmc_hw_partitions_by_name),
		cmocka_unit_test(test_never_emmc_boot_by_force_ro),
		cmocka_unit_test(test_never_partition),
		cmocka_unit_test(test_gate_refuses_root_disk),
		cmocka_unit_test(test_gate_too_big),
		cmocka_unit_test(test_gate_read_only),
		cmocka_unit_test(test_gate_no_medium_no_node),
		cmocka_unit_test(test_gate_held),
		cmocka_unit_test(test_gate_passes_a_plain_card),
		cmocka_unit_test(test_diskseq_unknown_passes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
