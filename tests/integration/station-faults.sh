#!/bin/bash
# Faults are survived and recorded: the daemon runs with the fault shim
# (tests/fault) preloaded, so its forked workers get I/O errors on chosen
# cards only, while other cards are flashed at the same time.
#  - a write error (EIO) mid-copy, on a raw image (pool of copy workers):
#    'failed', the error names the device and the offset that failed
#  - a write that writes nothing (returns 0) on every call, on a zstd
#    stream (pipelined copy): 'failed' with an error, in bounded time (no
#    endless retry)
#  - writes that are short on every call (the device takes 64.5 KiB at a
#    time): retried until complete, 'success', and the card holds the image
#  - a card with slow writes, flashed meanwhile: 'success'
#  - a read error during the read-back: 'verify_failed', the error names
#    the bytes and blocks that could not be read
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
. "$TESTS_DIR/lib/faults.sh"
need_station_env
need_ours
need_fault_shim
need_cmd zstd
ensure_udevd
install_test_rule

img=$TEST_TMP/disk.img
mk_image_bmap "$img" "size=64M data=0:1M data=2M:30M data=40M:4M+512" zst
db=$TEST_TMP/journal.db
# No cache: the zstd image is copied through the pipeline, the raw one by
# the pool of workers; both paths meet the faults.
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "faults"; database = "$db"; max_workers = 4; max_device_size = "1G";
            require_tag = "bmap-station"; cache_dir = ""; job_timeout = 90; };
profiles = (
  { name = "raw"; image = "disk.img"; bmap = "disk.img.bmap"; removable_only = false;
    verify = "readback"; match = { serial = "raw-*"; }; },
  { name = "zst"; image = "disk.img.zst"; bmap = "disk.img.bmap"; removable_only = false;
    verify = "readback"; match = { serial = "zst-*"; }; }
);
CONF

outcome() { q "$db" "select outcome from jobs where serial='$1' order by job desc limit 1"; }
error_of() { q "$db" "select error from jobs where serial='$1' order by job desc limit 1"; }
devnode_of() { q "$db" "select devnode from jobs where serial='$1' order by job desc limit 1"; }
# holds_image CARD: the card's bytes are the image's mapped data.
holds_image() { "$BMAPTOOL" -q verify --bmap "$img.bmap" "$img" "$1"; }

# Rules before the cards exist: they name the backing files.
declare -A card dev
for c in raw-ok raw-eio zst-short0 zst-short; do card[$c]=$(make_card $c.img 72M); done
fault_rule "backing=${card[raw-eio]} pwrite EIO after=8M"
fault_rule "backing=${card[zst-short0]} pwrite short=0 after=8M"
fault_rule "backing=${card[zst-short]} pwrite short=66048"
# Slow enough (about 1 s) that the failing cards end while it is written.
fault_rule "backing=${card[raw-ok]} pwrite delay=100"

with_faults start_station "$TEST_TMP/station.conf"
sleep 0.5
for c in raw-ok raw-eio zst-short0 zst-short; do
	insert_card "${card[$c]}"
	dev[$c]=$LOOP_DEV
done
for c in raw-eio zst-short0; do
	wait_for "$db" "select outcome from jobs where serial='$c.img'" failed 60 ||
		fail "$c: not 'failed': $(outcome $c.img) $(error_of $c.img)"
done
for c in raw-ok zst-short; do
	wait_for "$db" "select outcome from jobs where serial='$c.img'" success 60 ||
		fail "$c: not 'success': $(outcome $c.img) $(error_of $c.img)"
done

