/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The full-screen live view ('bmap-station watch'). */
#pragma once

struct journal;

/* Runs until 'q', SIGINT, SIGTERM or SIGHUP; restores the terminal. */
int watch_run(struct journal *j);
