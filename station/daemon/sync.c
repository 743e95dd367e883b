/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * `bmap-station sync`: its command line and its loop. It follows the
 * journal read-only (never its lock), copies a batch whenever the journal
 * changed (PRAGMA data_version, polled every second), and when PostgreSQL
 * is down or refuses, retries with a capped backoff, logging the outage
 * once and its end. The copying itself is sync-pg.c's.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include "config.h"
#include "journal-internal.h"
#include "manager.h"
#include "sanitize.h"
#include "sync-internal.h"

#define SYNC_POLL_MS 1000
#define SYNC_BACKOFF_MAX_S 30
/* The state file is rewritten when something changed, and at least this
 * often, so that `status` can tell a sync that stopped. */
#define SYNC_HEARTBEAT_S 60

static const char sync_help[] =
	"Usage: bmap-station sync [--config FILE | --db FILE] [--pg CONNINFO]\n"
	"                         [--station NAME] [--once]\n"
	"\n"
	"Copy the journal's jobs, hook records and forgotten serials into a central\n"
	"PostgreSQL, and keep copying what the station writes (every second). Rows\n"
	"are keyed by station name and job number: a job that ends replaces its\n"
	"running copy, nothing is copied twice. When PostgreSQL is down, sync\n"
	"retries (backoff up to 30 s) and catches up; the station never waits.\n"
	"\n"
	"  -c, --config FILE   configuration (default /etc/bmap-station/station.conf):\n"
	"                      station.database, sync.conninfo, sync.station_name\n"
	"      --db FILE       the journal to read, instead of the configuration's\n"
	"      --pg CONNINFO   libpq connection string or URI (instead of\n"
	"                      sync.conninfo; a password here shows in ps: prefer a\n"
	"                      password file, ~/.pgpass or PGPASSFILE)\n"
	"      --station NAME  the station's name in the central copy (default:\n"
	"                      sync.station_name, else station.name, else the host name)\n"
	"      --once          copy what is there, then exit (0 when all was copied)\n"
	"  -h, --help          show this help\n";

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* Whether the journal changed since @last (PRAGMA data_version changes
 * when another connection commits); always true the first time. */
