#!/bin/bash
# Options anywhere among the arguments, as the reference's argparse takes
# them (`copy IMG DEST --bmap B`, `create IMG -o OUT`, `-q` last), for every
# command, also with POSIXLY_CORRECT set; `--` still ends the options. What
# broke: getopt stopped at the first positional (the dispatch's "+" stayed
# in force), so `copy IMG DEST --bmap B` took '--bmap' and 'B' for two more
# destinations and overwrote the bmap file with the image. And usage errors
# from getopt said `copy:` in getopt's words: they say `bmaptool: error:`,
# in argparse's words, with the --help hint, and exit 2.

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
need_ours

failures=0
bad() { log "FAIL: $*"; failures=$((failures + 1)); }

cd "$TEST_TMP" || fail "cd"
mk_sparse_image img "size=1M data=8K:4K data=300K:20K"
"$BMAPTOOL" create -o img.bmap.orig img 2>/dev/null || fail "create failed"
cp img.bmap.orig b.bmap
want=$(sha256sum <img)

# ok DESC ARGS...: exits 0, nothing on stdout.
ok() {
	local desc=$1
	shift
	if ! "$@" >out 2>err; then
		bad "$desc: '$*' failed: $(head -c 400 err)"
	elif [[ -s out ]]; then
		bad "$desc: '$*' wrote to stdout: $(head -c 200 out)"
	fi
}
same_as_image() {
	[[ -f $1 && $(sha256sum <"$1") == "$want" ]] || bad "$2: '$1' is not the image"
}

for env in "" "POSIXLY_CORRECT=1"; do
	rm -f d1 d2 d3 d4 o1.bmap o2.bmap
	e=(env $env)
	ok "$env copy, --bmap last" "${e[@]}" "$BMAPTOOL" copy img d1 --bmap b.bmap
	same_as_image d1 "$env copy IMG DEST --bmap B"
	cmp -s b.bmap img.bmap.orig || bad "$env copy IMG DEST --bmap B changed the bmap file"
	[[ -e --bmap ]] && bad "$env copy IMG DEST --bmap B made a file named '--bmap'"
	rm -f ./--bmap
	ok "$env copy, -b between" "${e[@]}" "$BMAPTOOL" copy img -b b.bmap d2 -q
	same_as_image d2 "$env copy IMG -b B DEST -q"
	# -q after the positionals: nothing at all on stderr.
	[[ -s err ]] && bad "$env copy ... -q: printed '$(head -c 200 err)'"
	ok "$env copy, --nobmap last" "${e[@]}" "$BMAPTOOL" copy img d3 --no-verify --nobmap
	same_as_image d3 "$env copy IMG DEST --nobmap"
	ok "$env verify, options last" "${e[@]}" "$BMAPTOOL" verify img d1 --bmap b.bmap -q
	ok "$env verify, --nobmap last" "${e[@]}" "$BMAPTOOL" verify img d3 --nobmap

	"${e[@]}" "$BMAPTOOL" create img -o o1.bmap 2>err >out ||
		bad "$env create IMG -o OUT failed: $(head -c 300 err)"
	cmp -s o1.bmap img.bmap.orig || bad "$env create IMG -o OUT: not the same bmap"
	[[ -s out ]] && bad "$env create IMG -o OUT wrote to stdout"
	"${e[@]}" "$BMAPTOOL" create img --no-checksum -q -o o2.bmap 2>err ||
		bad "$env create IMG --no-checksum -q -o OUT failed: $(head -c 300 err)"
	grep -q chksum= o2.bmap 2>/dev/null && bad "$env create ... --no-checksum: has checksums"

	"${e[@]}" "$BMAPTOOL" info img --json --bmap b.bmap >out 2>err ||
		bad "$env info IMG --json --bmap B failed: $(head -c 300 err)"
	grep -q '"bmap_source": "given"' out || bad "$env info IMG --json --bmap B: $(head -c 300 out)"
done

# Several destinations with an option among them: two destinations, not four.
rm -f d1 d2
ok "copy, two DESTs and --bmap between" "$BMAPTOOL" copy img d1 --bmap b.bmap d2
same_as_image d1 "copy IMG D1 --bmap B D2"
same_as_image d2 "copy IMG D1 --bmap B D2"
cmp -s b.bmap img.bmap.orig || bad "copy IMG D1 --bmap B D2 changed the bmap file"

# `--` ends the options: '-b' after it is a destination's name.
rm -f ./-b
ok "copy IMG -- -b" "$BMAPTOOL" copy img -- -b
same_as_image ./-b "copy IMG -- -b"

# Usage errors: exit 2, "bmaptool: error:" with argparse's words, the hint
# naming the command, nothing on stdout, getopt's own words never.
usage() {
	local needle=$1 hint=$2 rc
	shift 2
	"$BMAPTOOL" "$@" >out 2>err
	rc=$?
	if [[ $rc -ne 2 ]]; then
		bad "'$*': exit $rc, expected 2: $(head -c 300 err)"
	elif ! grep -qxF "bmaptool: error: $needle" err; then
		bad "'$*': expected 'bmaptool: error: $needle', got: $(head -c 300 err)"
	elif ! grep -qxF "Try 'bmaptool $hint--help' for more information." err; then
		bad "'$*': no --help hint for '$hint': $(head -c 300 err)"
	elif grep -qE '^(copy|verify|create|info|[^ ]*bmaptool): (unrecognized|invalid|option)' err; then
		bad "'$*': getopt's own message: $(head -c 300 err)"
	elif [[ -s out ]]; then
		bad "'$*': wrote to stdout"
	fi
}
usage "unrecognized arguments: --frob" "copy " copy img d1 --frob
usage "unrecognized arguments: --frob" "verify " verify --frob img d1
usage "unrecognized arguments: --frob" "create " create img --frob
usage "unrecognized arguments: --frob" "info " info img --frob
usage "unrecognized arguments: -x" "copy " copy -x img d1
usage "unrecognized arguments: -x" "copy " copy -qx img d1
usage "unrecognized arguments: --frob" "" --frob copy img d1
usage "argument --bmap: expected one argument" "copy " copy img d1 --bmap
usage "argument -o: expected one argument" "create " create img -o
usage "argument --nobmap: ignored explicit argument 'x'" "copy " copy --nobmap=x img d1
usage "argument --nobm: ignored explicit argument 'x'" "copy " copy --nobm=x img d1
# An unknown short option in a cluster after an option with '=' is that
# short option's fault.
usage "unrecognized arguments: -z" "copy " copy --bmap=b.bmap -zq img d1
# Ambiguous: the list grows with copy's options, so its start only.
"$BMAPTOOL" copy --no img d1 >out 2>err
grep -q "^bmaptool: error: ambiguous option: --no could match --nobmap, --no-verify" err ||
	bad "copy --no: $(head -c 300 err)"
usage "unrecognized arguments: --json" "copy " copy img d1 --json
usage "unrecognized arguments: --discard" "verify " verify img d1 --discard

if ((failures)); then
	log "$failures failure(s)"
	exit 1
fi
log "options anywhere, usage errors in bmaptool's words: ok"
