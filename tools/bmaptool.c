/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bmaptool: a drop-in C implementation of the bmap tool. This file is the
 * dispatch only: the global options and the command; each command is a
 * file of its own (bmaptool-<command>.c), the work is done by libbmap.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bmaptool.h"
#include "util.h"
#include "version.h"

static const char main_help[] =
	"Usage: bmaptool [OPTIONS] COMMAND [ARGS]\n"
	"\n"
	"Flash disk images quickly with block maps (bmap files), and check the result.\n"
	"\n"
	"Commands:\n"
	"  create    generate the bmap of a sparse image file\n"
	"  copy      write an image's mapped blocks to a device or file\n"
	"  verify    read a device or file back and check it against the image\n"
	"  info      show an image's block map, sizes and compression\n"
	"\n"
	"Options:\n"
	"  -q, --quiet      print errors only\n"
	"  -d, --debug      print debugging messages\n"
	"  -h, --help       show this help ('bmaptool COMMAND --help' for a command)\n"
	"      --version    show the version: 'bmaptool 3.9.0+station.V', the reference's\n"
	"                   version whose command line this one takes, then this\n"
	"                   implementation (bmap-station) and its version V\n"
	"\n"
	"A command's options may come before, between or after its arguments; '--' ends\n"
	"them. Messages go to standard error. Exit status: 0 success, 1 failure, 2 usage\n"
	"error.\n";

enum { OPT_VERSION = 256 };

/* The reference's version whose command line this one takes. --version says
 * "bmaptool 3.9.0+station.0.1.0": scripts that compare it with 3.x (PEP 440,
 * dpkg --compare-versions, sort -V) see 3.9.0 with a local label, newer than
 * 3.9.0 and older than 3.9.1; the label names this implementation and its
 * own version (bmap-station's). */
#define BMAPTOOL_COMPAT_VERSION "3.9.0"

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "version", no_argument, NULL, OPT_VERSION },
		COMMON_LONGOPTS,
		{}
	};
	static const struct {
		const char *name;
		int (*fn)(int argc, char **argv);
	} commands[] = {
		{ "create", cmd_create },
		{ "copy", cmd_copy },
		{ "verify", cmd_verify },
		{ "info", cmd_info },
	};
	int c;

	/* '+': stop at the command name; its options are its own (each
	 * command starts getopt over, see parse_cmd_line()). ':' and opterr:
	 * usage errors in our words, not getopt's under argv[0]. */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:hqd", longopts, NULL)) != -1) {
		if (handle_common(c))
			continue;
		switch (c) {
		case OPT_VERSION:
			printf("bmaptool %s+station.%s\n", BMAPTOOL_COMPAT_VERSION,
			       BMAP_STATION_VERSION);
			return EXIT_SUCCESS;
		case 'h':
			fputs(main_help, stdout);
			return EXIT_SUCCESS;
		default:
			return usage_bad_option(NULL, c, argv, longopts);
		}
	}
	if (optind >= argc)
		return usage_error(NULL, "no command given");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		if (strcmp(argv[optind], commands[i].name) == 0) {
			argv += optind;
			argc -= optind;
			return commands[i].fn(argc, argv);
		}
	}
	return usage_error(NULL, "unknown command '%s'", argv[optind]);
}
