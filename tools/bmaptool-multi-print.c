/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What copy and verify print for several destinations (see
 * bmaptool-multi.h): what is about to happen, each destination's result
 * lines as it ends, the status line on a terminal, psplash, the summary.
 * The main thread's only: the destinations' threads print nothing but
 * the library's warnings.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bmaptool.h"
#include "bmaptool-multi.h"
#include "source.h"
#include "util.h"

/* What is about to happen, as one destination's copy says it, and to where. */
void multi_announce(struct multi *m, struct bmap_source *src, size_t n_open)
{
	const struct bmap_map *map = m->map;
	char list[2048] = "";
	size_t n = 0;

	for (size_t i = 0; i < m->n && n < sizeof(list) - 1; i++)
		if (m->d[i].outcome == DEST_RUNNING)
			n += (size_t)snprintf(list + n, sizeof(list) - n, "%s'%s'", n ? ", " : "",
					      m->d[i].name);
	if (m->a->verify) {
		info("verifying %zu destination%s against %s: %s", n_open, n_open == 1 ? "" : "s",
		     map && bmap_map_has_range_checksums(map) ? "the bmap's checksums"
							      : "the image, byte for byte",
		     list);
		return;
	}
	if (map && bmap_map_has_range_checksums(map) && m->a->no_verify)
		info("--no-verify: the ranges' checksums are not checked");
	if (!map && m->a->discard)
		info("--discard: nothing to discard with --nobmap (every byte was written)");
	print_map_info(map);
	info("copying image '%s' to %zu destination%s%s: %s",
	     bmap_location_is_url(m->a->image) ? bmap_source_get_name(src) : m->a->image, n_open,
	     n_open == 1 ? "" : "s",
	     bmap_source_get_raw_fd(src) >= 0 ? " (each reading the image file)" : "", list);
}

/* Its result lines, as single-destination copy and verify print them. */
void multi_report(struct multi *m, struct dest *d)
{
	char t[32], sz[32], sp[32], hex[65];
	const char *verb = m->a->verify ? "verifying" : "writing";

	switch (d->outcome) {
	case DEST_OK:
		if (m->a->verify) {
			hex_encode(d->vres.data_sha256, 32, hex);
			info("%s: verified %s in %s (%s/sec): everything matches", d->name,
			     human_size(d->vres.bytes_read, sz), human_time(d->vres.seconds, t),
			     human_size(d->vres.seconds > 0 ? (uint64_t)((double)d->vres.bytes_read /
									 d->vres.seconds)
							    : d->vres.bytes_read,
					sp));
			info("%s: sha256 of the data read back: %s", d->name, hex);
		} else {
			hex_encode(d->cres.data_sha256, 32, hex);
			info("%s: copying time: %s, copying speed %s/sec", d->name,
			     human_time(d->cres.seconds, t),
			     human_size(d->cres.seconds > 0
						? (uint64_t)((double)d->cres.bytes_written /
							     d->cres.seconds)
						: d->cres.bytes_written,
					sp));
			info("%s: sha256 of the data written: %s", d->name, hex);
		}
		if (!d->discarded)
			break;
		if (d->dres.unsupported)
			warning("%s: %s '%s' does not support discard: the unmapped ranges were not "
				"discarded",
				d->name, d->dres.punched ? "the file system of" : "device", d->name);
		else
			info("%s: discarded %s (%" PRIu64 " bytes) in %" PRIu64 " unmapped ranges of "
			     "'%s'%s",
			     d->name, human_size(d->dres.bytes, sz), d->dres.bytes, d->dres.ranges,
			     d->name, d->dres.punched ? " (holes punched in the file)" : "");
		break;
	case DEST_INTERRUPTED:
		if (m->a->verify)
			error("%s: interrupted", d->name);
		else if (bmap_target_is_changed(d->target))
			error("%s: interrupted; '%s' was synced and closed, its content is "
			      "incomplete",
			      d->name, d->name);
		else
			error("%s: interrupted; nothing was written to '%s'", d->name, d->name);
		break;
	case DEST_GONE:
		error("%s: the medium went away (card pulled?) while %s: %s", d->name, verb,
		      d->why);
		break;
	default:
		if (!m->a->verify && d->target && bmap_target_is_changed(d->target))
			error("%s: %s; '%s' was written to before that: its content is incomplete",
			      d->name, d->why, d->name);
		else
			error("%s: %s", d->name, d->why);
		break;
	}
}

