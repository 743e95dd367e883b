/* Unit tests for the station configuration: loading, validation and matching. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "config.h"

#define GiB (1ull << 30)

/* The example from the station's documentation, exactly as written there. */
/* clang-format off */
static const char example_conf[] =
	"station = {\n"
	"  name = \"line-1\";\n"
	"  database = \"/var/lib/bmap-station/journal.db\";\n"
	"  max_workers = 4;            # cards flashed at the same time; the rest wait in order\n"
	"  require_tag = \"bmap-station\";   # only devices the udev rules tagged (\"\" = any block disk)\n"
	"  max_device_size = \"256G\";   # never touch anything bigger (a system disk)\n"
	"};\n"
	"slots = (                     # optional: name physical ports by their ID_PATH\n"
	"  { name = \"A1\"; path = \"pci-0000:00:14.0-usb-0:1.1:1.0-scsi-0:0:0:0\"; }\n"
	");\n"
	"profiles = (                  # the first profile whose match fits wins\n"
	"  {\n"
	"    name = \"gateway\";\n"
	"    image = \"/srv/images/gateway.wic.zst\";\n"
	"    bmap = \"/srv/images/gateway.wic.bmap\";   # optional: discovered next to the image otherwise\n"
	"    verify = \"readback\";      # readback (default) | checksums | none\n"
	"    removable_only = true;    # default true; false allows fixed disks such as loop devices\n"
	"    match = {                 # every given key must fit; globs for strings\n"
	"      slot = \"A*\"; bus = \"usb\"; vendor = \"SanDisk*\"; model = \"*\"; serial = \"*\";\n"
	"      min_size = \"4G\"; max_size = \"64G\";\n"
	"    };\n"
	"  }\n"
	");\n";
/* clang-format on */

#define MIN_PROFILE "profiles = ( { name = \"p\"; image = \"/i.img\"; } );\n"

struct fixture {
	char *dir;
	char *conf; /* dir/station.conf */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->dir = tu_mkdtemp();
	f->conf = tu_path(f->dir, "station.conf");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	tu_rmtree(f->dir);
	free(f->conf);
	free(f->dir);
	free(f);
	return 0;
}

static void write_conf(const struct fixture *f, const char *text)
{
	unlink(f->conf);
	tu_write_file(f->conf, text, strlen(text));
}

/* Loads @text; it must load. */
static struct station_config *load_ok(const struct fixture *f, const char *text)
{
	struct station_config *cfg = NULL;
	char *err = NULL;
	int r;

	write_conf(f, text);
	r = config_load(f->conf, &cfg, &err);
	if (r < 0)
		fail_msg("config_load: %d: %s\n--\n%s", r, err ? err : "(no message)", text);
	assert_null(err);
	assert_non_null(cfg);
	return cfg;
}

/* Loads @text; it must be refused with a message containing "CONF:LINE: @what". */
static void load_refused(const struct fixture *f, const char *text, int line, const char *what)
{
	struct station_config *cfg = NULL;
	char *err = NULL, *want;
	int r;

	write_conf(f, text);
	r = config_load(f->conf, &cfg, &err);
	if (r >= 0)
		fail_msg("loaded, expected \"%s\"\n--\n%s", what, text);
	assert_int_equal(r, -EINVAL);
	assert_null(cfg);
	assert_non_null(err);
	if (line > 0)
		assert_true(asprintf(&want, "%s:%d: %s", f->conf, line, what) > 0);
	else
		assert_true(asprintf(&want, "%s: %s", f->conf, what) > 0);
	if (!strstr(err, want))
		fail_msg("message \"%s\" lacks \"%s\"", err, want);
	/* The message names the file first. */
	assert_int_equal(strncmp(err, f->conf, strlen(f->conf)), 0);
	free(want);
	free(err);
}

static void test_example_loads(void **state)
{
	struct fixture *f = *state;
	struct station_config *cfg = load_ok(f, example_conf);
	const struct profile *p;

	assert_string_equal(cfg->path, f->conf);
	assert_string_equal(cfg->name, "line-1");
	assert_string_equal(cfg->database, "/var/lib/bmap-station/journal.db");
	assert_int_equal(cfg->max_workers, 4);
	assert_string_equal(cfg->require_tag, "bmap-station");
	assert_int_equal(cfg->max_device_size, 256 * GiB);
	assert_int_equal(cfg->job_timeout, 3600);
	assert_int_equal(cfg->n_slots, 1);
	assert_string_equal(cfg->slots[0].name, "A1");
	assert_string_equal(cfg->slots[0].path, "pci-0000:00:14.0-usb-0:1.1:1.0-scsi-0:0:0:0");
	assert_int_equal(cfg->n_profiles, 1);
	p = &cfg->profiles[0];
	assert_string_equal(p->name, "gateway");
	assert_string_equal(p->image, "/srv/images/gateway.wic.zst");
	assert_string_equal(p->bmap, "/srv/images/gateway.wic.bmap");
	assert_int_equal(p->verify, VERIFY_READBACK);
	assert_true(p->removable_only);
	assert_string_equal(p->match.slot, "A*");
	assert_string_equal(p->match.bus, "usb");
	assert_string_equal(p->match.vendor, "SanDisk*");
	assert_string_equal(p->match.model, "*");
	assert_string_equal(p->match.serial, "*");
	assert_int_equal(p->match.min_size, 4 * GiB);
	assert_int_equal(p->match.max_size, 64 * GiB);
	config_free(cfg);
}

