/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bmaptool info's partition listing: the image's partition table and each
 * partition's file system, label and size, found by libblkid in the
 * image's data (the virtual disk of a qcow2 or sparse image, the decoded
 * bytes of a compressed one), with the mapped bytes that fall into each.
 *
 * A raw image file is probed in place. Any other image is read once, in
 * order, and only the parts libblkid looks at are kept, in a sparse memfd
 * of the image's size: the first MiB (MBR, GPT and its entries), each
 * partition's first MiB (superblocks) and the EBRs of a DOS extended
 * partition, which are found as the stream passes them; of those, only what
 * the map maps is read (the rest is skipped: zeros, as on a card). The
 * stream stops after the last of them: a compressed image's tail is never
 * decoded, a URL's unmapped ranges are never fetched.
 */
#include <blkid/blkid.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bmap.h"
#include "bmaptool.h"
#include "source.h"
#include "util.h"

/* The head kept for the partition table: an MBR, a GPT header and up to
 * 128 entries of 128 bytes take 34 sectors; 1 MiB is every tool's first
 * partition offset. */
#define HEAD_BYTES (1024u * 1024)
/* What is kept of each partition's start: every superblock libblkid knows
 * lies in it (btrfs at 64 KiB, ZFS's second label at 256 KiB). */
#define PART_BYTES (1024u * 1024)
#define MAX_WINDOWS 512

struct window {
	uint64_t start, end;
	bool ebr;  /* a DOS extended boot record: parsed for the next one */
	bool done; /* copied (the position may stay before its end: its
		    * unmapped tail is not read) */
};

struct sparse_copy {
	struct bmap_source *src;
	const struct bmap_map *map; /* what is read of a window; NULL: all */
	int fd; /* the memfd */
	uint64_t size, pos;
	uint64_t ext_start; /* the DOS extended partition's start, or 0 */
	struct window w[MAX_WINDOWS];
	size_t n;
};

static void add_window(struct sparse_copy *c, uint64_t start, uint64_t len, bool ebr)
{
	if (start >= c->size || c->n == MAX_WINDOWS)
		return;
	if (len > c->size - start)
		len = c->size - start;
	c->w[c->n++] = (struct window){ start, start + len, ebr, false };
}

/* The window that comes next in the stream: the lowest start whose end is
 * past the position. */
static struct window *next_window(struct sparse_copy *c)
{
	struct window *best = NULL;

	for (size_t i = 0; i < c->n; i++)
		if (!c->w[i].done && c->w[i].end > c->pos && (!best || c->w[i].start < best->start))
			best = &c->w[i];
	return best;
}

/* Reads the image from the position up to @end into the memfd. 1 when the
 * image ended before. */
static int copy_range(struct sparse_copy *c, uint64_t end)
{
	static uint8_t buf[256 * 1024];

	while (c->pos < end) {
		size_t want = end - c->pos < sizeof(buf) ? (size_t)(end - c->pos) : sizeof(buf);
		ssize_t n = bmap_source_read(c->src, buf, want);

		if (n < 0)
			return (int)n;
		if (n == 0) /* the image ends early: the rest reads as zeros */
			return 1;
		if (pwrite(c->fd, buf, (size_t)n, (off_t)c->pos) != n)
			return -errno;
		c->pos += (uint64_t)n;
	}
	return 0;
}

/* Copies what the map maps of [start, end) (all of it without a map), the
 * rest skipped: unmapped bytes are not the image's (zeros on a card), and
 * a URL's ranged fetch or xz's block skipping then fetch or decode none of
 * them. */
