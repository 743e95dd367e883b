#!/bin/bash
# The station with a profile whose image is a .tar.zst (the image its first
# regular file, a README after it) and no bmap key: the bmap is discovered
# as bmaptool discovers it (disk.img.tar.zst -> disk.img.bmap), the image
# cache is filled once with the archive's member (not the tar stream), and
# three cards written from it hold the image, verified by read-back. A card
# for a profile whose .zip holds a README first is failed, its bytes
# unchanged (the member cannot be the bmap's image: refused before writing).
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
need_cmd zstd
need_cmd tar
need_loops 4
ensure_udevd
install_test_rule

im=$TEST_TMP/images
mkdir -p "$im"
mk_sparse_image "$im/disk.img" "size=24M+1000 data=0:1M islands=2M:4K:50:64K data=10M:5M data=24M:1000"
"$BMAPTOOL" -q create -o "$im/disk.img.bmap" "$im/disk.img" || fail "create"
echo "release notes" >"$im/README"
(cd "$im" && tar -cf - disk.img README | zstd -q -T2 -o disk.img.tar.zst) || fail "tar | zstd"
have_zip=0
if command -v zip >/dev/null; then
	(cd "$im" && zip -q other.img.zip README disk.img && cp disk.img.bmap other.img.bmap) ||
		fail "zip"
	have_zip=1
fi

db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "archive-cache"; database = "$db"; max_workers = 4;
  require_tag = "bmap-station"; max_device_size = "1G"; cache_dir = "$TEST_TMP/cache"; cache_prefill = false; };
profiles = (
  { name = "tarzst"; image = "$im/disk.img.tar.zst"; removable_only = false;
    verify = "readback"; match = { serial = "a-*"; }; },
  { name = "zip"; image = "$im/other.img.zip"; removable_only = false;
    match = { serial = "z-*"; }; }
);
CONF
start_station "$TEST_TMP/station.conf"
station_ready "$db"

for i in 1 2 3; do
	c[$i]=$(make_card "a-$i.img" 32M)
	insert_card "${c[$i]}"
done
wait_for "$db" "select count(*) from jobs where serial glob 'a-*' and outcome = 'success'" 3 90 ||
	fail "the .tar.zst cards: $(q "$db" "select serial, outcome, error from jobs")"
for i in 1 2 3; do
	"$BMAPTOOL" -q verify --bmap "$im/disk.img.bmap" "$im/disk.img" "${c[$i]}" ||
		fail "a-$i does not hold the image"
done
n=$(grep -c "cache built" "$TEST_TMP/station.log")
[[ $n == 1 ]] || fail "the cache was filled $n times, not once: $(grep cache "$TEST_TMP/station.log")"
entry=$TEST_TMP/cache/$(cache_key "$im/disk.img.tar.zst" "$im/disk.img.bmap").img
[[ -f $entry ]] || fail "no cache entry $entry: $(ls "$TEST_TMP/cache")"
"$BMAPTOOL" -q verify --bmap "$im/disk.img.bmap" "$im/disk.img" "$entry" ||
	fail "the cache entry is not the archive's member disk.img"

if [[ $have_zip == 1 ]]; then
	z=$(make_card "z-1.img" 32M)
	insert_card "$z"
	wait_for "$db" "select outcome from jobs where serial = 'z-1.img'" failed 60 ||
		fail "the zip with a README first: $(q "$db" "select serial, outcome, error from jobs")"
	err=$(q "$db" "select error from jobs where serial = 'z-1.img'")
	[[ $err == *"member 'README'"* ]] || fail "the zip's failure does not name its member: $err"
	cmp -s "$z" <(head -c 32M /dev/zero | tr '\0' '\245') || fail "z-1 was written to"
fi
log "ok: a .tar.zst profile image was unpacked once into the cache and flashed onto three cards"
