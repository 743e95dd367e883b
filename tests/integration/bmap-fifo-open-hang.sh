#!/bin/bash
# `--bmap FIFO` with nobody writing to it hung in open() for ever (issue 10,
# item 25; the reference bmaptool hangs there too). A bmap is read twice (its
# own checksum is checked once the header says how), so a FIFO or a pipe is
# refused at once, with the way out; what the reference accepts still works:
# a regular file, also as /dev/stdin redirected from one.
#   --bmap FIFO (no writer), copy and info     -> exit 1 "not a regular file", no hang
#   cat BMAP | ... --bmap /dev/stdin           -> exit 1 "save the bmap to a file"
#   --bmap <(cat BMAP)                         -> the same
#   --bmap /dev/stdin <BMAP                    -> copied, DEST equals the image
# `timeout` only turns a hang into a failure (60 s for what takes milliseconds).

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
need_ours
need_cmd timeout
need_cmd mkfifo

d=$TEST_TMP
mk_image_bmap "$d/disk.img" "size=1M data=0:8K data=512K:4K"
bmap=$d/disk.img.bmap

# expect_refused WHAT NEEDLE CMD...: CMD ends by itself, exit 1, NEEDLE in stderr.
expect_refused() {
	local what=$1 needle=$2 rc
	shift 2
	timeout 60 "$@" >"$d/out" 2>"$d/err" </dev/null
	rc=$?
	((rc == 124)) && fail "$what: still blocked after 60 s (hung opening the bmap)"
	((rc == 1)) || fail "$what: expected exit 1, got $rc: $(cat "$d/err")"
	grep -q -- "$needle" "$d/err" || fail "$what: no '$needle' in: $(cat "$d/err")"
}

mkfifo "$d/fifo.bmap" || fail "mkfifo failed"
expect_refused "copy --bmap FIFO" "is not a regular file (it is a FIFO or a pipe)" \
	"$BMAPTOOL" copy --bmap "$d/fifo.bmap" "$d/disk.img" "$d/out.img"
[[ -e $d/out.img ]] && fail "copy --bmap FIFO: the destination was created"
expect_refused "info --bmap FIFO" "is not a regular file" \
	"$BMAPTOOL" info --bmap "$d/fifo.bmap" "$d/disk.img"

# A pipe as /dev/stdin: refused with the way out, not read to its end first.
timeout 60 sh -c 'cat "$1" | exec "$2" copy --bmap /dev/stdin "$3" "$4"' sh \
	"$bmap" "$BMAPTOOL" "$d/disk.img" "$d/out.img" >"$d/out" 2>"$d/err"
rc=$?
((rc == 1)) || fail "a pipe as /dev/stdin: expected exit 1, got $rc: $(cat "$d/err")"
grep -q "save the bmap to a file" "$d/err" || fail "a pipe as /dev/stdin: $(cat "$d/err")"
expect_refused "--bmap <(cat BMAP)" "save the bmap to a file" \
	bash -c '"$1" copy --bmap <(cat "$2") "$3" "$4"' bash \
	"$BMAPTOOL" "$bmap" "$d/disk.img" "$d/out.img"

# /dev/stdin redirected from the file is the file: it works as before.
timeout 60 "$BMAPTOOL" copy --bmap /dev/stdin "$d/disk.img" "$d/out.img" <"$bmap" \
	>"$d/out" 2>"$d/err" || fail "--bmap /dev/stdin <BMAP: $(cat "$d/err")"
cmp -s "$d/disk.img" "$d/out.img" || fail "--bmap /dev/stdin <BMAP: the copy differs"

log "PASS"