static void test_defaults(void **state)
{
	struct fixture *f = *state;
	struct station_config *cfg = load_ok(f, MIN_PROFILE);
	const struct profile *p = &cfg->profiles[0];
	char host[HOST_NAME_MAX + 1] = "";

	assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
	assert_string_equal(cfg->name, host);
	assert_string_equal(cfg->database, "/var/lib/bmap-station/journal.db");
	assert_int_equal(cfg->max_workers, 4);
	assert_string_equal(cfg->require_tag, "bmap-station");
	assert_int_equal(cfg->max_device_size, 256 * GiB);
	assert_int_equal(cfg->job_timeout, 3600);
	assert_true(cfg->cache_prefill);
	assert_int_equal(cfg->n_slots, 0);
	assert_null(cfg->slots);
	assert_int_equal(cfg->n_profiles, 1);
	assert_string_equal(p->name, "p");
	assert_string_equal(p->image, "/i.img");
	assert_null(p->bmap);
	assert_int_equal(p->verify, VERIFY_READBACK);
	assert_true(p->removable_only);
	assert_false(p->once_per_serial);
	assert_false(p->discard);
	assert_null(p->match.slot);
	assert_null(p->match.bus);
	assert_null(p->match.vendor);
	assert_null(p->match.model);
	assert_null(p->match.serial);
	assert_int_equal(p->match.min_size, 0);
	assert_int_equal(p->match.max_size, 0);
	config_free(cfg);

	/* An empty station group and an empty slots list change nothing. */
	cfg = load_ok(f, "station = { };\nslots = ( );\n" MIN_PROFILE);
	assert_int_equal(cfg->max_workers, 4);
	assert_int_equal(cfg->n_slots, 0);
	config_free(cfg);
}

static void test_values(void **state)
{
	struct fixture *f = *state;
	struct station_config *cfg;

	cfg = load_ok(
	    f, "station = {\n"
	       "  max_workers = 64; job_timeout = 90; require_tag = \"\";\n"
	       "  max_device_size = 1099511627776L; cache_prefill = false;\n"
	       "};\n"
	       "profiles = (\n"
	       "  { name = \"a\"; image = \"/a\"; verify = \"checksums\"; removable_only = false;\n"
	       "    once_per_serial = true; discard = true;\n"
	       "    match = { min_size = 1000; max_size = 2000L; }; },\n"
	       "  { name = \"b\"; image = \"/b\"; verify = \"none\";\n"
	       "    match = { min_size = \"512M\"; max_size = \"1.5T\"; }; },\n"
	       "  { name = \"c\"; image = \"/c\"; verify = \"readback\";\n"
	       "    match = { min_size = \"4GiB\"; max_size = \"4GB\"; }; },\n"
	       "  { name = \"d\"; image = \"/d\";\n"
	       "    match = { min_size = \"4096\"; max_size = \"64k\"; }; }\n"
	       ");\n");
	assert_int_equal(cfg->max_workers, 64);
	assert_int_equal(cfg->job_timeout, 90);
	assert_string_equal(cfg->require_tag, "");
	assert_int_equal(cfg->max_device_size, 1ull << 40);
	assert_false(cfg->cache_prefill);
	assert_int_equal(cfg->n_profiles, 4);
	assert_int_equal(cfg->profiles[0].verify, VERIFY_CHECKSUMS);
	assert_false(cfg->profiles[0].removable_only);
	assert_true(cfg->profiles[0].once_per_serial);
	assert_false(cfg->profiles[1].once_per_serial);
	assert_true(cfg->profiles[0].discard);
	assert_false(cfg->profiles[1].discard); /* default false */
	assert_int_equal(cfg->profiles[0].match.min_size, 1000);
	assert_int_equal(cfg->profiles[0].match.max_size, 2000);
	assert_int_equal(cfg->profiles[1].verify, VERIFY_NONE);
	assert_true(cfg->profiles[1].removable_only);
	assert_int_equal(cfg->profiles[1].match.min_size, 512ull << 20);
	assert_int_equal(cfg->profiles[1].match.max_size, 3ull << 39);
	assert_int_equal(cfg->profiles[2].verify, VERIFY_READBACK);
	assert_int_equal(cfg->profiles[2].match.min_size, 4 * GiB);
	assert_int_equal(cfg->profiles[2].match.max_size, 4 * GiB);
	assert_int_equal(cfg->profiles[3].match.min_size, 4096);
	assert_int_equal(cfg->profiles[3].match.max_size, 64 << 10);
	config_free(cfg);
}

/* libconfig 1.5 keeps only the low 32 bits of a plain integer literal such as
 * 8589934592 (no L suffix): min_size would silently become 0, no bound. */
