/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bmap-station: the flashing station's command line. `run` is the daemon;
 * `check`, `report` and `history` only read; `forget` adds one row;
 * `udev-rules` and `system-disk` serve the udev rules; `sync` copies the
 * journal into a central PostgreSQL (sync.c); `serve` is the web
 * dashboard (serve.c).
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "journal.h"
#include "report.h"
#include "station.h"
#include "serve.h"
#include "sync.h"
#include "system-disk.h"
#include "watch.h"
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
	"  run     [--config FILE]   run the station in the foreground (logs to stderr);\n"
	"                            one station per journal (JOURNAL.lock)\n"
	"  check   [--config FILE]   validate the configuration and list the block\n"
	"                            devices present with the profile each would get,\n"
	"                            or why it would be refused; writes nothing\n"
	"  report  [--config FILE | --db FILE...] [--format table|csv|json]\n"
	"          [--summary] [FILTERS]\n"
	"                            list the journal's jobs, newest first, or with\n"
	"                            --summary one line per UTC day and profile\n"
	"  report|history ... --pg CONNINFO | --central [--station NAME]\n"
	"                            the same for the whole line, from the central\n"
	"                            PostgreSQL copy that 'sync' keeps (--central:\n"
	"                            sync.conninfo of the configuration)\n"
	"  history SERIAL [--config FILE | --db FILE...] [--format FMT] [FILTERS]\n"
	"                            every job the card SERIAL has had, oldest first\n"
	"  status [--config FILE | --db FILE] [--json]\n"
	"                            one row per card the running station knows:\n"
	"                            slot, device, serial, profile, state (waiting,\n"
	"                            downloading, writing, verifying, done, failed,\n"
	"                            refused, removed), percent, MB/s, time left,\n"
	"                            last outcome;\n"
	"                            says so when no station runs on the journal\n"
	"  watch  [--config FILE | --db FILE]\n"
	"                            the same, full screen, refreshed twice a second,\n"
	"                            with today's counts (q to quit)\n"
	"  forget SERIAL [--config FILE | --db FILE]\n"
	"                            let a card that passed a once_per_serial profile\n"
	"                            be flashed again (its jobs stay in the journal)\n"
	"  sync   [--config FILE | --db FILE] [--pg CONNINFO] [--station NAME] [--once]\n"
	"                            copy the journal into a central PostgreSQL and\n"
	"                            keep copying (bmap-station sync --help)\n"
	"  serve  [--config FILE | --db FILE] [--pg CONNINFO] [--listen ADDR:PORT]\n"
	"                            the read-only web dashboard: live page, line\n"
	"                            page (bmap-station serve --help)\n"
	"  udev-rules [--config FILE]\n"
	"                            print udev rules that give the station the disks\n"
	"                            in its configured slots and no others (for\n"
	"                            /etc/udev/rules.d/90-bmap-station.rules)\n"
	"  system-disk MAJOR:MINOR [DEVNODE]\n"
	"                            for the udev rules: whether the disk holds /,\n"
	"                            /usr, /var, /efi, /boot or a swap area (mounted\n"
	"                            or in /etc/fstab); such a disk is never tagged\n"
	"\n"
	"Options:\n"
	"  -c, --config FILE   configuration (default " DEFAULT_CONFIG ")\n"
	"      --db FILE       journal database to read (report, history); give it\n"
	"                      several times to read several stations' journals\n"
	"                      together (ordered by start time, with a STATION column)\n"
	"  -f, --format FMT    table (default), csv (RFC 4180, header row; a text\n"
	"                      cell starting with = + - @ tab or CR gets a ' in\n"
	"                      front, against spreadsheet formulas) or json\n"
	"      --summary       per UTC day and profile: CARDS (every job except\n"
	"                      ignored ones), PASSED (success), one column per\n"
	"                      failing outcome, YIELD% (passed / jobs that ended\n"
	"                      success, failed, verify_failed, removed or timeout;\n"
	"                      refused, interrupted and running jobs do not count),\n"
	"                      median and 95th percentile (nearest rank) duration\n"
	"                      and median MB/s (10^6 bytes/s) of successful jobs\n"
	"      --pg CONNINFO   report, history: read the central copy at CONNINFO\n"
	"                      (a libpq key=value string or URI) for every station\n"
	"                      (at most 10 at once), with a STATION column\n"
	"      --central       the same with the configuration's sync.conninfo\n"
	"      --station NAME  with --pg or --central: that station's jobs only\n"
	"  -h, --help          show this help\n"
	"      --version       show the version\n"
	"\n"
	"Filters (report, history; they combine with AND):\n"
	"      --since TIME    jobs started at or after TIME\n"
	"      --until TIME    jobs started before TIME (a day alone: up to its end)\n"
	"                      TIME is UTC, as the journal: 2026-11-26,\n"
	"                      2026-11-26T05:00, 2026-11-26T05:00:00, an optional\n"
	"                      trailing Z; or today, yesterday (UTC days)\n"
	"      --profile NAME  jobs of this profile\n"
	"      --slot NAME     jobs in this slot\n"
	"      --outcome NAME  success, failed, verify_failed, removed, timeout,\n"
	"                      interrupted, refused, ignored or running\n"
	"      --serial SERIAL jobs of this card (exact match; report only)\n"
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

