/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bmaptool info: what is known about an image before flashing it (its map's
 * origin, version, sizes, ranges, checksums, signature, compression), as
 * text or JSON.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bmap.h"
#include "bmaptool.h"
#include "source.h"
#include "util.h"

static const char info_help[] =
	"Usage: bmaptool info [OPTIONS] IMAGE\n"
	"\n"
	"Show what is known about IMAGE before flashing it: where its block map comes\n"
	"from (the --bmap file, a bmap discovered next to the image, the holes of a\n"
	"raw sparse image, or the map a qcow2 or Android sparse image carries), the\n"
	"format version, sizes, mapped blocks, ranges, the checksum type, whether the\n"
	"bmap's own checksum is good, and the image's compression (zstd, gzip, xz,\n"
	"bzip2, lz4 or lzo, detected from its magic bytes) and, for an image in a tar\n"
	"or zip archive, the archive and the member taken (its first regular file). For a qcow2 image: its version, cluster size, allocated, zero,\n"
	"compressed and unallocated clusters and features; for a sparse image: its\n"
	"chunks. For every image: its partition table and each partition's start,\n"
	"size, file system, label and mapped bytes (libblkid reads the image's data).\n"
	"A signed bmap (clearsigned, or with BMAP.asc or BMAP.sig next to it) is\n"
	"verified as copy does it, and its signer's fingerprint and user ID shown; a\n"
	"signature that does not verify is an error (exit status 1).\n"
	"\n"
	"IMAGE may be an http://, https://, ftp:// or file: URL: its first bytes are\n"
	"fetched for the compression, and its bmap is --bmap or found next to it\n"
	"(\".bmap\" added to the URL's path, then each extension taken off).\n"
	"\n"
	"Options:\n"
	"  -b, --bmap FILE          use this bmap file (or URL) instead of discovering one\n"
	"      --json               print one JSON object\n"
	SIG_HELP
	"      --insecure           do not check the certificate of an https server\n"
	"  -q, --quiet              print errors only\n"
	"  -d, --debug              print debugging messages\n"
	"  -h, --help               show this help\n";

/* What the image is in: its compression, and the archive and member the
 * image is taken from (an archive's headers are read, not its data). */
struct image_wrap {
	enum bmap_compression comp;
	enum bmap_container container;
	char *member;
	uint64_t member_size;
	bool size_known;
};

static int describe_image(const char *path, struct image_wrap *ret)
{
	/* A context of its own that logs nothing: the member taken was
	 * already said when the image was first opened. */
	struct bmap_ctx *quiet = bmap_ctx_new();
	struct bmap_source *src = NULL;
	int r;

	/* Facts only: a cut image still gets its map shown. */
	bmap_ctx_set_check_whole(quiet, false);
	r = quiet ? bmap_source_open(quiet, path, &src) : -ENOMEM;

	if (r < 0) {
		error("%s", quiet ? bmap_ctx_get_error(quiet) : "out of memory");
		bmap_ctx_free(quiet);
		return r;
	}
	ret->comp = bmap_source_get_compression(src);
	ret->container = bmap_source_get_container(src);
	if (ret->container != BMAP_CONTAINER_NONE) {
		ret->member = strdup(bmap_source_get_member(src));
		ret->size_known = bmap_source_get_member_size(src, &ret->member_size);
	}
	bmap_source_free(src);
	bmap_ctx_free(quiet);
	if (ret->container != BMAP_CONTAINER_NONE && !ret->member) {
		error("out of memory");
		return -ENOMEM;
	}
	return 0;
}

/* An image URL's compression (from its first bytes: one request, cut off
 * there) and its bmap's location (--bmap, or discovered). Prints what went
 * wrong. */
static int url_facts(struct bmap_ctx *ctx, const char *image, const char *bmap_arg,
		     enum bmap_compression *ret_comp, char **ret_bmap)
{
	struct bmap_source *src = NULL;
	_cleanup_free_ char *name = shown(image);
	int r;

	r = bmap_source_open_cancel(ctx, image, interrupt_fd(), &src);
	if (r < 0) {
		error("%s", bmap_ctx_get_error(ctx));
		return r;
	}
	*ret_comp = bmap_source_get_compression(src);
	bmap_source_free(src);
	if (bmap_arg) {
		*ret_bmap = strdup(bmap_arg);
		r = *ret_bmap ? 0 : -ENOMEM;
	} else {
		r = bmap_discover_url(ctx, image, ret_bmap);
	}
	if (r == -ENOENT)
		error("no bmap found for %s image '%s' (looked for IMAGE.bmap and the names "
		      "without each extension); give one with --bmap",
		      bmap_compression_name(*ret_comp), name);
	else if (r < 0)
		error("%s", bmap_ctx_get_error(ctx));
	return r;
}

static void json_write_nullable(const char *s)
{
	if (s)
		json_write_string(stdout, s);
	else
		printf("null");
}

