/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A hook's keeper (hook-keeper.c): the process between the station and one
 * hook program, and the report it sends the station when the hook and all
 * it started are gone.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define HOOK_OUTPUT_MAX 4096 /* bytes of a hook's output kept for the journal */

/* Written once, as one write, to the keeper's report pipe just before it
 * exits; output_len bytes of output follow the header (no more are sent). */
struct hook_report {
	int wstatus;	    /* the hook program's, as waitpid() gave it */
	bool timed_out;	    /* it still ran at hook_timeout, and was killed */
	uint32_t leftovers; /* processes it left behind, killed at hook_timeout */
	double duration;    /* the hook program's own run, in seconds */
	uint32_t output_len;
	char output[HOOK_OUTPUT_MAX];
};

/* In a child just forked for the hook: runs @argv with @envp as a hook
 * (hook-keeper.c says how), writes a struct hook_report to @report_fd and
 * exits; it never returns. */
__attribute__((noreturn)) void hook_keeper_run(char *const *argv, char *const *envp,
					       unsigned timeout, int report_fd);
