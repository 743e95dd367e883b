/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libbmap: block maps (bmap files), image sources, create, copy and verify.
 *
 * Conventions: functions return >= 0 on success and -errno on failure;
 * out-parameters are named ret_* and set only on success. The library never
 * prints: a human-readable detail of the last failure is kept in the context
 * (bmap_ctx_get_error()), and warnings/info go to the context's log callback.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- context ---------------------------------------------------------- */

struct bmap_ctx;

enum bmap_log_level {
	BMAP_LOG_ERROR,
	BMAP_LOG_WARNING,
	BMAP_LOG_INFO,
	BMAP_LOG_DEBUG,
};

typedef void (*bmap_log_fn)(void *userdata, enum bmap_log_level level, const char *msg);

struct bmap_ctx *bmap_ctx_new(void);
struct bmap_ctx *bmap_ctx_free(struct bmap_ctx *ctx);
void bmap_ctx_set_log_fn(struct bmap_ctx *ctx, bmap_log_fn fn, void *userdata);
/* Detail of the last failure ("" when none). Valid until the next call. */
const char *bmap_ctx_get_error(const struct bmap_ctx *ctx);

/* ---- block map -------------------------------------------------------- */

/* Largest bmap file we agree to parse. */
#define BMAP_FILE_MAX_SIZE (256u * 1024 * 1024)

struct bmap_range {
	uint64_t first; /* first block, inclusive */
	uint64_t last;  /* last block, inclusive */
};

struct bmap_map;

/* Parse a bmap file of any version the reference wrote (1.2 .. 2.0). */
int bmap_map_load(struct bmap_ctx *ctx, const char *path, struct bmap_map **ret_map);
/* Same, from memory; @name is used in messages. */
int bmap_map_parse(struct bmap_ctx *ctx, const char *name, const void *buf, size_t len,
		   struct bmap_map **ret_map);
/* The bytes of a small file (a bmap, a signature, a keyring) at @location,
 * read whole: a regular file of at most @max bytes (opened without blocking;
 * a FIFO, a device or a directory is refused). @what ("bmap file") names it
 * in messages. *ret is malloc'd. Only files for now: one place where other
 * transports (URLs) can come in. */
int bmap_blob_load(struct bmap_ctx *ctx, const char *what, const char *location, size_t max,
		   void **ret, size_t *ret_len);
/* An in-memory map without range checksums (e.g. from a sparse file's holes). */
int bmap_map_new(struct bmap_ctx *ctx, uint64_t image_size, uint32_t block_size,
		 struct bmap_map **ret_map);
int bmap_map_append_range(struct bmap_map *map, uint64_t first, uint64_t last);
struct bmap_map *bmap_map_free(struct bmap_map *map);

const char *bmap_map_get_version(const struct bmap_map *map); /* "2.0", or "" when computed */
uint64_t bmap_map_get_image_size(const struct bmap_map *map);
uint32_t bmap_map_get_block_size(const struct bmap_map *map);
uint64_t bmap_map_get_blocks_count(const struct bmap_map *map);
uint64_t bmap_map_get_mapped_blocks(const struct bmap_map *map);
/* Bytes of image covered by the ranges (the last block cut at the image's end). */
uint64_t bmap_map_get_mapped_bytes(const struct bmap_map *map);
size_t bmap_map_get_range_count(const struct bmap_map *map);
const struct bmap_range *bmap_map_get_ranges(const struct bmap_map *map);
/* Byte span of range i within the image: [*ret_off, *ret_off + *ret_len). */
void bmap_map_range_bytes(const struct bmap_map *map, size_t i, uint64_t *ret_off,
			  uint64_t *ret_len);
