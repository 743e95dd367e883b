/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Internal to the qcow2 format: the image's header facts and tables
 * (format-qcow2.c: header, refusals, the walk of the tables that makes the
 * map) and what reading the virtual disk needs (format-qcow2-read.c:
 * cluster lookups, compressed clusters, the per-thread readers).
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "source-format.h"

#define QCOW2_MAX_READERS 16

/* What one L2 entry says about one guest cluster (checked). */
enum qcow2_kind {
	QK_UNALLOCATED,
	QK_ZERO,
	QK_DATA,       /* standard: host_off; with subclusters, per alloc/zero bits */
	QK_COMPRESSED, /* host_off, csize bytes */
};

struct qcow2_cluster {
	enum qcow2_kind kind;
	uint64_t host_off;
	uint64_t csize;
	uint32_t alloc, zero; /* extended L2: subcluster bitmaps */
};

/* One thread's reading state (a pool of them, see format-qcow2-read.c). */
struct qcow2_reader {
	uint8_t l2win[4096]; /* a slice of one L2 table */
	uint64_t l2win_off;  /* its file offset, UINT64_MAX: none */
	uint8_t *in;         /* compressed bytes */
	size_t in_size;
	uint8_t *out;        /* one decoded cluster, for partial reads */
	uint64_t out_cluster; /* which, UINT64_MAX: none */
	void *inflate;       /* ISA-L inflate state (zlib) */
	void *zstd;          /* ZSTD_DCtx */
	char error[512];
	struct qcow2_reader *next_free;
};

struct qcow2 {
	int fd;
	uint64_t file_size;
	uint32_t version;
	unsigned cluster_bits;
	uint64_t cluster_size;
	bool ext_l2;
	unsigned sub_bits; /* subcluster size bits (cluster_bits - 5 with ext L2) */
	uint64_t size;     /* virtual */
	uint64_t n_clusters;
	uint64_t l2_entries; /* per table */
	unsigned entry_size; /* 8, or 16 with extended L2 entries */
	bool zstd;           /* compression type */
	uint64_t incompatible, compatible, autoclear;
	uint32_t nb_snapshots;

	uint64_t *l1; /* the entries the virtual size needs */
	uint64_t l1_n;

	struct bmap_map *map;
	uint64_t n_alloc, n_zero, n_comp, n_unalloc;
	size_t next_range; /* next_data's cursor */

	pthread_mutex_t lock;
	struct qcow2_reader *free_readers;
	struct qcow2_reader *all[QCOW2_MAX_READERS];
	unsigned n_readers;
};

/* Decodes and checks the L2 entry @e (and @e2, extended) of guest cluster
 * @vcl; -EBADMSG with the reason in @why. */
int qcow2_classify(const struct qcow2 *q, uint64_t vcl, uint64_t e, uint64_t e2,
		   struct qcow2_cluster *ret, char *why, size_t why_len);
/* The L2 entry of guest cluster @vcl through @r's window (no table: 0). */
int qcow2_l2_entry(struct qcow2 *q, struct qcow2_reader *r, uint64_t vcl, uint64_t *ret_e,
		   uint64_t *ret_e2);
/* Decodes the compressed cluster @c into @out (cluster_size bytes). */
int qcow2_decode(struct qcow2 *q, struct qcow2_reader *r, const struct qcow2_cluster *c,
		 uint8_t *out);
void qcow2_readers_free(struct qcow2 *q);

extern const struct source_format source_format_qcow2;
/* The reading half of source_format_qcow2 (format-qcow2-read.c). */
ssize_t qcow2_read(struct bmap_source *s, void *buf, size_t len);
int qcow2_skip(struct bmap_source *s, uint64_t n);
int qcow2_next_data(struct bmap_source *s, uint64_t *ret_len);
ssize_t qcow2_pread(struct bmap_source *s, void *buf, size_t len, uint64_t off);