/* What `report` and `history` were asked for. */
struct report_args {
	const char **dbs;
	size_t n_dbs;
	const char *pg, *station; /* the central copy (sync.c) instead of a journal */
	bool central;
	const char *format;
	const char *since, *until;
	bool summary;
	bool history;
	struct report_filter filter;
};

static int cmd_report(const char *config, struct report_args *a)
{
	char since[JOURNAL_TIME_MAX], until[JOURNAL_TIME_MAX];
	struct station_config *cfg = NULL;
	struct journal *j = NULL;
	char *central_dir = NULL;
	enum report_format fmt;
	enum outcome o;
	const char *db;
	char *err = NULL;
	int ret = EXIT_FAILURE, r;

	if (strcmp(a->format, "table") == 0)
		fmt = REPORT_TABLE;
	else if (strcmp(a->format, "csv") == 0)
		fmt = REPORT_CSV;
	else if (strcmp(a->format, "json") == 0)
		fmt = REPORT_JSON;
	else
		return usage("unknown format '%s' (table, csv or json)", a->format);
	if (a->since) {
		if (journal_parse_time(a->since, false, since) < 0)
			return usage("bad --since '%s' (a UTC date or date-time such as "
				     "2026-11-26 or 2026-11-26T05:00Z, today, yesterday)",
				     a->since);
		a->filter.since = since;
	}
	if (a->until) {
		if (journal_parse_time(a->until, true, until) < 0)
			return usage("bad --until '%s' (a UTC date or date-time such as "
				     "2026-11-26 or 2026-11-26T05:00Z, today, yesterday)",
				     a->until);
		a->filter.until = until;
	}
	if (a->filter.since && a->filter.until && strcmp(a->filter.since, a->filter.until) >= 0)
		return usage("--since %s is not before --until %s", a->since, a->until);
	if (a->filter.outcome && outcome_from_name(a->filter.outcome, &o) < 0)
		return usage("unknown outcome '%s' (success, failed, verify_failed, removed, "
			     "timeout, interrupted, refused, ignored, running)",
			     a->filter.outcome);
	if (a->n_dbs == 0 && !a->pg) {
		if (config_load(config, &cfg, &err) < 0) {
			fprintf(stderr, "bmap-station: %s\n", err ? err : "cannot load configuration");
			free(err);
			return EXIT_FAILURE;
		}
		db = cfg->database;
	} else {
		db = a->n_dbs ? a->dbs[0] : NULL;
	}
	if (a->central) {
		const char *conninfo = a->pg ? a->pg : cfg->sync_conninfo;

		if (!conninfo) {
			fprintf(stderr, "bmap-station: no central copy: give --pg CONNINFO or set "
					"sync.conninfo in %s\n", config);
			goto out;
		}
		if (central_open(conninfo, a->station, &a->filter, &j, &central_dir, &err) < 0) {
			fprintf(stderr, "bmap-station: %s\n", err ? err : "cannot read the central copy");
			free(err);
			goto out;
		}
	} else if (journal_open(db, true, &j, &err) < 0) {
		fprintf(stderr, "bmap-station: %s\n", err ? err : "cannot open the journal");
		free(err);
		goto out;
	}
	for (size_t i = 1; i < a->n_dbs; i++) {
		if (journal_attach(j, a->dbs[i], &err) < 0) {
			fprintf(stderr, "bmap-station: %s\n", err ? err : "cannot open the journal");
			free(err);
			goto out;
		}
	}
	if (a->summary)
		r = journal_summary(j, &a->filter, fmt, stdout);
	else
		r = journal_report_filtered(j, &a->filter, a->history, fmt, stdout);
	if (r < 0) {
		fprintf(stderr, "bmap-station: report failed: %s\n", journal_error(j));
		goto out;
	}
	if (fflush(stdout) != 0) {
		fprintf(stderr, "bmap-station: cannot write the report: %m\n");
		goto out;
	}
	ret = EXIT_SUCCESS;
out:
	central_close(j, central_dir);
	config_free(cfg);
	return ret;
}

