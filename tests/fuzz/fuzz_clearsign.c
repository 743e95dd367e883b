/* Fuzz target: a clearsigned bmap's text as bmaptool --no-sig-verify and
 * the station take it out of an OpenPGP clearsigned document (signature.c),
 * then the bmap parser on it, on arbitrary bytes. No gpg is run. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bmap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_map *map = NULL;
	void *text = NULL;
	size_t len = 0;
	bool clear = bmap_sig_is_clearsigned(data, size);
	int r = bmap_sig_clear_text(ctx, "fuzz.asc", data, size, &text, &len);

	/* Only a clearsigned document has a text, and the text is never
	 * longer than the document (escapes and blanks only go). */
	if (r == 0 && (!clear || len > size))
		__builtin_trap();
	if (r == 0) {
		if (len && ((const char *)text)[len - 1] != '\n')
			__builtin_trap();
		if (bmap_map_parse(ctx, "fuzz.asc", text, len, &map) == 0)
			bmap_map_free(map);
		free(text);
	}
	bmap_ctx_free(ctx);
	return 0;
}
