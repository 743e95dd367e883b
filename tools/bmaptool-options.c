/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bmaptool's command lines (see bmaptool.h): options anywhere among the
 * arguments, as the reference's argparse takes them, usage errors in its
 * words, and the one option table of copy, verify and info.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bmaptool.h"
#include "util.h"

/* The option @arg names ("--bmap=x": "--bmap"), for messages. */
static int opt_name_len(const char *arg)
{
	const char *eq = strchr(arg, '=');

	return eq ? (int)(eq - arg) : (int)strlen(arg);
}

/* Whether the long option @name (@len bytes, maybe abbreviated) takes no
 * argument: "--nobmap=x" is then the fault, not a short option after it. */
static bool takes_no_argument(const struct option *longopts, const char *name, int len)
{
	const struct option *found = NULL;
	int matches = 0;

	for (const struct option *o = longopts; o->name; o++) {
		if (strncmp(o->name, name, (size_t)len) != 0)
			continue;
		if (o->name[len] == '\0')
			return o->has_arg == no_argument && o->val == optopt;
		found = o;
		matches++;
	}
	return matches == 1 && found->has_arg == no_argument && found->val == optopt;
}

int usage_bad_option(const char *cmd, int c, char **argv, const struct option *longopts)
{
	/* getopt has moved past the word at fault for any long option; a short
	 * one is named by optopt (it may sit in a cluster such as -qx). */
	const char *last = optind > 0 ? argv[optind - 1] : "";
	bool is_long = strncmp(last, "--", 2) == 0 && last[2];
	int len = is_long ? opt_name_len(last) : 0;

	if (c == ':')
		return is_long ? usage_error(cmd, "argument %.*s: expected one argument", len, last)
			       : usage_error(cmd, "argument -%c: expected one argument", optopt);
	if (is_long && optopt && strchr(last, '=') && takes_no_argument(longopts, last + 2, len - 2))
		return usage_error(cmd, "argument %.*s: ignored explicit argument '%s'", len, last,
				   strchr(last, '=') + 1);
	if (optopt && optopt < 256)
		return usage_error(cmd, "unrecognized arguments: -%c", optopt);
	if (is_long) {
		char could[512] = "";
		size_t n = 0;
		int matches = 0;

		for (const struct option *o = longopts; o->name; o++)
			if (strncmp(o->name, last + 2, (size_t)len - 2) == 0) {
				matches++;
				n += (size_t)snprintf(could + n, n < sizeof(could) ? sizeof(could) - n : 0,
						      "%s--%s", matches > 1 ? ", " : "", o->name);
			}
		if (matches > 1)
			return usage_error(cmd, "ambiguous option: %.*s could match %s", len, last,
					   could);
		return usage_error(cmd, "unrecognized arguments: %.*s", len, last);
	}
	return usage_error(cmd, "unrecognized arguments: %s", last);
}

int parse_cmd_line(const char *cmd, const char *help, int argc, char **argv, const char *shortopts,
		   const struct option *longopts, option_fn fn, void *userdata,
		   struct cmd_args *ret)
{
	/* '-': every positional comes back as option 1, in order, whatever
	 * POSIXLY_CORRECT says; ':': a missing argument is told apart. */
	_cleanup_free_ char *optstring = NULL;
	char **pos = calloc((size_t)argc + 1, sizeof(*pos));
	int c, n = 0;

	if (!pos || asprintf(&optstring, "-:%s", shortopts) < 0) {
		free(pos);
		error("out of memory");
		return EXIT_FAILURE;
	}
	/* 0, not 1: glibc keeps the ordering of an earlier getopt (the
	 * dispatch's "+", which stops at the first positional) until it is
	 * told to start over. */
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, optstring, longopts, NULL)) != -1) {
		int r;

		if (c == 1) {
			pos[n++] = optarg;
			continue;
		}
		if (handle_common(c))
			continue;
		if (c == 'h') {
			free(pos);
			fputs(help, stdout);
			return EXIT_SUCCESS;
		}
		r = c == '?' || c == ':' ? usage_bad_option(cmd, c, argv, longopts)
					 : fn(c, optarg, userdata);
		if (r != ARGS_PARSED) {
			free(pos);
			return r;
		}
	}
	/* After "--": positionals only, even those that start with '-'. */
	while (optind < argc)
		pos[n++] = argv[optind++];
	ret->v = pos;
	ret->n = n;
	return ARGS_PARSED;
}

/* ---- copy, verify and info ---- */

enum {
	OPT_NOBMAP = 256,
	OPT_NO_VERIFY,
	OPT_PSPLASH,
	OPT_REMOVABLE,
	OPT_DISCARD,
	OPT_JSON,
	OPT_BMAP_SIG,
	OPT_KEYRING,
	OPT_FINGERPRINT,
	OPT_NO_SIG_VERIFY,
};

