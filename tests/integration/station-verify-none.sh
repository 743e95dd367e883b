#!/bin/bash
# Regression (issue 10, item 12): a profile with verify = "none" behaved
# like "checksums": the worker never set no_verify, so the bmap's range
# checksums were still checked as data passed. An image changed after its
# bmap was made (one byte in a mapped range) shows it, through the daemon:
#  - verify = "checksums" fails the card (the mismatch is real);
#  - verify = "none" writes the image's bytes, succeeds, and does not read
#    the card back (its reads stay far below the mapped data).
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
. "$TESTS_DIR/lib/throttle.sh"
need_station_env
need_ours
ensure_udevd
install_test_rule

im=$TEST_TMP/images
mkdir -p "$im"
mk_image_bmap "$im/disk.img" "size=40M data=0:4M data=8M:12M data=30M:8M"
mapped=$(($(bmap_field "$im/disk.img.bmap" MappedBlocksCount) * 4096))
# One byte of the second range, after the bmap.
printf 'X' | dd of="$im/disk.img" bs=1 seek=$((8 * 1048576 + 4242)) conv=notrunc status=none ||
	fail "cannot change the image"
db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "verify-none"; database = "$db"; max_workers = 2;
  require_tag = "bmap-station"; max_device_size = "1G"; cache_dir = "$TEST_TMP/cache"; };
profiles = (
  { name = "none"; image = "$im/disk.img"; bmap = "$im/disk.img.bmap";
    removable_only = false; verify = "none"; match = { serial = "n-*"; }; },
  { name = "sums"; image = "$im/disk.img"; bmap = "$im/disk.img.bmap";
    removable_only = false; verify = "checksums"; match = { serial = "c-*"; }; }
);
CONF
start_station "$TEST_TMP/station.conf"
station_ready "$db"

card=$(make_card c-1.img 48M)
insert_card "$card"
wait_for "$db" "select outcome from jobs where serial='c-1.img'" failed 60 ||
	fail "c-1 (checksums): $(q "$db" "select outcome, error from jobs where serial='c-1.img'")"
q "$db" "select error from jobs where serial='c-1.img'" | grep -q "checksum mismatch" ||
	fail "c-1 failed for another reason: $(q "$db" "select error from jobs where serial='c-1.img'")"

card=$(make_card n-1.img 48M)
insert_card "$card"
dev=$LOOP_DEV
read -r reads0 _ < <(card_io_bytes "$dev")
wait_for "$db" "select outcome from jobs where serial='n-1.img'" success 60 ||
	fail "n-1 (verify none) was checked: $(q "$db" "select outcome, error from jobs where serial='n-1.img'")"
read -r reads1 _ < <(card_io_bytes "$dev")
reads=$((reads1 - reads0))
log "n-1 (verify none): $reads bytes read from the card (udev's probes, the content probe), $mapped mapped"
((reads < mapped / 4)) || fail "the card with verify none was read back: $reads bytes read, $mapped mapped"
[[ $(q "$db" "select coalesce(readback_sha256, '-') from jobs where serial='n-1.img'") == - ]] ||
	fail "the card with verify none has a read-back digest"
while read -r first last; do
	cmp_range "$im/disk.img" "$card" $((first * 4096)) $(((last - first + 1) * 4096)) ||
		fail "n-1 does not hold the image's bytes in blocks $first-$last"
done < <(bmap_ranges "$im/disk.img.bmap")
log "ok: verify none checks nothing and reads nothing back; checksums fails the same image"
