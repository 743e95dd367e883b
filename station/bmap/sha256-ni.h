/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SHA-256 of two streams at once with the x86 SHA extensions (see
 * sha256-ni.c). Use only when sha256_ni_available(). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sha256_ni {
	uint32_t h[8];
	uint64_t len;
	uint8_t buf[64];
	size_t buf_len;
};

bool sha256_ni_available(void);
void sha256_ni_init(struct sha256_ni *s);
void sha256_ni_update(struct sha256_ni *s, const void *data, size_t n);
/* Both streams take @n bytes: in lockstep where they can. */
void sha256_ni_update2(struct sha256_ni *a, const void *da, struct sha256_ni *b, const void *db,
		       size_t n);
void sha256_ni_final(struct sha256_ni *s, uint8_t out[32]);