/* Checksum type name ("sha256", "sha1", ...) or NULL when the file has none. */
const char *bmap_map_get_checksum_type(const struct bmap_map *map);
/* True when every range carries a checksum. */
bool bmap_map_has_range_checksums(const struct bmap_map *map);
size_t bmap_map_get_checksum_size(const struct bmap_map *map); /* bytes of one digest */
/* Binary digest of range i, or NULL. */
const uint8_t *bmap_map_get_range_checksum(const struct bmap_map *map, size_t i);
/* Whether the file carried its own checksum (a bad one is refused at load). */
bool bmap_map_has_self_checksum(const struct bmap_map *map);
/* SHA-256 of the bmap file's bytes as read (zero when computed). */
const uint8_t *bmap_map_get_file_sha256(const struct bmap_map *map);

/* ---- signed bmaps (signature.c, GPGME) --------------------------------- */

/* Largest detached signature or keyring file we read. */
#define BMAP_SIG_FILE_MAX_SIZE (64u * 1024 * 1024)

enum bmap_sig_status {
	BMAP_SIG_NONE,          /* no signature: not clearsigned, no detached one */
	BMAP_SIG_UNCHECKED,     /* clearsigned, not verified (opts.no_verify) */
	BMAP_SIG_VALID,         /* good, by a valid key (and a wanted fingerprint) */
	BMAP_SIG_BAD,           /* does not match the bytes: changed after signing,
				 * or the signature of another file */
	BMAP_SIG_NO_KEY,        /* the signer's key is not in the keyring */
	BMAP_SIG_KEY_EXPIRED,   /* good, but the signer's key has expired */
	BMAP_SIG_KEY_REVOKED,   /* good, but the signer's key was revoked */
	BMAP_SIG_SIG_EXPIRED,   /* the signature itself has expired */
	BMAP_SIG_UNTRUSTED,     /* good, by a key of the default keyring that is
				 * not valid there (not certified, not trusted) */
	BMAP_SIG_WRONG_SIGNER,  /* good, but by none of the wanted fingerprints */
	BMAP_SIG_NOT_SIGNATURE, /* the signature file holds no OpenPGP signature */
	BMAP_SIG_MISSING,       /* none, but opts.required */
};

struct bmap_sig_opts {
	/* A keyring file (binary, as gpgv takes; armored keys are read too):
	 * verify against its keys only, every one of them trusted (as gpgv
	 * does), in a private GNUPGHOME made and removed by the call. NULL:
	 * the user's default keyring (GNUPGHOME, or ~/.gnupg), read only; a
	 * home that does not exist is not created. */
	const char *keyring;
	/* Wanted signers: a signature by another key is WRONG_SIGNER. The
	 * signing key's or its primary key's fingerprint, hex, case and
	 * spaces ignored. None: any valid signer. */
	const char *const *fingerprints;
	size_t n_fingerprints;
	bool required;  /* no signature is MISSING, refused */
	bool no_verify; /* take a clearsigned bmap's text unverified */
};

struct bmap_sig_result {
	enum bmap_sig_status status;
	bool clearsigned;
	char fingerprint[41]; /* the signing key's fingerprint (uppercase hex), or "" */
	char uid[256];        /* its key's first user ID, or "" when unknown */
};

/* Whether a bmap file's bytes are a clearsigned document (by its first line). */
bool bmap_sig_is_clearsigned(const void *bmap, size_t len);
/* The same of the regular file @path, from its first bytes (false for
 * anything else: a FIFO is not read). */
bool bmap_sig_file_is_clearsigned(const char *path);
/* A detached signature next to @bmap_path: BMAP.asc, then BMAP.sig (regular
 * files). 0 and a malloc'd path, or -ENOENT. */
int bmap_sig_discover(const char *bmap_path, char **ret_path);
/* The signed text of a clearsigned document, as gpg outputs it: the lines
 * between the armor headers and the signature, dash-escapes removed,
 * trailing spaces and tabs cut, each ended by "\n". Not verified. */
int bmap_sig_clear_text(struct bmap_ctx *ctx, const char *name, const void *doc, size_t len,
			void **ret_text, size_t *ret_len);
