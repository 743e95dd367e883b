#!/bin/bash
# Ctrl-C and SIGTERM stop bmaptool while standard input stalls (issue 10,
# item 18): `bmaptool copy - DEST` with a pipe that stays open but sends
# nothing more must exit at the signal, with exit 1, saying it was
# interrupted, and say of DEST what is true: "nothing was written" (then
# DEST still holds what it held), or "its content is incomplete". It used to
# wait for the pipe to close, however long that took.
#
#   copy, raw image, nothing sent yet, SIGINT         -> "nothing was written", DEST as it was
#   copy, raw image, 3 MiB sent, SIGTERM              -> "its content is incomplete"
#   copy, zstd image, 256 KiB sent, SIGINT
#   copy to two DESTs, zstd image, 3 MiB sent, SIGTERM
#   verify --nobmap, nothing sent, SIGINT
#
# The pipe is a FIFO this test holds open; the tool must end within LIMIT
# seconds of the signal (it takes milliseconds; the limit only keeps a
# broken tool from hanging the test). Regular files only: runs everywhere.

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
source "${TESTS_DIR:-$(dirname "$0")/..}/lib/cards.sh"
need_ours
need_cmd mkfifo
need_cmd zstd

LIMIT=20
d=$TEST_TMP
checked=0
img=$d/disk.img
mk_image_bmap "$img" "size=8M data=0:2M data=3M:512K data=7M:64K" zst
fifo=$d/stdin
mkfifo "$fifo" || fail "cannot make a FIFO"
new_file_card $((9 << 20)) dest
dest=$CARD_FILE
new_file_card $((9 << 20)) dest2
dest2=$CARD_FILE

# alive PID: the process runs (a zombie does not count).
alive() { [[ -e /proc/$1 ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

# stalled TAG SIG FEED READY CMD...: CMD reads the FIFO, which gets the
# first FEED bytes of FEED_FILE (0: none) and then nothing, but stays open.
# Once the log matches READY (or at once for ""), and CMD waits, SIG is
# sent; CMD must end within LIMIT seconds, with exit 1 and "interrupted".
stalled() {
	local tag=$1 sig=$2 feed=$3 ready=$4 w pid feeder= rc i
	shift 4
	exec {w}<>"$fifo" || fail "cannot open $fifo"
	# {w}>&-: the tool must not hold a writer of its own input.
	"$@" <"$fifo" >"$d/out.log" 2>&1 {w}>&- &
	pid=$!
	on_exit "kill -KILL $pid 2>/dev/null"
	if ((feed > 0)); then
		head -c "$feed" "$FEED_FILE" >&"$w" &
		feeder=$!
		on_exit "kill $feeder 2>/dev/null"
	fi
	for ((i = 0; i < 100; i++)); do
		[[ -z $ready ]] || grep -q -- "$ready" "$d/out.log" && break
		sleep 0.1
	done
	# Let it get to its wait for more input.
	sleep 0.5
	kill -"$sig" "$pid" 2>/dev/null
	for ((i = 0; i < LIMIT * 10; i++)); do
		alive "$pid" || break
		sleep 0.1
	done
	checked=$((checked + 1))
	# The pipe closes: a tool still waiting for it ends now, or is killed.
	exec {w}>&-
	if alive "$pid"; then
		bad "$tag: still running ${LIMIT}s after SIG$sig while its input stalls"
		for ((i = 0; i < 50; i++)); do
			alive "$pid" || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid"
	rc=$?
	[[ -n $feeder ]] && { kill "$feeder" 2>/dev/null; wait "$feeder" 2>/dev/null; }
	[[ $rc -eq 1 ]] || bad "$tag: exit $rc after SIG$sig, expected 1"
	grep -q "error: .*interrupted" "$d/out.log" ||
		bad "$tag: does not say it was interrupted: $(tail -n 1 "$d/out.log")"
	[[ -n ${VERBOSE:-} ]] && log "$tag: $(grep error: "$d/out.log" | head -n 1)"
	return 0
}

# dest_says TAG DEST: what the log says of DEST is true.
dest_says() {
	if grep -q "nothing was written" "$d/out.log"; then
		is_pattern "$2" || bad "$1: says nothing was written, but ${2##*/} was changed"
	elif ! grep -q "'$2' was synced and closed, its content is incomplete" "$d/out.log"; then
		bad "$1: says neither that nothing was written to ${2##*/} nor that it is incomplete"
	fi
}

FEED_FILE=$img
stalled "copy, raw, nothing sent, SIGINT" INT 0 "" \
	"$BMAPTOOL" copy --bmap "$img.bmap" - "$dest"
grep -q "nothing was written" "$d/out.log" ||
	bad "copy, nothing sent: does not say that nothing was written: $(tail -n 1 "$d/out.log")"
dest_says "copy, raw, nothing sent" "$dest"

# The first range (2 MiB) and part of the second sent: some is written.
stalled "copy, raw, 3 MiB sent, SIGTERM" TERM $((3 << 20)) "copying image" \
	"$BMAPTOOL" copy --bmap "$img.bmap" - "$dest"
grep -q "its content is incomplete" "$d/out.log" ||
	bad "copy, 3 MiB sent: does not say DEST is incomplete: $(tail -n 1 "$d/out.log")"
dest_says "copy, raw, 3 MiB sent" "$dest"

fill_pattern "$dest" $((9 << 20))
FEED_FILE=$img.zst
stalled "copy, zstd, 256 KiB sent, SIGINT" INT $((256 << 10)) "copying image" \
	"$BMAPTOOL" copy --bmap "$img.bmap" - "$dest"
dest_says "copy, zstd, 256 KiB sent" "$dest"

fill_pattern "$dest" $((9 << 20))
stalled "copy to two DESTs, zstd, 3 MiB sent, SIGTERM" TERM $((3 << 20)) "copying image" \
	"$BMAPTOOL" copy --bmap "$img.bmap" - "$dest" "$dest2"
for f in "$dest" "$dest2"; do
	if grep -q "$f: interrupted; nothing was written" "$d/out.log"; then
		is_pattern "$f" || bad "two DESTs: says nothing was written, but ${f##*/} was changed"
	fi
done

stalled "verify --nobmap, nothing sent, SIGINT" INT 0 "" \
	"$BMAPTOOL" verify --nobmap - "$dest"

# With the pipe closed the same copy goes through: the image was good.
"$BMAPTOOL" -q copy --bmap "$img.bmap" - "$dest" <"$img.zst" || bad "the whole image is refused"
cmp -s "$img" "$dest" || bad "the whole image: DEST does not hold it"

finish "$checked interrupted commands checked"
