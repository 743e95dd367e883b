/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qcow2 images (QEMU's disk format, versions 2 and 3; see qemu's
 * docs/interop/qcow2.txt): the header and its extensions, the refusals
 * (features whose data we cannot give back as the disk's), and the walk of
 * the active L1 and L2 tables that makes the map: standard and compressed
 * clusters (and allocated subclusters) are data; zero and unallocated
 * clusters are holes. Snapshots are ignored: the active L1 is the disk.
 * Every offset and size read from the file is checked against the file
 * and the header before it is used. Reading is format-qcow2-read.c's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "format-qcow2.h"
#include "util.h"

#define QCOW2_V2_HDR 72
#define QCOW2_V3_HDR 104
#define QCOW2_MAX_L1_BYTES (32u << 20) /* qemu's own limit */
#define L1_OFFSET_MASK 0x00fffffffffffe00ull
#define L1_RESERVED 0x7f000000000001ffull

enum {
	INCOMPAT_DIRTY = 1u << 0,
	INCOMPAT_CORRUPT = 1u << 1,
	INCOMPAT_DATA_FILE = 1u << 2,
	INCOMPAT_COMPRESSION = 1u << 3,
	INCOMPAT_EXTL2 = 1u << 4,
	INCOMPAT_KNOWN = 0x1f,
};

enum {
	EXT_END = 0,
	EXT_BACKING_FORMAT = 0xe2792aca,
	EXT_FEATURE_NAMES = 0x6803f857,
	EXT_DATA_FILE = 0x44415441,
};

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* Bytes of the file as a printable name (controls become '?'). */
static void printable(char *dst, size_t dst_len, const uint8_t *src, size_t len)
{
	size_t n = len < dst_len - 1 ? len : dst_len - 1;

	for (size_t i = 0; i < n; i++)
		dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? (char)src[i] : '?';
	dst[n] = '\0';
}

static int corrupt(struct bmap_source *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int corrupt(struct bmap_source *s, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return bmap_error(s->ctx, -EBADMSG, "%s is not a valid qcow2 image: %s", s->what, why);
}

static int refuse(struct bmap_source *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refuse(struct bmap_source *s, const char *fmt, ...)
{
	char why[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return bmap_error(s->ctx, -EOPNOTSUPP, "%s: %s", s->what, why);
}

int qcow2_classify(const struct qcow2 *q, uint64_t vcl, uint64_t e, uint64_t e2,
		   struct qcow2_cluster *c, char *why, size_t why_len)
{
	memset(c, 0, sizeof(*c));
	if (e >> 62 & 1) {
		unsigned x = 62 - (q->cluster_bits - 8);
		uint64_t off = e & ((1ull << x) - 1);
		uint64_t sectors = ((e >> x) & ((1ull << (q->cluster_bits - 8)) - 1)) + 1;
		uint64_t size = sectors * 512 - (off & 511);

		if (off < q->cluster_size || off >= q->file_size || off >> 56) {
			snprintf(why, why_len,
				 "guest cluster %" PRIu64 " is compressed at byte %" PRIu64
				 ", outside the file's data (%" PRIu64 " bytes)",
				 vcl, off, q->file_size);
			return -EBADMSG;
		}
		/* The last sector may be cut by the end of the file. */
		if (size > q->file_size - off) {
			if (size - (q->file_size - off) >= 512) {
				snprintf(why, why_len,
					 "the compressed guest cluster %" PRIu64 " (%" PRIu64
					 " bytes at byte %" PRIu64 ") goes past the end of the file",
					 vcl, size, off);
				return -EBADMSG;
			}
			size = q->file_size - off;
		}
		c->kind = QK_COMPRESSED;
		c->host_off = off;
		c->csize = size;
		return 0;
	}
	c->host_off = e & L1_OFFSET_MASK;
	if ((e & 0x3f000000000001feull) || (q->ext_l2 && (e & 1))) {
		snprintf(why, why_len, "the L2 entry of guest cluster %" PRIu64
			 " has reserved bits set (0x%016" PRIx64 ")", vcl, e);
		return -EBADMSG;
	}
	if (q->ext_l2) {
		c->alloc = (uint32_t)e2;
		c->zero = (uint32_t)(e2 >> 32);
		if (c->alloc & c->zero) {
			snprintf(why, why_len,
				 "subclusters of guest cluster %" PRIu64 " are both allocated and zero",
				 vcl);
			return -EBADMSG;
		}
		c->kind = c->alloc ? QK_DATA : c->zero ? QK_ZERO : QK_UNALLOCATED;
	} else {
		c->kind = (e & 1) ? QK_ZERO : c->host_off ? QK_DATA : QK_UNALLOCATED;
	}
	if (c->kind == QK_UNALLOCATED && (e >> 63)) {
		snprintf(why, why_len, "guest cluster %" PRIu64 " is at host offset 0", vcl);
		return -EBADMSG;
	}
	if (c->kind == QK_DATA &&
	    (c->host_off < q->cluster_size || c->host_off >= q->file_size ||
	     (c->host_off & (q->cluster_size - 1)))) {
		snprintf(why, why_len,
			 "guest cluster %" PRIu64 " is at byte %" PRIu64
			 ", which is %s (the file has %" PRIu64 " bytes, clusters of %" PRIu64 ")",
			 vcl, c->host_off,
			 c->host_off & (q->cluster_size - 1) ? "not on a cluster boundary"
			 : c->host_off < q->cluster_size     ? "in the header's cluster"
							     : "past the end of the file",
			 q->file_size, q->cluster_size);
		return -EBADMSG;
	}
	return 0;
}

/* Adds guest cluster @vcl's data (clipped at the virtual end) to the map. */
static int map_cluster(struct qcow2 *q, uint64_t vcl, const struct qcow2_cluster *c)
{
	uint64_t voff = vcl << q->cluster_bits;

	switch (c->kind) {
	case QK_ZERO:
		q->n_zero++;
		return 0;
	case QK_UNALLOCATED:
		q->n_unalloc++;
		return 0;
	case QK_COMPRESSED:
		q->n_comp++;
		break;
	case QK_DATA:
		q->n_alloc++;
		if (q->ext_l2) {
			uint64_t sc = 1ull << q->sub_bits;

			for (unsigned k = 0; k < 32 && voff + k * sc < q->size; k++) {
				uint64_t o = voff + k * sc;

				if ((c->alloc >> k & 1) &&
				    source_map_add(q->map, o, q->size - o < sc ? q->size - o : sc) < 0)
					return -ENOMEM;
			}
			return 0;
		}
		break;
	}
	return source_map_add(q->map, voff,
			      q->size - voff < q->cluster_size ? q->size - voff : q->cluster_size);
}

/* Walks the L2 tables of the active L1: the map and the counts. */
static int qcow2_walk(struct bmap_source *s, struct qcow2 *q)
{
	uint8_t *table = malloc(q->cluster_size);
	char why[512];
	int r = 0;

	uint64_t tables = 0;

	if (!table)
		return source_nomem(s);
	/* Each L2 table is a cluster of the file: more tables than the file
	 * has clusters (entries sharing one) would make this walk read more
	 * than the file, a hostile image's way to last for hours. */
	for (uint64_t i = 0; i < q->l1_n; i++)
		tables += (q->l1[i] & L1_OFFSET_MASK) != 0;
	if (tables > q->file_size / q->cluster_size) {
		free(table);
		return corrupt(s, "%" PRIu64 " L2 tables in a file of %" PRIu64 " clusters", tables,
			       q->file_size / q->cluster_size);
	}
	for (uint64_t i = 0; i < q->l1_n && r == 0; i++) {
		uint64_t l2 = q->l1[i] & L1_OFFSET_MASK, first = i * q->l2_entries;
		uint64_t n = q->n_clusters - first < q->l2_entries ? q->n_clusters - first
								   : q->l2_entries;
		ssize_t got;

		if (q->l1[i] & L1_RESERVED) {
			r = corrupt(s, "L1 entry %" PRIu64 " has reserved bits set (0x%016" PRIx64 ")",
				    i, q->l1[i]);
			break;
		}
		if (!l2) {
			q->n_unalloc += n;
			continue;
		}
		if (l2 < q->cluster_size || (l2 & (q->cluster_size - 1)) ||
		    l2 > q->file_size - q->cluster_size || q->file_size < q->cluster_size) {
			r = corrupt(s, "the L2 table of L1 entry %" PRIu64 " (at byte %" PRIu64
				    ") is not a cluster within the file",
				    i, l2);
			break;
		}
		got = loop_pread(q->fd, table, q->cluster_size, l2);
		if (got < 0 || (uint64_t)got < q->cluster_size) {
			r = bmap_error(s->ctx, got < 0 ? (int)got : -EIO,
				       "cannot read the L2 table at byte %" PRIu64 " of %s: %s", l2,
				       s->what, got < 0 ? strerror((int)-got) : "short read");
			break;
		}
		for (uint64_t j = 0; j < n; j++) {
			const uint8_t *p = table + j * q->entry_size;
			struct qcow2_cluster c;

			r = qcow2_classify(q, first + j, be64(p), q->ext_l2 ? be64(p + 8) : 0, &c, why,
					   sizeof(why));
			if (r < 0) {
				r = corrupt(s, "%s", why);
				break;
			}
			if (map_cluster(q, first + j, &c) < 0) {
				r = source_nomem(s);
				break;
			}
		}
	}
	/* Guest clusters past the L1 entries the virtual size needs do not
	 * exist; those of L1 entries the table lacks are refused at open. */
	free(table);
	return r;
}

struct hdr_ext {
	char data_file[256];
	char backing_format[64];
	char incompat_names[64][47];
};

static int parse_extensions(struct bmap_source *s, struct qcow2 *q, uint64_t start,
			    struct hdr_ext *x)
{
	uint64_t end = q->cluster_size < q->file_size ? q->cluster_size : q->file_size;
	uint8_t *buf;
	ssize_t n;

	if (start >= end)
		return 0;
	buf = malloc(end - start);
	if (!buf)
		return source_nomem(s);
	n = loop_pread(q->fd, buf, end - start, start);
	if (n < 0 || (uint64_t)n < end - start) {
		free(buf);
		return bmap_error(s->ctx, -EIO, "cannot read the header of %s", s->what);
	}
	for (uint64_t off = 0; off + 8 <= end - start;) {
		uint32_t type = be32(buf + off), len = be32(buf + off + 4);
		const uint8_t *d = buf + off + 8;

		if (type == EXT_END)
			break;
		if (len > end - start - off - 8) {
			free(buf);
			return corrupt(s, "header extension 0x%08" PRIx32 " of %" PRIu32
				       " bytes goes past the header's cluster", type, len);
		}
		if (type == EXT_DATA_FILE)
			printable(x->data_file, sizeof(x->data_file), d, len);
		else if (type == EXT_BACKING_FORMAT)
			printable(x->backing_format, sizeof(x->backing_format), d, len);
		else if (type == EXT_FEATURE_NAMES)
			for (uint32_t i = 0; i + 48 <= len; i += 48)
				if (d[i] == 0 && d[i + 1] < 64)
					printable(x->incompat_names[d[i + 1]], 47, d + i + 2, 46);
		/* Unknown extensions are skipped, as the spec allows. */
		off += 8 + (((uint64_t)len + 7) & ~7ull);
	}
	free(buf);
	return 0;
}

/* The features an image may have and still be read as its disk. */
static int check_features(struct bmap_source *s, struct qcow2 *q, const uint8_t *h,
			  const struct hdr_ext *x)
{
	uint64_t backing = be64(h + 8), unknown = q->incompatible & ~(uint64_t)INCOMPAT_KNOWN;
	uint32_t crypt = be32(h + 32);

	if (q->incompatible & INCOMPAT_CORRUPT)
		return refuse(s, "the qcow2 image is marked corrupt (incompatible feature bit 1): "
			      "check and repair it with 'qemu-img check -r all' first");
	if (unknown) {
		unsigned bit = (unsigned)__builtin_ctzll(unknown);

		return refuse(s, "the qcow2 image uses an unknown incompatible feature (bit %u%s%s%s)",
			      bit, x->incompat_names[bit][0] ? ": '" : "",
			      x->incompat_names[bit], x->incompat_names[bit][0] ? "'" : "");
	}
	if (crypt)
		return refuse(s, "the qcow2 image is encrypted (%s): its data cannot be read "
			      "without the key; decrypt it with 'qemu-img convert' first",
			      crypt == 1 ? "AES" : crypt == 2 ? "LUKS" : "an unknown method");
	if (q->incompatible & INCOMPAT_DATA_FILE)
		return refuse(s, "the qcow2 image keeps its data in an external data file%s%s%s: "
			      "flatten it with 'qemu-img convert -O qcow2' first",
			      x->data_file[0] ? " ('" : "", x->data_file, x->data_file[0] ? "')" : "");
	if (backing) {
		uint32_t len = be32(h + 16);
		uint8_t name[1024];
		char shown[256] = "";

		if (len < sizeof(name) && backing < q->file_size && len <= q->file_size - backing &&
		    loop_pread(q->fd, name, len, backing) == (ssize_t)len)
			printable(shown, sizeof(shown), name, len);
		return refuse(s, "the qcow2 image has a backing file%s%s%s%s%s%s: its unallocated "
			      "clusters are read from it; flatten the two into one image with "
			      "'qemu-img convert -O qcow2 %s FLAT.qcow2' first",
			      shown[0] ? " '" : "", shown, shown[0] ? "'" : "",
			      x->backing_format[0] ? " (" : "", x->backing_format,
			      x->backing_format[0] ? ")" : "", s->name);
	}
	return 0;
}

static int qcow2_open(struct bmap_source *s)
{
	struct hdr_ext *x = NULL;
	struct qcow2 *q;
	struct stat st;
	uint8_t h[QCOW2_V3_HDR + 8] = { 0 };
	uint64_t hdr_len, l1_off, needed;
	uint32_t l1_size;
	ssize_t n;
	int r;

	q = calloc(1, sizeof(*q));
	if (!q)
		return source_nomem(s);
	s->fmt_state = q;
	pthread_mutex_init(&q->lock, NULL);
	if (!source_dec_random(s))
		return refuse(s, "a qcow2 image needs random access: it cannot be read %s; give "
			      "the file itself (or 'qemu-img convert -O raw' makes an image that "
			      "can be streamed)",
			      s->comp != BMAP_COMP_RAW ? "through a compression"
			      : s->fd < 0	     ? "from a URL (download it first)"
						     : "from a pipe");
	q->fd = s->fd;
	if (fstat(s->fd, &st) < 0)
		return bmap_error(s->ctx, -errno, "cannot stat %s: %m", s->what);
	q->file_size = (uint64_t)st.st_size;
	n = loop_pread(s->fd, h, sizeof(h), 0);
	if (n < QCOW2_V2_HDR)
		return corrupt(s, "the file ends inside its header");
	q->version = be32(h + 4);
	q->cluster_bits = be32(h + 20);
	q->size = be64(h + 24);
	l1_size = be32(h + 36);
	l1_off = be64(h + 40);
	q->nb_snapshots = be32(h + 60);
	if (q->version != 2 && q->version != 3)
		return refuse(s, "qcow2 version %" PRIu32 " is not supported (2 and 3 are)",
			      q->version);
	if (q->cluster_bits < 9 || q->cluster_bits > 21)
		return corrupt(s, "clusters of 2^%u bytes (512 B to 2 MiB are valid)", q->cluster_bits);
	q->cluster_size = 1ull << q->cluster_bits;
	hdr_len = QCOW2_V2_HDR;
	if (q->version == 3) {
		if (n < QCOW2_V3_HDR)
			return corrupt(s, "the file ends inside its header");
		q->incompatible = be64(h + 72);
		q->compatible = be64(h + 80);
		q->autoclear = be64(h + 88);
		hdr_len = be32(h + 100);
		if (hdr_len < QCOW2_V3_HDR || hdr_len % 8 || hdr_len > q->cluster_size ||
		    hdr_len > q->file_size)
			return corrupt(s, "a header of %" PRIu64 " bytes", hdr_len);
		/* Fields past the header's length are absent, which is 0. */
		q->zstd = hdr_len > QCOW2_V3_HDR && h[104] == 1;
		if (hdr_len > QCOW2_V3_HDR && h[104] > 1)
			return refuse(s, "its compressed clusters use an unknown compression type "
				      "(%u)", h[104]);
		if (!!(q->incompatible & INCOMPAT_COMPRESSION) != q->zstd)
			return corrupt(s, "the compression type bit and field disagree");
	}
	x = calloc(1, sizeof(*x));
	if (!x)
		return source_nomem(s);
	r = parse_extensions(s, q, hdr_len, x);
	if (r == 0)
		r = check_features(s, q, h, x);
	free(x);
	if (r < 0)
		return r;

	q->ext_l2 = q->incompatible & INCOMPAT_EXTL2;
	if (q->ext_l2 && q->cluster_bits < 14)
		return corrupt(s, "extended L2 entries with clusters of %" PRIu64 " bytes (16 KiB "
			       "at least)", q->cluster_size);
	q->entry_size = q->ext_l2 ? 16 : 8;
	q->sub_bits = q->ext_l2 ? q->cluster_bits - 5 : q->cluster_bits;
	q->l2_entries = q->cluster_size / q->entry_size;
	q->n_clusters = q->size / q->cluster_size + (q->size % q->cluster_size != 0);
	needed = q->n_clusters / q->l2_entries + (q->n_clusters % q->l2_entries != 0);
	/* An L1 larger than the disk needs (qemu grows it for VM state)
	 * costs nothing: only the entries the disk needs are read. */
	if ((uint64_t)l1_size * 8 > QCOW2_MAX_L1_BYTES || needed * 8 > QCOW2_MAX_L1_BYTES)
		return corrupt(s, "an L1 table of %" PRIu64 " entries for %" PRIu64 " (more than "
			       "qemu's limit of 32 MiB)", (uint64_t)l1_size, needed);
	if (l1_size < needed)
		return corrupt(s, "an L1 table of %" PRIu32 " entries, a disk of %" PRIu64
			       " bytes needs %" PRIu64, l1_size, q->size, needed);
	if (needed && (l1_off < q->cluster_size || (l1_off & (q->cluster_size - 1)) ||
		       l1_off > q->file_size || needed * 8 > q->file_size - l1_off))
		return corrupt(s, "the L1 table (%" PRIu64 " entries at byte %" PRIu64
			       ") is not within the file's clusters", needed, l1_off);
	q->l1_n = needed;
	q->l1 = calloc(needed ? needed : 1, 8);
	if (!q->l1)
		return source_nomem(s);
	n = needed ? loop_pread(s->fd, q->l1, needed * 8, l1_off) : 0;
	if (n < 0 || (uint64_t)n < needed * 8)
		return bmap_error(s->ctx, -EIO, "cannot read the L1 table of %s", s->what);
	for (uint64_t i = 0; i < needed; i++)
		q->l1[i] = be64((const uint8_t *)&q->l1[i]);

	r = bmap_map_new(s->ctx, q->size, 1u << q->sub_bits, &q->map);
	if (r < 0)
		return r;
	return qcow2_walk(s, q);
}

static void qcow2_free(struct bmap_source *s)
{
	struct qcow2 *q = s->fmt_state;

	qcow2_readers_free(q);
	pthread_mutex_destroy(&q->lock);
	bmap_map_free(q->map);
	free(q->l1);
	free(q);
	s->fmt_state = NULL;
}

static const struct bmap_map *qcow2_map(struct bmap_source *s, bool *ret_complete)
{
	struct qcow2 *q = s->fmt_state;

	*ret_complete = true;
	return q->map;
}

static void add_feature(char *buf, size_t len, const char *name)
{
	size_t used = strlen(buf);

	snprintf(buf + used, len - used, "%s%s", used ? ", " : "", name);
}

static void qcow2_info(struct bmap_source *s, struct bmap_format_info *ret)
{
	struct qcow2 *q = s->fmt_state;

	ret->virtual_size = q->size;
	snprintf(ret->version, sizeof(ret->version), "%" PRIu32, q->version);
	ret->cluster_size = (uint32_t)q->cluster_size;
	ret->subcluster_size = 1u << q->sub_bits;
	ret->compression = q->zstd ? "zstd" : "zlib";
	ret->features[0] = '\0';
	if (q->ext_l2)
		add_feature(ret->features, sizeof(ret->features), "extended_l2");
	if (q->zstd)
		add_feature(ret->features, sizeof(ret->features), "compression_type");
	if (q->incompatible & INCOMPAT_DIRTY)
		add_feature(ret->features, sizeof(ret->features), "dirty");
	if (q->compatible & 1)
		add_feature(ret->features, sizeof(ret->features), "lazy_refcounts");
	if (q->autoclear & 1)
		add_feature(ret->features, sizeof(ret->features), "bitmaps");
	if (q->nb_snapshots)
		add_feature(ret->features, sizeof(ret->features), "snapshots (ignored)");
	ret->allocated = q->n_alloc;
	ret->zero = q->n_zero;
	ret->compressed = q->n_comp;
	ret->unallocated = q->n_unalloc;
	ret->counts_known = true;
}

const struct source_format source_format_qcow2 = {
	.format = BMAP_FORMAT_QCOW2,
	.open = qcow2_open,
	.read = qcow2_read,
	.skip = qcow2_skip,
	.next_data = qcow2_next_data,
	.pread = qcow2_pread,
	.map = qcow2_map,
	.info = qcow2_info,
	.free = qcow2_free,
};