static void test_plain_big_integer_not_truncated(void **state)
{
	struct fixture *f = *state;
	struct station_config *cfg;

	cfg = load_ok(f, "station = { max_device_size = 274877906944; };\n"
			 "profiles = ( { name = \"p\"; image = \"/i\";\n"
			 "  match = { min_size = 8589934592; max_size =\n"
			 "    0x1000000000; }; } );\n");
	assert_int_equal(cfg->max_device_size, 256 * GiB);
	assert_int_equal(cfg->profiles[0].match.min_size, 8 * GiB);
	assert_int_equal(cfg->profiles[0].match.max_size, 64 * GiB);
	config_free(cfg);

	/* Another setting's name in a string on the same line does not confuse it. */
	cfg = load_ok(f, "profiles = ( { name = \"min_size\"; image = \"/i\"; match = {"
			 " serial = \"min_size = 1\"; min_size = 4294967296; }; } );\n");
	assert_int_equal(cfg->profiles[0].match.min_size, 4 * GiB);
	config_free(cfg);

	load_refused(f, "station = {\n  max_workers = 4294967300;\n};\n" MIN_PROFILE, 2,
		     "station.max_workers: 4294967300 is out of range (1..64)");
	load_refused(f, "station = {\n  max_device_size = -4294967296;\n};\n" MIN_PROFILE, 2,
		     "station.max_device_size: -4294967296 is not a size");
}

static void test_relative_paths(void **state)
{
	struct fixture *f = *state;
	struct station_config *cfg;
	char *want, *cwd, *sub;

	cfg = load_ok(f, "station = { database = \"journal.db\"; };\n"
			 "profiles = ( { name = \"p\"; image = \"images/disk.wic.zst\";\n"
			 "  bmap = \"./disk.bmap\"; },\n"
			 "  { name = \"q\"; image = \"../up.img\"; } );\n");
	want = tu_path(f->dir, "journal.db");
	assert_string_equal(cfg->database, want);
	free(want);
	want = tu_path(f->dir, "images/disk.wic.zst");
	assert_string_equal(cfg->profiles[0].image, want);
	free(want);
	want = tu_path(f->dir, "disk.bmap");
	assert_string_equal(cfg->profiles[0].bmap, want);
	free(want);
	want = tu_path(f->dir, "../up.img");
	assert_string_equal(cfg->profiles[1].image, want);
	free(want);
	config_free(cfg);

	/* Loaded by a relative name, from another directory: still next to the file. */
	sub = tu_path(f->dir, "etc");
	assert_int_equal(mkdir(sub, 0755), 0);
	free(sub);
	sub = tu_path(f->dir, "etc/station.conf");
	tu_write_file(sub, MIN_PROFILE "station = { database = \"j.db\"; };\n",
		      strlen(MIN_PROFILE "station = { database = \"j.db\"; };\n"));
	cwd = getcwd(NULL, 0);
	assert_non_null(cwd);
	assert_int_equal(chdir(f->dir), 0);
	{
		char *err = NULL;
		int r = config_load("etc/station.conf", &cfg, &err);

		assert_int_equal(chdir(cwd), 0);
		if (r < 0)
			fail_msg("%s", err);
	}
	assert_string_equal(cfg->path, "etc/station.conf");
	/* getcwd() gives the directory without symlinks; compare with that. */
	{
		char *real = realpath(f->dir, NULL);

		assert_non_null(real);
		want = tu_path(real, "etc/j.db");
		assert_string_equal(cfg->database, want);
		free(want);
		free(real);
	}
	free(cwd);
	free(sub);
	config_free(cfg);
}

/* URLs in a profile were joined to the config's folder ("/etc/x/http://..."),
 * naming a file that is not there. */
static void test_url_image_and_bmap_kept_as_given(void **state)
{
	struct fixture *f = *state;
	struct station_config *cfg;
	char *want;

	cfg = load_ok(f, "station = { cache_dir = \"cache\"; };\n"
			 "profiles = ( { name = \"p\"; image = \"https://u:pw@h/img/disk.img.zst?t=1\";\n"
			 "  bmap = \"http://h/disk.bmap\"; },\n"
			 "  { name = \"q\"; image = \"file:///srv/disk.img\"; bmap = \"disk.bmap\"; } );\n");
	assert_string_equal(cfg->profiles[0].image, "https://u:pw@h/img/disk.img.zst?t=1");
	assert_string_equal(cfg->profiles[0].bmap, "http://h/disk.bmap");
	assert_string_equal(cfg->profiles[1].image, "file:///srv/disk.img");
	want = tu_path(f->dir, "disk.bmap");
	assert_string_equal(cfg->profiles[1].bmap, want);
	free(want);
	config_free(cfg);
}

/* A URL image without the image cache would be written straight from the
 * network (half-written cards, one download per card): refused at load. */
static void test_url_image_without_cache_refused(void **state)
{
	struct fixture *f = *state;

	load_refused(f,
		     "station = { cache_dir = \"\"; };\n"
		     "profiles = ( { name = \"p\";\n"
		     "  image = \"http://h/disk.img.zst\"; } );\n",
		     3,
		     "profiles.[0].image: profile \"p\" takes its image from a URL, which needs "
		     "the image cache");
}

