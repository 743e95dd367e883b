/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The outbox's file: job ends the journal refused, kept next to it
 * (JOURNAL.outbox) until they land, so that a daemon killed meanwhile
 * (SIGKILL, a power cut) writes them at its next start instead of marking
 * the jobs interrupted. Append-only, one line per end, fdatasync()ed; a
 * torn last line is ignored; emptied once no end waits any more.
 *
 *   end JOB OUTCOME BYTES FINISHED ERROR DATA READBACK AFTER BEFORE
 *
 * tab-separated; in each field '\\', tab and newline are escaped as "\\\\",
 * "\\t", "\\n", and "\\N" stands for no value.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "outbox-file.h"
#include "util.h"

#define OUTBOX_MAX (16 << 20) /* bytes read back at start */

static void put_field(FILE *f, const char *s)
{
	fputc('\t', f);
	if (!s) {
		fputs("\\N", f);
		return;
	}
	for (; *s; s++)
		if (*s == '\\')
			fputs("\\\\", f);
		else if (*s == '\t')
			fputs("\\t", f);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
}

int outbox_file_append(int fd, int64_t job, const struct job_end *e)
{
	_cleanup_free_ char *line = NULL;
	size_t len = 0;
	FILE *f;

	if (fd < 0)
		return -EBADF;
	f = open_memstream(&line, &len);
	if (!f)
		return -ENOMEM;
	fprintf(f, "end\t%" PRId64 "\t%s\t%" PRIu64, job, outcome_name(e->outcome),
		e->bytes_written);
	put_field(f, e->finished);
	put_field(f, e->error);
	put_field(f, e->data_sha256);
	put_field(f, e->readback_sha256);
	put_field(f, e->content_after);
	put_field(f, e->content_before);
	fputc('\n', f);
	if (fclose(f) != 0)
		return -ENOMEM;
	/* One write() with O_APPEND: a line is whole or, torn by a crash, last. */
	if (loop_write(fd, line, len) < 0 || fdatasync(fd) < 0)
		return -errno;
	return 0;
}

int outbox_file_clear(int fd)
{
	if (fd < 0)
		return 0;
	if (ftruncate(fd, 0) < 0 || fdatasync(fd) < 0)
		return -errno;
	return 0;
}

/* Unescapes one field in place; NULL for "\N". */
static char *get_field(char *s)
{
	char *o = s;

	if (strcmp(s, "\\N") == 0)
		return NULL;
	for (char *i = s; *i; i++) {
		if (*i == '\\' && i[1]) {
			i++;
			*o++ = *i == 't' ? '\t' : *i == 'n' ? '\n' : *i;
		} else {
			*o++ = *i;
		}
	}
	*o = '\0';
	return s;
}

static int parse_line(char *line, outbox_file_fn fn, void *userdata)
{
	char *field[10], *f;
	struct job_end e = {0};
	int64_t job;
	size_t n = 0;

	/* strsep keeps empty fields (an error of ""), strtok would not. */
	while (n < 10 && (f = strsep(&line, "\t")))
		field[n++] = f;
	if (n != 10 || line || strcmp(field[0], "end") != 0)
		return -EINVAL;
	if (sscanf(field[1], "%" SCNd64, &job) != 1 || job <= 0 ||
	    outcome_from_name(field[2], &e.outcome) < 0 ||
	    sscanf(field[3], "%" SCNu64, &e.bytes_written) != 1)
		return -EINVAL;
	e.finished = get_field(field[4]);
	e.error = get_field(field[5]);
	e.data_sha256 = get_field(field[6]);
	e.readback_sha256 = get_field(field[7]);
	e.content_after = get_field(field[8]);
	e.content_before = get_field(field[9]);
	return fn(userdata, job, &e);
}

int outbox_file_read(int fd, outbox_file_fn fn, void *userdata, unsigned *ret_bad)
{
	_cleanup_free_ char *buf = NULL;
	unsigned bad = 0;
	struct stat st;
	ssize_t n;
	char *p, *nl;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size == 0)
		return *ret_bad = 0, 0;
	if (st.st_size > OUTBOX_MAX)
		return -EFBIG;
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	n = loop_pread(fd, buf, (size_t)st.st_size, 0);
	if (n < 0)
		return (int)n;
	buf[n] = '\0';
	for (p = buf; (nl = memchr(p, '\n', (size_t)(buf + n - p))); p = nl + 1) {
		int r;

		*nl = '\0';
		r = parse_line(p, fn, userdata);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			bad++;
	}
	if (p < buf + n)
		bad++; /* a line torn by a crash: never written whole, never acted on */
	*ret_bad = bad;
	return 0;
}