enum {
	OPT_DB = 0x100,
	OPT_VERSION,
	OPT_SUMMARY,
	OPT_SINCE,
	OPT_UNTIL,
	OPT_PROFILE,
	OPT_SLOT,
	OPT_OUTCOME,
	OPT_SERIAL,
	OPT_JSON,
	OPT_PG,
	OPT_STATION,
	OPT_CENTRAL,
};

/* Opens the journal named by --db, or by the configuration's database
 * setting; prints what went wrong. @cfg is kept for the caller to free. */
static int open_journal(const char *config, const char *db, bool readonly,
			struct station_config **cfg, struct journal **ret, const char **ret_db)
{
	char *err = NULL;

	if (!db) {
		if (config_load(config, cfg, &err) < 0) {
			fprintf(stderr, "bmap-station: %s\n", err ? err : "cannot load configuration");
			free(err);
			return -EINVAL;
		}
		db = (*cfg)->database;
	}
	/* A writer (forget) never creates a journal: a mistyped path is an error. */
	if (!readonly && access(db, F_OK) < 0) {
		fprintf(stderr, "bmap-station: no journal at '%s': %m\n", db);
		return -ENOENT;
	}
	if (journal_open(db, readonly, ret, &err) < 0) {
		fprintf(stderr, "bmap-station: %s\n", err ? err : "cannot open the journal");
		free(err);
		return -EIO;
	}
	if (ret_db)
		*ret_db = db;
	return 0;
}

static int cmd_live(const char *config, const char *db, bool json, bool watch)
{
	struct station_config *cfg = NULL;
	struct journal *j = NULL;
	int ret = EXIT_FAILURE;
	pid_t pid;

	if (open_journal(config, db, true, &cfg, &j, &db) < 0)
		goto out;
	if (watch) {
		ret = watch_run(j) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
		goto out;
	}
	if (journal_status(j, json, stdout) < 0) {
		fprintf(stderr, "bmap-station: status: %s\n", journal_error(j));
		goto out;
	}
	/* The live table stays as the last station left it, "writing 15%"
	 * included: say so when none runs (the single-instance lock is free). */
	/* How far behind the central copy is, from sync's state file. */
	if (!json && sync_status_print(j, db, stdout) < 0)
		fprintf(stderr, "bmap-station: status: %s\n", journal_error(j));
	if (journal_station_pid(j, &pid) == 0)
		fprintf(stderr,
			"bmap-station: the station is not running (no bmap-station holds the "
			"journal %s): the cards above are as it left them\n",
			db);
	ret = fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
out:
	journal_close(j);
	config_free(cfg);
	return ret;
}

static int cmd_forget(const char *config, const char *db, const char *serial)
{
	struct station_config *cfg = NULL;
	struct journal *j = NULL;
	int ret = EXIT_FAILURE;

	/* The daemon may be running: WAL and the busy timeout let both write. */
	if (open_journal(config, db, false, &cfg, &j, NULL) < 0)
		goto out;
	if (journal_forget(j, serial) < 0) {
		fprintf(stderr, "bmap-station: cannot forget serial: %s\n", journal_error(j));
		goto out;
	}
	printf("serial forgotten: once_per_serial profiles will flash it again\n");
	ret = EXIT_SUCCESS;
out:
	journal_close(j);
	config_free(cfg);
	return ret;
}

