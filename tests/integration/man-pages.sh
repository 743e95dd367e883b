#!/bin/bash
# man-pages: the manual pages (deploy/man/*.scd) say what the programs take.
#
# - Every long and short option that `bmaptool --help` and each `bmaptool
#   COMMAND --help` print is a term (a definition line) in bmaptool(1): in
#   the command's own section under COMMANDS, or, for an option the
#   top-level --help prints as well, under OPTIONS; every command the
#   top-level --help lists has its section. The same for bmap-station(8):
#   every option of `bmap-station --help` and `bmap-station COMMAND --help`
#   under OPTIONS, every command under COMMANDS.
# - Every setting the configuration parser accepts is a term in
#   bmap-station.conf(5), in the section of its group. The settings are read
#   from the parser's own tables (the *_keys[] arrays in station/daemon that
#   config_check_members() refuses anything else against), so a key added
#   there without the manual fails here; so does a new table this test does
#   not know, or a config_check_members() call on a table it cannot read.
# - The other way round, every option and key the pages define exists,
#   unless its scdoc source marks it "; issue-11: NAME" (added by issue 11 in
#   other branches): those are listed, not failed, until the code has them.
# - The pages render (scdoc, then man, without a groff warning) and the
#   example configuration of bmap-station.conf(5) loads.
#
# The pages are rendered from the source here, not taken from a build, and
# read at a width no paragraph reaches, so no option is ever split by a
# line break. Needs scdoc and man (deploy/install-deps.sh installs both);
# skips (77) without them. No root, no devices.

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
need_ours
need_cmd scdoc
need_cmd man

SRC=$(cd "${TESTS_DIR:-$(dirname "$0")/..}/.." && pwd)
MAN=$SRC/deploy/man
STATION=${BMAP_STATION:-${BUILD_DIR:+$BUILD_DIR/bmap-station}}

failures=0
bad() { log "FAIL: $*"; failures=$((failures + 1)); }

# render PAGE: deploy/man/PAGE.scd as man shows it, into $TEST_TMP/PAGE.txt.
render() {
	[[ -f $MAN/$1.scd ]] || fail "no source of the manual page $1: $MAN/$1.scd"
	scdoc <"$MAN/$1.scd" >"$TEST_TMP/$1" 2>"$TEST_TMP/$1.err" ||
		fail "scdoc cannot render $1.scd: $(cat "$TEST_TMP/$1.err")"
	LC_ALL=C.UTF-8 MANWIDTH=5000 MAN_KEEP_FORMATTING='' man --warnings -l "$TEST_TMP/$1" \
		>"$TEST_TMP/$1.txt" 2>"$TEST_TMP/$1.err" || fail "man -l cannot show $1"
	[[ -s $TEST_TMP/$1.err ]] && bad "man -l $1 complains: $(head -c 300 "$TEST_TMP/$1.err")"
	[[ $(wc -l <"$TEST_TMP/$1.txt") -gt 20 ]] || fail "man -l shows next to nothing of $1"
}

# terms PAGE SECTION [SUBSECTION]: the definition lines (the terms) of that
# section of the rendered page; with SUBSECTION "*", those of the section and
# all its subsections. A term is at the text's indentation (7), its
# definition right below it at 11; a paragraph has no such line below.
terms() {
	awk -v sh="$2" -v ss="${3:-}" '
		/^[^ ]/ { cur_sh = $0; cur_ss = ""; prev = ""; next }
		/^   [^ ]/ { cur_ss = substr($0, 4); prev = ""; next }
		/^           [^ ]/ && prev != "" { print prev }
		{ prev = "" }
		cur_sh == sh && (ss == "*" || cur_ss == ss) && /^       [^ ]/ { prev = substr($0, 8) }
	' "$TEST_TMP/$1.txt"
}

# subsections PAGE SECTION: the subsection titles of a section.
subsections() {
	awk -v sh="$2" '
		/^[^ ]/ { cur_sh = $0; next }
		cur_sh == sh && /^   [^ ]/ { print substr($0, 4) }
	' "$TEST_TMP/$1.txt"
}

# options: the long and short options in standard input, one a line: a word
# that starts with "--" or is "-" and one letter, after a space, a bracket,
# a bar or a comma (so "read-only" or "'-'" are not options).
options() {
	grep -oE '(^|[][ ,|(])--?[A-Za-z][A-Za-z0-9-]*' | sed -E 's/^[][ ,|(]//' |
		grep -E '^(--[A-Za-z][A-Za-z0-9-]*|-[A-Za-z])$' | sort -u
}

# has LIST WORD: whether WORD is a line of LIST.
has() { grep -qxF -- "$2" <<<"$1"; }

