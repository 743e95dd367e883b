#!/bin/bash
# A disk the station enumerated at its start, while udev was still busy with
# the disk's new medium, took the identity udev's database held for the
# medium before (its serial, its tags) with the kernel's DISKSEQ of the new
# one: the new card was recorded (and flashed) under the old card's serial,
# and its own udev event was then dropped as the same medium. Found by the
# sanitizer pass of station-cycles (its cards attached while the slower
# daemon started). Now such a disk waits for its event.
#
# Made deterministic: a card is attached and seen by udev (its database
# names it, with its by-diskseq link), udevd's queue is stopped (udevadm
# control --stop-exec-queue), the card is swapped for another on the same
# loop device, the station started and left to reach its main loop (its
# enumeration done: it waits in poll(2)), then the queue goes on. The new
# card must be flashed under its own serial; the old one, gone before the
# station started, gets no row.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
ensure_udevd
install_test_rule

img=$TEST_TMP/disk.img
mk_image_bmap "$img" "size=4M data=0:1M data=2M:1M"
db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "stale-identity"; database = "$db"; max_device_size = "1G";
            require_tag = "bmap-station"; cache_dir = "$TEST_TMP/cache"; };
profiles = (
  { name = "raw"; image = "disk.img"; removable_only = false;
    match = { serial = "stale-*"; }; }
);
CONF
old=$(make_card stale-old.img 8M)
new=$(make_card stale-new.img 8M)
insert_card "$old"
dev=$LOOP_DEV
udevadm settle
udevadm info --query=property --name="$dev" | grep -qx "ID_SERIAL=stale-old.img" ||
	fail "udev did not name $dev stale-old.img"

on_exit "udevadm control --start-exec-queue 2>/dev/null"
udevadm control --stop-exec-queue || fail "cannot stop udevd's queue"
losetup -d "$dev" || fail "cannot detach $dev"
for _ in $(seq 50); do losetup "$dev" "$new" 2>/dev/null && break; sleep 0.05; done
[[ $(losetup -n -O BACK-FILE "$dev" 2>/dev/null) == "$new" ]] || fail "cannot attach $new to $dev"
start_station "$TEST_TMP/station.conf"
station_ready "$db"
# In its main loop (poll(2), syscall 7 on x86_64; elsewhere a second):
# the disks present have been looked at.
for _ in $(seq 100); do
	[[ $(uname -m) == x86_64 ]] || { sleep 1; break; }
	read -r nr _ <"/proc/$STATION_PID/syscall" && [[ $nr == 7 ]] && break
	sleep 0.05
done
udevadm control --start-exec-queue

wait_for "$db" "select outcome from jobs where serial='stale-new.img'" success 30 ||
	fail "the card put in while the station started: $(q "$db" "select group_concat(serial || '=' || outcome || ': ' || ifnull(error, ''), ' / ') from jobs where devnode='$dev'")"
[[ $(q "$db" "select count(*) from jobs where devnode='$dev'") == 1 ]] ||
	fail "rows for $dev: $(q "$db" "select group_concat(ifnull(serial, '-') || '=' || outcome, ' ') from jobs where devnode='$dev'")"
"$BMAPTOOL" -q verify --bmap "$img.bmap" "$img" "$dev" || fail "$dev does not hold the image"
stop_station
log "ok: $(q "$db" "select serial || '=' || outcome from jobs where devnode='$dev'")"