/* The rules name the program that checks for the system disk: this one,
 * where it is installed (or built). */
static int cmd_udev_rules(const char *config)
{
	struct station_config *cfg = NULL;
	char *err = NULL, *self;
	int ret = EXIT_FAILURE, r;

	self = realpath("/proc/self/exe", NULL);
	if (!self) {
		fprintf(stderr, "bmap-station: cannot tell where this program is: %m\n");
		return EXIT_FAILURE;
	}
	if (config_load(config, &cfg, &err) < 0) {
		fprintf(stderr, "bmap-station: %s\n", err ? err : "cannot load configuration");
		goto out;
	}
	r = config_udev_rules(cfg, self, stdout, &err);
	if (r < 0) {
		fprintf(stderr, "bmap-station: %s\n",
			err ? err : "cannot write the rules to standard output");
		goto out;
	}
	ret = EXIT_SUCCESS;
out:
	free(err);
	free(self);
	config_free(cfg);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "db", required_argument, NULL, OPT_DB },
		{ "format", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "summary", no_argument, NULL, OPT_SUMMARY },
		{ "since", required_argument, NULL, OPT_SINCE },
		{ "until", required_argument, NULL, OPT_UNTIL },
		{ "profile", required_argument, NULL, OPT_PROFILE },
		{ "slot", required_argument, NULL, OPT_SLOT },
		{ "outcome", required_argument, NULL, OPT_OUTCOME },
		{ "serial", required_argument, NULL, OPT_SERIAL },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "pg", required_argument, NULL, OPT_PG },
		{ "station", required_argument, NULL, OPT_STATION },
		{ "central", no_argument, NULL, OPT_CENTRAL },
		{}
	};
	struct report_args ra = { .format = "table" };
	const char *config = DEFAULT_CONFIG, *cmd;
	bool config_given = false, report_opts = false;
	int c, ret;

	/* sync has options of its own. */
	if (argc >= 2 && strcmp(argv[1], "sync") == 0)
		return sync_command(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "serve") == 0)
		return serve_command(argc - 1, argv + 1);
	if (argc >= 2 && argv[1][0] != '-') {
		cmd = argv[1];
		argv++;
		argc--;
	} else {
		cmd = NULL;
	}
	/* --db may be repeated; there are at most argc of them. */
	ra.dbs = calloc((size_t)argc, sizeof(*ra.dbs));
	if (!ra.dbs) {
		fprintf(stderr, "bmap-station: out of memory\n");
		return EXIT_FAILURE;
	}
	while ((c = getopt_long(argc, argv, "c:f:h", longopts, NULL)) != -1) {
		/* run and check refuse these (an explicit "--format table" was always fine). */
		if (c != 'c' && c != 'h' && c != OPT_VERSION && c != '?' &&
		    !(c == 'f' && strcmp(optarg, "table") == 0))
			report_opts = true;
		switch (c) {
		case 'c':
			config = optarg;
			config_given = true;
			break;
		case OPT_DB:
			ra.dbs[ra.n_dbs++] = optarg;
			break;
		case 'f':
			ra.format = optarg;
			break;
		case 'h':
			fputs(main_help, stdout);
			ret = EXIT_SUCCESS;
			goto out;
		case OPT_VERSION:
			printf("bmap-station %s\n", BMAP_STATION_VERSION);
			ret = EXIT_SUCCESS;
			goto out;
		case OPT_SUMMARY:
			ra.summary = true;
			break;
		case OPT_SINCE:
			ra.since = optarg;
			break;
		case OPT_UNTIL:
			ra.until = optarg;
			break;
		case OPT_PROFILE:
			ra.filter.profile = optarg;
			break;
		case OPT_SLOT:
			ra.filter.slot = optarg;
			break;
		case OPT_OUTCOME:
			ra.filter.outcome = optarg;
			break;
		case OPT_SERIAL:
			ra.filter.serial = optarg;
			break;
		case OPT_JSON:
			ra.format = "json";
			break;
		case OPT_PG:
			ra.pg = optarg;
			ra.central = true;
			break;
		case OPT_STATION:
			ra.station = optarg;
			ra.central = true;
			break;
		case OPT_CENTRAL:
			ra.central = true;
			break;
		default:
			ret = usage("%s", "bad usage");
			goto out;
		}
	}
	if (!cmd) {
		ret = optind < argc ? usage("unexpected argument '%s'", argv[optind])
				    : usage("%s", "no command given");
		goto out;
	}
	if (strcmp(cmd, "run") == 0 || strcmp(cmd, "check") == 0) {
		if (optind < argc)
			ret = usage("unexpected argument '%s'", argv[optind]);
		else if (report_opts)
			ret = usage("%s", "--db, --format, --summary and the filters belong to "
					  "'report' and 'history'");
		else
			ret = strcmp(cmd, "run") == 0 ? station_run(config)
						      : station_check(config, stdout);
		goto out;
	}
	if (strcmp(cmd, "udev-rules") == 0) {
		if (optind < argc)
			ret = usage("unexpected argument '%s'", argv[optind]);
		else if (report_opts)
			ret = usage("%s", "udev-rules takes --config only");
		else
			ret = cmd_udev_rules(config);
		goto out;
	}
	if (strcmp(cmd, "system-disk") == 0) {
		ret = config_given || report_opts
			  ? usage("%s", "system-disk takes MAJOR:MINOR [DEVNODE] only")
			  : system_disk_command(argc - optind, argv + optind, stdout);
		goto out;
	}
	if (strcmp(cmd, "report") == 0 || strcmp(cmd, "history") == 0) {
		ra.history = cmd[0] == 'h';
		if (ra.n_dbs && config_given) {
			ret = usage("%s", "give --config or --db, not both");
			goto out;
		}
		if (ra.n_dbs && ra.central) {
			ret = usage("%s", "give --db or --pg/--central/--station, not both");
			goto out;
		}
		if (ra.history) {
			if (optind >= argc) {
				ret = usage("%s", "history needs a SERIAL");
				goto out;
			}
			if (ra.summary || ra.filter.serial) {
				ret = usage("%s", "history takes no --summary or --serial");
				goto out;
			}
			ra.filter.serial = argv[optind++];
		}
		if (optind < argc) {
			ret = usage("unexpected argument '%s'", argv[optind]);
			goto out;
		}
		ret = cmd_report(config, &ra);
		goto out;
	}
	if (strcmp(cmd, "status") == 0 || strcmp(cmd, "watch") == 0) {
		bool json = strcmp(ra.format, "json") == 0;

		if (optind < argc)
			ret = usage("unexpected argument '%s'", argv[optind]);
		else if (ra.n_dbs > 1 || (ra.n_dbs && config_given))
			ret = usage("%s takes one --db, or --config", cmd);
		else if (ra.summary || ra.since || ra.until || ra.filter.profile || ra.filter.slot ||
			 ra.filter.outcome || ra.filter.serial || ra.central ||
			 (strcmp(ra.format, "table") != 0 && !json) || (json && cmd[0] == 'w'))
			ret = usage("%s takes no report options (status: --json)", cmd);
		else
			ret = cmd_live(config, ra.n_dbs ? ra.dbs[0] : NULL, json, cmd[0] == 'w');
		goto out;
	}
	if (strcmp(cmd, "forget") == 0) {
		if (optind >= argc)
			ret = usage("%s", "forget needs a SERIAL");
		else if (optind + 1 < argc)
			ret = usage("unexpected argument '%s'", argv[optind + 1]);
		else if (ra.n_dbs > 1 || (ra.n_dbs && config_given))
			ret = usage("%s", "forget takes one --db, or --config");
		else if (ra.summary || ra.since || ra.until || ra.filter.profile || ra.filter.slot ||
			 ra.filter.outcome || ra.filter.serial || ra.central ||
			 strcmp(ra.format, "table") != 0)
			ret = usage("%s", "forget takes no report options");
		else
			ret = cmd_forget(config, ra.n_dbs ? ra.dbs[0] : NULL, argv[optind]);
		goto out;
	}
	ret = usage("unknown command '%s'", cmd);
out:
	free(ra.dbs);
	return ret;
}
