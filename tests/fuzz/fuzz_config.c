/* Fuzz target: the station's configuration parser (libconfig + validation). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[] = "/tmp/fuzz-config.XXXXXX";
	struct station_config *cfg = NULL;
	char *err = NULL;
	int fd = mkstemp(path);

	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
	if (config_load(path, &cfg, &err) == 0) {
		struct device_identity id = { .serial = "x", .bus = "usb", .size = 1ull << 30 };

		config_match(cfg, &id, NULL, NULL);
		config_free(cfg);
	}
	free(err);
	unlink(path);
	return 0;
}