static int copy_window(struct sparse_copy *c, uint64_t start, uint64_t end)
{
	const struct bmap_range *rg = c->map ? bmap_map_get_ranges(c->map) : NULL;
	size_t n = c->map ? bmap_map_get_range_count(c->map) : 0, lo = 0, hi = n;
	uint64_t bs = c->map ? bmap_map_get_block_size(c->map) : 0;
	int r;

	if (start < c->pos)
		start = c->pos;
	if (!c->map)
		return copy_range(c, end);
	/* The first range that ends after @start. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if ((rg[mid].last + 1) * bs <= start)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < n && rg[i].first * bs < end; i++) {
		uint64_t a = rg[i].first * bs, b = (rg[i].last + 1) * bs;

		if (a < c->pos)
			a = c->pos;
		if (b > end)
			b = end;
		if (b > c->size)
			b = c->size;
		if (a >= b)
			continue;
		if (a > c->pos) {
			r = bmap_source_skip(c->src, a - c->pos);
			if (r < 0)
				return r;
			c->pos = a;
		}
		r = copy_range(c, b);
		if (r != 0)
			return r;
	}
	return 0;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* An MBR or EBR sector just copied: the extended partition of an MBR, the
 * next EBR of an EBR, become windows to keep. */
static void follow_dos(struct sparse_copy *c, uint64_t at, bool ebr)
{
	uint8_t s[512];

	if (pread(c->fd, s, sizeof(s), (off_t)at) != (ssize_t)sizeof(s) || s[510] != 0x55 ||
	    s[511] != 0xaa)
		return;
	for (int i = 0; i < (ebr ? 2 : 4); i++) {
		const uint8_t *e = s + 446 + 16 * i;
		uint8_t type = e[4];
		uint64_t lba = le32(e + 8);

		if (type != 0x05 && type != 0x0f && type != 0x85)
			continue;
		if (!ebr)
			c->ext_start = lba * 512;
		/* An EBR's link is relative to the extended partition; only
		 * forward links are followed (a loop cannot keep us here). */
		if (lba && (ebr ? c->ext_start + lba * 512 > at : true))
			add_window(c, ebr ? c->ext_start + lba * 512 : lba * 512, 512, true);
	}
}

/* Copies the windows, in order, adding each partition's window once the
 * table is in. */
static int sparse_copy_run(struct sparse_copy *c)
{
	struct window *w;
	int r;

	add_window(c, 0, HEAD_BYTES, false);
	while ((w = next_window(c))) {
		uint64_t start = w->start, end = w->end;
		bool ebr = w->ebr;

		w->done = true;
		r = copy_window(c, start, end);
		if (r != 0)
			return r < 0 ? r : 0;
		if (start == 0) {
			follow_dos(c, 0, false);
			/* The partitions the head's table lists (GPT, DOS
			 * primaries, BSD, ...). */
			blkid_probe pr = blkid_new_probe();

			if (pr && blkid_probe_set_device(pr, c->fd, 0, (blkid_loff_t)c->size) == 0) {
				blkid_probe_enable_superblocks(pr, 0);
				blkid_probe_enable_partitions(pr, 1);
				blkid_partlist ls = blkid_probe_get_partitions(pr);

				for (int i = 0; ls && i < blkid_partlist_numof_partitions(ls); i++) {
					blkid_partition p = blkid_partlist_get_partition(ls, i);

					add_window(c, (uint64_t)blkid_partition_get_start(p) * 512,
						   PART_BYTES, false);
				}
			}
			if (pr)
				blkid_free_probe(pr);
		} else if (ebr) {
			follow_dos(c, start, true);
			/* The logical partition this EBR describes. */
			uint8_t s[512];

			if (pread(c->fd, s, sizeof(s), (off_t)start) == (ssize_t)sizeof(s) &&
			    le32(s + 446 + 8))
				add_window(c, start + (uint64_t)le32(s + 446 + 8) * 512, PART_BYTES,
					   false);
		}
	}
	return 0;
}

struct part {
	int number;
	uint64_t start, size, mapped;
	char *fstype, *label, *uuid, *name, *ptype;
};

static char *probe_value(blkid_probe pr, const char *key)
{
	const char *v = NULL;

	if (blkid_probe_lookup_value(pr, key, &v, NULL) == 0 && v)
		return strdup(v);
	return NULL;
}

/* The file system (or other signature) at [start, start + size). */
static void probe_fs(int fd, uint64_t start, uint64_t size, struct part *p)
{
	blkid_probe pr = blkid_new_probe();

	if (!pr)
		return;
	if (blkid_probe_set_device(pr, fd, (blkid_loff_t)start, (blkid_loff_t)size) == 0) {
		blkid_probe_enable_partitions(pr, 0);
		blkid_probe_enable_superblocks(pr, 1);
		blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_LABEL |
							      BLKID_SUBLKS_UUID);
		if (blkid_do_safeprobe(pr) == 0) {
			p->fstype = probe_value(pr, "TYPE");
			p->label = probe_value(pr, "LABEL");
			p->uuid = probe_value(pr, "UUID");
		}
	}
	blkid_free_probe(pr);
}

