/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The dashboard's routes: which page answers which path (serve.h).
 */
#include <stddef.h>

#include "serve-internal.h"
#include "serve-pages.h"

const struct serve_route serve_routes[] = {
	{ "/", serve_live_page },
	{ "/api/live", serve_live_json },
	{ "/line", serve_line_page },
	{ "/static/", serve_static },
	{ "/reports", serve_reports_page },
	{ "/history", serve_history_page },
	{ "/charts", serve_charts_page },
	{ "/charts/", serve_chart_svg },
	{ "/metrics", serve_metrics_page },
	{ NULL, NULL },
};