/* Verifies a bmap's bytes (@bmap_name in messages): clearsigned (by its
 * first line; @sig must then be NULL) or with the detached signature @sig
 * (@sig_name), or not signed at all. *ret_xml (malloc'd) is what to parse:
 * the signed text of a clearsigned bmap (also with opts.no_verify), else a
 * copy of @bmap. @result is filled in every case where a verdict was
 * reached. Returns 0 for VALID, UNCHECKED and NONE (when not required);
 * -EBADMSG for any other verdict, with the reason in the context's error
 * ("discovered a BAD GPG signature ..." for a signature that does not
 * verify), *ret_xml not set; other -errno when it could not be checked
 * (no gpg, the keyring unreadable). */
int bmap_sig_verify(struct bmap_ctx *ctx, const char *bmap_name, const void *bmap,
		    size_t bmap_len, const char *sig_name, const void *sig, size_t sig_len,
		    const struct bmap_sig_opts *opts, struct bmap_sig_result *result,
		    void **ret_xml, size_t *ret_xml_len);
/* "valid", "bad", "unknown key", ... (for logs, reports and JSON). */
const char *bmap_sig_status_name(enum bmap_sig_status s);

/* ---- writing a 2.0 bmap, byte for byte as the reference 3.6 does ------- */

struct bmap_writer;

/* @fd must be open read-write, seekable, and empty: the writer patches
 * placeholders in place and hashes the file back at the end. */
int bmap_writer_new(struct bmap_ctx *ctx, int fd, const char *fd_name, uint64_t image_size,
		    uint32_t block_size, const char *checksum_type, struct bmap_writer **ret_writer);
/* @digest: binary digest of the range, or NULL for a range without checksum. */
int bmap_writer_add_range(struct bmap_writer *w, uint64_t first, uint64_t last,
			  const uint8_t *digest);
int bmap_writer_finish(struct bmap_writer *w);
uint64_t bmap_writer_get_mapped_blocks(const struct bmap_writer *w);
struct bmap_writer *bmap_writer_free(struct bmap_writer *w);

/* ---- create ------------------------------------------------------------ */

/* Calls @fn for each maximal run of mapped blocks of the file, in order.
 * Uses FIEMAP (unwritten extents count as mapped), or SEEK_DATA/SEEK_HOLE. */
typedef int (*bmap_range_fn)(void *userdata, uint64_t first, uint64_t last);
int bmap_scan_file(struct bmap_ctx *ctx, int fd, const char *name, uint64_t size,
		   uint32_t block_size, bmap_range_fn fn, void *userdata);

struct bmap_create_opts {
	uint32_t block_size;  /* 0: 4096 */
	bool no_checksum;     /* ranges without chksum= */
	unsigned threads;     /* hashing threads, 0: automatic */
	atomic_int *cancel;   /* set non-zero to stop (-EINTR, "interrupted") */
};

struct bmap_create_result {
	uint64_t image_size;
	uint64_t blocks_count;
	uint64_t mapped_blocks;
};

/* Write the bmap of image @image_fd into @out_fd (see bmap_writer_new). */
int bmap_create(struct bmap_ctx *ctx, int image_fd, const char *image_name, int out_fd,
		const char *out_name, const struct bmap_create_opts *opts,
		struct bmap_create_result *ret_result);

struct bmap_source;

/* The bmap of a self-mapped image's virtual disk: @map (the image's own,
 * from bmap_source_get_map()) at opts->block_size, rounded out, each range
 * hashed from what @src reads as the disk: on several threads where @src
 * reads at random (qcow2), in order by this thread otherwise (a sparse
 * image, which is then read to its end for its own checks). @src must not
 * have been read yet. */
int bmap_create_from_source(struct bmap_ctx *ctx, struct bmap_source *src,
			    const struct bmap_map *map, int out_fd, const char *out_name,
			    const struct bmap_create_opts *opts,
			    struct bmap_create_result *ret_result);

