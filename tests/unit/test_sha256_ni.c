/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The two-lane SHA-256 (sha256-ni.c) against OpenSSL: every length up to a
 * few blocks, split updates, and lanes that start out of step. Skipped on a
 * CPU without the SHA extensions (and under valgrind, which hides them). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/evp.h>

#include "sha256-ni.h"

#define MAX_LEN 4096

static uint8_t data[2][MAX_LEN + 64];

static void reference(const uint8_t *p, size_t n, uint8_t out[32])
{
	unsigned len = 0;

	assert_int_equal(EVP_Digest(p, n, out, &len, EVP_sha256(), NULL), 1);
	assert_int_equal(len, 32);
}

static int setup(void **state)
{
	uint32_t x = 2463534242u;

	(void)state;
	for (size_t l = 0; l < 2; l++)
		for (size_t i = 0; i < sizeof(data[l]); i++) {
			x ^= x << 13, x ^= x >> 17, x ^= x << 5;
			data[l][i] = (uint8_t)x;
		}
	return sha256_ni_available() ? 0 : -1;
}

static void test_one_lane(void **state)
{
	(void)state;
	for (size_t n = 0; n <= MAX_LEN; n += n < 300 ? 1 : 61) {
		uint8_t want[32], got[32];
		struct sha256_ni s;

		reference(data[0], n, want);
		for (size_t cut = 0; cut <= n; cut += cut < 130 ? 1 : 97) {
			sha256_ni_init(&s);
			sha256_ni_update(&s, data[0], cut);
			sha256_ni_update(&s, data[0] + cut, n - cut);
			sha256_ni_final(&s, got);
			assert_memory_equal(got, want, 32);
		}
	}
}

/* Lane b is @skew bytes ahead before both take @n bytes together. */
static void test_two_lanes(void **state)
{
	(void)state;
	for (size_t skew = 0; skew < 130; skew += skew < 4 ? 1 : 63)
		for (size_t n = 0; n + skew <= MAX_LEN; n += n < 200 ? 1 : 127) {
			uint8_t want_a[32], want_b[32], got[32];
			struct sha256_ni a, b;

			reference(data[0], n, want_a);
			reference(data[1], skew + n, want_b);
			sha256_ni_init(&a);
			sha256_ni_init(&b);
			sha256_ni_update(&b, data[1], skew);
			sha256_ni_update2(&a, data[0], &b, data[1] + skew, n);
			sha256_ni_final(&a, got);
			assert_memory_equal(got, want_a, 32);
			sha256_ni_final(&b, got);
			assert_memory_equal(got, want_b, 32);
		}
}

/* Long runs in lockstep, as create does them: 128 KiB pieces. */
static void test_long_lockstep(void **state)
{
	size_t len = 3 * 131072 + 4096 + 100;
	uint8_t *p[2] = {malloc(len), malloc(len)};
	uint8_t want[2][32], got[32];
	struct sha256_ni a, b;

	(void)state;
	assert_true(p[0] && p[1]);
	for (size_t i = 0; i < len; i++) {
		p[0][i] = data[0][i % MAX_LEN] ^ (uint8_t)(i >> 12);
		p[1][i] = data[1][i % MAX_LEN] ^ (uint8_t)(i >> 11);
	}
	reference(p[0], len, want[0]);
	reference(p[1], len, want[1]);
	sha256_ni_init(&a);
	sha256_ni_init(&b);
	for (size_t off = 0; off < len; off += 131072) {
		size_t n = len - off < 131072 ? len - off : 131072;

		sha256_ni_update2(&a, p[0] + off, &b, p[1] + off, n);
	}
	sha256_ni_final(&a, got);
	assert_memory_equal(got, want[0], 32);
	sha256_ni_final(&b, got);
	assert_memory_equal(got, want[1], 32);
	free(p[0]);
	free(p[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_one_lane),
	    cmocka_unit_test(test_two_lanes),
	    cmocka_unit_test(test_long_lockstep),
	};

	if (!sha256_ni_available()) {
		printf("no SHA extensions on this CPU: skipped\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, setup, NULL);
}
