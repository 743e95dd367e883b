/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The dashboard's report, chart and metrics pages (serve-reports.c,
 * serve-charts.c, serve-metrics.c), as serve-routes.c lists them.
 */
#pragma once

#include "serve.h"

/* /reports: filters as query arguments, a table a page at a time, and
 * format=csv|json: what `report --format csv|json` prints. */
int serve_reports_page(const struct serve_ctx *ctx, const struct serve_request *req,
		       struct serve_reply *reply);
/* /history?serial=SERIAL: as `history SERIAL`, oldest first. */
int serve_history_page(const struct serve_ctx *ctx, const struct serve_request *req,
		       struct serve_reply *reply);
/* /charts: the charts with their text legends; /charts/NAME.svg: one chart. */
int serve_charts_page(const struct serve_ctx *ctx, const struct serve_request *req,
		      struct serve_reply *reply);
int serve_chart_svg(const struct serve_ctx *ctx, const struct serve_request *req,
		    struct serve_reply *reply);
/* /metrics: Prometheus' text exposition format 0.0.4. */
int serve_metrics_page(const struct serve_ctx *ctx, const struct serve_request *req,
		       struct serve_reply *reply);