static void test_include_relative_to_config(void **state)
{
	struct fixture *f = *state;
	struct station_config *cfg;
	char *inc = tu_path(f->dir, "profiles.conf");
	char *err = NULL, *want;
	static const char bad[] = "profiles = (\n  { name = \"p\"; image = \"/i\";\n"
				  "    verify = \"fast\"; }\n);\n";

	tu_write_file(inc, MIN_PROFILE, strlen(MIN_PROFILE));
	cfg = load_ok(f, "station = { name = \"s\"; };\n@include \"profiles.conf\"\n");
	assert_string_equal(cfg->profiles[0].name, "p");
	config_free(cfg);

	/* An error in the included file names that file and its line. */
	unlink(inc);
	tu_write_file(inc, bad, strlen(bad));
	write_conf(f, "station = { name = \"s\"; };\n@include \"profiles.conf\"\n");
	assert_int_equal(config_load(f->conf, &cfg, &err), -EINVAL);
	assert_true(asprintf(&want, "%s:3: profiles.[0].verify: \"fast\"", inc) > 0);
	if (!strstr(err, want))
		fail_msg("message \"%s\" lacks \"%s\"", err, want);
	free(want);
	free(err);

	/* So does a syntax error there. */
	unlink(inc);
	{
		static const char syntax[] = "profiles = (\n  { name = ; }\n);\n";

		tu_write_file(inc, syntax, strlen(syntax));
	}
	assert_int_equal(config_load(f->conf, &cfg, &err), -EINVAL);
	assert_true(asprintf(&want, "%s:2: syntax error", inc) > 0);
	if (!strstr(err, want))
		fail_msg("message \"%s\" lacks \"%s\"", err, want);
	free(want);
	free(err);
	free(inc);
}

static void test_missing_file(void **state)
{
	struct fixture *f = *state;
	struct station_config *cfg = NULL;
	char *err = NULL;

	assert_int_equal(config_load(f->conf, &cfg, &err), -ENOENT);
	assert_null(cfg);
	assert_non_null(err);
	assert_non_null(strstr(err, f->conf));
	free(err);

	/* ret_error may be left out. */
	assert_int_equal(config_load(f->conf, &cfg, NULL), -ENOENT);

	assert_int_equal(config_load(f->dir, &cfg, &err), -EISDIR);
	assert_non_null(strstr(err, f->dir));
	free(err);
}

static void test_syntax_error(void **state)
{
	struct fixture *f = *state;

	load_refused(f, "station = {\n  name = ;\n};\n" MIN_PROFILE, 2, "syntax error");
	load_refused(f, MIN_PROFILE "station = { name = \"a\";\n name = \"b\"; };\n", 3,
		     "duplicate setting name");
}

static void test_unknown_settings(void **state)
{
	struct fixture *f = *state;

	load_refused(f, "stations = { };\n" MIN_PROFILE, 1,
		     "stations: unknown setting (did you mean \"station\"?)");
	load_refused(f, "station = {\n  max_worker = 3;\n};\n" MIN_PROFILE, 2,
		     "station.max_worker: unknown setting (did you mean \"max_workers\"?)");
	load_refused(f,
		     "profiles = (\n  { name = \"a\"; image = \"/a\"; },\n"
		     "  { name = \"b\"; image = \"/b\";\n    removeable_only = false; }\n);\n",
		     4,
		     "profiles.[1].removeable_only: unknown setting (did you mean "
		     "\"removable_only\"?)");
	load_refused(f,
		     "profiles = ( { name = \"a\"; image = \"/a\";\n"
		     "  match = {\n    serial = \"X*\";\n    colour = \"red\";\n  }; } );\n",
		     4, "profiles.[0].match.colour: unknown setting");
	load_refused(f, "slots = (\n  { name = \"A1\"; path = \"p\"; port = 1; }\n);\n" MIN_PROFILE,
		     2, "slots.[0].port: unknown setting");
}

static void test_wrong_types(void **state)
{
	struct fixture *f = *state;

	load_refused(f, "station = 1;\n" MIN_PROFILE, 1, "station: must be a group");
	load_refused(f, "station = {\n  max_workers = \"4\";\n};\n" MIN_PROFILE, 2,
		     "station.max_workers: must be an integer");
	load_refused(f, "station = {\n  max_workers = 4.0;\n};\n" MIN_PROFILE, 2,
		     "station.max_workers: must be an integer");
	load_refused(f, "station = {\n\n  name = 7;\n};\n" MIN_PROFILE, 3,
		     "station.name: must be a string");
	load_refused(f, "station = { job_timeout = \"1h\"; };\n" MIN_PROFILE, 1,
		     "station.job_timeout: must be an integer");
	load_refused(f, "station = {\n  cache_prefill = \"yes\";\n};\n" MIN_PROFILE, 2,
		     "station.cache_prefill: must be true or false");
	load_refused(
	    f, "profiles = ( { name = \"p\"; image = \"/i\";\n removable_only = \"yes\"; } );\n", 2,
	    "profiles.[0].removable_only: must be true or false");
	load_refused(f, "profiles = ( { name = \"p\"; image = \"/i\";\n removable_only = 1; } );\n",
		     2, "profiles.[0].removable_only: must be true or false");
	load_refused(f, "profiles = ( { name = \"p\"; image = \"/i\";\n discard = \"on\"; } );\n", 2,
		     "profiles.[0].discard: must be true or false");
	load_refused(
	    f, "profiles = ( { name = \"p\"; image = \"/i\";\n match = { serial = 5; }; } );\n", 2,
	    "profiles.[0].match.serial: must be a string");
	load_refused(f, "profiles = ( { name = \"p\"; image = \"/i\";\n match = \"usb\"; } );\n", 2,
		     "profiles.[0].match: must be a group");
	load_refused(f, "profiles = { name = \"p\"; image = \"/i\"; };\n", 1,
		     "profiles: must be a list");
	load_refused(f, "\nprofiles = ( \"p\" );\n", 2, "profiles.[0]: must be a group");
	load_refused(f, "slots = { name = \"A\"; path = \"p\"; };\n" MIN_PROFILE, 1,
		     "slots: must be a list");
	load_refused(f, "profiles = ( { name = \"p\"; image = [\"/i\"]; } );\n", 1,
		     "profiles.[0].image: must be a string");
	load_refused(
	    f, "profiles = ( { name = \"p\"; image = \"/i\";\n match = { min_size = 1.5; }; } );\n",
	    2, "profiles.[0].match.min_size: must be a size");
}