/* Mapped bytes of @map inside [start, start + size). */
static uint64_t mapped_in(const struct bmap_map *map, uint64_t start, uint64_t size)
{
	const struct bmap_range *r = map ? bmap_map_get_ranges(map) : NULL;
	uint64_t bs = map ? bmap_map_get_block_size(map) : 0, total = 0, end = start + size;
	uint64_t image_end = map ? bmap_map_get_image_size(map) : 0;

	for (size_t i = 0; r && i < bmap_map_get_range_count(map); i++) {
		uint64_t a = r[i].first * bs, b = (r[i].last + 1) * bs;

		if (b > image_end)
			b = image_end;
		if (a < start)
			a = start;
		if (b > end)
			b = end;
		if (b > a)
			total += b - a;
	}
	return total;
}

struct listing {
	char *pttype, *ptuuid;
	struct part whole; /* no table: the image's own file system */
	struct part *parts;
	int n;
};

static void listing_free(struct listing *l)
{
	for (int i = -1; i < l->n; i++) {
		struct part *p = i < 0 ? &l->whole : &l->parts[i];

		free(p->fstype);
		free(p->label);
		free(p->uuid);
		free(p->name);
		free(p->ptype);
	}
	free(l->parts);
	free(l->pttype);
	free(l->ptuuid);
}

static int list_partitions(int fd, uint64_t size, const struct bmap_map *map, struct listing *l)
{
	blkid_probe pr = blkid_new_probe();
	blkid_partlist ls;

	if (!pr)
		return -ENOMEM;
	if (blkid_probe_set_device(pr, fd, 0, (blkid_loff_t)size) < 0) {
		blkid_free_probe(pr);
		return -EIO;
	}
	blkid_probe_enable_superblocks(pr, 0);
	blkid_probe_enable_partitions(pr, 1);
	blkid_probe_set_partitions_flags(pr, BLKID_PARTS_ENTRY_DETAILS);
	if (blkid_do_safeprobe(pr) == 0) {
		l->pttype = probe_value(pr, "PTTYPE");
		l->ptuuid = probe_value(pr, "PTUUID");
	}
	ls = l->pttype ? blkid_probe_get_partitions(pr) : NULL;
	if (ls && blkid_partlist_numof_partitions(ls) > 0) {
		int n = blkid_partlist_numof_partitions(ls);

		l->parts = calloc((size_t)n, sizeof(*l->parts));
		if (!l->parts) {
			blkid_free_probe(pr);
			return -ENOMEM;
		}
		for (int i = 0; i < n; i++) {
			blkid_partition bp = blkid_partlist_get_partition(ls, i);
			struct part *p = &l->parts[l->n++];
			const char *s;

			p->number = blkid_partition_get_partno(bp);
			p->start = (uint64_t)blkid_partition_get_start(bp) * 512;
			p->size = (uint64_t)blkid_partition_get_size(bp) * 512;
			if ((s = blkid_partition_get_name(bp)) && *s)
				p->name = strdup(s);
			if ((s = blkid_partition_get_type_string(bp)))
				p->ptype = strdup(s);
			else if (asprintf(&p->ptype, "0x%02x", blkid_partition_get_type(bp)) < 0)
				p->ptype = NULL;
			p->mapped = mapped_in(map, p->start, p->size);
			if (!blkid_partition_is_extended(bp))
				probe_fs(fd, p->start, p->size, p);
		}
	} else {
		l->whole.size = size;
		l->whole.mapped = mapped_in(map, 0, size);
		probe_fs(fd, 0, size, &l->whole);
	}
	blkid_free_probe(pr);
	return 0;
}

static void json_str_or_null(const char *s)
{
	if (s)
		json_write_string(stdout, s);
	else
		printf("null");
}

