#!/bin/bash
# A profile's discard = true: the worker discards the card's unmapped ranges
# after the copy and notes it in the daemon's log. Cards read back with
# O_DIRECT:
#  - discard = true: the whole sectors of every gap read as zeros, mapped
#    bytes are the image's, the partial last sector and everything past the
#    image keep the 0xA5 pattern; the note gives exactly those bytes
#  - no discard key (default false): every unmapped byte keeps the pattern,
#    and no note about discard
#  - discard = true on a card that cannot discard (a loop device over a file
#    on ramfs): 'success', a note that it does not support discard, the
#    pattern intact
#  - discard = true on a card too small: 'refused', nothing discarded
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
. "$TESTS_DIR/lib/discard.sh"
need_station_env
need_ours
need_cmd python3
ensure_udevd
install_test_rule

img=$TEST_TMP/disk.img
size=$((8 * 1048576 + 3000)) # odd: the last block is partial, and a hole
mk_image_bmap "$img" "size=$size data=64K:64K data=132K:8K data=1M:1M data=4M:2M data=8M:2048"
db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "discard"; database = "$db"; max_device_size = "1G"; cache_dir = "$TEST_TMP/cache"; };
profiles = (
  { name = "trim"; image = "disk.img"; removable_only = false; discard = true;
    match = { serial = "trim-*"; }; },
  { name = "keep"; image = "disk.img"; removable_only = false;
    match = { serial = "keep-*"; }; }
);
CONF
"$BMAP_STATION" check --config "$TEST_TMP/station.conf" >"$TEST_TMP/check.out" 2>&1 ||
	fail "check refused the configuration: $(cat "$TEST_TMP/check.out")"
grep -q "profile trim: .*, discard$" "$TEST_TMP/check.out" || fail "check: $(cat "$TEST_TMP/check.out")"
grep -q "profile keep: .*, discard$" "$TEST_TMP/check.out" && fail "check: $(cat "$TEST_TMP/check.out")"
start_station "$TEST_TMP/station.conf"
station_ready "$db"

# flash NAME SIZE [FILE]: a card (FILE, default a new one in CARD_DIR) is
# inserted and must end 'success'; it stays attached (LOOP_DEV).
flash() {
	local file=${3:-$(make_card "$1" "$2")}
	insert_card "$file"
	wait_for "$db" "select outcome from jobs where serial='$1'" success ||
		fail "$1 was not flashed: $(q "$db" "select outcome, error from jobs where serial='$1'")"
}

# discard = true.
flash trim-1.img 16M
dev=$LOOP_DEV
read_back "$dev" "$TEST_TMP/readback"
want=$(check_unmapped "$TEST_TMP/readback" "$img" "$img.bmap" 512 discarded) ||
	fail "discard = true: the card is not as it should be"
got=$(discarded_bytes "$TEST_TMP/station.log" "(serial trim-1.img)")
[[ $got == "$want" ]] ||
	fail "discard = true: the note says '$got' bytes, expected $want: $(grep -F "(serial trim-1.img)" "$TEST_TMP/station.log")"
grep -q "(serial trim-1.img): discarded .* unmapped ranges of $dev\$" "$TEST_TMP/station.log" ||
	fail "no note naming $dev"
detach_loop "$dev"

# No discard key: the pattern stays.
flash keep-1.img 16M
dev=$LOOP_DEV
read_back "$dev" "$TEST_TMP/readback"
check_unmapped "$TEST_TMP/readback" "$img" "$img.bmap" 512 kept >/dev/null ||
	fail "without discard: an unmapped byte lost its pattern"
grep -F "(serial keep-1.img)" "$TEST_TMP/station.log" | grep -Eq "discarded|support discard" &&
	fail "without discard: $(grep -F "(serial keep-1.img)" "$TEST_TMP/station.log" | grep -E "discarded|support discard")"
detach_loop "$dev"

# A card that cannot discard: ramfs has no fallocate, so its loop device
# offers no discard. Inside CARD_DIR, so the test rule tags it.
mkdir -p "$CARD_DIR/ramfs"
mount -t ramfs ramfs "$CARD_DIR/ramfs" || fail "cannot mount ramfs"
# Lazily (a loop device may still hold a file there); then what is left.
on_exit "umount -l '$CARD_DIR/ramfs' 2>/dev/null; rm -rf '$CARD_DIR'"
flash trim-nodiscard.img 16M "$(make_card ramfs/trim-nodiscard.img 16M)"
dev=$LOOP_DEV
grep -q "(serial trim-nodiscard.img): device $dev does not support discard: the unmapped ranges were not discarded" \
	"$TEST_TMP/station.log" || fail "no note that $dev does not support discard: $(tail -n 5 "$TEST_TMP/station.log")"
read_back "$dev" "$TEST_TMP/readback"
check_unmapped "$TEST_TMP/readback" "$img" "$img.bmap" 512 kept >/dev/null ||
	fail "a card without discard: an unmapped byte lost its pattern"
detach_loop "$dev"
umount "$CARD_DIR/ramfs" || fail "cannot unmount $CARD_DIR/ramfs"

# Too small: refused, never discarded.
small=$(make_card trim-small.img 4M)
insert_card "$small"
wait_for "$db" "select outcome from jobs where serial='trim-small.img'" refused ||
	fail "the small card was not refused"
is_pattern_file() { head -c "$(stat -c %s "$1")" /dev/zero | tr '\0' '\245' | cmp -s - "$1"; }
is_pattern_file "$small" || fail "the refused card was changed"
grep -F "(serial trim-small.img)" "$TEST_TMP/station.log" | grep -Eq "discarded|support discard" &&
	fail "the refused card: $(grep -F "(serial trim-small.img)" "$TEST_TMP/station.log" | grep -E "discarded|support discard")"
detach_loop "$LOOP_DEV"
station_alive
log "ok: discard = true left $want bytes of zeros; without it, without support and refused, the pattern stayed"