static void test_required_and_duplicates(void **state)
{
	struct fixture *f = *state;

	load_refused(
	    f, "profiles = (\n  { name = \"a\"; image = \"/a\"; },\n  { image = \"/b\"; }\n);\n", 3,
	    "profiles.[1].name: missing");
	load_refused(f, "profiles = (\n  {\n    name = \"a\";\n  }\n);\n", 2,
		     "profiles.[0].image: missing");
	load_refused(f, "profiles = ( { name = \"\"; image = \"/a\"; } );\n", 1,
		     "profiles.[0].name: must not be empty");
	load_refused(f, "profiles = ( { name = \"a\"; image = \"\"; } );\n", 1,
		     "profiles.[0].image: must not be empty");
	load_refused(f,
		     "profiles = (\n  { name = \"a\"; image = \"/a\"; },\n"
		     "  { name = \"b\"; image = \"/b\"; },\n"
		     "  { image = \"/c\";\n    name = \"a\"; }\n);\n",
		     5,
		     "profiles.[2].name: duplicate profile name \"a\" (also profiles.[0], line 2)");
	load_refused(f,
		     "slots = (\n  { name = \"A1\"; path = \"p1\"; },\n"
		     "  { name = \"A1\"; path = \"p2\"; }\n);\n" MIN_PROFILE,
		     3, "slots.[1].name: duplicate slot name \"A1\" (also slots.[0], line 2)");
	load_refused(f,
		     "slots = (\n  { name = \"A1\"; path = \"p1\"; },\n"
		     "  { name = \"A2\";\n    path = \"p1\"; }\n);\n" MIN_PROFILE,
		     4, "slots.[1].path: slot \"A2\" has the same path as slot \"A1\" (line 2)");
	load_refused(f, "slots = (\n  { name = \"A1\"; }\n);\n" MIN_PROFILE, 2,
		     "slots.[0].path: missing");
	load_refused(f, "slots = (\n  { path = \"p\"; }\n);\n" MIN_PROFILE, 2,
		     "slots.[0].name: missing");
	/* A station without profiles would do nothing. */
	load_refused(f, "station = { name = \"s\"; };\n", 0, "profiles: no profiles");
	load_refused(f, "station = { name = \"s\"; };\n\nprofiles = ( );\n", 3,
		     "profiles: no profiles");
}

static void test_bad_values(void **state)
{
	struct fixture *f = *state;

	/* The example message of the documentation, at its line. */
	load_refused(f,
		     "station = { name = \"s\"; };\n"
		     "profiles = (\n  { name = \"a\"; image = \"/a\"; },\n"
		     "  { name = \"b\"; image = \"/b\";\n    verify = \"fast\"; }\n);\n",
		     5, "profiles.[1].verify: \"fast\" is not readback, checksums or none");
	load_refused(f, "station = {\n  max_workers = 0;\n};\n" MIN_PROFILE, 2,
		     "station.max_workers: 0 is out of range (1..64)");
	load_refused(f, "station = {\n  max_workers = 65;\n};\n" MIN_PROFILE, 2,
		     "station.max_workers: 65 is out of range (1..64)");
	load_refused(f, "station = {\n  max_workers = -1;\n};\n" MIN_PROFILE, 2,
		     "station.max_workers: -1 is out of range");
	load_refused(f, "station = {\n  job_timeout = 0;\n};\n" MIN_PROFILE, 2,
		     "station.job_timeout: 0 is out of range");
	load_refused(f, "station = {\n  max_device_size = \"256Q\";\n};\n" MIN_PROFILE, 2,
		     "station.max_device_size: \"256Q\" is not a size");
	load_refused(f, "station = {\n  max_device_size = 0;\n};\n" MIN_PROFILE, 2,
		     "station.max_device_size: must be greater than 0");
	load_refused(f, "station = {\n  database = \"\";\n};\n" MIN_PROFILE, 2,
		     "station.database: must not be empty");

	static const char *const bad_sizes[] = {"",    "G",   "-1G", "1e3", "0x10", "inf",  "nan",
						"4 G", " 4G", "4GG", ".5G", "4Gx",  "1.2.3"};
	for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
		char *text, *what;

		assert_true(asprintf(&text,
				     "profiles = ( { name = \"p\"; image = \"/i\";\n"
				     "  match = {\n    min_size = \"%s\";\n  }; } );\n",
				     bad_sizes[i]) > 0);
		assert_true(asprintf(&what, "profiles.[0].match.min_size: \"%s\" is not a size",
				     bad_sizes[i]) > 0);
		load_refused(f, text, 3, what);
		free(text);
		free(what);
	}
	load_refused(
	    f, "profiles = ( { name = \"p\"; image = \"/i\";\n match = { min_size = -5; }; } );\n",
	    2, "profiles.[0].match.min_size: -5 is not a size");
	load_refused(
	    f,
	    "profiles = ( { name = \"p\"; image = \"/i\";\n"
	    "  match = { max_size = \"4G\";\n    min_size = \"8G\"; }; } );\n",
	    3, "profiles.[0].match.min_size: 8.0 GiB is above max_size 4.0 GiB: no device can fit");
	load_refused(
	    f,
	    "profiles = ( { name = \"p\"; image = \"/i\";\n"
	    "  match = { min_size = 4294967297; max_size = \"4G\"; }; } );\n",
	    2, "profiles.[0].match.min_size: 4294967297 bytes is above max_size 4294967296 bytes");
	load_refused(
	    f, "profiles = ( { name = \"p\"; image = \"/i\";\n match = { max_size = 0; }; } );\n",
	    2, "profiles.[0].match.max_size: must be greater than 0");
	load_refused(
	    f, "profiles = ( { name = \"p\"; image = \"/i\";\n match = { serial = \"\"; }; } );\n",
	    2, "profiles.[0].match.serial: must not be empty");
}

