#!/bin/bash
# How bmaptool opens DEST must not depend on an earlier stat() of its name
# (issue 10, item 13). It used to stat() DEST and choose from the answer:
# O_EXCL (EBUSY for a mounted or held device) only when the stat() said
# "block device". When the name changes between the two (a symbolic link
# put in its place, a card plugged), a device held by another process -
# mounted - was opened without O_EXCL and written.
#
# The window is made certain: a small LD_PRELOAD shim, built here, renames a
# symbolic link to a held loop device over DEST (a regular file) right after
# the first stat() of DEST returns. Whatever bmaptool does then, the held
# card must not be written: opened as the regular file it was, or refused as
# busy. Needs root, a loop device and a C compiler.

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
source "${TESTS_DIR:-$(dirname "$0")/..}/lib/cards.sh"
need_ours
need_loop
need_cmd python3
CC=${CC:-cc}
need_cmd "$CC"

d=$TEST_TMP
cat >"$d/swap.c" <<'EOF'
/* After the first stat() of $SWAP_PATH: rename($SWAP_WITH, $SWAP_PATH). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int swapped;

static void after(const char *path)
{
	const char *p = getenv("SWAP_PATH"), *with = getenv("SWAP_WITH");

	if (!swapped && p && with && strcmp(path, p) == 0) {
		swapped = 1;
		if (rename(with, p) == 0) {
			FILE *f = fopen(getenv("SWAP_LOG"), "a");

			if (f) {
				fprintf(f, "swapped after stat(%s)\n", path);
				fclose(f);
			}
		}
	}
}

#define WRAP(name, st)                                                        \
	int name(const char *path, struct st *buf)                             \
	{                                                                      \
		static int (*real)(const char *, struct st *);                 \
		int r;                                                         \
		if (!real)                                                     \
			real = (int (*)(const char *, struct st *))dlsym(RTLD_NEXT, #name); \
		r = real(path, buf);                                           \
		after(path);                                                   \
		return r;                                                      \
	}
WRAP(stat, stat)
WRAP(stat64, stat64)
EOF
"$CC" -shared -fPIC -O2 -o "$d/swap.so" "$d/swap.c" -ldl 2>"$d/cc.log" ||
	fail "cannot build the shim: $(cat "$d/cc.log")"
# A program that stat()s its argument, as the old bmaptool did, compiled
# the way bmaptool is (64-bit offsets).
printf '#include <sys/stat.h>\nint main(int c, char **v) { struct stat s; return c > 1 && stat(v[1], &s); }\n' \
	>"$d/probe.c"
"$CC" -D_FILE_OFFSET_BITS=64 -o "$d/probe" "$d/probe.c" 2>"$d/cc.log" ||
	fail "cannot build the probe: $(cat "$d/cc.log")"

img=$d/disk.img
mk_image_bmap "$img" "size=4M data=0:1M data=2M:512K"
new_card $((5 << 20)) held
card=$CARD_DEV

# The card held open with O_EXCL, as a mount holds it.
hold_card "$card" || fail "cannot hold $card: $HOLD_ERROR"

# The shim itself works: a stat of DEST swaps it (else the test proves
# nothing).
new_file_card $((5 << 20)) probe
ln -s "$card" "$CARD_DIR/swap"
LD_PRELOAD=$d/swap.so SWAP_PATH=$CARD_FILE SWAP_WITH=$CARD_DIR/swap SWAP_LOG=$d/probe.log \
	"$d/probe" "$CARD_FILE"
[[ -L $CARD_FILE ]] || fail "the shim did not swap the name after a stat()"
rm -f -- "$CARD_FILE"

new_file_card $((5 << 20)) dest
dest=$CARD_FILE
ln -s "$card" "$CARD_DIR/swap"
LD_PRELOAD=$d/swap.so SWAP_PATH=$dest SWAP_WITH=$CARD_DIR/swap SWAP_LOG=$d/swap.log \
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
	"$BMAPTOOL" copy --bmap "$img.bmap" "$img" "$dest" >"$d/out.log" 2>&1
rc=$?
log "exit $rc: $(tail -n 1 "$d/out.log") $(cat "$d/swap.log" 2>/dev/null)"
dev_is_pattern "$card" ||
	bad "the card held open exclusively was written through a name swapped after stat()"
if [[ $rc -eq 0 ]]; then
	# Opened before any swap: the regular file got the image.
	[[ -f $dest && ! -L $dest ]] && cmp -s "$img" "$dest" ||
		bad "exit 0, but '$dest' is not the regular file holding the image"
else
	grep -q "busy" "$d/out.log" || bad "exit $rc without 'busy': $(tail -n 1 "$d/out.log")"
fi
finish "the held card stayed untouched"