/* The text lines about the bmap's signature: none, or its verdict and signer. */
static void print_signature(const struct bmap_sig_result *sig, const char *sig_path)
{
	if (sig->status == BMAP_SIG_NONE) {
		printf("signature:      none\n");
		return;
	}
	printf("signature:      %s (%s)\n", bmap_sig_status_name(sig->status),
	       sig->clearsigned ? "clearsigned" : sig_path ? sig_path : "?");
	if (sig->fingerprint[0])
		printf("signer:         %s\n", sig->fingerprint);
	if (sig->uid[0])
		printf("signer uid:     %s\n", sig->uid);
}

/* "zstd-compressed tar archive" or "zip archive" */
static const char *archive_kind(const struct image_wrap *w, char *buf, size_t size)
{
	if (w->comp == BMAP_COMP_RAW)
		snprintf(buf, size, "%s archive", bmap_container_name(w->container));
	else
		snprintf(buf, size, "%s-compressed %s archive", bmap_compression_name(w->comp),
			 bmap_container_name(w->container));
	return buf;
}

int cmd_info(int argc, char **argv)
{
	struct image_opts o;
	const char *bmap_arg, *image, *source;
	_cleanup_free_ char *bmap_path = NULL, *name = NULL, *bmap_name = NULL;
	_cleanup_free_ char *sig_path = NULL;
	struct bmap_sig_result sig = { .status = BMAP_SIG_NONE };
	struct sig_args sa;
	struct bmap_map *map = NULL;
	struct image_wrap wrap = { .comp = BMAP_COMP_RAW };
	enum bmap_compression comp;
	struct bmap_ctx *ctx;
	char kind[64];
	bool json;
	struct stat st;
	char h1[32], h2[32], sha[65];
	int r, ret = EXIT_FAILURE;

	r = parse_image_opts(CMD_INFO, info_help, argc, argv, &o);
	if (r != ARGS_PARSED)
		return r;
	bmap_arg = o.bmap;
	sa = o.sig;
	json = o.json;
	image = o.args.v[0];
	ctx = ctx_new();
	/* A cut image gets its map shown and a warning (partitions), and gzip
	 * is not decoded once more for it. */
	bmap_ctx_set_check_whole(ctx, false);
	name = shown(image);

	if (bmap_location_is_url(image)) {
		r = url_facts(ctx, image, bmap_arg, &comp, &bmap_path);
		if (r < 0)
			goto out;
		source = bmap_arg ? "given" : "discovered";
		/* It prints what went wrong itself. */
		if (load_bmap(ctx, bmap_path, &sa, &map, &sig, &sig_path) < 0)
			goto out;
		r = 0;
		goto loaded;
	}
	if (stat(image, &st) < 0) {
		error("cannot open image file '%s': %m", image);
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		error("image file '%s' is a directory", image);
		goto out;
	}
	if (!bmap_arg && !sa.bmap_sig && !sa.fingerprint && !sa.keyring) {
		r = format_info(ctx, image, json);
		if (r <= 0) {
			ret = r == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
			goto out;
		}
	}
	r = describe_image(image, &wrap);
	if (r < 0)
		goto out;
	comp = wrap.comp;

	if (bmap_arg) {
		source = "given";
		bmap_path = strdup(bmap_arg);
	} else if (bmap_discover(image, &bmap_path) == 0) {
		source = "discovered";
	} else if (comp == BMAP_COMP_RAW && !wrap.container && S_ISREG(st.st_mode)) {
		source = "computed";
	} else {
		error("no bmap found for %s image '%s' (looked for IMAGE.bmap and the names "
		      "without each extension); give one with --bmap",
		      bmap_compression_name(comp), image);
		goto out;
	}
	if (strcmp(source, "computed") == 0 && (sa.bmap_sig || sa.fingerprint || sa.keyring)) {
		if (sa.bmap_sig)
			error("the bmap signature file was specified, but bmap file was not found");
		else
			error("no signature found but --%s given",
			      sa.fingerprint ? "fingerprint" : "keyring");
		goto out;
	}
	if (strcmp(source, "computed") == 0) {
		_cleanup_close_ int fd = open(image, O_RDONLY | O_CLOEXEC);

		if (fd < 0) {
			error("cannot open image file '%s': %m", image);
			goto out;
		}
		r = bmap_map_from_file(ctx, fd, image, 4096, &map);
	} else {
		if (bmap_arg && strcmp(bmap_arg, image) == 0) {
			error("the bmap file and the image file are the same file '%s'", image);
			goto out;
		}
		/* It prints what went wrong itself. */
		if (load_bmap(ctx, bmap_path, &sa, &map, &sig, &sig_path) < 0)
			goto out;
		r = 0;
	}
loaded:
	if (r < 0) {
		error("%s", bmap_ctx_get_error(ctx));
		goto out;
	}

	uint64_t mapped = bmap_map_get_mapped_blocks(map);
	uint64_t blocks = bmap_map_get_blocks_count(map);
	double pct = blocks ? (double)mapped * 100.0 / (double)blocks : 0;
	const char *cstype = bmap_map_get_checksum_type(map);
	const char *self = !strcmp(source, "computed")       ? "n/a"
			   : bmap_map_has_self_checksum(map) ? "good"
							     : "absent";
	const char *ranges_cs = bmap_map_has_range_checksums(map) ? "every range"
				: cstype && bmap_map_get_range_count(map) &&
						bmap_map_get_range_checksum(map, 0)
					? "some ranges"
					: "none";
	const char *version = bmap_map_get_version(map);

	if (strcmp(source, "computed") == 0)
		sha[0] = '\0';
	else
		hex_encode(bmap_map_get_file_sha256(map), 32, sha);

	if (json) {
		bmap_name = shown(bmap_path ? bmap_path : "");
		printf("{\"image\": ");
		json_write_string(stdout, name);
		printf(", \"compression\": \"%s\", \"container\": ", bmap_compression_name(comp));
		if (wrap.container) {
			printf("\"%s\", \"member\": ", bmap_container_name(wrap.container));
			json_write_string(stdout, wrap.member);
			if (wrap.size_known)
				printf(", \"member_size\": %" PRIu64, wrap.member_size);
			else
				printf(", \"member_size\": null");
		} else {
			printf("null, \"member\": null, \"member_size\": null");
		}
		printf(", \"bmap\": ");
		if (strcmp(source, "computed") == 0)
			printf("null");
		else
			json_write_string(stdout, bmap_name);
		printf(", \"bmap_source\": \"%s\", \"version\": ", source);
		if (*version)
			json_write_string(stdout, version);
		else
			printf("null");
		printf(", \"image_size\": %" PRIu64 ", \"block_size\": %" PRIu32
		       ", \"blocks\": %" PRIu64 ", \"mapped_blocks\": %" PRIu64
		       ", \"mapped_bytes\": %" PRIu64 ", \"mapped_percent\": %.1f"
		       ", \"ranges\": %zu, \"checksum_type\": ",
		       bmap_map_get_image_size(map), bmap_map_get_block_size(map), blocks, mapped,
		       bmap_map_get_mapped_bytes(map), pct, bmap_map_get_range_count(map));
		if (cstype)
			json_write_string(stdout, cstype);
		else
			printf("null");
		printf(", \"range_checksums\": \"%s\", \"bmap_checksum\": \"%s\", "
		       "\"bmap_sha256\": ",
		       ranges_cs, self);
		if (sha[0])
			printf("\"%s\"", sha);
		else
			printf("null");
		printf(", \"signature\": \"%s\", \"signature_file\": ",
		       bmap_sig_status_name(sig.status));
		json_write_nullable(sig_path);
		printf(", \"clearsigned\": %s, \"signer_fingerprint\": ",
		       sig.clearsigned ? "true" : "false");
		json_write_nullable(sig.fingerprint[0] ? sig.fingerprint : NULL);
		printf(", \"signer_uid\": ");
		json_write_nullable(sig.uid[0] ? sig.uid : NULL);
		info_partitions(ctx, image, map, true);
		printf("}\n");
	} else {
		bmap_name = shown(bmap_path ? bmap_path : "");
		printf("image:          %s\n", name);
		printf("compression:    %s\n", bmap_compression_name(comp));
		if (wrap.container)
			printf("archive:        %s, member '%s'\n",
			       archive_kind(&wrap, kind, sizeof(kind)), wrap.member);
		if (strcmp(source, "computed") == 0)
			printf("bmap:           none; computed from the holes of the image\n");
		else
			printf("bmap:           %s (%s)\n", bmap_name, source);
		if (*version)
			printf("format version: %s\n", version);
		printf("image size:     %" PRIu64 " bytes (%s)\n", bmap_map_get_image_size(map),
		       human_size(bmap_map_get_image_size(map), h1));
		printf("block size:     %" PRIu32 " bytes\n", bmap_map_get_block_size(map));
		printf("blocks:         %" PRIu64 "\n", blocks);
		printf("mapped:         %" PRIu64 " blocks, %s, %.1f%%\n", mapped,
		       human_size(bmap_map_get_mapped_bytes(map), h2), pct);
		printf("ranges:         %zu\n", bmap_map_get_range_count(map));
		printf("checksum type:  %s (%s)\n", cstype ? cstype : "none", ranges_cs);
		printf("bmap checksum:  %s\n", self);
		if (sha[0])
			printf("bmap sha256:    %s\n", sha);
		print_signature(&sig, sig_path);
		info_partitions(ctx, image, map, false);
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		error("cannot write to standard output: %m");
		goto out;
	}
	ret = EXIT_SUCCESS;
out:
	free(wrap.member);
	bmap_map_free(map);
	bmap_ctx_free(ctx);
	image_opts_done(&o);
	return ret;
}
