/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The SHA-256 of runs of zeros (see engine.h): a range that holds nothing
 * but zeros (a sparse image's fill of zeros, a zero cluster) gets its digest
 * without its zeros being hashed again. With the SHA extensions the state
 * after each whole ZERO_STEP of zeros is kept (the first run of a length
 * computes the states up to it), so the digest of any length costs at most
 * ZERO_STEP bytes of hashing; without them the digest of each length is
 * kept, the last ZERO_LENGTHS of them.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "engine.h"
#include "target.h"

#define ZERO_STEP ((uint64_t)1 << 20)
#define ZERO_STATES 257 /* states after 0 to 256 MiB */
#define ZERO_LENGTHS 16

static pthread_mutex_t zero_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sha256_ni zero_state[ZERO_STATES];
static unsigned zero_states; /* how many of them are known */
static struct {
	uint64_t len;
	uint8_t digest[32];
} zero_seen[ZERO_LENGTHS];
static unsigned zero_n_seen, zero_next;

static void ni_zeros(struct sha256_ni *s, uint64_t len)
{
	while (len > 0) {
		size_t n = len < TARGET_ZEROS_SIZE ? (size_t)len : TARGET_ZEROS_SIZE;

		sha256_ni_update(s, target_zeros, n);
		len -= n;
	}
}

static void with_ni(uint64_t len, uint8_t out[32])
{
	uint64_t k = len / ZERO_STEP;
	struct sha256_ni s;

	if (k >= ZERO_STATES)
		k = ZERO_STATES - 1;
	pthread_mutex_lock(&zero_lock);
	if (zero_states == 0) {
		sha256_ni_init(&zero_state[0]);
		zero_states = 1;
	}
	for (; zero_states <= k; zero_states++) {
		zero_state[zero_states] = zero_state[zero_states - 1];
		ni_zeros(&zero_state[zero_states], ZERO_STEP);
	}
	s = zero_state[k];
	pthread_mutex_unlock(&zero_lock);
	ni_zeros(&s, len - k * ZERO_STEP);
	sha256_ni_final(&s, out);
}

static int with_openssl(uint64_t len, uint8_t out[32])
{
	struct bmap_digest *d;

	pthread_mutex_lock(&zero_lock);
	for (unsigned i = 0; i < zero_n_seen; i++)
		if (zero_seen[i].len == len) {
			memcpy(out, zero_seen[i].digest, 32);
			pthread_mutex_unlock(&zero_lock);
			return 0;
		}
	pthread_mutex_unlock(&zero_lock);
	d = bmap_digest_new("sha256");
	if (!d)
		return -ENOMEM;
	for (uint64_t left = len; left > 0;) {
		size_t n = left < TARGET_ZEROS_SIZE ? (size_t)left : TARGET_ZEROS_SIZE;

		bmap_digest_update(d, target_zeros, n);
		left -= n;
	}
	bmap_digest_final(d, out);
	bmap_digest_free(d);
	pthread_mutex_lock(&zero_lock);
	zero_seen[zero_next].len = len;
	memcpy(zero_seen[zero_next].digest, out, 32);
	zero_next = (zero_next + 1) % ZERO_LENGTHS;
	if (zero_n_seen < ZERO_LENGTHS)
		zero_n_seen++;
	pthread_mutex_unlock(&zero_lock);
	return 0;
}

int engine_zero_sha256(uint64_t len, bool ni, uint8_t out[32])
{
	if (ni) {
		with_ni(len, out);
		return 0;
	}
	return with_openssl(len, out);
}