# commands: the command names in a --help on standard input, listed under
# "Commands:" at two spaces' indentation.
commands() {
	awk '/^Commands:/ { on = 1; next } on && /^$/ { exit }
		on && /^  [a-z][a-z-]*( |$)/ { print $1 }'
}

# marked PAGE: the names its source marks "; issue-11: NAME ...".
marked() {
	sed -nE 's/^; issue-11: (.*)$/\1/p' "$MAN/$1.scd" | tr ' ,()' '\n' | grep -v '^$' | sort -u
}

render bmaptool.1
ISSUE11=$(marked bmaptool.1)

# ---- bmaptool(1) --------------------------------------------------------------
main_help=$("$BMAPTOOL" --help) || fail "bmaptool --help failed"
main_opts=$(options <<<"$main_help")
[[ -n $main_opts ]] || fail "no options found in bmaptool --help: $main_help"
tool_commands=$(commands <<<"$main_help")
[[ $(wc -l <<<"$tool_commands") -ge 4 ]] || fail "bmaptool --help lists no commands: $main_help"
global_terms=$(terms bmaptool.1 OPTIONS | options)
sections=$(subsections bmaptool.1 COMMANDS)
for opt in $main_opts; do
	has "$global_terms" "$opt" ||
		bad "bmaptool --help prints $opt, but bmaptool(1) does not define it under OPTIONS"
done
for opt in $global_terms; do
	has "$main_opts" "$opt" && continue
	if has "$ISSUE11" "$opt"; then
		log "note: bmaptool(1) OPTIONS defines $opt, marked issue-11, not in bmaptool --help yet"
	else
		bad "bmaptool(1) defines $opt under OPTIONS, but bmaptool --help does not print it"
	fi
done
checked=0
for cmd in $tool_commands; do
	has "$sections" "$cmd" || { bad "bmaptool(1) has no section for the command '$cmd' under COMMANDS"; continue; }
	help=$("$BMAPTOOL" "$cmd" --help) || { bad "bmaptool $cmd --help failed"; continue; }
	opts=$(options <<<"$help")
	[[ -n $opts ]] || bad "no options found in bmaptool $cmd --help"
	cmd_terms=$(terms bmaptool.1 COMMANDS "$cmd" | options)
	for opt in $opts; do
		checked=$((checked + 1))
		has "$cmd_terms" "$opt" && continue
		has "$main_opts" "$opt" && has "$global_terms" "$opt" && continue
		bad "bmaptool $cmd --help prints $opt, but bmaptool(1) does not define it for '$cmd'"
	done
	for opt in $cmd_terms; do
		has "$opts" "$opt" && continue
		if has "$ISSUE11" "$opt"; then
			log "note: bmaptool(1) defines $opt for '$cmd', marked issue-11, not in its --help yet"
		else
			bad "bmaptool(1) defines $opt for '$cmd', but bmaptool $cmd --help does not print it"
		fi
	done
done
for s in $sections; do
	has "$tool_commands" "$s" || bad "bmaptool(1) has a section '$s' under COMMANDS, bmaptool --help no such command"
done
log "bmaptool: $(wc -w <<<"$main_opts") global options and $checked command options in $(wc -w <<<"$tool_commands") commands checked against bmaptool(1)"

# ---- bmap-station(8) and bmap-station.conf(5) -----------------------------------
if [[ -z $STATION || ! -x $STATION ]]; then
	log "bmap-station not built (BMAP_STATION_DAEMON=OFF?): its pages are not checked"
	((failures == 0)) || fail "$failures check(s) failed"
	log "ok"
	exit 0
fi
render bmap-station.8
render bmap-station.conf.5
ISSUE11=$(marked bmap-station.8)

main_help=$("$STATION" --help) || fail "bmap-station --help failed"
station_commands=$(commands <<<"$main_help")
[[ $(wc -l <<<"$station_commands") -ge 8 ]] || fail "bmap-station --help lists no commands: $main_help"
all_opts=$(options <<<"$main_help")
for cmd in $station_commands; do
	help=$("$STATION" "$cmd" --help) || { bad "bmap-station $cmd --help failed"; continue; }
	all_opts=$(printf '%s\n%s\n' "$all_opts" "$(options <<<"$help")" | sort -u)
done
station_terms=$(terms bmap-station.8 OPTIONS '*' | options)
sections=$(subsections bmap-station.8 COMMANDS)
for opt in $all_opts; do
	has "$station_terms" "$opt" ||
		bad "bmap-station --help prints $opt, but bmap-station(8) does not define it under OPTIONS"