/* The map of a sparse file's holes, without checksums. */
int bmap_map_from_file(struct bmap_ctx *ctx, int fd, const char *name, uint32_t block_size,
		       struct bmap_map **ret_map);

/* ---- compression ------------------------------------------------------- */

enum bmap_compression {
	BMAP_COMP_RAW,
	BMAP_COMP_ZSTD,
	BMAP_COMP_GZIP,
	BMAP_COMP_XZ,
	BMAP_COMP_BZIP2,
	BMAP_COMP_LZ4,
	BMAP_COMP_LZO, /* lzop files */
};

/* From the first bytes of a file (at least 6 for a sure answer). */
enum bmap_compression bmap_compression_detect(const void *buf, size_t len);
const char *bmap_compression_name(enum bmap_compression c);

/* ---- archives ----------------------------------------------------------- */

/* What holds the image under the compression: nothing, or an archive whose
 * first regular file member is the image (source-archive.c). */
enum bmap_container {
	BMAP_CONTAINER_NONE,
	BMAP_CONTAINER_TAR, /* ustar, GNU or pax; found in the decoded bytes */
	BMAP_CONTAINER_ZIP, /* stored or deflated; found in the raw input */
};

const char *bmap_container_name(enum bmap_container c);

/* ---- image formats ------------------------------------------------------ */

/* What the (decoded) image is, from its magic bytes: a raw disk image, or a
 * format that carries the map of its own data (a self-mapped image). */
enum bmap_format {
	BMAP_FORMAT_RAW,
	BMAP_FORMAT_QCOW2, /* QEMU's disk format, versions 2 and 3 */
	BMAP_FORMAT_SIMG,  /* Android sparse image */
};

const char *bmap_format_name(enum bmap_format f);

/* What a self-mapped image says about itself (bmap_source_get_format_info). */
struct bmap_format_info {
	enum bmap_format format;
	uint64_t virtual_size;     /* bytes of the disk the image holds */
	char version[16];          /* qcow2 "2" or "3"; simg "1.0" */
	uint32_t cluster_size;     /* qcow2's cluster, simg's block */
	uint32_t subcluster_size;  /* qcow2 extended L2 entries; else cluster_size */
	const char *compression;   /* qcow2's compressed clusters: "zlib" or "zstd" */
	char features[160];        /* qcow2: named feature bits, ", "-separated */
	/* qcow2: clusters (subclusters with extended L2 entries are counted
	 * by the cluster that holds them) that hold data, read as zeros, are
	 * compressed, or are not allocated. */
	uint64_t allocated, zero, compressed, unallocated;
	/* simg: chunks of each type */
	uint64_t raw_chunks, fill_chunks, dont_care_chunks, crc_chunks;
	bool counts_known;         /* false: a stream not read to its end yet */
};

/* ---- destinations ------------------------------------------------------ */

struct bmap_target;

enum bmap_target_mode {
	BMAP_TARGET_WRITE, /* copy: exclusive, locked, checked before any write */
	BMAP_TARGET_READ,  /* verify: read back bypassing the page cache */
};

struct bmap_target_opts {
	enum bmap_target_mode mode;
	uint64_t image_size;  /* refuse a smaller device; 0: unknown */
	bool removable_only;  /* require /sys/block/<disk>/removable = 1 */
	bool keep_size;       /* regular file: do not truncate (verify) */
	bool no_sync;         /* a scratch file (a spill): bmap_target_sync() does
			       * nothing, nobody needs it on the media */
};

/* Opens and guards a destination: the path is opened first and what was
 * opened is checked (no stat() of the name before). A block device must be a
 * whole disk, not read-only, not mounted or held (O_EXCL), and big enough; it
 * is locked with flock(LOCK_EX) so udev keeps off. A regular file is opened
 * as it is: bmap_copy() drops its old content and sizes it to the image only
 * once its own checks passed. A missing path becomes a new regular file
 * (removed again by bmap_target_free() if nothing was written to it), but
 * never on the file system of the device nodes (a devtmpfs, or /dev's own:
 * a mistyped device name), nor through a dangling symbolic link. */