/* A destination's outcome as the main thread may read it: its thread
 * writes it before it says it ended. */
static enum outcome outcome_now(const struct dest *d)
{
	if (d->started && !atomic_load(&d->ended))
		return DEST_RUNNING;
	return d->outcome;
}

/* One line with every destination: "loop3 45%  loop4 done  loop5 failed". */
void multi_status_line(struct multi *m)
{
	char line[4096];
	size_t n = 0;
	bool ended;

	n += (size_t)snprintf(line + n, sizeof(line) - n, "bmaptool:");
	if (m->spill && m->map) {
		uint64_t w = spill_progress(m->spill, &ended), size = bmap_map_get_image_size(m->map);

		if (!ended && size)
			n += (size_t)snprintf(line + n, sizeof(line) - n, " image %3d%% |",
					      (int)((w < size ? w : size) * 100 / size));
	}
	for (size_t i = 0; i < m->n && n < sizeof(line) - 64; i++) {
		struct dest *d = &m->d[i];
		uint64_t done = atomic_load(&d->done), total = atomic_load(&d->total);
		const char *sep = i ? "  " : " ";
		enum outcome o = outcome_now(d);

		if (o == DEST_RUNNING && total)
			n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%.24s %3d%%", sep,
					      d->label, (int)((done < total ? done : total) * 100 / total));
		else if (o == DEST_RUNNING) /* a stream without a bmap */
			n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%.24s %.1f MiB", sep,
					      d->label, (double)done / 1048576.0);
		else
			n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%.24s %s", sep, d->label,
					      o == DEST_OK ? "done" : "failed");
	}
	status_line(line);
}

/* psplash gets the slowest destination still going. */
void multi_psplash(struct multi *m, int *last)
{
	int lowest = 101;

	for (size_t i = 0; i < m->n; i++) {
		struct dest *d = &m->d[i];
		uint64_t total = atomic_load(&d->total);
		int p = total ? (int)(atomic_load(&d->done) * 100 / total) : 0;
		enum outcome o = outcome_now(d);

		if (o == DEST_RUNNING || o == DEST_OK)
			lowest = p < lowest ? p : lowest;
	}
	if (lowest <= 100 && lowest != *last)
		psplash_write(m->a->psplash, lowest);
	*last = lowest;
}

int multi_summary(struct multi *m)
{
	static const char *const kind[] = {
		[DEST_RUNNING] = "not started", [DEST_REFUSED] = "refused",
		[DEST_FAILED] = "failed", [DEST_GONE] = "removed",
		[DEST_INTERRUPTED] = "interrupted",
	};
	const char *what = m->a->verify ? "verified" : "copied to";
	size_t ok = 0;

	for (size_t i = 0; i < m->n; i++)
		ok += m->d[i].outcome == DEST_OK;
	if (ok == m->n) {
		info("%s %zu of %zu destinations", what, ok, m->n);
		return EXIT_SUCCESS;
	}
	error("%s %zu of %zu destinations; %zu failed:", what, ok, m->n, m->n - ok);
	for (size_t i = 0; i < m->n; i++) {
		struct dest *d = &m->d[i];

		if (d->outcome == DEST_OK)
			continue;
		if (d->outcome == DEST_INTERRUPTED)
			error("  %s: interrupted", d->name);
		else
			error("  %s: %s: %s", d->name, kind[d->outcome], d->why);
	}
	return EXIT_FAILURE;
}
