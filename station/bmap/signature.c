/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Signed bmaps: verifying a bmap's bytes against a clearsigned or detached
 * OpenPGP signature through GPGME (never a shell-out to gpg), and the
 * verdict: signed or not, valid, by whom, or precisely why not.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <gpgme.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "bmap-private.h"
#include "util.h"

#define CLEAR_MARK "-----BEGIN PGP SIGNED MESSAGE-----"
#define SIG_MARK "-----BEGIN PGP SIGNATURE-----"

static const char *const status_names[] = {
	[BMAP_SIG_NONE] = "none",
	[BMAP_SIG_UNCHECKED] = "unchecked",
	[BMAP_SIG_VALID] = "valid",
	[BMAP_SIG_BAD] = "bad",
	[BMAP_SIG_NO_KEY] = "unknown key",
	[BMAP_SIG_KEY_EXPIRED] = "expired key",
	[BMAP_SIG_KEY_REVOKED] = "revoked key",
	[BMAP_SIG_SIG_EXPIRED] = "expired signature",
	[BMAP_SIG_UNTRUSTED] = "untrusted key",
	[BMAP_SIG_WRONG_SIGNER] = "wrong signer",
	[BMAP_SIG_NOT_SIGNATURE] = "not a signature",
	[BMAP_SIG_MISSING] = "missing",
};

const char *bmap_sig_status_name(enum bmap_sig_status s)
{
	return (size_t)s < ARRAY_SIZE(status_names) && status_names[s] ? status_names[s] : "?";
}

bool bmap_sig_is_clearsigned(const void *bmap, size_t len)
{
	const char *b = bmap;
	size_t n = strlen(CLEAR_MARK);

	/* The marker and the end of its line (trailing blanks allowed). */
	if (len < n || memcmp(b, CLEAR_MARK, n) != 0)
		return false;
	while (n < len && (b[n] == ' ' || b[n] == '\t'))
		n++;
	return n == len || b[n] == '\n' || b[n] == '\r';
}

bool bmap_sig_file_is_clearsigned(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	char head[64];
	struct stat st;
	ssize_t n;

	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return false;
	n = loop_read(fd, head, sizeof(head));
	return n > 0 && bmap_sig_is_clearsigned(head, (size_t)n);
}

int bmap_sig_discover(const char *bmap_path, char **ret_path)
{
	static const char *const exts[] = { ".asc", ".sig" };

	for (size_t i = 0; i < ARRAY_SIZE(exts); i++) {
		char *cand;
		struct stat st;

		if (asprintf(&cand, "%s%s", bmap_path, exts[i]) < 0)
			return -ENOMEM;
		if (stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
			*ret_path = cand;
			return 0;
		}
		free(cand);
	}
	return -ENOENT;
}

/* The next line of @d from *@pos: its start and length without the line end. */
static bool next_line(const char *d, size_t len, size_t *pos, const char **ret, size_t *ret_len)
{
	const char *nl;
	size_t n;

	if (*pos >= len)
		return false;
	nl = memchr(d + *pos, '\n', len - *pos);
	n = nl ? (size_t)(nl - (d + *pos)) : len - *pos;
	*ret = d + *pos;
	*pos += n + (nl ? 1 : 0);
	if (n && (*ret)[n - 1] == '\r')
		n--;
	*ret_len = n;
	return true;
}

int bmap_sig_clear_text(struct bmap_ctx *ctx, const char *name, const void *doc, size_t len,
			void **ret_text, size_t *ret_len)
{
	const char *d = doc, *line;
	size_t pos = 0, n, out_len = 0;
	_cleanup_free_ char *out = NULL;
	bool headers = true, ended = false;

	if (!bmap_sig_is_clearsigned(doc, len))
		return bmap_error(ctx, -EINVAL, "bmap file '%s' is not a clearsigned document", name);
	out = malloc(len + 1);
	if (!out)
		return -ENOMEM;
	next_line(d, len, &pos, &line, &n); /* the marker */
	while (next_line(d, len, &pos, &line, &n)) {
		if (headers) {
			/* "Hash: SHA512" and such, up to an empty line. */
			if (n == 0)
				headers = false;
			else if (!memchr(line, ':', n))
				return bmap_error(ctx, -EBADMSG,
						  "bmap file '%s': the clearsigned document's "
						  "armor headers do not end with an empty line",
						  name);
			continue;
		}
		if (n >= strlen(SIG_MARK) && memcmp(line, SIG_MARK, strlen(SIG_MARK)) == 0) {
			ended = true;
			break;
		}
		if (n >= 2 && line[0] == '-' && line[1] == ' ') {
			line += 2;
			n -= 2;
		}
		/* As gpg outputs it: trailing blanks are not signed. */
		while (n && (line[n - 1] == ' ' || line[n - 1] == '\t'))
			n--;
		memcpy(out + out_len, line, n);
		out_len += n;
		out[out_len++] = '\n';
	}
	if (!ended)
		return bmap_error(ctx, -EBADMSG,
				  "bmap file '%s' is clearsigned but its signature block (\"%s\") "
				  "is missing: the file is truncated",
				  name, SIG_MARK);
	*ret_text = out;
	out = NULL;
	*ret_len = out_len;
	return 0;
}

