/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The buffer ring of the copy and verify pipelines (see ring.h). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ring.h"

struct ring {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	size_t n_slots, slot_size;
	unsigned n_consumers;
	struct chunk *slots;
	uint8_t *mem;
	uint64_t head;                          /* chunks published */
	uint64_t tail[RING_MAX_CONSUMERS];      /* chunks released, per consumer */
	bool closed;
	int error;
};

int ring_new(size_t n_slots, size_t slot_size, unsigned n_consumers, struct ring **ret)
{
	struct ring *r;

	if (!n_slots || !n_consumers || n_consumers > RING_MAX_CONSUMERS)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->slots = calloc(n_slots, sizeof(*r->slots));
	/* 4096: O_DIRECT wants sector-aligned buffers; a page covers them all. */
	if (!r->slots || posix_memalign((void **)&r->mem, 4096, n_slots * slot_size) != 0) {
		free(r->slots);
		free(r);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n_slots; i++)
		r->slots[i].data = r->mem + i * slot_size;
	r->n_slots = n_slots;
	r->slot_size = slot_size;
	r->n_consumers = n_consumers;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	*ret = r;
	return 0;
}

struct ring *ring_free(struct ring *r)
{
	if (r) {
		pthread_mutex_destroy(&r->lock);
		pthread_cond_destroy(&r->cond);
		free(r->mem);
		free(r->slots);
		free(r);
	}
	return NULL;
}

size_t ring_slot_size(const struct ring *r)
{
	return r->slot_size;
}

static uint64_t min_tail(const struct ring *r)
{
	uint64_t m = r->tail[0];

	for (unsigned c = 1; c < r->n_consumers; c++)
		if (r->tail[c] < m)
			m = r->tail[c];
	return m;
}

struct chunk *ring_acquire(struct ring *r)
{
	struct chunk *ch = NULL;

	pthread_mutex_lock(&r->lock);
	while (!r->error && r->head - min_tail(r) >= r->n_slots)
		pthread_cond_wait(&r->cond, &r->lock);
	if (!r->error) {
		ch = &r->slots[r->head % r->n_slots];
		uint8_t *data = ch->data;

		memset(ch, 0, sizeof(*ch));
		ch->data = data;
	}
	pthread_mutex_unlock(&r->lock);
	return ch;
}

void ring_publish(struct ring *r)
{
	pthread_mutex_lock(&r->lock);
	r->head++;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

void ring_close(struct ring *r)
{
	pthread_mutex_lock(&r->lock);
	r->closed = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

struct chunk *ring_next(struct ring *r, unsigned c)
{
	struct chunk *ch = NULL;

	pthread_mutex_lock(&r->lock);
	while (!r->error && r->tail[c] == r->head && !r->closed)
		pthread_cond_wait(&r->cond, &r->lock);
	if (!r->error && r->tail[c] < r->head)
		ch = &r->slots[r->tail[c] % r->n_slots];
	pthread_mutex_unlock(&r->lock);
	return ch;
}

void ring_release(struct ring *r, unsigned c)
{
	pthread_mutex_lock(&r->lock);
	r->tail[c]++;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

void ring_abort(struct ring *r, int err)
{
	pthread_mutex_lock(&r->lock);
	if (!r->error)
		r->error = err < 0 ? err : -ECANCELED;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

int ring_error(struct ring *r)
{
	int e;

	pthread_mutex_lock(&r->lock);
	e = r->error;
	pthread_mutex_unlock(&r->lock);
	return e;
}