/* A USB stick in slot A1, 16 GiB. */
static struct device_identity stick(void)
{
	return (struct device_identity){
	    .devnode = "/dev/sdb",
	    .serial = "4C530001234",
	    .vendor = "SanDisk",
	    .model = "Ultra",
	    .bus = "usb",
	    .id_path = "pci-0000:00:14.0-usb-0:1.1:1.0-scsi-0:0:0:0",
	    .size = 16 * GiB,
	    .removable = true,
	};
}

static void test_match_example(void **state)
{
	struct fixture *f = *state;
	struct station_config *cfg = load_ok(f, example_conf);
	struct device_identity id = stick();
	const char *slot = config_slot_name(cfg, id.id_path), *why = NULL;

	assert_string_equal(slot, "A1");
	assert_ptr_equal(config_match(cfg, &id, slot, &why), &cfg->profiles[0]);
	assert_null(why); /* untouched when a profile fits */
	assert_ptr_equal(config_match(cfg, &id, slot, NULL), &cfg->profiles[0]);

	/* Size bounds are inclusive. */
	id.size = 4 * GiB;
	assert_non_null(config_match(cfg, &id, slot, NULL));
	id.size = 64 * GiB;
	assert_non_null(config_match(cfg, &id, slot, NULL));
	id.size = 4 * GiB - 1;
	assert_null(config_match(cfg, &id, slot, &why));
	assert_string_equal(why, "profile \"gateway\": size 4294967295 bytes is below min_size "
				 "4294967296 bytes");
	id.size = 128 * GiB;
	assert_null(config_match(cfg, &id, slot, &why));
	assert_string_equal(why, "profile \"gateway\": size 128.0 GiB is above max_size 64.0 GiB");
	id.size = 2 * GiB;
	assert_null(config_match(cfg, &id, slot, &why));
	assert_string_equal(why, "profile \"gateway\": size 2.0 GiB is below min_size 4.0 GiB");
	id.size = 16 * GiB;

	/* Globs. */
	id.vendor = "SanDisk Corp";
	assert_non_null(config_match(cfg, &id, slot, NULL));
	id.vendor = "Kingston";
	assert_null(config_match(cfg, &id, slot, &why));
	assert_string_equal(why,
			    "profile \"gateway\": vendor \"Kingston\" does not match \"SanDisk*\"");
	id.vendor = "sandisk"; /* no flags: case matters */
	assert_null(config_match(cfg, &id, slot, NULL));
	id.vendor = "SanDisk";
	id.bus = "mmc";
	assert_null(config_match(cfg, &id, slot, &why));
	assert_string_equal(why, "profile \"gateway\": bus \"mmc\" does not match \"usb\"");
	id.bus = "usb";

	/* Unknown values: "*" takes them, anything else does not. */
	id.model = NULL;
	id.serial = NULL;
	assert_non_null(config_match(cfg, &id, slot, NULL));
	id.vendor = NULL;
	assert_null(config_match(cfg, &id, slot, &why));
	assert_string_equal(why, "profile \"gateway\": vendor unknown does not match \"SanDisk*\"");
	id = stick();

	/* The slot: a glob on the slot's name; no named slot never fits. */
	assert_null(config_match(cfg, &id, "B1", &why));
	assert_string_equal(why, "profile \"gateway\": slot \"B1\" does not match \"A*\"");
	assert_null(config_slot_name(cfg, "pci-0000:00:14.0-usb-0:1.2:1.0-scsi-0:0:0:0"));
	assert_null(config_slot_name(cfg, "pci-0000:00:14.0-usb-0:1.1:1.0-scsi-0:0:0"));
	assert_null(config_slot_name(cfg, NULL));
	assert_null(config_match(cfg, &id, NULL, &why));
	assert_non_null(strstr(why, "no named slot"));
	config_free(cfg);
}

