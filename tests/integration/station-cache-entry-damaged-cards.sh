#!/bin/bash
# Regression: two cards copied from one damaged image cache entry. The
# check after a failed read-back went by the entry's name: the first card's
# check removed the damaged entry, and the second card's check then found
# no file (ENOENT), took the entry for good and blamed its card
# ("verify_failed"). Now each card checks the file it was copied from, and
# both are failed naming the damaged entry. Their rows carry no data digest:
# a card copied from the entry is not hashed on the way, and the digest it
# would get is the bmap's (what it should hold), not what it was given; the
# rows claimed it.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
. "$TESTS_DIR/lib/throttle.sh"
need_station_env
need_ours
need_cmd zstd
need_loops 4
throttle_init
ensure_udevd
install_test_rule

im=$TEST_TMP/images
mkdir -p "$im"
mk_image_bmap "$im/disk.img" "size=24M data=0:1M data=4M:6M data=20M:2M" zst

db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "entry-damaged-cards"; database = "$db"; max_workers = 3;
  require_tag = "bmap-station"; max_device_size = "1G"; cache_dir = "$TEST_TMP/cache"; };
profiles = (
  { name = "zst"; image = "$im/disk.img.zst"; bmap = "$im/disk.img.bmap"; removable_only = false;
    verify = "readback"; match = { serial = "a-*"; }; }
);
CONF
start_station "$TEST_TMP/station.conf" throttled
station_ready "$db"

done_jobs() { q "$db" "select count(*) from jobs where serial glob '$1' and outcome is not null and outcome <> 'running'"; }

c1=$(make_card a-1.img 32M)
insert_card "$c1"
wait_for "$db" "select outcome from jobs where serial = 'a-1.img'" success 60 ||
	fail "card a-1: $(q "$db" "select serial, outcome, error from jobs")"
entry=$TEST_TMP/cache/$(cache_key "$im/disk.img.zst" "$im/disk.img.bmap").img
[[ -f $entry ]] || fail "no cache entry $entry: $(ls "$TEST_TMP/cache")"
off=$((7 * 1048576 + 12345))
b=$(od -An -tu1 -j "$off" -N1 "$entry" | tr -d ' ')
printf "\\$(printf '%03o' $((b ^ 0xff)))" | dd of="$entry" bs=1 seek="$off" conv=notrunc status=none

# Two cards together, the second slower: both open the damaged entry at
# their start; the first's check (about 1.2 s in) removes it while the
# second (about 2.5 s) is still writing.
c2=$(make_card a-2.img 32M)
c3=$(make_card a-3.img 32M)
attach_cards_at_speed "$c2:8M:40M" "$c3:4M:40M"
wait_for "$db" "select count(*) from jobs where serial in ('a-2.img', 'a-3.img') and outcome is not null and outcome <> 'running'" 2 60 ||
	fail "cards a-2, a-3: $(q "$db" "select serial, outcome, error from jobs")"
used=$(grep -c "cache used: $entry" "$TEST_TMP/station.log")
((used >= 2)) || fail "the two cards were not both copied from the complete entry: $(grep cache "$TEST_TMP/station.log")"
while IFS='|' read -r serial outcome data error; do
	[[ $outcome == failed && $error == *"image cache entry '$entry' is damaged"* ]] ||
		fail "card $serial copied from the damaged entry: $outcome: $error"
	[[ -z $data || $data == - ]] || fail "card $serial failed, yet its row has the data digest $data"
done < <(q "$db" "select serial, outcome, data_sha256, error from jobs where serial in ('a-2.img', 'a-3.img')")
[[ ! -e $entry ]] || fail "the damaged entry $entry is still there"

c4=$(make_card a-4.img 32M)
insert_card "$c4"
wait_for "$db" "select outcome from jobs where serial = 'a-4.img'" success 60 ||
	fail "card a-4: $(q "$db" "select serial, outcome, error from jobs")"
"$BMAPTOOL" -q verify --bmap "$im/disk.img.bmap" "$im/disk.img" "$c4" || fail "a-4 does not hold the image"
log "ok: both cards from the damaged entry were failed naming it, with no digest; the next card is good"
