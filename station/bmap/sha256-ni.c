/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * SHA-256 of two independent streams at once with the x86 SHA extensions.
 *
 * One SHA-256 stream is bound by the latency of SHA256RNDS2: each pair of
 * rounds waits for the previous one, and the unit sits idle in between.
 * Two streams interleaved keep it busy, so two ranges hash in little more
 * than the time of one. `bmaptool create` hashes many independent ranges:
 * each of its threads runs two. Everything else hashes through OpenSSL
 * (digest.c); the tests check this code against it.
 */
#include <string.h>

#include "sha256-ni.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#if defined(__clang__)
#include <cpuid.h>
#endif

#define SHA_TARGET __attribute__((target("sha,sse4.1,ssse3")))

static const uint32_t K[64] __attribute__((aligned(16))) = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* The state as SHA256RNDS2 wants it: ABEF and CDGH. */
SHA_TARGET static void load_state(const uint32_t h[8], __m128i *abef, __m128i *cdgh)
{
	__m128i dcba = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[0]), 0xB1);
	__m128i efgh = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[4]), 0x1B);

	*abef = _mm_alignr_epi8(dcba, efgh, 8);
	*cdgh = _mm_blend_epi16(efgh, dcba, 0xF0);
}

SHA_TARGET static void store_state(uint32_t h[8], __m128i abef, __m128i cdgh)
{
	__m128i feba = _mm_shuffle_epi32(abef, 0x1B);
	__m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);

	_mm_storeu_si128((__m128i *)&h[0], _mm_blend_epi16(feba, dchg, 0xF0));
	_mm_storeu_si128((__m128i *)&h[4], _mm_alignr_epi8(dchg, feba, 8));
}

/*
 * Four rounds, step I (0..15) of a block, for lane L: W0..W3 hold the last
 * 16 schedule words, four per vector, in a ring (CUR is step I's, PREV the
 * one before, NEXT the one after). LOAD: steps 0-3 take the message itself;
 * MSG2: steps 3-14 finish the NEXT vector; MSG1: steps 1-12 start PREV's
 * successor. Written out in full so that the compiler keeps both lanes in
 * registers and interleaves them.
 */
#define HALF1(L, I, LOAD, CUR)                                                                     \
	do {                                                                                       \
		if (LOAD)                                                                          \
			CUR##_##L = _mm_shuffle_epi8(                                              \
			    _mm_loadu_si128((const __m128i *)(p##L + 16 * (I))), bswap);           \
		msg_##L = _mm_add_epi32(CUR##_##L, _mm_load_si128((const __m128i *)&K[4 * (I)]));  \
		cdgh_##L = _mm_sha256rnds2_epu32(cdgh_##L, abef_##L, msg_##L);                     \
	} while (0)

#define HALF2(L, DO_MSG2, DO_MSG1, PREV, CUR, NEXT)                                                \
	do {                                                                                       \
		if (DO_MSG2)                                                                       \
			NEXT##_##L = _mm_sha256msg2_epu32(                                         \
			    _mm_add_epi32(NEXT##_##L, _mm_alignr_epi8(CUR##_##L, PREV##_##L, 4)),  \
			    CUR##_##L);                                                            \
		msg_##L = _mm_shuffle_epi32(msg_##L, 0x0E);                                        \
		abef_##L = _mm_sha256rnds2_epu32(abef_##L, cdgh_##L, msg_##L);                     \
		if (DO_MSG1)                                                                       \
			PREV##_##L = _mm_sha256msg1_epu32(PREV##_##L, CUR##_##L);                  \
	} while (0)

#define STEP1(I, LOAD, M2, M1, PREV, CUR, NEXT)                                                    \
	do {                                                                                       \
		HALF1(0, I, LOAD, CUR);                                                            \
		HALF2(0, M2, M1, PREV, CUR, NEXT);                                                 \
	} while (0)

#define STEP2(I, LOAD, M2, M1, PREV, CUR, NEXT)                                                    \
	do {                                                                                       \
		HALF1(0, I, LOAD, CUR);                                                            \
		HALF1(1, I, LOAD, CUR);                                                            \
		HALF2(0, M2, M1, PREV, CUR, NEXT);                                                 \
		HALF2(1, M2, M1, PREV, CUR, NEXT);                                                 \
	} while (0)

#define ALL_STEPS(STEP)                                                                            \
	do {                                                                                       \
		STEP(0, 1, 0, 0, w3, w0, w1);                                                      \
		STEP(1, 1, 0, 1, w0, w1, w2);                                                      \
		STEP(2, 1, 0, 1, w1, w2, w3);                                                      \
		STEP(3, 1, 1, 1, w2, w3, w0);                                                      \
		STEP(4, 0, 1, 1, w3, w0, w1);                                                      \
		STEP(5, 0, 1, 1, w0, w1, w2);                                                      \
		STEP(6, 0, 1, 1, w1, w2, w3);                                                      \
		STEP(7, 0, 1, 1, w2, w3, w0);                                                      \
		STEP(8, 0, 1, 1, w3, w0, w1);                                                      \
		STEP(9, 0, 1, 1, w0, w1, w2);                                                      \
		STEP(10, 0, 1, 1, w1, w2, w3);                                                     \
		STEP(11, 0, 1, 1, w2, w3, w0);                                                     \
		STEP(12, 0, 1, 1, w3, w0, w1);                                                     \
		STEP(13, 0, 1, 0, w0, w1, w2);                                                     \
		STEP(14, 0, 1, 0, w1, w2, w3);                                                     \
		STEP(15, 0, 0, 0, w2, w3, w0);                                                     \
	} while (0)

#define BSWAP_MASK _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL)

SHA_TARGET static void blocks1(uint32_t h[8], const uint8_t *p0, size_t n)
{
	const __m128i bswap = BSWAP_MASK;
	__m128i abef_0, cdgh_0, w0_0, w1_0, w2_0, w3_0, msg_0;

	load_state(h, &abef_0, &cdgh_0);
	for (; n > 0; n--, p0 += 64) {
		__m128i s0_0 = abef_0, s1_0 = cdgh_0;

		w0_0 = w1_0 = w2_0 = w3_0 = _mm_setzero_si128();
		ALL_STEPS(STEP1);
		abef_0 = _mm_add_epi32(abef_0, s0_0);
		cdgh_0 = _mm_add_epi32(cdgh_0, s1_0);
	}
	store_state(h, abef_0, cdgh_0);
}

SHA_TARGET static void blocks2(uint32_t h0[8], const uint8_t *p0, uint32_t h1[8], const uint8_t *p1,
			       size_t n)
{
	const __m128i bswap = BSWAP_MASK;
	__m128i abef_0, cdgh_0, w0_0, w1_0, w2_0, w3_0, msg_0;
	__m128i abef_1, cdgh_1, w0_1, w1_1, w2_1, w3_1, msg_1;

	load_state(h0, &abef_0, &cdgh_0);
	load_state(h1, &abef_1, &cdgh_1);
	for (; n > 0; n--, p0 += 64, p1 += 64) {
		__m128i s0_0 = abef_0, s1_0 = cdgh_0, s0_1 = abef_1, s1_1 = cdgh_1;

		w0_0 = w1_0 = w2_0 = w3_0 = _mm_setzero_si128();
		w0_1 = w1_1 = w2_1 = w3_1 = _mm_setzero_si128();
		ALL_STEPS(STEP2);
		abef_0 = _mm_add_epi32(abef_0, s0_0);
		cdgh_0 = _mm_add_epi32(cdgh_0, s1_0);
		abef_1 = _mm_add_epi32(abef_1, s0_1);
		cdgh_1 = _mm_add_epi32(cdgh_1, s1_1);
	}
	store_state(h0, abef_0, cdgh_0);
	store_state(h1, abef_1, cdgh_1);
}

bool sha256_ni_available(void)
{
#if defined(__clang__)
	/* clang 14 knows no "sha" for __builtin_cpu_supports: CPUID itself
	 * (leaf 7 EBX bit 29: SHA; leaf 1 ECX bits 19 and 9: SSE4.1, SSSE3). */
	unsigned a, b, c, d;

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 19)) || !(c & (1u << 9)))
		return false;
	return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 29));
