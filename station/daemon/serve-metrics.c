/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * /metrics: the station in Prometheus' text exposition format 0.0.4, for
 * the plant's monitoring: jobs and bytes (counters, from the journal, so
 * they agree with `report --summary`), job duration and throughput
 * (histograms of successful jobs), cards per state (gauges, from the live
 * table), the journal's health and sync's (JOURNAL.sync).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "journal.h"
#include "report-views.h"
#include "serve-pages.h"
#include "serve.h"
#include "sync.h"
#include "util.h"

/* Upper bounds of the histograms' buckets (+Inf is added). */
static const double duration_le[] = { 10, 30, 60, 120, 300, 600, 1200, 1800, 3600 };
static const double throughput_le[] = { 1e6, 2e6, 5e6, 10e6, 20e6, 50e6, 100e6, 200e6 };
#define N_DURATION ARRAY_SIZE(duration_le)
#define N_THROUGHPUT ARRAY_SIZE(throughput_le)

/* The live table's states (card.c); any other is counted as "other". */
static const char *const card_states[] = {
	"waiting", "writing", "verifying", "done", "failed", "refused", "removed", "other",
};
#define N_STATES ARRAY_SIZE(card_states)

/*
 * A label value as the format wants it: valid UTF-8 (an invalid sequence
 * becomes U+FFFD), with backslash, double quote and newline escaped.
 */
static void label_value(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t n = strlen((const char *)p);
	uint32_t cp;

	for (size_t i = 0; i < n;) {
		int l = utf8_next(p + i, n - i, &cp);

		if (l <= 0) {
			fputs("\xef\xbf\xbd", out);
			i += l < 0 ? (size_t)-l : 1;
			continue;
		}
		if (p[i] == '\\')
			fputs("\\\\", out);
		else if (p[i] == '"')
			fputs("\\\"", out);
		else if (p[i] == '\n')
			fputs("\\n", out);
		else
			fwrite(p + i, 1, (size_t)l, out);
		i += (size_t)l;
	}
}

