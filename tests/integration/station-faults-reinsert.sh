#!/bin/bash
# Regression: a worker stopped because its card was pulled left the slot's
# SIGKILL deadline (kill_at) armed; the next card in the same slot (same
# loop device, reinserted within KILL_GRACE) had its worker killed when the
# old deadline passed: 'failed: the worker died of signal 9'. The next job
# must run to 'success'.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
. "$TESTS_DIR/lib/faults.sh"
need_station_env
need_ours
need_fault_shim
ensure_udevd
install_test_rule

img=$TEST_TMP/disk.img
mk_image_bmap "$img" "size=32M data=0:1M data=2M:20M"
db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "reinsert"; database = "$db"; max_device_size = "1G";
            require_tag = "bmap-station"; cache_dir = ""; job_timeout = 90; };
profiles = (
  { name = "raw"; image = "disk.img"; bmap = "disk.img.bmap"; removable_only = false;
    match = { serial = "card-*"; }; }
);
CONF
a=$(make_card card-a.img 40M)
b=$(make_card card-b.img 40M)
# A is slow (its worker ends on its own, within a second of the pull, well
# before the 5 s grace); B's copy takes about 8 s (21 writes of 1 MiB, 0.4 s
# each): it starts a second or two after the pull and is still writing when
# A's stale deadline (pull + 5 s) passes, with seconds to spare either side.
fault_rule "backing=$a pwrite delay=400 after=4M"
fault_rule "backing=$b pwrite delay=400"
with_faults start_station "$TEST_TMP/station.conf"
sleep 0.5
insert_card "$a"
loop=$LOOP_DEV
wait_fault "$loop" delay=400 || fail "card A did not start"
pull_busy_card "$loop" "$a"
wait_for "$db" "select outcome from jobs where serial='card-a.img'" removed 10 || fail "A not removed"
# The same reader (loop device) gets card B at once.
detach_loop "$loop"
for _ in $(seq 50); do losetup "$loop" "$b" 2>/dev/null && break; sleep 0.1; done
losetup -j "$b" | grep -q "^$loop:" || fail "cannot attach $b to $loop"
_LOOPS+=("$loop")
wait_for "$db" "select outcome from jobs where serial='card-b.img'" success 40 ||
	fail "B, in the slot of the pulled A: $(q "$db" "select outcome || ': ' || ifnull(error, '') from jobs where serial='card-b.img'")"
stop_station
log "ok"
