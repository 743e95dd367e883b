/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A ring of large aligned buffers between one producer (reading or
 * decompressing the image) and a fixed set of consumers (writer, hashers),
 * each of which sees every chunk in order. A slot is reused only once every
 * consumer has released it, so memory is n_slots * slot_size, whatever the
 * image size.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RING_MAX_CONSUMERS 4

struct chunk {
	uint8_t *data;
	size_t len;
	uint64_t off;     /* image offset of data[0] */
	size_t range;     /* index of the map range this chunk belongs to */
	bool range_start; /* first chunk of its range */
	bool range_end;   /* last chunk of its range */
	bool zero;        /* len zero bytes, not in data (a sparse image's zero fill) */
};

struct ring;

int ring_new(size_t n_slots, size_t slot_size, unsigned n_consumers, struct ring **ret);
struct ring *ring_free(struct ring *r);
size_t ring_slot_size(const struct ring *r);
/* Producer: the next free slot (waits), or NULL when the ring was aborted. */
struct chunk *ring_acquire(struct ring *r);
void ring_publish(struct ring *r);
/* Producer: no more chunks. */
void ring_close(struct ring *r);
/* Consumer @c: the next chunk (waits); NULL at the end or after an abort. */
struct chunk *ring_next(struct ring *r, unsigned c);
void ring_release(struct ring *r, unsigned c);
/* Anyone: stop everything; the first error is kept. */
void ring_abort(struct ring *r, int err);
int ring_error(struct ring *r);