static void test_match_order_and_slots(void **state)
{
	struct fixture *f = *state;
	struct station_config *cfg;
	struct device_identity id = stick();
	const char *why = NULL;

	cfg = load_ok(
	    f,
	    "slots = ( { name = \"A1\"; path = \"pa1\"; }, { name = \"B1\"; path = \"pb1\"; } );\n"
	    "profiles = (\n"
	    "  { name = \"any-slot\"; image = \"/s\"; match = { slot = \"*\"; bus = \"usb\"; }; "
	    "},\n"
	    "  { name = \"usb\"; image = \"/u\"; match = { bus = \"usb\"; }; },\n"
	    "  { name = \"all\"; image = \"/x\"; }\n"
	    ");\n");
	/* First fit wins, even when later ones fit too. */
	assert_string_equal(config_match(cfg, &id, config_slot_name(cfg, "pb1"), NULL)->name,
			    "any-slot");
	/* slot = "*" asks for a named slot: an unnamed port goes on. */
	assert_string_equal(config_match(cfg, &id, config_slot_name(cfg, "elsewhere"), NULL)->name,
			    "usb");
	id.bus = "mmc";
	assert_string_equal(config_match(cfg, &id, NULL, NULL)->name, "all");
	/* An empty match block fits anything, even a device nothing is known of. */
	id = (struct device_identity){0};
	assert_string_equal(config_match(cfg, &id, NULL, &why)->name, "all");
	assert_null(why);
	config_free(cfg);
}

/* Two profiles told apart by the serial pattern and the size. */
static void test_match_by_serial_and_size(void **state)
{
	struct fixture *f = *state;
	struct station_config *cfg;
	struct device_identity id = stick();
	const char *why = NULL;

	cfg = load_ok(
	    f, "profiles = (\n"
	       "  { name = \"small\"; image = \"small.img\";\n"
	       "    match = { serial = \"GW-*\"; max_size = \"8G\"; }; },\n"
	       "  { name = \"large\"; image = \"large.img\";\n"
	       "    match = { serial = \"GW-*\"; min_size = 8589934593; max_size = \"64G\"; }; }\n"
	       ");\n");
	id.serial = "GW-0042";
	id.size = 7 * GiB + 512 * 1024 * 1024ull;
	assert_string_equal(config_match(cfg, &id, NULL, NULL)->name, "small");
	id.size = 8 * GiB;
	assert_string_equal(config_match(cfg, &id, NULL, NULL)->name, "small");
	id.size = 8 * GiB + 1;
	assert_string_equal(config_match(cfg, &id, NULL, NULL)->name, "large");
	id.size = 32 * GiB;
	assert_string_equal(config_match(cfg, &id, NULL, NULL)->name, "large");

	/* Too big for both: "large" came closest (serial and min_size fit). */
	id.size = 128 * GiB;
	assert_null(config_match(cfg, &id, NULL, &why));
	assert_string_equal(why, "profile \"large\": size 128.0 GiB is above max_size 64.0 GiB");

	/* The wrong serial: the reason names the closest profile ("large" fits by size). */
	id.serial = "XYZ-1";
	id.size = 32 * GiB;
	assert_null(config_match(cfg, &id, NULL, &why));
	assert_string_equal(why, "profile \"large\": serial \"XYZ-1\" does not match \"GW-*\"");
	id.size = 4 * GiB;
	assert_null(config_match(cfg, &id, NULL, &why));
	assert_string_equal(why, "profile \"small\": serial \"XYZ-1\" does not match \"GW-*\"");
	config_free(cfg);
}

/* The rules `udev-rules` writes for @text's slots, or NULL with *ret_error. */
static char *udev_rules(const struct fixture *f, const char *text, const char *helper,
			char **ret_error)
{
	struct station_config *cfg = load_ok(f, text);
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	int r;

	assert_non_null(out);
	*ret_error = NULL;
	r = config_udev_rules(cfg, helper, out, ret_error);
	assert_int_equal(fclose(out), 0);
	config_free(cfg);
	if (r < 0) {
		assert_int_equal(r, -EINVAL);
		assert_non_null(*ret_error);
		free(buf);
		return NULL;
	}
	assert_null(*ret_error);
	return buf;
}

static unsigned lines_starting(const char *text, const char *prefix)
{
	unsigned n = 0;

	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		n += strncmp(l, prefix, strlen(prefix)) == 0;
	return n;
}

/* Only the configured ports, by ID_PATH, each tagged disk asked of the
 * helper first; a slot's name stays inside its comment whatever it holds. */
