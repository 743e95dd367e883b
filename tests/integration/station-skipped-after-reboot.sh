#!/bin/bash
# A card was silently skipped after a reboot: DISKSEQ restarts at every boot
# and boots number disks in the same order, so the first card in a reader
# after a reboot had the syspath and DISKSEQ of yesterday's card, whose row
# ended 'success', and it was left alone with no row, no log line, no hook.
# A reboot is faked with BMAP_STATION_BOOT_ID_FILE (the journal reads the
# boot id from it instead of /proc/sys/kernel/random/boot_id); the card stays
# attached, so its syspath and DISKSEQ stay the same:
#  - restarted in the same boot, the station leaves the flashed card alone
#  - restarted in another boot, it flashes it again: a row, a log line, a hook
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
ensure_udevd
install_test_rule

img=$TEST_TMP/disk.img
mk_image_bmap "$img" "size=8M data=0:1M data=4M:2M"
db=$TEST_TMP/journal.db
cat >"$TEST_TMP/hook.sh" <<HOOK
#!/bin/sh
echo "\$1" >>"$TEST_TMP/hooks.txt"
HOOK
chmod +x "$TEST_TMP/hook.sh"
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "reboot"; database = "$db"; max_device_size = "1G";
  cache_dir = "$TEST_TMP/cache"; hooks = { on_success = [ "hook.sh", "%serial" ]; }; };
profiles = ( { name = "p"; image = "disk.img"; removable_only = false;
  match = { serial = "card-*"; }; } );
CONF

export BMAP_STATION_BOOT_ID_FILE=$TEST_TMP/boot_id
echo 0b3c6a3e-8d39-4f5e-a3a1-5f3e2b7c9d01 >"$BMAP_STATION_BOOT_ID_FILE"

start_station "$TEST_TMP/station.conf"
station_ready "$db"
card=$(make_card card-1.img 16M)
insert_card "$card"
dev=$LOOP_DEV
wait_for "$db" "select outcome from jobs where serial='card-1.img'" success || fail "card-1 not flashed"
key=$(q "$db" "select syspath || ' ' || diskseq from jobs where serial='card-1.img'")
stop_station

# The same boot: card-1 was dealt with. A second card, inserted after the
# start-up scan, tells when that scan is over.
start_station "$TEST_TMP/station.conf"
card2=$(make_card card-2.img 16M)
insert_card "$card2"
wait_for "$db" "select outcome from jobs where serial='card-2.img'" success || fail "card-2 not flashed"
[[ $(q "$db" "select count(*) from jobs where serial='card-1.img'") == 1 ]] ||
	fail "restarted in the same boot, the station flashed card-1 again"
stop_station

# A reboot: card-1, on the same device with the same DISKSEQ, is a new card.
[[ $(q "$db" "select syspath || ' ' || diskseq from jobs where serial='card-1.img'") == "$key" ]] ||
	fail "card-1 moved"
[[ $(cat "/sys/block/${dev#/dev/}/diskseq") == "${key##* }" ]] || fail "card-1's DISKSEQ changed"
echo 7f1e2d3c-4b5a-4968-8776-655443322110 >"$BMAP_STATION_BOOT_ID_FILE"
start_station "$TEST_TMP/station.conf"
wait_for "$db" "select count(*) from jobs where serial='card-1.img' and outcome='success'" 2 ||
	fail "after a reboot, card-1 (same syspath and DISKSEQ as its job of the last boot) was skipped"
[[ $(q "$db" "select count(distinct boot_id) from jobs where serial='card-1.img'") == 2 ]] ||
	fail "boot ids: $(q "$db" "select job, boot_id from jobs")"
[[ $(grep -c "serial card-1.img.*inserted" "$TEST_TMP/station.log") == 2 ]] ||
	fail "no log line for card-1 after the reboot"
for _ in $(seq 50); do
	[[ $(grep -c '^card-1.img$' "$TEST_TMP/hooks.txt" 2>/dev/null) == 2 ]] && break
	sleep 0.1
done
[[ $(grep -c '^card-1.img$' "$TEST_TMP/hooks.txt") == 2 ]] || fail "hooks run: $(cat "$TEST_TMP/hooks.txt")"
stop_station
log "ok"
