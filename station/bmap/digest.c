/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Hashes through OpenSSL's EVP interface (SHA-NI where the CPU has it). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "bmap-private.h"

struct bmap_digest {
	const EVP_MD *md;
	EVP_MD_CTX *mdctx;
};

/* The names the reference's hashlib accepts that we support. */
static const EVP_MD *digest_lookup(const char *name)
{
	static const char *const allowed[] = { "md5", "sha1", "sha224", "sha256", "sha384",
					       "sha512" };

	if (!name)
		return NULL;
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		if (strcmp(name, allowed[i]) == 0)
			return EVP_get_digestbyname(name);
	return NULL;
}

int bmap_digest_size(const char *name)
{
	const EVP_MD *md = digest_lookup(name);

	return md ? EVP_MD_get_size(md) : -EINVAL;
}

struct bmap_digest *bmap_digest_new(const char *name)
{
	struct bmap_digest *d;
	const EVP_MD *md = digest_lookup(name);

	if (!md)
		return NULL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->md = md;
	d->mdctx = EVP_MD_CTX_new();
	if (!d->mdctx || bmap_digest_reset(d) < 0)
		return bmap_digest_free(d);
	return d;
}

int bmap_digest_reset(struct bmap_digest *d)
{
	return EVP_DigestInit_ex(d->mdctx, d->md, NULL) == 1 ? 0 : -EIO;
}

int bmap_digest_update(struct bmap_digest *d, const void *buf, size_t len)
{
	return EVP_DigestUpdate(d->mdctx, buf, len) == 1 ? 0 : -EIO;
}

int bmap_digest_final(struct bmap_digest *d, uint8_t *out)
{
	unsigned int len;

	return EVP_DigestFinal_ex(d->mdctx, out, &len) == 1 ? 0 : -EIO;
}

struct bmap_digest *bmap_digest_free(struct bmap_digest *d)
{
	if (d) {
		EVP_MD_CTX_free(d->mdctx);
		free(d);
	}
	return NULL;
}

int bmap_digest_buffer(const char *name, const void *buf, size_t len, uint8_t *out)
{
	const EVP_MD *md = digest_lookup(name);

	if (!md)
		return -EINVAL;
	return EVP_Digest(buf, len, out, NULL, md, NULL) == 1 ? 0 : -EIO;
}

int bmap_sha256(const void *buf, size_t len, uint8_t out[32])
{
	return bmap_digest_buffer("sha256", buf, len, out);
}
