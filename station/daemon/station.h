/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The station daemon's main loop and the read-only commands built on it. */
#pragma once

#include <stdio.h>

/* Runs the station in the foreground until SIGTERM/SIGINT; returns an exit status. */
int station_run(const char *config_path);
/* Validates the configuration and lists present block disks with the profile
 * each would get, or why it would be refused. Writes nothing. */
int station_check(const char *config_path, FILE *out);
