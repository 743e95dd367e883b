/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bmap files as bytes: finding one next to its image, opening it (never
 * blocking, regular files only), and reading it in passes for the parser,
 * hashing what each pass reads and locating the self-checksum's digits; a
 * small file's bytes read whole (bmap_blob_load: bmaps, signatures, keys).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "map-internal.h"
#include "util.h"

static bool is_ws(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Follows @tag through a pass's bytes: its first occurrence, the whitespace
 * after it, then the bytes where the digits should be. The tag's '<' occurs
 * only at its start, so a mismatch restarts the match at the same byte. */
static void scan_bytes(struct map_tag_scan *t, const uint8_t *b, size_t n, uint64_t off)
{
	size_t i = 0;

	while (i < n && t->state != SCAN_DONE) {
		switch (t->state) {
		case SCAN_TAG:
			if (t->matched == 0) {
				const uint8_t *lt = memchr(b + i, '<', n - i);

				if (!lt)
					return;
				i = (size_t)(lt - b);
			}
			if (b[i] == (uint8_t)t->tag[t->matched]) {
				i++;
				if (!t->tag[++t->matched]) {
					t->found = true;
					t->state = SCAN_WS;
				}
			} else if (t->matched) {
				t->matched = 0;
			} else {
				i++;
			}
			break;
		case SCAN_WS:
			if (is_ws(b[i])) {
				i++;
				break;
			}
			t->digits_off = off + i;
			t->state = SCAN_DIGITS;
			break;
		case SCAN_DIGITS: {
			size_t k = sizeof(t->digits) - t->n_digits;

			if (k > n - i)
				k = n - i;
			memcpy(t->digits + t->n_digits, b + i, k);
			t->n_digits += k;
			i += k;
			if (t->n_digits == sizeof(t->digits))
				t->state = SCAN_DONE;
			break;
		}
		case SCAN_DONE:
			break;
		}
	}
}

static int self_update(struct map_input *in, const uint8_t *b, size_t n)
{
	uint64_t s = in->pos, e = s + n;
	uint64_t zs = s > in->zero_off ? s : in->zero_off;
	uint64_t ze = e < in->zero_off + in->zero_len ? e : in->zero_off + in->zero_len;
	char zeros[2 * BMAP_DIGEST_MAX];

	if (zs >= ze)
		return bmap_digest_update(in->self, b, n);
	memset(zeros, '0', sizeof(zeros));
	if (bmap_digest_update(in->self, b, zs - s) < 0 ||
	    bmap_digest_update(in->self, zeros, ze - zs) < 0)
		return -EIO;
	return bmap_digest_update(in->self, b + (ze - s), e - ze);
}

int map_input_begin(struct map_input *in, unsigned pass, const char *self_type, uint64_t zero_off,
		    size_t zero_len)
{
	in->pass = pass;
	in->pos = 0;
	in->err = 0;
	if (!in->sha) {
		in->sha = bmap_digest_new("sha256");
		if (!in->sha)
			return -ENOMEM;
	}
	if (bmap_digest_reset(in->sha) < 0)
		return -EIO;
	if (pass == 1) {
		memset(in->scan, 0, sizeof(in->scan));
		in->scan[MAP_SCAN_CHECKSUM].tag = "<BmapFileChecksum>";
		in->scan[MAP_SCAN_SHA1].tag = "<BmapFileSHA1>";
	}
	in->self = bmap_digest_free(in->self);
	if (self_type) {
		in->self = bmap_digest_new(self_type);
		if (!in->self)
			return -ENOMEM;
		in->zero_off = zero_off;
		in->zero_len = zero_len;
	}
	return 0;
}

ssize_t map_input_read(struct map_input *in, void *buf, size_t len)
{
	ssize_t n;

	if (in->fd >= 0) {
		/* Never more than the limit plus one byte: a file that grew
		 * past it since fstat() is refused, not read on and on. */
		if (len > BMAP_FILE_MAX_SIZE + (uint64_t)1 - in->pos)
			len = BMAP_FILE_MAX_SIZE + (uint64_t)1 - in->pos;
		n = loop_pread(in->fd, buf, len, in->pos);
		if (n < 0) {
			in->err = (int)n;
			return -1;
		}
	} else {
		n = (ssize_t)(len < in->mem_len - in->pos ? len : in->mem_len - in->pos);
		memcpy(buf, in->mem + in->pos, (size_t)n);
	}
	if (in->pos + (uint64_t)n > BMAP_FILE_MAX_SIZE) {
		in->err = -EFBIG;
		return -1;
	}
	/* Later passes of a buffer read what the first did: no need to hash
	 * it again. A file may have changed: it is. */
	if ((in->pass == 1 || in->fd >= 0) && bmap_digest_update(in->sha, buf, (size_t)n) < 0) {
		in->err = -EIO;
		return -1;
	}
	if (in->pass == 1)
		for (size_t i = 0; i < ARRAY_SIZE(in->scan); i++)
			scan_bytes(&in->scan[i], buf, (size_t)n, in->pos);
	if (in->self && self_update(in, buf, (size_t)n) < 0) {
		in->err = -EIO;
		return -1;
	}
	in->pos += (uint64_t)n;
	return n;
}

int map_input_drain(struct map_input *in)
{
	_cleanup_free_ uint8_t *buf = malloc(1 << 16);
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	do
		n = map_input_read(in, buf, 1 << 16);
	while (n > 0);
	return n < 0 ? in->err : 0;
}

int map_input_end(struct map_input *in, uint8_t *ret_self)
{
	uint8_t sha[32];

	if (in->self && ret_self && bmap_digest_final(in->self, ret_self) < 0)
		return -EIO;
	if (in->pass == 1)
		return bmap_digest_final(in->sha, in->sha_first) < 0 ? -EIO : 0;
	if (in->fd < 0)
		return 0;
	if (bmap_digest_final(in->sha, sha) < 0)
		return -EIO;
	return memcmp(sha, in->sha_first, sizeof(sha)) == 0 ? 0 : -ESTALE;
}

void map_input_release(struct map_input *in)
{
	in->sha = bmap_digest_free(in->sha);
	in->self = bmap_digest_free(in->self);
}

int bmap_map_parse(struct bmap_ctx *ctx, const char *name, const void *buf, size_t len,
		   struct bmap_map **ret_map)
{
	struct map_input in = {.name = name, .fd = -1, .mem = buf, .mem_len = len};
	int r;

	if (len > BMAP_FILE_MAX_SIZE)
		return bmap_error(ctx, -EFBIG, "bmap file '%s' is too large (%zu bytes, limit %u)",
				  name, len, BMAP_FILE_MAX_SIZE);
	r = map_parse_input(ctx, &in, ret_map);
	map_input_release(&in);
	return r;
}

static const char *file_kind(mode_t mode)
{
	return S_ISFIFO(mode)	? "a FIFO or a pipe"
	       : S_ISCHR(mode)	? "a character device"
	       : S_ISBLK(mode)	? "a block device"
	       : S_ISSOCK(mode) ? "a socket"
				: "of another kind";
}

/* Opens @path for reading as a regular file, never blocking (a FIFO nobody
 * writes to would block open() for ever: the reference hangs there). @what
 * ("bmap file", "signature file", ...) names it in messages. */
static int open_regular(struct bmap_ctx *ctx, const char *what, const char *path, size_t max,
			int *ret_fd, uint64_t *ret_size)
{
	_cleanup_close_ int fd = -1;
	struct stat st;
	int flags;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return bmap_error(ctx, -errno, "cannot open %s '%s': %m", what, path);
	if (fstat(fd, &st) < 0)
		return bmap_error(ctx, -errno, "cannot stat %s '%s': %m", what, path);
	if (S_ISDIR(st.st_mode))
		return bmap_error(ctx, -EISDIR, "%s '%s' is a directory", what, path);
	/* Not a pipe either: a bmap is read twice (its own checksum is
	 * checked once the header says how), which a pipe cannot give. */
	if (!S_ISREG(st.st_mode)) {
		size_t n = strlen(what);

		/* "save the bmap to a file": @what without its " file". */
		if (n > 5 && strcmp(what + n - 5, " file") == 0)
			n -= 5;
		return bmap_error(ctx, -EINVAL,
				  "%s '%s' is not a regular file (it is %s); save the %.*s to a "
				  "file and give that",
				  what, path, file_kind(st.st_mode), (int)n, what);
	}
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
		return bmap_error(ctx, -errno, "cannot read %s '%s': %m", what, path);
	if ((uint64_t)st.st_size > max)
		return bmap_error(ctx, -EFBIG, "%s '%s' is too large (%" PRIu64 " bytes, limit %zu)",
				  what, path, (uint64_t)st.st_size, max);
	*ret_fd = fd;
	fd = -1;
	*ret_size = (uint64_t)st.st_size;
	return 0;
}

int bmap_map_load(struct bmap_ctx *ctx, const char *path, struct bmap_map **ret_map)
{
	struct map_input in = {.name = path};
	_cleanup_close_ int fd = -1;
	uint64_t size;
	int r;

	r = open_regular(ctx, "bmap file", path, BMAP_FILE_MAX_SIZE, &fd, &size);
	if (r < 0)
		return r;
	in.fd = fd;
	r = map_parse_input(ctx, &in, ret_map);
	map_input_release(&in);
	return r;
}

int bmap_blob_load(struct bmap_ctx *ctx, const char *what, const char *location, size_t max,
		   void **ret, size_t *ret_len)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ uint8_t *buf = NULL;
	uint64_t size;
	ssize_t n;
	int r;

	r = open_regular(ctx, what, location, max, &fd, &size);
	if (r < 0)
		return r;
	/* One byte more than fstat() said: a file that grew since is
	 * refused, not read on and on. */
	buf = malloc((size_t)size + 1);
	if (!buf)
		return bmap_error(ctx, -ENOMEM, "out of memory reading %s '%s'", what, location);
	n = loop_read(fd, buf, (size_t)size + 1);
	if (n < 0)
		return bmap_error(ctx, (int)n, "cannot read %s '%s': %s", what, location,
				  strerror((int)-n));
	if ((uint64_t)n > size)
		return bmap_error(ctx, -ESTALE, "%s '%s' grew as it was read; try again once it "
				  "is complete", what, location);
	*ret = buf;
	buf = NULL;
	*ret_len = (size_t)n;
	return 0;
}

int bmap_discover(const char *image_path, char **ret_path)
{
	_cleanup_free_ char *base = strdup(image_path);
	char *slash, *dot;

	if (!base)
		return -ENOMEM;
	slash = strrchr(base, '/');
	for (;;) {
		char *cand;
		struct stat st;

		if (asprintf(&cand, "%s.bmap", base) < 0)
			return -ENOMEM;
		if (strcmp(cand, image_path) != 0 && stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
			*ret_path = cand;
			return 0;
		}
		free(cand);
		dot = strrchr(base, '.');
		if (!dot || (slash && dot < slash) || dot == base || (slash && dot == slash + 1))
			return -ENOENT;
		*dot = '\0';
	}
}