done
for opt in $station_terms; do
	has "$all_opts" "$opt" || has "$ISSUE11" "$opt" ||
		bad "bmap-station(8) defines $opt under OPTIONS, but bmap-station --help does not print it"
done
for cmd in $station_commands; do
	has "$sections" "$cmd" || bad "bmap-station(8) has no section for the command '$cmd' under COMMANDS"
done
for s in $sections; do
	has "$station_commands" "$s" || bad "bmap-station(8) has a section '$s', bmap-station --help no such command"
done
log "bmap-station: $(wc -w <<<"$all_opts") options and $(wc -w <<<"$station_commands") commands checked against bmap-station(8)"

# The parser's tables: NAME_keys[] = { "key", ..., NULL } in station/daemon.
# Each is the set of settings of one group; the section of the page that
# documents it:
declare -A SECTION=(
	[root_keys]=DESCRIPTION [station_keys]=STATION [slot_keys]=SLOTS
	[profile_keys]=PROFILES [match_keys]=MATCH [hook_keys]=HOOKS [sync_keys]=SYNC [serve_keys]=SERVE
)
# The tables as "TABLE KEY" lines (whole files joined: a table may span lines).
tables=$(for f in "$SRC"/station/daemon/*.c; do
	tr '\n' ' ' <"$f" | grep -oE 'static const char \*const [a-z_]+_keys\[\] = \{[^}]*\}' |
		sed -E 's/^static const char \*const ([a-z_]+)\[\] = \{(.*)\}$/\1 \2/' |
		awk '{ t = $1; $1 = ""; n = split($0, w, "\""); for (i = 2; i <= n; i += 2) print t, w[i] }'
done)
[[ -n $tables ]] || fail "no *_keys[] tables found in $SRC/station/daemon"
# Every table config_check_members() checks a group against must be one read here.
used=$(cat "$SRC"/station/daemon/*.c | tr '\n' ' ' | grep -oE 'config_check_members\([^;]*\)' |
	grep -v 'struct config_ctx' | sed -E 's/.*, *([A-Za-z_][A-Za-z0-9_]*) *\)$/\1/' | sort -u)
[[ -n $used ]] || fail "no config_check_members() calls found in $SRC/station/daemon"
for t in $used; do
	grep -q "^$t " <<<"$tables" ||
		bad "config_check_members() checks against '$t', a table this test cannot read (not a static NAME_keys[] of strings)"
done
ISSUE11=$(marked bmap-station.conf.5)
nkeys=0
for t in $(cut -d' ' -f1 <<<"$tables" | sort -u); do
	section=${SECTION[$t]:-}
	if [[ -z $section ]]; then
		bad "a new table of settings, $t: say in man-pages.sh (SECTION) which section of bmap-station.conf(5) documents it"
		continue
	fi
	has "$used" "$t" || bad "the table $t is not one config_check_members() checks against"
	keys=$(awk -v t="$t" '$1 == t { print $2 }' <<<"$tables")
	# A term is "key (type, default ...)" or the key alone.
	defined=$(terms bmap-station.conf.5 "$section" | awk '{ print $1 }' | sort -u)
	for k in $keys; do
		nkeys=$((nkeys + 1))
		has "$defined" "$k" ||
			bad "the parser accepts the setting '$k' ($t), but bmap-station.conf(5) does not define it under $section"
	done
	[[ $section == DESCRIPTION ]] && continue # it also defines the value types
	for k in $defined; do
		has "$keys" "$k" && continue
		if has "$ISSUE11" "$k"; then
			log "note: bmap-station.conf(5) defines '$k' under $section, marked issue-11, not in $t yet"
		else
			bad "bmap-station.conf(5) defines '$k' under $section, but the parser's $t has no such setting"
		fi
	done
done
log "bmap-station.conf: $nkeys settings in $(wc -w <<<"${!SECTION[*]}") tables checked against bmap-station.conf(5)"

# The example configuration loads (problems with this machine's files, such
# as the missing image, are not the page's).
awk '/^# EXAMPLE/ { on = 1; next } on && /^```/ { if (++n == 2) exit; next } on && n == 1' \
	"$MAN/bmap-station.conf.5.scd" >"$TEST_TMP/example.conf"
[[ -s $TEST_TMP/example.conf ]] || bad "bmap-station.conf(5) has no example configuration"
"$STATION" check --config "$TEST_TMP/example.conf" >"$TEST_TMP/check.out" 2>"$TEST_TMP/check.err"
head -n 1 "$TEST_TMP/check.out" | grep -q "^configuration $TEST_TMP/example.conf: " ||
	bad "the example of bmap-station.conf(5) does not load: $(head -c 400 "$TEST_TMP/check.err")"

((failures == 0)) || fail "$failures check(s) failed"
log "ok"
