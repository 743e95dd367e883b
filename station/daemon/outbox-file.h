/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The outbox's file of job ends that wait for the journal (outbox-file.c). */
#pragma once

#include <stdint.h>

#include "journal.h"

int outbox_file_append(int fd, int64_t job, const struct job_end *e);
int outbox_file_clear(int fd);
/* Calls @fn for every whole, valid line; *@ret_bad counts the others. */
typedef int (*outbox_file_fn)(void *userdata, int64_t job, const struct job_end *e);
int outbox_file_read(int fd, outbox_file_fn fn, void *userdata, unsigned *ret_bad);