int bmap_target_open(struct bmap_ctx *ctx, const char *path, const struct bmap_target_opts *opts,
		     struct bmap_target **ret_target);
/* Adopts an fd the caller opened; same checks. A regular file is the
 * caller's scratch file (a spill, a part being filled): truncated to the
 * image size at once (unless keep_size), as readers of it expect. */
int bmap_target_open_fd(struct bmap_ctx *ctx, int fd, const char *name,
			const struct bmap_target_opts *opts, struct bmap_target **ret_target);
bool bmap_target_is_blockdev(const struct bmap_target *t);
int bmap_target_get_fd(const struct bmap_target *t);
uint64_t bmap_target_get_size(const struct bmap_target *t);
const char *bmap_target_get_name(const struct bmap_target *t);
/* Whether anything was written to @t, or a regular file truncated: false
 * after a copy refused before its first write. */
bool bmap_target_is_changed(const struct bmap_target *t);
/* Data on the media (fsync), partition table re-read for block devices. */
int bmap_target_sync(struct bmap_target *t);
/* Whether a failure @err (-errno) of @t means the medium went away (a card
 * pulled): ENODEV, ENXIO or ENOMEDIUM, or a block device now of size 0. */
bool bmap_target_medium_gone(const struct bmap_target *t, int err);
struct bmap_target *bmap_target_free(struct bmap_target *t);

/* ---- copy and verify ---------------------------------------------------- */

struct bmap_source;

typedef void (*bmap_progress_fn)(void *userdata, uint64_t done, uint64_t total);
/* For an image file that another process or thread is still filling (the
 * station's image cache, bmaptool's spill file): returns 0 once the image's
 * mapped bytes below @end can be read (without a map every byte is mapped,
 * and once the filler is done a read may end short: the file's end is the
 * image's), -errno with @why when they never will be. Called from worker
 * threads, so it must be thread-safe. @end UINT64_MAX asks for the filler's
 * verdict (0 once it is done and the image passed its checks): a copy to a
 * regular file asks it before giving the file its final size. */
typedef int (*bmap_wait_fn)(void *userdata, uint64_t end, char *why, size_t why_len);
/* Every mapped byte of the image below @end is on the target (written,
 * not yet synced). Called by the writer thread, in image order, after each
 * piece: a stream copy only (a compressed image or a pipe). */
typedef void (*bmap_written_fn)(void *userdata, uint64_t end);

struct bmap_copy_opts {
	bool no_verify;                /* do not check range checksums */
	bmap_progress_fn progress;     /* called from a worker thread, ~4 times a second */
	void *progress_userdata;
	atomic_int *cancel;            /* set non-zero (e.g. from a signal handler) to stop;
					 * read from the engine's threads */
	/* copy of a raw image file, or verify comparing with one: ranges are
	 * taken in image order (not largest first), and each piece is read
	 * once @wait says it is there */
	bmap_wait_fn wait;
	void *wait_userdata;
	bmap_written_fn written;       /* copy of a stream: how far the target is written */
	void *written_userdata;
	/* With a NULL map: copy (verify) only the data a self-mapped image
	 * maps, as the image is read (a sparse image from a pipe, whose map
	 * is known only at its end), instead of every byte. */
	bool source_map;
	/* copy: called once the data is written well, before @dst is synced
	 * (a card's sync may take long: the user is told first) */
	void (*syncing)(void *userdata);
	void *syncing_userdata;
	/* The source's mapped data was checked against the map's SHA-256
	 * range checksums when it was made (the station's image cache entry,
	 * filled by a copy that checked them), and @dst is read back against
	 * them afterwards: the data is not hashed again as it passes, and the
	 * result's digest is made from the checksums. Ignored for a map
	 * without SHA-256 range checksums. */
	bool source_checked;
};

