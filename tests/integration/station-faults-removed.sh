#!/bin/bash
# Cards pulled while the worker is busy with them end 'removed', whichever
# of the daemon (udev event, size 0) and the worker (its I/O fails) notices
# first. The fault shim slows the card's writes or reads past 8 MiB
# (delay=), so that the pull lands in the phase wanted:
#  - pulled mid-write: 'removed'
#  - pulled mid-verify (the read-back): 'removed'
#  - a card flashed meanwhile: 'success'
#  - writes failing with ENOMEDIUM and reads (read-back) failing with ENODEV,
#    what a card reader answers once its card is gone, while the device
#    keeps its size so that only the worker can tell: 'removed' all the same
# station-e2e pulls a card whose worker is stalled on its image instead.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
. "$TESTS_DIR/lib/faults.sh"
need_station_env
need_ours
need_fault_shim
ensure_udevd
install_test_rule

img=$TEST_TMP/disk.img
mk_image_bmap "$img" "size=64M data=0:1M data=2M:30M data=40M:4M"
db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "pulls"; database = "$db"; max_workers = 4; max_device_size = "1G";
            require_tag = "bmap-station"; cache_dir = ""; job_timeout = 90; };
profiles = (
  { name = "raw"; image = "disk.img"; bmap = "disk.img.bmap"; removable_only = false;
    verify = "readback"; match = { serial = "card-*"; }; }
);
CONF
outcome() { q "$db" "select outcome || ': ' || ifnull(error, '') from jobs where serial='$1' order by job desc limit 1"; }

declare -A card dev
for c in pull-write pull-verify ok; do card[$c]=$(make_card card-$c.img 72M); done
# Each write (1 MiB) past 8 MiB waits 150 ms, each read (4 MiB) 500 ms: the copy
# or the read-back is still running when the card goes.
fault_rule "backing=${card[pull-write]} pwrite delay=150 after=8M"
fault_rule "backing=${card[pull-verify]} pread delay=500 after=8M"
fault_rule "backing=${card[ok]} pwrite delay=50"

with_faults start_station "$TEST_TMP/station.conf"
sleep 0.5
for c in pull-write pull-verify ok; do
	insert_card "${card[$c]}"
	dev[$c]=$LOOP_DEV
done

# Mid-write: a delayed write is in progress.
wait_fault "${dev[pull-write]}" delay= || fail "pull-write: the copy did not reach 8 MiB"
[[ $(q "$db" "select state from live where devnode='${dev[pull-write]}'") == writing ]] ||
	fail "pull-write: not writing: $(q "$db" "select state from live where devnode='${dev[pull-write]}'")"
pull_busy_card "${dev[pull-write]}" "${card[pull-write]}"

# Mid-verify: reads come only from the read-back (the copy writes).
wait_fault "${dev[pull-verify]}" delay= || fail "pull-verify: the read-back did not reach 8 MiB"
wait_for "$db" "select state from live where devnode='${dev[pull-verify]}'" verifying 10 ||
	fail "pull-verify: the job is not verifying"
pull_card "${dev[pull-verify]}" "${card[pull-verify]}"

for c in pull-write pull-verify; do
	wait_for "$db" "select outcome from jobs where serial='card-$c.img'" removed 30 ||
		fail "$c: the pulled card did not end 'removed': $(outcome card-$c.img)"
done
wait_for "$db" "select outcome from jobs where serial='card-ok.img'" success 60 ||
	fail "ok: not 'success': $(outcome card-ok.img)"
"$BMAPTOOL" -q verify --bmap "$img.bmap" "$img" "${card[ok]}" || fail "ok: the card does not hold the image"

# Gone, as the worker alone sees it: the errors of a reader without its card.
# (Other loop devices than the pulled cards': a slot's next job is another
# matter, station-faults-reinsert.)
for c in nomedium-write nodev-verify; do card[$c]=$(make_card card-$c.img 72M); done
fault_rule "backing=${card[nomedium-write]} pwrite ENOMEDIUM after=8M"
fault_rule "backing=${card[nodev-verify]} pread ENODEV after=8M"
for c in nomedium-write nodev-verify; do
	insert_card "${card[$c]}"
	dev[$c]=$LOOP_DEV
done
for c in nomedium-write:writing nodev-verify:verifying; do
	wait_for "$db" "select outcome from jobs where serial='card-${c%:*}.img'" removed 30 ||
		fail "${c%:*}: not 'removed': $(outcome card-${c%:*}.img)"
	[[ $(outcome card-${c%:*}.img) == "removed: the card was removed while ${c#*:}: "*"'${dev[${c%:*}]}' at byte"* ]] ||
		fail "${c%:*}: the error does not say what failed where: $(outcome card-${c%:*}.img)"
done
for c in pull-write pull-verify ok nomedium-write nodev-verify; do detach_loop "${dev[$c]}"; done
stop_station
log "faults injected: $(fault_summary)"
log "ok: $(q "$db" "select group_concat(serial || '=' || outcome || ' (' || ifnull(error, '') || ')', '; ') from jobs where serial like 'card-%'")"
