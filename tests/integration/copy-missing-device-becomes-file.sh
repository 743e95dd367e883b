#!/bin/bash
# A mistyped device path must not become a regular file in /dev (issue 10,
# item 20): the check is made on the resolved path, not on the text. Each
# spelling of a device that does not exist is refused with exit 1 and
# "does not exist", and nothing is created in /dev:
#
#   //dev/NAME, /dev/shm/../NAME, /dev/./NAME    (the text does not start with "/dev/")
#   NAME with /dev as the working folder         (a relative name)
#   a symbolic link elsewhere to a missing /dev/NAME
#   /dev/disk/NAME                               (a folder of /dev's own)
#
# and a regular file that an older copy left in /dev is refused as a
# destination ("regular file", "not a device"). A file in /dev/shm (a tmpfs
# of its own) is still a good destination.
#
# Needs root (only root can create files in /dev, so only root can get it
# wrong). Removes what it made in /dev: regular files of its own name only.

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
source "${TESTS_DIR:-$(dirname "$0")/..}/lib/cards.sh"
need_ours
need_root
[[ -d /dev && -w /dev ]] || skip "/dev is not writable"

d=$TEST_TMP
name=bmaptest-nocard-$$
missing=/dev/$name
[[ -e $missing || -L $missing ]] && skip "$missing exists"
[[ -e /dev/disk/$name ]] && skip "/dev/disk/$name exists"
# What a failing copy made: regular files only, never a device node.
on_exit 'for f in "$missing" "/dev/disk/$name"; do [[ -f $f && ! -L $f ]] && rm -f -- "$f"; done'
checked=0

img=$d/disk.img
mk_image_bmap "$img" "size=1M data=0:64K data=512K:4K"

# refuse_missing TAG REGEX [-C DIR] DEST: copy to DEST (from DIR) exits 1
# with REGEX, and neither /dev/NAME nor /dev/disk/NAME appeared.
refuse_missing() {
	local tag=$1 re=$2 dir=$PWD rc
	shift 2
	if [[ $1 == -C ]]; then
		dir=$2
		shift 2
	fi
	(cd "$dir" && exec "$BMAPTOOL" copy --bmap "$img.bmap" "$img" "$1") >"$d/out.log" 2>&1
	rc=$?
	checked=$((checked + 1))
	[[ $rc -eq 1 ]] || bad "$tag: exit $rc, expected 1: $(tail -n 1 "$d/out.log")"
	grep -Eq -- "$re" "$d/out.log" || bad "$tag: no message matching /$re/: $(tail -n 1 "$d/out.log")"
	for f in "$missing" "/dev/disk/$name"; do
		if [[ -f $f && ! -L $f ]]; then
			bad "$tag: a regular file $f was created ($(stat -c %s "$f") bytes)"
			rm -f -- "$f"
		fi
	done
}

refuse_missing "$missing" "does not exist" "$missing"
refuse_missing "//dev/$name" "does not exist" "//dev/$name"
refuse_missing "/dev/./$name" "does not exist" "/dev/./$name"
[[ -d /dev/shm ]] && refuse_missing "/dev/shm/../$name" "does not exist" "/dev/shm/../$name"
refuse_missing "$name in /dev" "does not exist" -C /dev "$name"
refuse_missing "./$name in /dev" "does not exist" -C /dev "./$name"
[[ -d /dev/disk ]] && refuse_missing "/dev/disk/$name" "does not exist" "/dev/disk/$name"
ln -s "$missing" "$d/card" || fail "cannot make a symbolic link"
refuse_missing "a symbolic link to $missing" "does not exist" "$d/card"

# A regular file left in /dev by an older, mistyped copy: refused, kept.
new_file_card $((1 << 20)) left
cp "$CARD_FILE" "$missing" || fail "cannot create $missing"
"$BMAPTOOL" copy --bmap "$img.bmap" "$img" "$missing" >"$d/out.log" 2>&1
rc=$?
checked=$((checked + 1))
[[ $rc -eq 1 ]] || bad "a regular file in /dev: exit $rc, expected 1"
grep -q "regular file.*not a device" "$d/out.log" ||
	bad "a regular file in /dev: $(tail -n 1 "$d/out.log")"
is_pattern "$missing" || bad "a regular file in /dev: it was written to"
rm -f -- "$missing"

# /dev/shm is a file system of its own: a new file there is fine.
if [[ -d /dev/shm && -w /dev/shm ]]; then
	shm=$CARD_DIR/new.img
	"$BMAPTOOL" -q copy --bmap "$img.bmap" "$img" "$shm" || bad "a new file in /dev/shm is refused"
	cmp -s "$img" "$shm" || bad "the new file in /dev/shm does not hold the image"
	checked=$((checked + 1))
fi

finish "$checked destinations checked"