static void test_udev_rules_from_slots(void **state)
{
	struct fixture *f = *state;
	char *rules, *err;

	rules = udev_rules(f,
			   "station = { require_tag = \"line-7\"; };\n"
			   "slots = ( { name = \"A1\"; path = "
			   "\"pci-0000:00:14.0-usb-0:1.1:1.0-scsi-0:0:0:0\"; },\n"
			   "  { name = \"B\\nTAG+=\\\"x\\\"\"; path = \"platform-fe320000.mmc\"; } "
			   ");\n" MIN_PROFILE,
			   "/usr/bin/bmap-station", &err);
	assert_non_null(rules);
	assert_non_null(strstr(rules,
			       "\nENV{ID_PATH}==\"pci-0000:00:14.0-usb-0:1.1:1.0-scsi-0:0:0:0\", "
			       "GOTO=\"bmap_station_slot\"\n"));
	assert_non_null(strstr(rules, "\nENV{ID_PATH}==\"platform-fe320000.mmc\", "
				      "GOTO=\"bmap_station_slot\"\n"));
	assert_int_equal(lines_starting(rules, "ENV{ID_PATH}=="), 2);
	/* Nothing else leads to the tag: no bus, no kernel name. */
	assert_int_equal(lines_starting(rules, "ENV{ID_BUS}"), 0);
	assert_non_null(strstr(rules, "\n# slot B?TAG+=\"x\"\n"));
	assert_int_equal(lines_starting(rules, "TAG+="), 1);
	assert_non_null(strstr(rules, "\nTAG+=\"line-7\"\n"));
	assert_non_null(strstr(rules,
			       "\nENV{BMAP_STATION_DISK}=\"\"\n"
			       "IMPORT{program}=\"/usr/bin/bmap-station system-disk $major:$minor "
			       "$devnode\"\n"
			       "ENV{BMAP_STATION_DISK}!=\"candidate\", GOTO=\"bmap_station_end\"\n"
			       "TAG+="));
	assert_non_null(strstr(rules, "\nGROUP=\"bmap-station-cards\", MODE=\"0660\"\n"));
	assert_int_equal(lines_starting(rules, "LABEL=\"bmap_station_end\""), 1);
	free(rules);

	/* The default tag when any disk is taken (require_tag = ""). */
	rules = udev_rules(f,
			   "station = { require_tag = \"\"; };\n"
			   "slots = ( { name = \"A1\"; path = \"pci-0000:00:14.0-usb-0:1.1:1.0\"; "
			   "} );\n" MIN_PROFILE,
			   "/usr/bin/bmap-station", &err);
	assert_non_null(strstr(rules, "\nTAG+=\"bmap-station\"\n"));
	free(rules);
}

static void test_udev_rules_refused(void **state)
{
	struct fixture *f = *state;
	char *err;

	assert_null(udev_rules(f, MIN_PROFILE, "/usr/bin/bmap-station", &err));
	assert_non_null(strstr(err, "no slots"));
	free(err);
	/* What a rule cannot hold literally: quotes, globs, spaces. */
	assert_null(udev_rules(f, "slots = ( { name = \"A1\"; path = \"pci-*\"; } );\n" MIN_PROFILE,
			       "/usr/bin/bmap-station", &err));
	assert_non_null(strstr(err, "slot \"A1\": path \"pci-*\""));
	free(err);
	assert_null(udev_rules(f,
			       "slots = ( { name = \"A1\"; path = \"a\\\"b\"; } );\n" MIN_PROFILE,
			       "/usr/bin/bmap-station", &err));
	free(err);
	assert_null(udev_rules(f,
			       "station = { require_tag = \"a:b\"; };\n"
			       "slots = ( { name = \"A1\"; path = \"pci-1\"; } );\n" MIN_PROFILE,
			       "/usr/bin/bmap-station", &err));
	assert_non_null(strstr(err, "require_tag"));
	free(err);
	assert_null(udev_rules(f, "slots = ( { name = \"A1\"; path = \"pci-1\"; } );\n" MIN_PROFILE,
			       "/opt/my tools/bmap-station", &err));
	free(err);
	assert_null(udev_rules(f, "slots = ( { name = \"A1\"; path = \"pci-1\"; } );\n" MIN_PROFILE,
			       "bmap-station", &err));
	free(err);
}

/* A reload keeps the database in force, by exchange: nothing to allocate,
 * nothing that can come back NULL, each path freed once with its owner. */
static void test_reload_keeps_database(void **state)
{
	struct fixture *f = *state;
	struct station_config *old, *cfg;
	char *old_db, *new_db;

	old = load_ok(f, "station = { database = \"/srv/old.db\"; };\n" MIN_PROFILE);
	cfg = load_ok(f, "station = { database = \"/srv/new.db\"; };\n" MIN_PROFILE);
	old_db = old->database;
	new_db = cfg->database;
	config_keep_database(cfg, old);
	assert_ptr_equal(cfg->database, old_db);
	assert_string_equal(cfg->database, "/srv/old.db");
	assert_ptr_equal(old->database, new_db);
	config_free(old);
	assert_string_equal(cfg->database, "/srv/old.db");
	config_free(cfg);
}

static void test_misc(void **state)
{
	struct device_identity id = stick();
	const char *why = NULL;

	(void)state;
	config_free(NULL);
	assert_string_equal(verify_mode_name(VERIFY_READBACK), "readback");
	assert_string_equal(verify_mode_name(VERIFY_CHECKSUMS), "checksums");
	assert_string_equal(verify_mode_name(VERIFY_NONE), "none");
	assert_string_equal(verify_mode_name((enum verify_mode)42), "unknown");
	assert_null(config_match(NULL, &id, NULL, &why));
	assert_non_null(why);
	assert_null(config_slot_name(NULL, "x"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_example_loads, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_values, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_plain_big_integer_not_truncated, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_relative_paths, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_url_image_and_bmap_kept_as_given, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_url_image_without_cache_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_include_relative_to_config, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_syntax_error, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_settings, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wrong_types, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_required_and_duplicates, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_values, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_match_example, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_match_order_and_slots, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_match_by_serial_and_size, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reload_keeps_database, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_udev_rules_from_slots, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_udev_rules_refused, setup, teardown),
	    cmocka_unit_test(test_misc),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
