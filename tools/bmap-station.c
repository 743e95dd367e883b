/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bmap-station: the flashing station's command line. `run` is the daemon;
 * `check` and `report` only read.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "journal.h"
#include "station.h"
#include "version.h"

#define DEFAULT_CONFIG "/etc/bmap-station/station.conf"
#define EXIT_USAGE 2

static const char main_help[] =
	"Usage: bmap-station COMMAND [OPTIONS]\n"
	"\n"
	"Flash every card plugged into this station according to its profiles,\n"
	"verify it, and keep a journal of what went onto each card.\n"
	"\n"
	"Commands:\n"
	"  run     [--config FILE]   run the station in the foreground (logs to stderr)\n"
	"  check   [--config FILE]   validate the configuration and list the block\n"
	"                            devices present with the profile each would get,\n"
	"                            or why it would be refused; writes nothing\n"
	"  report  [--config FILE | --db FILE] [--format table|csv|json]\n"
	"                            list the journal's jobs, newest first\n"
	"\n"
	"Options:\n"
	"  -c, --config FILE   configuration (default " DEFAULT_CONFIG ")\n"
	"      --db FILE       journal database to read (report)\n"
	"  -f, --format FMT    table (default), csv or json (report)\n"
	"  -h, --help          show this help\n"
	"      --version       show the version\n"
	"\n"
	"Signals to 'run': SIGTERM/SIGINT stop (running jobs end 'interrupted'),\n"
	"SIGHUP reloads the configuration (running jobs are not touched).\n";

__attribute__((format(printf, 1, 2))) static int usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bmap-station: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'bmap-station --help' for more information.\n");
	return EXIT_USAGE;
}

static int cmd_report(const char *config, const char *db, const char *format)
{
	struct station_config *cfg = NULL;
	struct journal *j = NULL;
	enum report_format fmt;
	char *err = NULL;
	int ret = EXIT_FAILURE;

	if (strcmp(format, "table") == 0)
		fmt = REPORT_TABLE;
	else if (strcmp(format, "csv") == 0)
		fmt = REPORT_CSV;
	else if (strcmp(format, "json") == 0)
		fmt = REPORT_JSON;
	else
		return usage("unknown format '%s' (table, csv or json)", format);
	if (!db) {
		if (config_load(config, &cfg, &err) < 0) {
			fprintf(stderr, "bmap-station: %s\n", err ? err : "cannot load configuration");
			free(err);
			return EXIT_FAILURE;
		}
		db = cfg->database;
	}
	if (journal_open(db, true, &j, &err) < 0) {
		fprintf(stderr, "bmap-station: %s\n", err ? err : "cannot open the journal");
		free(err);
		goto out;
	}
	if (journal_report(j, fmt, stdout) < 0) {
		fprintf(stderr, "bmap-station: report failed: %s\n", journal_error(j));
		goto out;
	}
	if (fflush(stdout) != 0) {
		fprintf(stderr, "bmap-station: cannot write the report: %m\n");
		goto out;
	}
	ret = EXIT_SUCCESS;
out:
	journal_close(j);
	config_free(cfg);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "db", required_argument, NULL, 'D' },
		{ "format", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{}
	};
	const char *config = DEFAULT_CONFIG, *db = NULL, *format = "table", *cmd;
	bool config_given = false;
	int c;

	if (argc >= 2 && argv[1][0] != '-') {
		cmd = argv[1];
		argv++;
		argc--;
	} else {
		cmd = NULL;
	}
	while ((c = getopt_long(argc, argv, "c:f:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			config_given = true;
			break;
		case 'D':
			db = optarg;
			break;
		case 'f':
			format = optarg;
			break;
		case 'h':
			fputs(main_help, stdout);
			return EXIT_SUCCESS;
		case 'V':
			printf("bmap-station %s\n", BMAP_STATION_VERSION);
			return EXIT_SUCCESS;
		default:
			return usage("%s", "bad usage");
		}
	}
	if (optind < argc)
		return usage("unexpected argument '%s'", argv[optind]);
	if (!cmd)
		return usage("%s", "no command given");
	if (strcmp(cmd, "run") == 0 || strcmp(cmd, "check") == 0) {
		if (db || strcmp(format, "table") != 0)
			return usage("%s", "--db and --format belong to 'report'");
		return strcmp(cmd, "run") == 0 ? station_run(config) : station_check(config, stdout);
	}
	if (strcmp(cmd, "report") == 0) {
		if (db && config_given)
			return usage("%s", "give --config or --db, not both");
		return cmd_report(config, db, format);
	}
	return usage("unknown command '%s'", cmd);
}