#else
	__builtin_cpu_init();
	return __builtin_cpu_supports("sha") && __builtin_cpu_supports("sse4.1") &&
	       __builtin_cpu_supports("ssse3");
#endif
}

#else

static void blocks1(uint32_t h[8], const uint8_t *p, size_t n)
{
	(void)h, (void)p, (void)n;
}

static void blocks2(uint32_t h0[8], const uint8_t *p0, uint32_t h1[8], const uint8_t *p1, size_t n)
{
	(void)h0, (void)p0, (void)h1, (void)p1, (void)n;
}

bool sha256_ni_available(void)
{
	return false;
}

#endif

void sha256_ni_init(struct sha256_ni *s)
{
	static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
				       0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

	memcpy(s->h, iv, sizeof(iv));
	s->len = 0;
	s->buf_len = 0;
}

void sha256_ni_update(struct sha256_ni *s, const void *data, size_t n)
{
	const uint8_t *p = data;

	s->len += n;
	if (s->buf_len) {
		size_t take = 64 - s->buf_len < n ? 64 - s->buf_len : n;

		memcpy(s->buf + s->buf_len, p, take);
		s->buf_len += take;
		p += take;
		n -= take;
		if (s->buf_len < 64)
			return;
		blocks1(s->h, s->buf, 1);
		s->buf_len = 0;
	}
	if (n >= 64) {
		blocks1(s->h, p, n / 64);
		p += n & ~(size_t)63;
		n &= 63;
	}
	memcpy(s->buf, p, n);
	s->buf_len = n;
}

void sha256_ni_update2(struct sha256_ni *a, const void *da, struct sha256_ni *b, const void *db,
		       size_t n)
{
	size_t whole = n & ~(size_t)63;

	/* Lockstep only while both lanes are on a block boundary. */
	if (a->buf_len || b->buf_len || !whole) {
		sha256_ni_update(a, da, n);
		sha256_ni_update(b, db, n);
		return;
	}
	blocks2(a->h, da, b->h, db, whole / 64);
	a->len += whole;
	b->len += whole;
	sha256_ni_update(a, (const uint8_t *)da + whole, n - whole);
	sha256_ni_update(b, (const uint8_t *)db + whole, n - whole);
}

void sha256_ni_final(struct sha256_ni *s, uint8_t out[32])
{
	uint64_t bits = s->len * 8;
	uint8_t pad[72] = {0x80};
	size_t padlen = (s->buf_len < 56 ? 56 : 120) - s->buf_len;

	for (int i = 0; i < 8; i++)
		pad[padlen + i] = (uint8_t)(bits >> (56 - 8 * i));
	sha256_ni_update(s, pad, padlen + 8);
	for (int i = 0; i < 8; i++) {
		out[4 * i] = (uint8_t)(s->h[i] >> 24);
		out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
		out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
		out[4 * i + 3] = (uint8_t)s->h[i];
	}
}
