/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The dashboard's routes: which page function answers which path. */
#include <stddef.h>

#include "serve-pages.h"
#include "serve.h"

const struct serve_route serve_routes[] = {
	{ "/reports", serve_reports_page },
	{ "/history", serve_history_page },
	{ "/charts", serve_charts_page },
	{ "/charts/", serve_chart_svg },
	{ "/metrics", serve_metrics_page },
	{ NULL, NULL },
};