static void print_listing(const struct listing *l, bool json)
{
	char h1[32], h2[32], h3[32];

	if (json) {
		printf(", \"partition_table\": ");
		json_str_or_null(l->pttype);
		printf(", \"partition_table_uuid\": ");
		json_str_or_null(l->ptuuid);
		printf(", \"filesystem\": ");
		if (l->pttype)
			printf("null");
		else {
			printf("{\"type\": ");
			json_str_or_null(l->whole.fstype);
			printf(", \"label\": ");
			json_str_or_null(l->whole.label);
			printf(", \"uuid\": ");
			json_str_or_null(l->whole.uuid);
			printf("}");
		}
		printf(", \"partitions\": [");
		for (int i = 0; i < l->n; i++) {
			const struct part *p = &l->parts[i];

			printf("%s{\"number\": %d, \"start\": %" PRIu64 ", \"size\": %" PRIu64
			       ", \"mapped_bytes\": %" PRIu64 ", \"type\": ",
			       i ? ", " : "", p->number, p->start, p->size, p->mapped);
			json_str_or_null(p->ptype);
			printf(", \"name\": ");
			json_str_or_null(p->name);
			printf(", \"filesystem\": ");
			json_str_or_null(p->fstype);
			printf(", \"label\": ");
			json_str_or_null(p->label);
			printf(", \"uuid\": ");
			json_str_or_null(p->uuid);
			printf("}");
		}
		printf("]");
		return;
	}
	if (!l->pttype) {
		printf("partitions:     none (no partition table)\n");
		printf("file system:    %s", l->whole.fstype ? l->whole.fstype : "none found");
		if (l->whole.label)
			printf(", label '%s'", l->whole.label);
		if (l->whole.uuid)
			printf(", UUID %s", l->whole.uuid);
		printf("\n");
		return;
	}
	printf("partitions:     %s table, %d partition%s%s%s\n", l->pttype, l->n,
	       l->n == 1 ? "" : "s", l->ptuuid ? ", id " : "", l->ptuuid ? l->ptuuid : "");
	for (int i = 0; i < l->n; i++) {
		const struct part *p = &l->parts[i];

		printf("  %2d: start %s, size %s, mapped %s; %s", p->number,
		       human_size(p->start, h1), human_size(p->size, h2), human_size(p->mapped, h3),
		       p->fstype ? p->fstype : "no file system found");
		if (p->label)
			printf(" '%s'", p->label);
		if (p->name)
			printf(", name '%s'", p->name);
		printf("\n");
	}
}

int info_partitions(struct bmap_ctx *ctx, const char *image, const struct bmap_map *map,
		    bool json)
{
	struct sparse_copy c = { .fd = -1 };
	struct listing l = {};
	char why[512] = "";
	int r, fd;

	r = bmap_source_open(ctx, image, &c.src);
	if (r < 0)
		goto fail;
	c.size = map ? bmap_map_get_image_size(map) : bmap_source_get_image_size(c.src);
	fd = bmap_source_get_raw_fd(c.src);
	if (fd < 0 || bmap_source_get_format(c.src) != BMAP_FORMAT_RAW) {
		c.fd = memfd_create("bmaptool-info", MFD_CLOEXEC);
		if (c.fd < 0 || ftruncate(c.fd, (off_t)c.size) < 0) {
			r = -errno;
			snprintf(why, sizeof(why), "cannot make a memory file of %" PRIu64 " bytes: %s",
				 c.size, strerror(-r));
			goto fail;
		}
		c.map = map;
		if (map)
			bmap_source_want(c.src, map);
		r = sparse_copy_run(&c);
		if (r < 0)
			goto fail;
		fd = c.fd;
	}
	r = list_partitions(fd, c.size, map, &l);
	if (r < 0) {
		snprintf(why, sizeof(why), "libblkid cannot probe it: %s", strerror(-r));
		goto fail;
	}
	print_listing(&l, json);
	r = 0;
	goto out;
fail:
	/* The map and sizes are shown already: say what is missing, no more. */
	warning("the partitions of '%s' are not shown: %s", image,
		why[0] ? why : bmap_ctx_get_error(ctx));
	if (json)
		printf(", \"partition_table\": null, \"partition_table_uuid\": null, "
		       "\"filesystem\": null, \"partitions\": null");
	else
		printf("partitions:     unknown (the image could not be read; see the warning)\n");
out:
	listing_free(&l);
	bmap_source_free(c.src);
	if (c.fd >= 0)
		close(c.fd);
	return r;
}