/* ---- GPGME ---------------------------------------------------------------- */

static pthread_once_t gpgme_once = PTHREAD_ONCE_INIT;
static gpgme_error_t gpgme_init_err;

static void gpgme_init(void)
{
	/* Must run once before any other GPGME call (it sets up its locks). */
	if (!gpgme_check_version(NULL))
		gpgme_init_err = gpg_error(GPG_ERR_NOT_INITIALIZED);
	else
		gpgme_init_err = gpgme_engine_check_version(GPGME_PROTOCOL_OpenPGP);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

/* A private GNUPGHOME: gpg.conf trusting every key there (as gpgv trusts its
 * keyring) and never starting an agent or dirmngr, which could outlive us. */
static int make_home(struct bmap_ctx *ctx, char **ret_home)
{
	const char *tmp = getenv("TMPDIR");
	_cleanup_free_ char *home = NULL, *conf = NULL;
	FILE *f;

	if (asprintf(&home, "%s/bmap-gnupg.XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0)
		return -ENOMEM;
	if (!mkdtemp(home))
		return bmap_error(ctx, -errno, "cannot make a private GnuPG home in '%s': %m",
				  tmp && *tmp ? tmp : "/tmp");
	if (asprintf(&conf, "%s/gpg.conf", home) < 0) {
		rmdir(home);
		return -ENOMEM;
	}
	f = fopen(conf, "wxe");
	if (!f || fputs("trust-model always\nno-autostart\nno-auto-key-retrieve\n", f) < 0 ||
	    fclose(f) != 0) {
		int r = -errno;

		if (f)
			fclose(f);
		nftw(home, rm_one, 8, FTW_DEPTH | FTW_PHYS);
		return bmap_error(ctx, r ? r : -EIO, "cannot write '%s': %m", conf);
	}
	*ret_home = home;
	home = NULL;
	return 0;
}

static void remove_home(char *home)
{
	if (home)
		nftw(home, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	free(home);
}

/* The default keyring's home, if it exists: gpg would create it otherwise. */
static bool default_home_exists(void)
{
	const char *h = getenv("GNUPGHOME"), *user = getenv("HOME");
	_cleanup_free_ char *p = NULL;
	struct stat st;

	if (h && *h)
		return stat(h, &st) == 0 && S_ISDIR(st.st_mode);
	if (!user || !*user || asprintf(&p, "%s/.gnupg", user) < 0)
		return false;
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int import_keyring(struct bmap_ctx *ctx, gpgme_ctx_t g, const char *keyring)
{
	_cleanup_free_ void *keys = NULL;
	gpgme_data_t kd = NULL;
	gpgme_import_result_t ir;
	gpgme_error_t e;
	size_t len;
	int r;

	r = bmap_blob_load(ctx, "keyring", keyring, BMAP_SIG_FILE_MAX_SIZE, &keys, &len);
	if (r < 0)
		return r;
	e = gpgme_data_new_from_mem(&kd, keys, len, 0);
	if (!e)
		e = gpgme_op_import(g, kd);
	gpgme_data_release(kd);
	if (e)
		return bmap_error(ctx, -EINVAL, "cannot read the keys of keyring '%s': %s", keyring,
				  gpgme_strerror(e));
	ir = gpgme_op_import_result(g);
	if (!ir || ir->imported + ir->unchanged == 0)
		return bmap_error(ctx, -EINVAL,
				  "keyring '%s' holds no OpenPGP public key (give a keyring "
				  "as 'gpg --export' writes it)",
				  keyring);
	return 0;
}

static bool fpr_equal(const char *want, const char *fpr)
{
	size_t j = 0;

	if (!fpr)
		return false;
	for (size_t i = 0; want[i]; i++) {
		if (want[i] == ' ')
			continue;
		if (!fpr[j] || strncasecmp(&want[i], &fpr[j], 1) != 0)
			return false;
		j++;
	}
	return j > 0 && !fpr[j];
}

static enum bmap_sig_status status_of(gpgme_signature_t s, bool keyring)
{
	switch (gpg_err_code(s->status)) {
	case GPG_ERR_NO_ERROR:
		/* A keyring's keys are all trusted (gpgv's rule); the default
		 * keyring's key must be valid there, as the reference wants. */
		if (keyring || (s->summary & GPGME_SIGSUM_VALID) ||
		    s->validity >= GPGME_VALIDITY_FULL)
			return BMAP_SIG_VALID;
		return BMAP_SIG_UNTRUSTED;
	case GPG_ERR_NO_PUBKEY:
		return BMAP_SIG_NO_KEY;
	case GPG_ERR_KEY_EXPIRED:
		return BMAP_SIG_KEY_EXPIRED;
	case GPG_ERR_CERT_REVOKED:
		return BMAP_SIG_KEY_REVOKED;
	case GPG_ERR_SIG_EXPIRED:
		return BMAP_SIG_SIG_EXPIRED;
	default:
		return BMAP_SIG_BAD;
	}
}

static const char *reason_of(enum bmap_sig_status st)
{
	switch (st) {
	case BMAP_SIG_BAD:
		return "the signature does not match the bmap's bytes (the bmap was changed "
		       "after it was signed, or the signature is for another file)";
	case BMAP_SIG_NO_KEY:
		return "the signer's key is not in the keyring";
	case BMAP_SIG_KEY_EXPIRED:
		return "the signer's key has expired";
	case BMAP_SIG_KEY_REVOKED:
		return "the signer's key was revoked";
	case BMAP_SIG_SIG_EXPIRED:
		return "the signature has expired";
	default:
		return bmap_sig_status_name(st);
	}
}

/* Whether signature @s is by one of the wanted keys: its signing key, or
 * the primary key that holds it. */
static bool wanted(const struct bmap_sig_opts *o, gpgme_signature_t s, gpgme_key_t key)
{
	if (!o->n_fingerprints)
		return true;
	for (size_t i = 0; i < o->n_fingerprints; i++)
		if (fpr_equal(o->fingerprints[i], s->fpr) ||
		    (key && fpr_equal(o->fingerprints[i], key->fpr)))
			return true;
	return false;
}

static void fill_signer(struct bmap_sig_result *res, gpgme_signature_t s, gpgme_key_t key)
{
	snprintf(res->fingerprint, sizeof(res->fingerprint), "%s", s->fpr ? s->fpr : "");
	for (char *p = res->fingerprint; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	res->uid[0] = '\0';
	if (key && key->uids && key->uids->uid)
		snprintf(res->uid, sizeof(res->uid), "%s", key->uids->uid);
}

/* Picks the verdict from the signatures: the first valid one by a wanted
 * signer; else a valid one by someone else (WRONG_SIGNER); else the first's
 * failure. */
static int judge(struct bmap_ctx *ctx, gpgme_ctx_t g, gpgme_verify_result_t vr,
		 const struct bmap_sig_opts *o, const char *what, struct bmap_sig_result *res)
{
	gpgme_signature_t first = vr ? vr->signatures : NULL, other = NULL;
	enum bmap_sig_status fst = BMAP_SIG_NOT_SIGNATURE;
	char others[512] = "";
	size_t olen = 0;

	if (!first) {
		res->status = BMAP_SIG_NOT_SIGNATURE;
		return bmap_error(ctx, -EBADMSG,
				  "discovered a BAD GPG signature: %s holds no OpenPGP signature",
				  what);
	}
	for (gpgme_signature_t s = first; s; s = s->next) {
		enum bmap_sig_status st = status_of(s, o->keyring != NULL);
		gpgme_key_t key = NULL;
		bool ok;

		if (s == first)
			fst = st;
		if (st != BMAP_SIG_VALID)
			continue;
		if (gpgme_get_key(g, s->fpr, &key, 0) != 0)
			key = NULL;
		ok = wanted(o, s, key);
		if (ok)
			fill_signer(res, s, key);
		else if (!other)
			other = s;
		if (!ok && olen < sizeof(others))
			olen += (size_t)snprintf(others + olen, sizeof(others) - olen, "%s%s",
						 olen ? ", " : "", s->fpr ? s->fpr : "?");
		gpgme_key_unref(key);
		if (ok) {
			res->status = BMAP_SIG_VALID;
			return 0;
		}
	}
	if (other) {
		gpgme_key_t key = NULL;

		if (gpgme_get_key(g, other->fpr, &key, 0) != 0)
			key = NULL;
		fill_signer(res, other, key);
		gpgme_key_unref(key);
		res->status = BMAP_SIG_WRONG_SIGNER;
		return bmap_error(ctx, -EBADMSG,
				  "requested fingerprint %s did not sign the bmap file (%s); it "
				  "is signed by %s only",
				  o->fingerprints[0], what, others);
	}
	fill_signer(res, first, NULL);
	res->status = fst;
	if (fst == BMAP_SIG_UNTRUSTED)
		return bmap_error(ctx, -EBADMSG,
				  "signature verification failed (fingerprint %s): %s is signed by "
				  "a key that is not valid in the default keyring (certify or trust "
				  "it, or give --keyring). Either fix the problem or use "
				  "--no-sig-verify to disable signature verification",
				  res->fingerprint, what);
	return bmap_error(ctx, -EBADMSG, "discovered a BAD GPG signature: %s: %s (key %s)", what,
			  reason_of(fst), res->fingerprint[0] ? res->fingerprint : "unknown");
}

static int verify_gpgme(struct bmap_ctx *ctx, const char *bmap_name, const void *bmap,
			size_t bmap_len, const char *sig_name, const void *sig, size_t sig_len,
			const struct bmap_sig_opts *o, struct bmap_sig_result *res, void **ret_xml,
			size_t *ret_xml_len)
{
	gpgme_ctx_t g = NULL;
	gpgme_data_t sd = NULL, td = NULL, pd = NULL;
	char *home = NULL, what[2 * PATH_MAX + 64];
	gpgme_error_t e;
	int r;

	if (sig)
		snprintf(what, sizeof(what), "signature file '%s' of bmap file '%s'", sig_name,
			 bmap_name);
	else
		snprintf(what, sizeof(what), "clearsigned bmap file '%s'", bmap_name);
	pthread_once(&gpgme_once, gpgme_init);
	if (gpgme_init_err)
		return bmap_error(ctx, -ENOPKG,
				  "cannot verify the signature of bmap file '%s': GnuPG (gpg) is "
				  "not usable here: %s; install gpg, or use --no-sig-verify",
				  bmap_name, gpgme_strerror(gpgme_init_err));
	e = gpgme_new(&g);
	if (e)
		return bmap_error(ctx, -ENOMEM, "cannot start GPGME: %s", gpgme_strerror(e));
	if (o->keyring || !default_home_exists()) {
		r = make_home(ctx, &home);
		if (r < 0)
			goto out;
		e = gpgme_ctx_set_engine_info(g, GPGME_PROTOCOL_OpenPGP, NULL, home);
		if (e) {
			r = bmap_error(ctx, -EIO, "cannot point GPGME at '%s': %s", home,
				       gpgme_strerror(e));
			goto out;
		}
	}
	if (o->keyring) {
		r = import_keyring(ctx, g, o->keyring);
		if (r < 0)
			goto out;
	}
	e = gpgme_data_new_from_mem(sig ? &sd : &td, sig ? sig : bmap, sig ? sig_len : bmap_len, 0);
	if (!e && sig)
		e = gpgme_data_new_from_mem(&td, bmap, bmap_len, 0);
	if (!e && !sig)
		e = gpgme_data_new(&pd);
	if (e) {
		r = bmap_error(ctx, -ENOMEM, "out of memory verifying %s", what);
		goto out;
	}
	e = sig ? gpgme_op_verify(g, sd, td, NULL) : gpgme_op_verify(g, td, NULL, pd);
	if (gpg_err_code(e) == GPG_ERR_NO_DATA) {
		res->status = BMAP_SIG_NOT_SIGNATURE;
		r = bmap_error(ctx, -EBADMSG,
			       "discovered a BAD GPG signature: %s holds no OpenPGP signature", what);
		goto out;
	}
	if (e) {
		r = bmap_error(ctx, -EIO, "failure when trying to verify GPG signature: %s: %s", what,
			       gpgme_strerror(e));
		goto out;
	}
	r = judge(ctx, g, gpgme_op_verify_result(g), o, what, res);
	if (r < 0)
		goto out;
	if (pd) {
		size_t n;
		char *p = gpgme_data_release_and_get_mem(pd, &n);

		pd = NULL;
		*ret_xml = malloc(n ? n : 1);
		if (!*ret_xml) {
			gpgme_free(p);
			r = -ENOMEM;
			goto out;
		}
		memcpy(*ret_xml, p, n);
		*ret_xml_len = n;
		gpgme_free(p);
	} else {
		*ret_xml = malloc(bmap_len ? bmap_len : 1);
		if (!*ret_xml) {
			r = -ENOMEM;
			goto out;
		}
		memcpy(*ret_xml, bmap, bmap_len);
		*ret_xml_len = bmap_len;
	}
	r = 0;
out:
	gpgme_data_release(pd);
	gpgme_data_release(td);
	gpgme_data_release(sd);
	gpgme_release(g);
	remove_home(home);
	return r;
}

/* GPGME writes to gpg through pipes: a gpg that dies early would end the
 * caller by SIGPIPE. Blocked in this thread while it runs, and a SIGPIPE
 * raised meanwhile taken off before the old mask is back. */
static int verify_no_sigpipe(struct bmap_ctx *ctx, const char *bmap_name, const void *bmap,
			     size_t bmap_len, const char *sig_name, const void *sig, size_t sig_len,
			     const struct bmap_sig_opts *o, struct bmap_sig_result *res,
			     void **ret_xml, size_t *ret_xml_len)
{
	const struct timespec zero = { 0 };
	sigset_t pipe_set, old;
	int r;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	r = verify_gpgme(ctx, bmap_name, bmap, bmap_len, sig_name, sig, sig_len, o, res, ret_xml,
			 ret_xml_len);
	if (!sigismember(&old, SIGPIPE)) {
		while (sigtimedwait(&pipe_set, NULL, &zero) > 0)
			;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	return r;
}

int bmap_sig_verify(struct bmap_ctx *ctx, const char *bmap_name, const void *bmap,
		    size_t bmap_len, const char *sig_name, const void *sig, size_t sig_len,
		    const struct bmap_sig_opts *opts, struct bmap_sig_result *result,
		    void **ret_xml, size_t *ret_xml_len)
{
	static const struct bmap_sig_opts none = { 0 };
	const struct bmap_sig_opts *o = opts ? opts : &none;
	bool clear = bmap_sig_is_clearsigned(bmap, bmap_len);
	void *copy;

	*result = (struct bmap_sig_result){ .clearsigned = clear };
	if (clear && sig)
		return bmap_error(ctx, -EINVAL,
				  "bmap file '%s' is clearsigned: it needs no detached signature "
				  "('%s')",
				  bmap_name, sig_name);
	if (o->no_verify && clear) {
		int r = bmap_sig_clear_text(ctx, bmap_name, bmap, bmap_len, ret_xml, ret_xml_len);

		if (r >= 0)
			result->status = BMAP_SIG_UNCHECKED;
		return r;
	}
	if (!o->no_verify && (clear || sig))
		return verify_no_sigpipe(ctx, bmap_name, bmap, bmap_len, sig_name, sig, sig_len, o,
					 result, ret_xml, ret_xml_len);
	if (o->required && !o->no_verify) {
		result->status = BMAP_SIG_MISSING;
		return bmap_error(ctx, -EBADMSG,
				  "no signature found for bmap file '%s' (looked for '%s.asc' and "
				  "'%s.sig'), but a signature is required",
				  bmap_name, bmap_name, bmap_name);
	}
	copy = malloc(bmap_len ? bmap_len : 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, bmap, bmap_len);
	*ret_xml = copy;
	*ret_xml_len = bmap_len;
	return 0;
}
