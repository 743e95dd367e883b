#!/bin/bash
# Regression: the image cache's filler, forked by a worker, kept the
# worker's SIGTERM handler, which also writes a byte to the worker's cancel
# pipe. The filler closes that pipe, so the byte went to whatever file got
# its number since (the part, a socket to a server): a SIGTERM while the
# filler synced its part could put an 'x' at byte 0 of an entry about to be
# named complete. Now the filler's own handler only sets its cancel flag:
# a SIGTERM stops the fill and writes nothing. strace on the filler says
# which writes its SIGTERM made.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
. "$TESTS_DIR/lib/faults.sh"
need_station_env
need_ours
need_fault_shim
need_cmd strace
need_cmd zstd
need_loops 1
ensure_udevd
install_test_rule

im=$TEST_TMP/images
mkdir -p "$im"
mk_image_bmap "$im/disk.img" "size=24M data=0:1M data=4M:6M data=20M:2M" zst
# The filler's reads of the image are slow: its fill takes seconds.
fault_rule "file=$im/disk.img.zst read delay=200"

db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "filler-signals"; database = "$db"; max_workers = 2;
  require_tag = "bmap-station"; max_device_size = "1G"; cache_dir = "$TEST_TMP/cache";
  cache_prefill = false; };
profiles = (
  { name = "zst"; image = "$im/disk.img.zst"; bmap = "$im/disk.img.bmap"; removable_only = false;
    verify = "readback"; match = { serial = "a-*"; }; }
);
CONF
with_faults start_station "$TEST_TMP/station.conf"
station_ready "$db"

c1=$(make_card a-1.img 32M)
insert_card "$c1"
# The filler: the child of the station's worker.
filler=
for _ in $(seq 200); do
	for w in $(cat /proc/"$STATION_PID"/task/*/children 2>/dev/null); do
		f=$(cat /proc/"$w"/task/*/children 2>/dev/null)
		[[ -n $f ]] && filler=${f%% *} && break
	done
	[[ -n $filler ]] && compgen -G "$TEST_TMP/cache/*.part" >/dev/null && break
	filler=
	sleep 0.05
done
[[ -n $filler ]] || fail "no filler started: $(ls "$TEST_TMP/cache") $(tail -5 "$TEST_TMP/station.log")"
strace -qq -f -e trace=write,pwrite64 -p "$filler" -o "$TEST_TMP/strace.log" &
tracer=$!
on_exit "kill $tracer 2>/dev/null"
for _ in $(seq 100); do
	grep -q TracerPid:."$tracer" /proc/"$filler"/status 2>/dev/null && break
	sleep 0.05
done
grep -q TracerPid:."$tracer" /proc/"$filler"/status || fail "strace did not attach to the filler $filler"
kill -TERM "$filler"
wait "$tracer"
log "the filler's writes after its SIGTERM: $(grep -c . "$TEST_TMP/strace.log") line(s)"
if grep -E 'write\([0-9]+, "x", 1\)' "$TEST_TMP/strace.log"; then
	fail "the filler's SIGTERM wrote a byte to a descriptor the worker's pipe had: $(grep -E '"x", 1' "$TEST_TMP/strace.log")"
fi
wait_for "$db" "select count(*) from jobs where serial = 'a-1.img' and outcome <> 'running'" 1 60 ||
	fail "card a-1 did not end: $(q "$db" "select serial, outcome, error from jobs")"
[[ -z $(ls "$TEST_TMP/cache"/*.img 2>/dev/null) ]] ||
	fail "a stopped fill left an entry: $(ls "$TEST_TMP/cache")"
log "card a-1 after its filler's SIGTERM: $(q "$db" "select outcome, error from jobs where serial = 'a-1.img'")"
log "ok: a SIGTERM stopped the filler without a write"
