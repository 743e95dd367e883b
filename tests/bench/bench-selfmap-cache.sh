#!/bin/bash
# The image cache unpacking a self-mapped image once: a .simg.xz (img2simg
# then xz -1 of a 256 MiB disk holding 120 MiB of compressible data: base64
# of random bytes), no bmap, 3 cards read back, flashed by the station with
# the cache (the filler unpacks it once, cache-self.c) and with cache_dir = ""
# (each worker decodes it, and again for its read-back), twice each, in
# turn. Prints the CPU seconds of the station's children (workers and
# filler: cutime + cstime of the station, which reaps them all) and the
# wall time of each run, and the ratio without/with the cache. Run as root,
# under the device lock (flock /tmp/bmap-devices.lock).
#
# usage: bench-selfmap-cache.sh    env: BUILD_DIR (default build/ of this checkout)
set -u
TESTS_DIR=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/build}
BMAPTOOL=$BUILD_DIR/bmaptool
export TESTS_DIR BUILD_DIR BMAPTOOL
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_cmd img2simg
need_cmd xz
need_loops 3
ensure_udevd
install_test_rule
im=$TEST_TMP/images; mkdir -p "$im"
# compressible data (base64 of random bytes: xz keeps ~3/4), with holes
truncate -s 256M "$TEST_TMP/disk.raw"
for off in 0 64 160; do
	head -c 30M /dev/urandom | base64 -w 0 | head -c 40M |
		dd of="$TEST_TMP/disk.raw" bs=1M seek=$off conv=notrunc status=none
done
img2simg "$TEST_TMP/disk.raw" "$TEST_TMP/disk.simg" || fail img2simg
xz -T2 -1 -c "$TEST_TMP/disk.simg" >"$im/disk.simg.xz" || fail xz
ls -l "$im"
declare -A cpu
for mode in cache nocache cache nocache; do
	db=$TEST_TMP/j-$mode-$RANDOM.db
	cd_=$TEST_TMP/cache-$RANDOM; [[ $mode == nocache ]] && cd_=
	cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "m"; database = "$db"; max_workers = 3;
  require_tag = "bmap-station"; max_device_size = "1G"; cache_dir = "$cd_"; cache_prefill = false; };
profiles = ( { name = "simgxz"; image = "$im/disk.simg.xz"; removable_only = false;
    verify = "readback"; match = { serial = "s-*"; }; } );
CONF
	start_station "$TEST_TMP/station.conf"
	station_ready "$db"
	cards=()
	for s in 1 2 3; do cards+=("$(make_card "s-$s.img" 300M)"); done
	t0=$(date +%s.%N)
	for f in "${cards[@]}"; do insert_card "$f"; done
	wait_for "$db" "select count(*) from jobs where outcome = 'success'" 3 600 || fail "$mode: $(q "$db" "select serial,outcome,error from jobs")"
	t1=$(date +%s.%N)
	sleep 1
	read -r ut st < <(awk '{print $16, $17}' "/proc/$STATION_PID/stat")
	tck=$(getconf CLK_TCK)
	cpu[$mode]=$(awk -v u="$ut" -v s="$st" -v t="$tck" -v p="${cpu[$mode]:-0}" 'BEGIN{printf "%.2f", p + (u+s)/t}')
	log "$mode: children CPU $(awk -v u="$ut" -v s="$st" -v t="$tck" 'BEGIN{printf "%.2f s (user %.2f, sys %.2f)", (u+s)/t, u/t, s/t}'), wall $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f s", b-a}')"
	stop_station
	for d in "${_LOOPS[@]}"; do detach_loop "$d"; done
	rm -f "${cards[@]}"
done
log "ratio: children CPU without the cache / with it: $(awk -v a="${cpu[nocache]}" -v b="${cpu[cache]}" 'BEGIN{printf "%.2f (%.2f s / %.2f s)", a/b, a, b}')"