struct bmap_copy_result {
	uint64_t bytes_written;        /* image bytes written (mapped data) */
	/* The mapped-data digest: SHA-256 of the concatenated per-range SHA-256
	 * digests, in range order (the whole image is one range without a map). */
	uint8_t data_sha256[32];
	double seconds;
	/* bmap_copy_opts.source_checked took effect: the data was not hashed
	 * as it passed, and data_sha256 is made from the map's checksums (what
	 * the card should hold, known only once it is read back). */
	bool unhashed;
};

/* Copies the mapped ranges of @map (every byte when @map is NULL, the image's
 * own map as it is read with opts->source_map) from @src to @dst, checking
 * each range's checksum as its data passes. Refused before the first write,
 * @dst as it was (bmap_target_is_changed() false): @dst is the image itself,
 * an image (a raw file, a self-mapped image's disk) not of the map's size, an
 * empty image. A regular @dst loses its old content at the first write and
 * gets the image's size once the copy went well. */
int bmap_copy(struct bmap_ctx *ctx, struct bmap_source *src, const struct bmap_map *map,
	      struct bmap_target *dst, const struct bmap_copy_opts *opts,
	      struct bmap_copy_result *ret_result);

struct bmap_verify_result {
	uint64_t bytes_read;
	uint8_t data_sha256[32]; /* the mapped-data digest, as bmap_copy_result's */
	size_t bad_ranges;       /* ranges that did not match */
	size_t first_bad;        /* index of the first bad range */
	uint64_t first_bad_offset; /* byte offset of the first difference when comparing bytes */
	bool compared_bytes;     /* true: compared with the image, not checksums */
	double seconds;
};

/* Reads @dst back (bypassing the page cache) and checks every mapped range
 * against the map's checksums, or, when the map has none or @map is NULL,
 * byte for byte against @image (which must then be given). Returns 0 when
 * everything matches, -EBADMSG when some range does not (see the result),
 * other -errno on failure. */
int bmap_verify(struct bmap_ctx *ctx, struct bmap_target *dst, const struct bmap_map *map,
		struct bmap_source *image, const struct bmap_copy_opts *opts,
		struct bmap_verify_result *ret_result);

/* ---- discard (TRIM) of the unmapped ranges ------------------------------ */

struct bmap_discard_result {
	uint64_t bytes;    /* bytes discarded (holes punched, for a file) */
	uint64_t ranges;   /* unmapped ranges discarded */
	bool unsupported;  /* the device (or the file's file system) cannot discard:
			    * nothing (more) was discarded; not a failure */
	bool punched;      /* a regular file: holes were punched instead */
	double seconds;
};

/* Tells @t that the unmapped ranges of @map hold nothing: each gap between
 * mapped ranges within [0, image size) is cut inward to the device's logical
 * sector size (never into a sector holding mapped data, never past the
 * image's end, so a partial last sector stays as it was) and discarded with
 * BLKDISCARD, in pieces of at most discard_max_bytes (and 1 GiB) so that
 * @cancel (may be NULL) stops it between them (-EINTR). A regular file gets
 * the same gaps punched as holes (fallocate PUNCH_HOLE|KEEP_SIZE), exactly.
 * @t must come from bmap_target_open*() in BMAP_TARGET_WRITE mode, so every
 * guard has passed (-EBADF otherwise); call it after bmap_copy(), which never
 * writes there. A device without discard support (discard_max_bytes 0,
 * EOPNOTSUPP) returns 0 with result.unsupported set. Whether a discarded
 * range reads back as zeros is up to the device (a loop device: zeros).
 * @map NULL (every byte written) discards nothing. */