static void family(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A sample's value: integers as such, others at full precision. */
static void value(FILE *out, double v)
{
	fprintf(out, " %.17g\n", v);
}

static const struct metrics_buckets buckets = {
	duration_le, N_DURATION, throughput_le, N_THROUGHPUT,
};

/* The sums of struct metrics_agg per profile and outcome, names owned. */
struct aggs {
	struct metrics_agg *a;
	size_t n;
};

static void aggs_free(struct aggs *g)
{
	for (size_t i = 0; i < g->n; i++) {
		free((char *)g->a[i].profile);
		free((char *)g->a[i].outcome);
	}
	free(g->a);
	*g = (struct aggs){ 0 };
}

/* Adds @x into @g, keeping it ordered by profile, then outcome. */
static int aggs_add(void *userdata, const struct metrics_agg *x)
{
	struct aggs *g = userdata;
	const char *p = x->profile ? x->profile : "", *o = x->outcome ? x->outcome : "";
	struct metrics_agg *a, *grown;
	size_t i;
	int c = 1;

	for (i = 0; i < g->n; i++) {
		c = strcmp(g->a[i].profile, p);
		if (c == 0)
			c = strcmp(g->a[i].outcome, o);
		if (c >= 0)
			break;
	}
	if (i == g->n || c != 0) {
		grown = realloc(g->a, (g->n + 1) * sizeof(*g->a));
		if (!grown)
			return -ENOMEM;
		g->a = grown;
		memmove(g->a + i + 1, g->a + i, (g->n - i) * sizeof(*g->a));
		g->a[i] = (struct metrics_agg){ .profile = strdup(p), .outcome = strdup(o) };
		g->n++;
		if (!g->a[i].profile || !g->a[i].outcome)
			return -ENOMEM;
	}
	a = &g->a[i];
	a->count += x->count;
	a->bytes_written += x->bytes_written;
	a->n_duration += x->n_duration;
	a->sum_duration += x->sum_duration;
	for (size_t k = 0; k < N_DURATION; k++)
		a->duration_le[k] += x->duration_le[k];
	a->n_throughput += x->n_throughput;
	a->sum_throughput += x->sum_throughput;
	for (size_t k = 0; k < N_THROUGHPUT; k++)
		a->throughput_le[k] += x->throughput_le[k];
	return 0;
}

/*
 * A scrape must not read the whole journal each time (serve answers one
 * request at a time): a job's row never changes once it ended, so the sums
 * of the jobs up to the oldest still running are kept, and each scrape adds
 * only the jobs after them. The kept sums belong to one journal file: its
 * device and inode, and the start of its job upto (a new file may get the
 * old one's inode); they are dropped when it is another.
 */
static struct {
	dev_t dev;
	ino_t ino;
	int64_t upto;  /* jobs 1..upto are in sums */
	char *started; /* job upto's start */
	struct aggs sums;
} kept;

static void kept_reset(dev_t dev, ino_t ino)
{
	aggs_free(&kept.sums);
	free(kept.started);
	kept.started = NULL;
	kept.upto = 0;
	kept.dev = dev;
	kept.ino = ino;
}

/* Whether the kept sums are this journal's. */
static int kept_valid(struct journal *j, const struct stat *st, int64_t newest)
{
	char *started = NULL;
	int r;

	if (st->st_dev != kept.dev || st->st_ino != kept.ino || newest < kept.upto)
		return 0;
	if (kept.upto == 0)
		return 1;
	r = journal_job_started(j, kept.upto, &started);
	if (r < 0)
		return r;
	r = started && kept.started && strcmp(started, kept.started) == 0;
	free(started);
	return r;
}

static int jobs_sums(struct journal *j, const char *path, struct aggs *ret)
{
	struct aggs now = { 0 };
	int64_t newest, running, stable;
	struct stat st = { 0 };
	int r;

	r = journal_metrics_bounds(j, &newest, &running);
	if (r < 0)
		return r;
	if (!path || stat(path, &st) < 0) {
		/* Without a file to tell it by, nothing is kept. */
		kept_reset(0, 0);
		return journal_metrics_jobs(j, 0, newest, &buckets, aggs_add, ret);
	}
	r = kept_valid(j, &st, newest);
	if (r < 0)
		return r;
	if (!r)
		kept_reset(st.st_dev, st.st_ino);
	stable = running ? running - 1 : newest;
	if (stable > kept.upto) {
		char *started = NULL;

		r = journal_metrics_jobs(j, kept.upto, stable, &buckets, aggs_add, &kept.sums);
		if (r >= 0)
			r = journal_job_started(j, stable, &started);
		if (r < 0) {
			kept_reset(0, 0);
			return r;
		}
		free(kept.started);
		kept.started = started;
		kept.upto = stable;
	}
	for (size_t i = 0; i < kept.sums.n && r >= 0; i++)
		r = aggs_add(&now, &kept.sums.a[i]);
	if (r >= 0)
		r = journal_metrics_jobs(j, kept.upto, newest, &buckets, aggs_add, &now);
	if (r < 0) {
		aggs_free(&now);
		return r;
	}
	*ret = now;
	return 0;
}

static void histogram(FILE *out, const char *name, const char *profile, const double *le,
		      size_t n_le, const uint64_t *counts, uint64_t count, double sum)
{
	for (size_t i = 0; i <= n_le; i++) {
		fprintf(out, "%s_bucket{profile=\"", name);
		label_value(out, profile);
		if (i < n_le)
			fprintf(out, "\",le=\"%g\"} %" PRIu64 "\n", le[i], counts[i]);
		else
			fprintf(out, "\",le=\"+Inf\"} %" PRIu64 "\n", count);
	}
	fprintf(out, "%s_sum{profile=\"", name);
	label_value(out, profile);
	fputs("\"}", out);
	value(out, sum);
	fprintf(out, "%s_count{profile=\"", name);
	label_value(out, profile);
	fprintf(out, "\"} %" PRIu64 "\n", count);
}

static int live_row(void *userdata, const struct live_row *l)
{
	unsigned *counts = userdata;
	size_t i;

	for (i = 0; i < N_STATES - 1; i++)
		if (l->state && strcmp(l->state, card_states[i]) == 0)
			break;
	counts[i]++;
	return 0;
}

static int journal_metrics(FILE *out, struct journal *j, const char *path)
{
	struct aggs g = { 0 };
	unsigned counts[N_STATES] = { 0 };
	int r;

	r = jobs_sums(j, path, &g);
	if (r < 0)
		goto out;
	r = journal_live_foreach(j, live_row, counts);
	if (r < 0)
		goto out;
	family(out, "bmap_station_jobs_total", "counter",
	       "Jobs that ended, as the journal records them, by profile and outcome.");
	for (size_t i = 0; i < g.n; i++) {
		fputs("bmap_station_jobs_total{profile=\"", out);
		label_value(out, g.a[i].profile);
		fputs("\",outcome=\"", out);
		label_value(out, g.a[i].outcome);
		fprintf(out, "\"} %" PRIu64 "\n", g.a[i].count);
	}
	family(out, "bmap_station_written_bytes_total", "counter",
	       "Bytes written onto cards by the journal's jobs, by profile.");
	for (size_t i = 0; i < g.n; i++) {
		double bytes = 0;
		size_t k;

		/* The outcomes of one profile are next to each other. */
		for (k = i; k < g.n && strcmp(g.a[k].profile, g.a[i].profile) == 0; k++)
			bytes += g.a[k].bytes_written;
		fputs("bmap_station_written_bytes_total{profile=\"", out);
		label_value(out, g.a[i].profile);
		fputs("\"}", out);
		value(out, bytes);
		i = k - 1;
	}
	family(out, "bmap_station_job_duration_seconds", "histogram",
	       "Duration of successful jobs (write and verify), by profile.");
	for (size_t i = 0; i < g.n; i++)
		if (strcmp(g.a[i].outcome, "success") == 0 && g.a[i].n_duration)
			histogram(out, "bmap_station_job_duration_seconds", g.a[i].profile,
				  duration_le, N_DURATION, g.a[i].duration_le, g.a[i].n_duration,
				  g.a[i].sum_duration);
	family(out, "bmap_station_job_throughput_bytes_per_second", "histogram",
	       "Throughput of successful jobs (bytes written over duration), by profile.");
	for (size_t i = 0; i < g.n; i++)
		if (strcmp(g.a[i].outcome, "success") == 0 && g.a[i].n_throughput)
			histogram(out, "bmap_station_job_throughput_bytes_per_second",
				  g.a[i].profile, throughput_le, N_THROUGHPUT,
				  g.a[i].throughput_le, g.a[i].n_throughput, g.a[i].sum_throughput);
	family(out, "bmap_station_cards", "gauge", "Cards in the station's slots, by state.");
	for (size_t i = 0; i < N_STATES; i++)
		fprintf(out, "bmap_station_cards{state=\"%s\"} %u\n", card_states[i], counts[i]);
	r = 0;
out:
	aggs_free(&g);
	return r;
}

static void sync_metrics(FILE *out, const struct sync_health *s)
{
	double now = (double)time(NULL);

	family(out, "bmap_station_sync_up", "gauge",
	       "1 when sync's last attempt reached the central PostgreSQL.");
	fprintf(out, "bmap_station_sync_up %d\n", s->up ? 1 : 0);
	if (s->last_success >= 0) {
		family(out, "bmap_station_sync_last_success_timestamp_seconds", "gauge",
		       "When sync last reached the central PostgreSQL (Unix time).");
		fputs("bmap_station_sync_last_success_timestamp_seconds", out);
		value(out, s->last_success);
	}
	family(out, "bmap_station_sync_lag_rows", "gauge",
	       "Journal rows not yet in the central copy, by table.");
	fprintf(out, "bmap_station_sync_lag_rows{table=\"jobs\"} %" PRId64 "\n"
		     "bmap_station_sync_lag_rows{table=\"hooks\"} %" PRId64 "\n"
		     "bmap_station_sync_lag_rows{table=\"forgotten\"} %" PRId64 "\n",
		s->behind_jobs, s->behind_hooks, s->behind_forgotten);
	family(out, "bmap_station_sync_lag_seconds", "gauge",
	       "Age of the oldest job not yet in the central copy (0 when none).");
	fputs("bmap_station_sync_lag_seconds", out);
	value(out, s->oldest_behind >= 0 && now > s->oldest_behind ? now - s->oldest_behind : 0);
}

int serve_metrics_page(const struct serve_ctx *ctx, const struct serve_request *req,
		       struct serve_reply *reply)
{
	FILE *out = reply->body;
	struct sync_health s = { 0 };
	double last = -1;
	int64_t version = 0;
	struct stat st;
	uint64_t size = 0;
	char *wal = NULL;
	bool up;
	int r = -ENOENT;

	(void)req;
	reply->content_type = "text/plain; version=0.0.4; charset=utf-8";
	reply->no_store = true;
	/* The journal answers first: a journal that does not is what the
	 * monitoring is told, not a failed scrape. */
	if (ctx->journal)
		r = journal_metrics_info(ctx->journal, &version, &last);
	up = r >= 0;
	family(out, "bmap_station_journal_up", "gauge", "1 when the journal could be read.");
	fprintf(out, "bmap_station_journal_up %d\n", up ? 1 : 0);
	if (!up)
		return 200;
	family(out, "bmap_station_journal_schema_version", "gauge",
	       "The journal's schema version.");
	fprintf(out, "bmap_station_journal_schema_version %" PRId64 "\n", version);
	if (ctx->journal_path) {
		if (stat(ctx->journal_path, &st) == 0)
			size += (uint64_t)st.st_size;
		if (asprintf(&wal, "%s-wal", ctx->journal_path) >= 0 && stat(wal, &st) == 0)
			size += (uint64_t)st.st_size;
		free(wal);
		family(out, "bmap_station_journal_size_bytes", "gauge",
		       "The journal's size on disk, its write-ahead log included.");
		fprintf(out, "bmap_station_journal_size_bytes %" PRIu64 "\n", size);
	}
	if (last >= 0) {
		family(out, "bmap_station_journal_last_job_timestamp_seconds", "gauge",
		       "When the newest job in the journal started (Unix time).");
		fputs("bmap_station_journal_last_job_timestamp_seconds", out);
		value(out, last);
	}
	r = journal_metrics(out, ctx->journal, ctx->journal_path);
	if (r < 0)
		return r;
	if (ctx->journal_path) {
		r = sync_health_read(ctx->journal, ctx->journal_path, &s);
		if (r < 0)
			return r;
		if (s.known)
			sync_metrics(out, &s);
	}
	return ferror(out) ? -EIO : 200;
}
