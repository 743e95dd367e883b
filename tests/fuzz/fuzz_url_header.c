/* Fuzz target: the response header lines a server sends (url.c's
 * url_header_line: the status line's reason, Content-Range, Accept-Ranges),
 * split at '\n' as libcurl hands them; the reason kept must be printable
 * and NUL-terminated within its buffer, a range taken only when parsed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct url_xfer x;
	size_t start = 0;

	url_xfer_reset(&x);
	while (start < size) {
		const uint8_t *nl = memchr(data + start, '\n', size - start);
		size_t len = nl ? (size_t)(nl - (data + start)) + 1 : size - start;
		/* libcurl's buffer is not NUL-terminated: a copy that is not. */
		char *line = malloc(len ? len : 1);

		if (!line)
			abort();
		memcpy(line, data + start, len);
		url_header_line(&x, line, len);
		free(line);
		start += len;
		if (memchr(x.reason, '\0', sizeof(x.reason)) == NULL)
			abort();
		for (const char *p = x.reason; *p; p++)
			if (*p < 0x20 || *p >= 0x7f)
				abort();
	}
	return 0;
}
