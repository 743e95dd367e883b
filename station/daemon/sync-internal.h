/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What sync's files share: the context of one `bmap-station sync`, and the
 * copy of one batch (sync-pg.c) that the loop (sync.c) repeats.
 */
#pragma once

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "sync.h"

/* How a journal column travels: text (made valid UTF-8, as PostgreSQL
 * requires), a number (doubles at full precision), or bytes (hook output as
 * it was). */
enum col_kind { COL_TEXT, COL_NUM, COL_BYTES };

struct sync_col {
	const char *name; /* in the journal */
	const char *pg;   /* in PostgreSQL, when it differs */
	enum col_kind kind;
};

/* The jobs table's columns but job, in the journal's order. */
extern const struct sync_col sync_job_cols[];
extern const size_t sync_n_job_cols;

/* The central copy's position for one station: the highest job number,
 * hook row and forgotten row copied, committed with the rows. */
struct sync_position {
	int64_t job, hook, forgotten;
};

struct sync_ctx {
	const char *journal_path;
	const char *station;  /* the central name of this station */
	const char *conninfo; /* never logged: shown is */
	char *shown;          /* conninfo without its password */
	char *password;       /* to scrub from libpq's messages, or NULL */
	struct journal *j;
	PGconn *pg;
	char *error;          /* the last failure, password-free */
	struct sync_position pos; /* as last committed */
	int64_t journal_max_job;  /* the journal's newest job at the last batch */
	unsigned copied;          /* rows copied by the last batch */
	bool more;                /* the last batch was cut at its limit */
};

/* Records "what: detail" (password scrubbed) as ctx->error; returns @err. */
int sync_fail(struct sync_ctx *ctx, int err, const char *what, const char *detail);

/* A new connection to @conninfo (never NULL; check PQstatus()), with the
 * defaults sync and the reports share: connect_timeout 10 s. */
PGconn *sync_pg_open(const char *conninfo);

/* Connects (if not connected) and creates or migrates the schema. */
int sync_pg_connect(struct sync_ctx *ctx);
void sync_pg_disconnect(struct sync_ctx *ctx);
/* One batch: rows the central copy lacks or holds as still running, and the
 * new position, in one PostgreSQL transaction. ctx->more when there is more. */
int sync_pg_batch(struct sync_ctx *ctx);
/* Finalizes the journal statements sync-pg.c keeps (before journal_close()). */
void sync_pg_finish(void);

/* Writes JOURNAL.sync (atomically replaced); failures are only logged. */
void sync_state_write(struct sync_ctx *ctx, bool up, const char *down_since);
