/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The one renderer of rows: aligned tables made safe for a terminal, CSV
 * records, streamed JSON arrays. It knows nothing of the journal; report.c
 * and journal-live.c hand it values.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sanitize.h"
#include "table.h"
#include "util.h"

struct table {
	const struct table_col *cols;
	size_t n_cols;
	struct table_cell *cells; /* rows * n_cols */
	size_t rows, cap;
	size_t *width;
	const char *sep;
};

int table_cell_set(struct table_cell *c, const unsigned char *s, size_t n, size_t max)
{
	size_t len = (s ? n : 1) + 4;

	c->text = malloc(len);
	if (!c->text)
		return -ENOMEM;
	c->width = sanitize(c->text, len, (const char *)s, n, max, true);
	return 0;
}

int table_new(const struct table_col *cols, size_t n_cols, const char *sep, struct table **ret)
{
	struct table *t;

	if (!cols || !n_cols || !ret)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->width = calloc(n_cols, sizeof(*t->width));
	if (!t->width) {
		free(t);
		return -ENOMEM;
	}
	t->cols = cols;
	t->n_cols = n_cols;
	t->sep = sep ? sep : "  ";
	for (size_t c = 0; c < n_cols; c++)
		t->width[c] = strlen(cols[c].title) > cols[c].min ? strlen(cols[c].title) : cols[c].min;
	*ret = t;
	return 0;
}

void table_free(struct table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->rows * t->n_cols; i++)
		free(t->cells[i].text);
	free(t->cells);
	free(t->width);
	free(t);
}

int table_add_row(struct table *t, const struct table_value *v)
{
	struct table_cell *row;

	if (t->rows == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 64;
		struct table_cell *n = reallocarray(t->cells, cap * t->n_cols, sizeof(*n));

		if (!n)
			return -ENOMEM;
		t->cells = n;
		t->cap = cap;
	}
	row = &t->cells[t->rows * t->n_cols];
	for (size_t c = 0; c < t->n_cols; c++) {
		if (table_cell_set(&row[c], v[c].s, v[c].n, t->cols[c].max) < 0) {
			/* The row is not counted: free what it has so far. */
			for (size_t i = 0; i < c; i++)
				free(row[i].text);
			return -ENOMEM;
		}
	}
	for (size_t c = 0; c < t->n_cols; c++)
		if (row[c].width > t->width[c])
			t->width[c] = row[c].width;
	t->rows++;
	return 0;
}

static void table_print_cell(FILE *out, const char *text, size_t w, const struct table_col *col,
			     size_t width, bool last)
{
	size_t pad = width - w;

	if (col->right)
		fprintf(out, "%*s", (int)pad, "");
	fputs(text, out);
	if (!col->right && !last)
		fprintf(out, "%*s", (int)pad, "");
}

void table_print(const struct table *t, FILE *out)
{
	size_t last = t->n_cols - 1;

	for (size_t c = 0; c < t->n_cols; c++) {
		if (c)
			fputs(t->sep, out);
		table_print_cell(out, t->cols[c].title, strlen(t->cols[c].title), &t->cols[c],
				 t->width[c], c == last);
	}
	fputc('\n', out);
	for (size_t row = 0; row < t->rows; row++) {
		for (size_t c = 0; c < t->n_cols; c++) {
			const struct table_cell *cell = &t->cells[row * t->n_cols + c];

			if (c)
				fputs(t->sep, out);
			table_print_cell(out, cell->text, cell->width, &t->cols[c], t->width[c],
					 c == last);
		}
		fputc('\n', out);
	}
}

/* What spreadsheets take for the start of a formula (OWASP, CSV injection). */
static bool csv_formula(const unsigned char *s, size_t n)
{
	return n > 0 && (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' ||
			 s[0] == '\t' || s[0] == '\r');
}

/* RFC 4180: quoted when needed, quotes doubled; @defuse: a ' in front. */
static void csv_field(FILE *out, const unsigned char *s, size_t n, bool defuse)
{
	bool quote = false;

	if (!s)
		return;
	for (size_t i = 0; i < n; i++)
		if (s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n')
			quote = true;
	if (quote)
		fputc('"', out);
	if (defuse)
		fputc('\'', out);
	if (!quote) {
		fwrite(s, 1, n, out);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"')
			fputc('"', out);
		fputc(s[i], out);
	}
	fputc('"', out);
}

void table_csv_row(FILE *out, const struct table_value *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (i)
			fputc(',', out);
		csv_field(out, v[i].s, v[i].n, !v[i].number && csv_formula(v[i].s, v[i].n));
	}
	fputc('\n', out);
}

void table_json_begin(struct table_json *js, FILE *out, const char *indent)
{
	*js = (struct table_json){ .out = out, .indent = indent ? indent : "", .first = true };
	fputc('[', out);
}

void table_json_add(struct table_json *js, const char *element, size_t len)
{
	fputs(js->first ? "\n" : ",\n", js->out);
	fputs(js->indent, js->out);
	fwrite(element, 1, len, js->out);
	js->first = false;
}

void table_json_end(struct table_json *js)
{
	fputs(js->first ? "]\n" : "\n]\n", js->out);
}
