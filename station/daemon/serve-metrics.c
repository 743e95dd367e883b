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

struct profile_hist {
	char *profile;
	uint64_t duration[N_DURATION + 1], throughput[N_THROUGHPUT + 1];
	uint64_t n_duration, n_throughput;
	double sum_duration, sum_throughput;
};

struct hists {
	struct profile_hist *p;
	size_t n;
};

static int hist_add(void *userdata, const char *profile, double duration, double throughput)
{
	struct hists *h = userdata;
	struct profile_hist *ph;

	/* Rows come ordered by profile: a new one starts a new entry. */
	if (!h->n || strcmp(h->p[h->n - 1].profile, profile) != 0) {
		ph = realloc(h->p, (h->n + 1) * sizeof(*h->p));
		if (!ph)
			return -ENOMEM;
		h->p = ph;
		h->p[h->n] = (struct profile_hist){ .profile = strdup(profile) };
		if (!h->p[h->n].profile)
			return -ENOMEM;
		h->n++;
	}
	ph = &h->p[h->n - 1];
	for (size_t i = 0; i <= N_DURATION; i++)
		if (i == N_DURATION || duration <= duration_le[i])
			ph->duration[i]++;
	ph->n_duration++;
	ph->sum_duration += duration;
	if (throughput >= 0) {
		for (size_t i = 0; i <= N_THROUGHPUT; i++)
			if (i == N_THROUGHPUT || throughput <= throughput_le[i])
				ph->throughput[i]++;
		ph->n_throughput++;
		ph->sum_throughput += throughput;
	}
	return 0;
}

static void hists_free(struct hists *h)
{
	for (size_t i = 0; i < h->n; i++)
		free(h->p[i].profile);
	free(h->p);
}

static void histogram(FILE *out, const char *name, const struct profile_hist *ph,
		      const double *le, size_t n_le, const uint64_t *buckets, uint64_t count,
		      double sum)
{
	for (size_t i = 0; i <= n_le; i++) {
		fprintf(out, "%s_bucket{profile=\"", name);
		label_value(out, ph->profile);
		if (i < n_le)
			fprintf(out, "\",le=\"%g\"} %" PRIu64 "\n", le[i], buckets[i]);
		else
			fprintf(out, "\",le=\"+Inf\"} %" PRIu64 "\n", buckets[i]);
	}
	fprintf(out, "%s_sum{profile=\"", name);
	label_value(out, ph->profile);
	fputs("\"}", out);
	value(out, sum);
	fprintf(out, "%s_count{profile=\"", name);
	label_value(out, ph->profile);
	fprintf(out, "\"} %" PRIu64 "\n", count);
}

struct job_rows {
	FILE *out;
	bool bytes; /* the second pass: bytes written per profile */
	const char *last_profile;
	char *profile;
	double bytes_sum;
};

static void bytes_flush(struct job_rows *jr)
{
	if (!jr->profile)
		return;
	fputs("bmap_station_written_bytes_total{profile=\"", jr->out);
	label_value(jr->out, jr->profile);
	fputs("\"}", jr->out);
	value(jr->out, jr->bytes_sum);
	free(jr->profile);
	jr->profile = NULL;
}

static int job_row(void *userdata, const char *profile, const char *outcome, uint64_t count,
		   double bytes_written)
{
	struct job_rows *jr = userdata;

	if (!jr->bytes) {
		fputs("bmap_station_jobs_total{profile=\"", jr->out);
		label_value(jr->out, profile);
		fputs("\",outcome=\"", jr->out);
		label_value(jr->out, outcome);
		fprintf(jr->out, "\"} %" PRIu64 "\n", count);
		return 0;
	}
	if (!jr->profile || strcmp(jr->profile, profile) != 0) {
		bytes_flush(jr);
		jr->profile = strdup(profile);
		jr->bytes_sum = 0;
		if (!jr->profile)
			return -ENOMEM;
	}
	jr->bytes_sum += bytes_written;
	return 0;
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

static int journal_metrics(FILE *out, struct journal *j)
{
	struct job_rows jr = { .out = out };
	struct hists h = { 0 };
	unsigned counts[N_STATES] = { 0 };
	int r;

	family(out, "bmap_station_jobs_total", "counter",
	       "Jobs that ended, as the journal records them, by profile and outcome.");
	r = journal_metrics_jobs(j, job_row, &jr);
	if (r < 0)
		return r;
	family(out, "bmap_station_written_bytes_total", "counter",
	       "Bytes written onto cards by the journal's jobs, by profile.");
	jr.bytes = true;
	r = journal_metrics_jobs(j, job_row, &jr);
	if (r >= 0)
		bytes_flush(&jr);
	free(jr.profile);
	if (r < 0)
		return r;
	r = journal_metrics_successes(j, hist_add, &h);
	if (r < 0)
		goto out;
	family(out, "bmap_station_job_duration_seconds", "histogram",
	       "Duration of successful jobs (write and verify), by profile.");
	for (size_t i = 0; i < h.n; i++)
		histogram(out, "bmap_station_job_duration_seconds", &h.p[i], duration_le,
			  N_DURATION, h.p[i].duration, h.p[i].n_duration, h.p[i].sum_duration);
	family(out, "bmap_station_job_throughput_bytes_per_second", "histogram",
	       "Throughput of successful jobs (bytes written over duration), by profile.");
	for (size_t i = 0; i < h.n; i++)
		histogram(out, "bmap_station_job_throughput_bytes_per_second", &h.p[i],
			  throughput_le, N_THROUGHPUT, h.p[i].throughput, h.p[i].n_throughput,
			  h.p[i].sum_throughput);
	r = journal_live_foreach(j, live_row, counts);
	if (r < 0)
		goto out;
	family(out, "bmap_station_cards", "gauge", "Cards in the station's slots, by state.");
	for (size_t i = 0; i < N_STATES; i++)
		fprintf(out, "bmap_station_cards{state=\"%s\"} %u\n", card_states[i], counts[i]);
	r = 0;
out:
	hists_free(&h);
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
	r = journal_metrics(out, ctx->journal);
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