# The write error: the device and the offset of a write that failed.
err=$(error_of raw-eio.img)
[[ $(faults_on "${dev[raw-eio]}" errno=5) -ge 1 ]] || fail "no EIO was injected on raw-eio"
[[ $err =~ ^cannot\ write\ to\ \'([^\']+)\'\ at\ byte\ ([0-9]+)\ .*Input/output\ error ]] ||
	fail "raw-eio: the error does not name the device and offset: $err"
[[ ${BASH_REMATCH[1]} == "$(devnode_of raw-eio.img)" && ${BASH_REMATCH[1]} == "${dev[raw-eio]}" ]] ||
	fail "raw-eio: the error names ${BASH_REMATCH[1]}, the card was ${dev[raw-eio]}"
fault_offsets "${dev[raw-eio]}" | grep -qx "${BASH_REMATCH[2]}" ||
	fail "raw-eio: offset ${BASH_REMATCH[2]} is not one that failed: $(fault_offsets "${dev[raw-eio]}" | tr '\n' ' ')"

# A write that takes nothing fails at once; it is not retried forever.
err=$(error_of zst-short0.img)
[[ $err == *"cannot write to '${dev[zst-short0]}' at byte"* ]] ||
	fail "zst-short0: the error does not name the device and offset: $err"
n=$(faults_on "${dev[zst-short0]}" short=0)
[[ $n -ge 1 && $n -le 4 ]] || fail "zst-short0: $n zero-byte writes (expected 1..4: no retry loop)"

# Short writes are completed: the card holds the image.
n=$(faults_on "${dev[zst-short]}" short=)
[[ $n -ge 100 ]] || fail "zst-short: only $n short writes were injected"
holds_image "${card[zst-short]}" || fail "zst-short: the card does not hold the image after short writes"
holds_image "${card[raw-ok]}" || fail "raw-ok: the card does not hold the image"
# raw-ok was flashed while the others failed: the jobs overlap in time.
overlap=$(q "$db" "select count(*) from jobs a join jobs b on a.serial='raw-ok.img'
	and b.serial in ('raw-eio.img', 'zst-short0.img') and a.started <= b.finished and b.started <= a.finished")
[[ $overlap == 2 ]] || fail "raw-ok did not run alongside the failing cards: $(q "$db" "select serial, started, finished from jobs")"
[[ $(q "$db" "select count(*) from jobs where serial in ('raw-ok.img','zst-short.img') and data_sha256 = readback_sha256") == 2 ]] ||
	fail "a successful card's read-back digest differs from what was written"
log "write faults injected: $(fault_summary); outcomes: $(q "$db" "select group_concat(serial || '=' || outcome, ' ') from jobs")"
for c in raw-ok raw-eio zst-short0 zst-short; do detach_loop "${dev[$c]}"; done

# A read error during the read-back, past 8 MiB; a clean card alongside.
: >"$FAULT_LOG"
rd=$(make_card raw-readerr.img 72M)
ok2=$(make_card zst-ok2.img 72M)
fault_rule "backing=$rd pread EIO after=8M"
insert_card "$rd"
rd_dev=$LOOP_DEV
insert_card "$ok2"
ok2_dev=$LOOP_DEV
wait_for "$db" "select outcome from jobs where serial='raw-readerr.img'" verify_failed 60 ||
	fail "raw-readerr: not 'verify_failed': $(outcome raw-readerr.img) $(error_of raw-readerr.img)"
wait_for "$db" "select outcome from jobs where serial='zst-ok2.img'" success 60 ||
	fail "zst-ok2: not 'success': $(outcome zst-ok2.img) $(error_of zst-ok2.img)"
err=$(error_of raw-readerr.img)
[[ $(faults_on "$rd_dev" errno=5) -ge 1 ]] || fail "no read EIO was injected"
re="^cannot read '$rd_dev' at bytes ([0-9]+)-([0-9]+) \(blocks ([0-9]+)-([0-9]+) of blocks range [0-9]+-[0-9]+\): Input/output error"
[[ $err =~ $re ]] || fail "raw-readerr: the error does not name the range: $err"
from=${BASH_REMATCH[1]} to=${BASH_REMATCH[2]}
fault_offsets "$rd_dev" | grep -qx "$from" || fail "raw-readerr: byte $from is not where a read failed"
[[ $to -ge $((8 << 20)) && ${BASH_REMATCH[3]} == $((from / 4096)) && ${BASH_REMATCH[4]} == $((to / 4096)) ]] ||
	fail "raw-readerr: bytes and blocks disagree: $err"
# The copy itself was complete: the card holds the image all the same.
holds_image "$rd" || fail "raw-readerr: the copy before the read-back was not complete"
detach_loop "$rd_dev"
detach_loop "$ok2_dev"
stop_station
log "read faults injected: $(fault_summary)"
log "ok: $(q "$db" "select group_concat(outcome || '=' || n, ' ') from (select outcome, count(*) n from jobs group by outcome)")"
