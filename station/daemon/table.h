/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The one renderer of what the station prints as rows (reports, history,
 * status): an aligned table for a terminal, CSV, or a streamed JSON array
 * (as systemd's format-table.c serves every systemctl listing).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* One value of a row: @n bytes at @s (NULL: none, SQL NULL). */
struct table_value {
	const unsigned char *s;
	size_t n;
	bool number; /* not text: a CSV cell of it is never neutralised */
};

/* A column of an aligned table. */
struct table_col {
	const char *title;
	size_t max; /* display columns, an ellipsis included */
	bool right;
	size_t min; /* at least this wide, so that a listing redrawn keeps its place */
};

/* A value made safe for a terminal (sanitize()) and cut to @max code points. */
struct table_cell {
	char *text;
	size_t width;
};
int table_cell_set(struct table_cell *c, const unsigned char *s, size_t n, size_t max);

/*
 * An aligned table: every cell made safe and cut to its column's width,
 * columns as wide as their widest cell (or their minimum), @sep apart (NULL:
 * two spaces), the last one not padded. Rows are kept until table_print().
 */
struct table;
int table_new(const struct table_col *cols, size_t n_cols, const char *sep, struct table **ret);
/* @v holds one value per column. */
int table_add_row(struct table *t, const struct table_value *v);
/* Write errors show in ferror(@out). */
void table_print(const struct table *t, FILE *out);
void table_free(struct table *t);

/*
 * One CSV record (RFC 4180: quoted when needed, quotes doubled, LF) of @n
 * values. A text value that a spreadsheet would take for a formula (it
 * starts with =, +, -, @, a tab or a CR) gets a ' in front, as OWASP
 * advises against CSV injection: a device string is never run as one.
 */
void table_csv_row(FILE *out, const struct table_value *v, size_t n);

/* A JSON array written one element (a JSON text made elsewhere) at a time. */
struct table_json {
	FILE *out;
	const char *indent; /* before each element */
	bool first;
};
void table_json_begin(struct table_json *js, FILE *out, const char *indent);
void table_json_add(struct table_json *js, const char *element, size_t len);
void table_json_end(struct table_json *js);