int bmap_target_discard_unmapped(struct bmap_ctx *ctx, struct bmap_target *t,
				 const struct bmap_map *map, atomic_int *cancel,
				 struct bmap_discard_result *ret_result);

/* SHA-256 of a buffer (OpenSSL, SHA-NI where the CPU has it). */
int bmap_sha256(const void *buf, size_t len, uint8_t out[32]);

/* ---- discovery ---------------------------------------------------------- */

/* Finds IMAGE.bmap, then strips one extension at a time (disk.img.zst.bmap,
 * disk.img.bmap, disk.bmap). Returns 0 and a malloc'd path, or -ENOENT. */
int bmap_discover(const char *image_path, char **ret_path);

/* ---- URLs (libcurl) ------------------------------------------------------ */

/* Whether @location is an http://, https://, ftp:// or file: URL (anything
 * else is a path). */
bool bmap_location_is_url(const char *location);
/* @url as messages show it: without its userinfo (user:password@), so that
 * no password is ever printed or logged. malloc'd; NULL when out of memory. */
char *bmap_url_display(const char *url);
/* https: whether servers' certificates go unchecked (bmaptool --insecure);
 * checked by default. Every URL read through @ctx afterwards. */
void bmap_ctx_set_tls_insecure(struct bmap_ctx *ctx, bool insecure);
/* The whole of a small file (a bmap, a signature) at @location, a path or a
 * URL, into a malloc'd buffer (NUL-terminated past *@ret_len). -ENOENT when
 * it is not there (no such file; HTTP 404 or 410; a missing FTP file),
 * -EFBIG when it is larger than @max bytes, another -errno with a detail
 * naming the location (without credentials) for any other failure. @max 0
 * asks only whether it is there (an HTTP HEAD request; a stat), with
 * *@ret_len 0. */
int bmap_fetch_small(struct bmap_ctx *ctx, const char *location, size_t max, void **ret,
		     size_t *ret_len);
/* @location with @suffix added ("BMAP" + ".asc"): to a path's end, or to a
 * URL's path, before its query and fragment ("http://h/x.bmap?t=1" +
 * ".asc" is "http://h/x.bmap.asc?t=1"), as the reference finds a bmap's
 * signature. malloc'd; NULL when out of memory. */
char *bmap_location_add_suffix(const char *location, const char *suffix);
/* bmap_map_load() for a path or a URL (fetched with bmap_fetch_small()). */
int bmap_map_load_location(struct bmap_ctx *ctx, const char *location,
			   struct bmap_map **ret_map);
/* What a server says identifies the current version of the file at @url,
 * from one HEAD request: its ETag ("" when none), Last-Modified (seconds
 * since the epoch, -1 when not said) and Content-Length (-1 when not said).
 * A cache keyed on them takes a file replaced on the server for another.
 * -ENOENT when it is not there; another -errno with a detail naming the
 * URL (without credentials). */
struct bmap_url_identity {
	char etag[128];
	int64_t last_modified;
	int64_t length;
};
int bmap_url_identity(struct bmap_ctx *ctx, const char *url, struct bmap_url_identity *ret);
/* bmap_discover() for an image URL, as the reference does: ".bmap" added to
 * the URL's path (before its query and fragment), then one extension at a
 * time taken off the path. Each candidate is one small request: "not there"
 * (HTTP 404) tries the next; any other failure ends the search with its
 * error (-errno, detail in @ctx). -ENOENT when none is there. */
int bmap_discover_url(struct bmap_ctx *ctx, const char *image_url, char **ret_url);
/* bmap_sig_discover() for a bmap URL: BMAP.asc, then BMAP.sig (the suffix
 * before the query, as for the bmap), each a HEAD request. -ENOENT when
 * neither is there; another failure (a login refused, a server down) is not
 * passed over (-errno, detail in @ctx). */
int bmap_sig_discover_url(struct bmap_ctx *ctx, const char *bmap_url, char **ret_url);

#ifdef __cplusplus
}
#endif