static bool journal_changed(struct sync_ctx *ctx, int64_t *last)
{
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	if (sqlite3_prepare_v2(ctx->j->db, "PRAGMA data_version", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (v >= 0 && v == *last)
		return false;
	*last = v;
	return true;
}

/* Sleeps @ms, or less when asked to stop. */
static void nap(unsigned ms)
{
	while (ms && !stop_requested) {
		unsigned step = ms < 100 ? ms : 100;
		struct timespec ts = { 0, (long)step * 1000000L };

		nanosleep(&ts, NULL);
		ms -= step;
	}
}

static int sync_loop(struct sync_ctx *ctx, bool once)
{
	char down_since[JOURNAL_TIMESTAMP_MAX] = "";
	unsigned backoff = 1;
	int64_t version = -1;
	time_t last_state = 0;
	bool down = false, ready = false;
	int r;

	while (!stop_requested) {
		bool changed = journal_changed(ctx, &version);

		r = sync_pg_connect(ctx);
		if (r >= 0 && (changed || down || ctx->more)) {
			/* Copy everything there is, batch after batch. */
			do {
				r = sync_pg_batch(ctx);
			} while (r >= 0 && ctx->more && !stop_requested);
		}
		if (r < 0) {
			if (once)
				return r;
			/* The version seen is not copied: look again next time. */
			version = -1;
			if (!down) {
				down = true;
				journal_timestamp(down_since);
				log_warn("sync: central copy %s: %s; retrying (backoff up to %u s), "
					 "the station keeps its journal meanwhile",
					 ctx->shown, ctx->error ? ctx->error : "failed",
					 SYNC_BACKOFF_MAX_S);
				sync_state_write(ctx, false, down_since);
				last_state = time(NULL);
			}
			sd_notifyf(0, "STATUS=central copy unreachable since %s", down_since);
			if (!ready) {
				sd_notify(0, "READY=1");
				ready = true;
			}
			nap(backoff * 1000);
			backoff = backoff * 2 > SYNC_BACKOFF_MAX_S ? SYNC_BACKOFF_MAX_S
								  : backoff * 2;
			continue;
		}
		if (down) {
			log_notice("sync: central copy %s reachable again (down since %s); "
				   "caught up to job %lld",
				   ctx->shown, down_since, (long long)ctx->pos.job);
			down = false;
		}
		backoff = 1;
		if (ctx->journal_max_job < ctx->pos.job)
			log_warn("sync: the journal's newest job (%lld) is older than the central "
				 "copy's (%lld) for station '%s': was the journal replaced? Its "
				 "new jobs would overwrite the old ones' copies; give it another "
				 "sync.station_name",
				 (long long)ctx->journal_max_job, (long long)ctx->pos.job,
				 ctx->station);
		if (changed || time(NULL) - last_state >= SYNC_HEARTBEAT_S) {
			sync_state_write(ctx, true, NULL);
			last_state = time(NULL);
		}
		if (!ready) {
			sd_notify(0, "READY=1");
			ready = true;
		}
		sd_notifyf(0, "STATUS=central copy up to job %lld", (long long)ctx->pos.job);
		if (once)
			return 0;
		nap(SYNC_POLL_MS);
	}
	sd_notify(0, "STOPPING=1");
	return 0;
}

enum { OPT_DB = 0x100, OPT_PG, OPT_STATION, OPT_ONCE };

int sync_command(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "db", required_argument, NULL, OPT_DB },
		{ "pg", required_argument, NULL, OPT_PG },
		{ "station", required_argument, NULL, OPT_STATION },
		{ "once", no_argument, NULL, OPT_ONCE },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	const char *config = "/etc/bmap-station/station.conf", *db = NULL, *pg = NULL;
	const char *station = NULL;
	struct station_config *cfg = NULL;
	struct sync_ctx ctx = { 0 };
	struct sigaction sa = { .sa_handler = on_stop };
	bool once = false, config_given = false;
	char *err = NULL, name[256];
	int c, ret = EXIT_FAILURE;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			config_given = true;
			break;
		case OPT_DB:
			db = optarg;
			break;
		case OPT_PG:
			pg = optarg;
			break;
		case OPT_STATION:
			station = optarg;
			break;
		case OPT_ONCE:
			once = true;
			break;
		case 'h':
			fputs(sync_help, stdout);
			return EXIT_SUCCESS;
		default:
			fprintf(stderr, "Try 'bmap-station sync --help' for more information.\n");
			return 2;
		}
	}
	if (optind < argc || (db && config_given)) {
		fprintf(stderr, "bmap-station: sync: %s\nTry 'bmap-station sync --help' for more "
				"information.\n",
			optind < argc ? "unexpected argument" : "give --config or --db, not both");
		return 2;
	}
	/* With --db and --pg the configuration is not needed. */
	if (!db || !pg || config_given) {
		if (config_load(config, &cfg, &err) < 0) {
			fprintf(stderr, "bmap-station: %s\n", err ? err : "cannot load configuration");
			free(err);
			return EXIT_FAILURE;
		}
	}
	ctx.journal_path = db ? db : cfg->database;
	ctx.conninfo = pg ? pg : cfg ? cfg->sync_conninfo : NULL;
	if (!station && cfg)
		station = cfg->sync_station ? cfg->sync_station : cfg->name;
	if (!station) {
		if (gethostname(name, sizeof(name)) < 0 || !name[0])
			snprintf(name, sizeof(name), "localhost");
		name[sizeof(name) - 1] = '\0';
		station = name;
	}
	ctx.station = station;
	if (!ctx.conninfo) {
		fprintf(stderr, "bmap-station: sync: no central database: set sync.conninfo in %s "
				"or give --pg CONNINFO\n",
			config);
		goto out;
	}
	if (sync_conninfo_shown(ctx.conninfo, &ctx.shown, &err) < 0) {
		fprintf(stderr, "bmap-station: sync: %s: %s\n", pg ? "--pg" : "sync.conninfo",
			err ? err : "out of memory");
		free(err);
		goto out;
	}
	/* Read-only, as the reports: the station's writes never wait for us. */
	if (journal_open(ctx.journal_path, true, &ctx.j, &err) < 0) {
		fprintf(stderr, "bmap-station: sync: %s\n", err ? err : "cannot open the journal");
		free(err);
		goto out;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	log_info("sync: copying journal %s as station '%s' into %s", ctx.journal_path,
		 ctx.station, ctx.shown);
	ret = sync_loop(&ctx, once) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
	if (once && ret != EXIT_SUCCESS)
		fprintf(stderr, "bmap-station: sync: %s\n", ctx.error ? ctx.error : "failed");
out:
	sync_pg_disconnect(&ctx);
	sync_pg_finish();
	journal_close(ctx.j);
	free(ctx.shown);
	free(ctx.password);
	free(ctx.error);
	config_free(cfg);
	return ret;
}
