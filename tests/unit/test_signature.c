/*
 * Unit tests for signature.c's parsing, no gpg involved: what counts as a
 * clearsigned bmap, the signed text taken out of one (as gpg outputs it),
 * the refusals of a broken one, the verdict without a signature, and the
 * discovery of BMAP.asc, then BMAP.sig.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "bmap.h"

#define MARK "-----BEGIN PGP SIGNED MESSAGE-----"
#define SIG "-----BEGIN PGP SIGNATURE-----\n\niQ==\n-----END PGP SIGNATURE-----\n"

static void test_is_clearsigned(void **state)
{
	(void)state;
	assert_true(bmap_sig_is_clearsigned(MARK "\n", strlen(MARK) + 1));
	assert_true(bmap_sig_is_clearsigned(MARK "\r\n", strlen(MARK) + 2));
	assert_true(bmap_sig_is_clearsigned(MARK "  \n", strlen(MARK) + 3));
	/* The marker must be the whole first line, at its start. */
	assert_false(bmap_sig_is_clearsigned(MARK "X\n", strlen(MARK) + 2));
	assert_false(bmap_sig_is_clearsigned(" " MARK "\n", strlen(MARK) + 2));
	assert_false(bmap_sig_is_clearsigned("<?xml version=\"1.0\"?>", 21));
	assert_false(bmap_sig_is_clearsigned(MARK, strlen(MARK) - 1));
	assert_false(bmap_sig_is_clearsigned("", 0));
}

static char *text_of(const char *doc, int want)
{
	struct bmap_ctx *ctx = bmap_ctx_new();
	void *text = NULL;
	size_t len = 0;
	char *s = NULL;
	int r = bmap_sig_clear_text(ctx, "t.asc", doc, strlen(doc), &text, &len);

	assert_int_equal(r, want);
	if (r == 0) {
		s = malloc(len + 1);
		memcpy(s, text, len);
		s[len] = '\0';
		assert_int_equal(strlen(s), len);
		free(text);
	} else {
		assert_non_null(strstr(bmap_ctx_get_error(ctx), "t.asc"));
	}
	bmap_ctx_free(ctx);
	return s;
}

/* As gpg --decrypt prints the text: dash-escapes removed, trailing blanks
 * cut (they are not signed), CRLF as LF, every line ended by LF. */
static void test_clear_text(void **state)
{
	char *t;

	(void)state;
	t = text_of(MARK "\nHash: SHA512\n\n<bmap>\n- -- dashes\ntrailing  \t\n</bmap>\n" SIG, 0);
	assert_string_equal(t, "<bmap>\n-- dashes\ntrailing\n</bmap>\n");
	free(t);
	t = text_of(MARK "\r\nHash: SHA256\r\n\r\n<bmap>\r\n</bmap>\r\n" SIG, 0);
	assert_string_equal(t, "<bmap>\n</bmap>\n");
	free(t);
	/* Several armor headers; an empty text. */
	t = text_of(MARK "\nHash: SHA256\nCharset: UTF-8\n\n" SIG, 0);
	assert_string_equal(t, "");
	free(t);
}

static void test_clear_text_refusals(void **state)
{
	(void)state;
	/* Not clearsigned at all. */
	assert_null(text_of("<bmap>\n</bmap>\n", -EINVAL));
	/* Cut before its signature block. */
	assert_null(text_of(MARK "\nHash: SHA256\n\n<bmap>\n</bmap>\n", -EBADMSG));
	/* Text where the armor headers should end with an empty line. */
	assert_null(text_of(MARK "\n<bmap>\n" SIG, -EBADMSG));
}

/* Without a signature the bytes are taken as they are; with required, the
 * verdict is MISSING and nothing is returned. No gpg is needed for that. */
static void test_verify_unsigned(void **state)
{
	static const char xml[] = "<bmap version=\"2.0\"></bmap>";
	struct bmap_sig_opts o = {0};
	struct bmap_sig_result res;
	struct bmap_ctx *ctx = bmap_ctx_new();
	void *out = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(bmap_sig_verify(ctx, "b.bmap", xml, strlen(xml), NULL, NULL, 0, &o, &res,
					 &out, &len),
			 0);
	assert_int_equal(res.status, BMAP_SIG_NONE);
	assert_int_equal(len, strlen(xml));
	assert_memory_equal(out, xml, len);
	free(out);
	out = NULL;
	o.required = true;
	assert_int_equal(bmap_sig_verify(ctx, "b.bmap", xml, strlen(xml), NULL, NULL, 0, &o, &res,
					 &out, &len),
			 -EBADMSG);
	assert_int_equal(res.status, BMAP_SIG_MISSING);
	assert_null(out);
	assert_non_null(strstr(bmap_ctx_get_error(ctx), "b.bmap"));
	/* --no-sig-verify on a clearsigned bmap: its text, unchecked. */
	o = (struct bmap_sig_opts){.no_verify = true};
	assert_int_equal(bmap_sig_verify(ctx, "c.asc", MARK "\nHash: SHA256\n\n<bmap>\n" SIG,
					 strlen(MARK "\nHash: SHA256\n\n<bmap>\n" SIG), NULL, NULL, 0,
					 &o, &res, &out, &len),
			 0);
	assert_int_equal(res.status, BMAP_SIG_UNCHECKED);
	assert_true(res.clearsigned);
	assert_int_equal(len, 7);
	assert_memory_equal(out, "<bmap>\n", 7);
	free(out);
	bmap_ctx_free(ctx);
}

static void test_discover(void **state)
{
	char *dir = tu_mkdtemp(), *bmap = tu_path(dir, "d.bmap"), *asc = tu_path(dir, "d.bmap.asc");
	char *sig = tu_path(dir, "d.bmap.sig"), *found = NULL;

	(void)state;
	assert_int_equal(bmap_sig_discover(bmap, &found), -ENOENT);
	tu_truncate(sig, 1);
	assert_int_equal(bmap_sig_discover(bmap, &found), 0);
	assert_string_equal(found, sig);
	free(found);
	tu_truncate(asc, 1);
	assert_int_equal(bmap_sig_discover(bmap, &found), 0);
	assert_string_equal(found, asc);
	free(found);
	tu_rmtree(dir);
	free(dir);
	free(bmap);
	free(asc);
	free(sig);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_is_clearsigned),
		cmocka_unit_test(test_clear_text),
		cmocka_unit_test(test_clear_text_refusals),
		cmocka_unit_test(test_verify_unsigned),
		cmocka_unit_test(test_discover),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