/* Which commands take an option: a new one is a line here and a case in
 * image_option(). Short options: shortopts in parse_image_opts(). */
static const struct image_option {
	struct option opt;
	unsigned cmds;
} image_options[] = {
	{ { "bmap", required_argument, NULL, 'b' }, CMD_COPY | CMD_VERIFY | CMD_INFO },
	{ { "nobmap", no_argument, NULL, OPT_NOBMAP }, CMD_COPY | CMD_VERIFY },
	{ { "no-verify", no_argument, NULL, OPT_NO_VERIFY }, CMD_COPY },
	{ { "psplash-pipe", required_argument, NULL, OPT_PSPLASH }, CMD_COPY },
	{ { "removable-device", no_argument, NULL, OPT_REMOVABLE }, CMD_COPY },
	{ { "discard", no_argument, NULL, OPT_DISCARD }, CMD_COPY },
	{ { "json", no_argument, NULL, OPT_JSON }, CMD_INFO },
	{ URL_LONGOPTS, CMD_COPY | CMD_VERIFY | CMD_INFO },
	{ { "bmap-sig", required_argument, NULL, OPT_BMAP_SIG }, CMD_COPY | CMD_VERIFY | CMD_INFO },
	{ { "keyring", required_argument, NULL, OPT_KEYRING }, CMD_COPY | CMD_VERIFY | CMD_INFO },
	{ { "fingerprint", required_argument, NULL, OPT_FINGERPRINT }, CMD_COPY | CMD_VERIFY | CMD_INFO },
	{ { "no-sig-verify", no_argument, NULL, OPT_NO_SIG_VERIFY }, CMD_COPY | CMD_VERIFY | CMD_INFO },
	{ { "help", no_argument, NULL, 'h' }, CMD_COPY | CMD_VERIFY | CMD_INFO },
	{ { "quiet", no_argument, NULL, 'q' }, CMD_COPY | CMD_VERIFY | CMD_INFO },
	{ { "debug", no_argument, NULL, 'd' }, CMD_COPY | CMD_VERIFY | CMD_INFO },
};

static int image_option(int c, const char *arg, void *userdata)
{
	struct image_opts *o = userdata;

	switch (c) {
	case 'b':
		o->bmap = arg;
		break;
	case OPT_NOBMAP:
		o->nobmap = true;
		break;
	case OPT_NO_VERIFY:
		o->no_verify = true;
		break;
	case OPT_PSPLASH:
		o->psplash = arg;
		break;
	case OPT_REMOVABLE:
		o->removable = true;
		break;
	case OPT_DISCARD:
		o->discard = true;
		break;
	case OPT_JSON:
		o->json = true;
		break;
	case OPT_BMAP_SIG:
		o->sig.bmap_sig = arg;
		break;
	case OPT_KEYRING:
		o->sig.keyring = arg;
		break;
	case OPT_FINGERPRINT:
		o->sig.fingerprint = arg;
		break;
	case OPT_NO_SIG_VERIFY:
		o->sig.no_verify = true;
		break;
	default:
		/* Only what the table holds reaches here. */
		return usage_error(o->cmd, "bad usage");
	}
	return ARGS_PARSED;
}

int parse_image_opts(unsigned which, const char *help, int argc, char **argv,
		     struct image_opts *o)
{
	struct option longopts[ARRAY_SIZE(image_options) + 1] = {};
	size_t n = 0;
	int r;

	*o = (struct image_opts){
		.cmd = which == CMD_COPY ? "copy " : which == CMD_VERIFY ? "verify " : "info ",
	};
	for (size_t i = 0; i < ARRAY_SIZE(image_options); i++)
		if (image_options[i].cmds & which)
			longopts[n++] = image_options[i].opt;
	r = parse_cmd_line(o->cmd, help, argc, argv, "b:hqd", longopts, image_option, o,
			   &o->args);
	if (r != ARGS_PARSED)
		return r;
	r = check_sig_args(o->cmd, &o->sig, o->nobmap);
	if (r) {
		image_opts_done(o);
		return r;
	}
	if (which == CMD_INFO && o->args.n != 1) {
		r = usage_error(o->cmd, o->args.n ? "too many arguments"
						  : "the IMAGE argument is missing");
		image_opts_done(o);
		return r;
	}
	if (which != CMD_INFO) {
		r = check_image_dest_args(o->cmd, o->args.n, o->bmap, o->nobmap);
		if (r) {
			image_opts_done(o);
			return r;
		}
	}
	return ARGS_PARSED;
}

void image_opts_done(struct image_opts *o)
{
	free(o->args.v);
	o->args.v = NULL;
	o->args.n = 0;
}
