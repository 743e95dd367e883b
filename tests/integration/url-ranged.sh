#!/bin/bash
# A raw image at a URL with a bmap: only the mapped ranges are fetched.
# An nginx on 127.0.0.1 serves a 256 MiB sparse image with ~40 MiB mapped
# in ranges of every size (single blocks, islands, large runs, a partial
# last block); its access log ($bytes_sent) counts what the copy moved:
#
# - the copy equals a local copy, and the bytes sent for the image (head,
#   bodies and headers of every request) are at most 5% more than the
#   bmap maps; Range requests (206) were made;
# - a server that ignores Range (max_ranges 0) gets the whole file read
#   through: the copy is still identical;
# - a ranged copy through a server killed mid-transfer and started again
#   (limit_rate) is resumed and identical, and verify passes.

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
source "${TESTS_DIR:-$(dirname "$0")/..}/lib/webserver.sh"
need_ours
need_reference
need_nginx
need_cmd cmp

www=$TEST_TMP/www
mkdir -p "$www"
mk_sparse_image "$www/disk.img" "size=256M+3000 data=0:4K data=8K:4K islands=1M:4K:200:64K \
	islands=20M:12K:100:100K data=40M:16M data=100M:4K data=150M:8M islands=200M:64K:50:256K \
	data=256M-4K:7096"
"$REF" create -o "$www/disk.img.bmap" "$www/disk.img" 2>/dev/null || fail "reference create failed"
mapped=$("$BMAPTOOL" info --json "$www/disk.img" | sed -n 's/.*"mapped_bytes": \([0-9]*\).*/\1/p')
[[ $mapped -gt 30000000 ]] || fail "the image maps $mapped bytes only"
"$BMAPTOOL" -q copy "$www/disk.img" "$TEST_TMP/local" || fail "local copy failed"

web_start a "$www"
"$BMAPTOOL" -q copy "$(web_url a disk.img)" "$TEST_TMP/a" || fail "the ranged copy failed"
cmp "$TEST_TMP/local" "$TEST_TMP/a" || fail "the ranged copy differs from a local copy"
sent=$(web_sent a '^/disk\.img$')
log "sent $sent bytes of the image for $mapped mapped bytes ($((sent * 1000 / mapped)) per mille)"
((sent * 100 <= mapped * 105)) || fail "sent $sent bytes for $mapped mapped: more than 5% more"
grep -q '^GET /disk.img 206 .*"bytes=[0-9]*-[0-9]*"' "$WEB_LOG_a" || fail "no Range request was made"

web_start b "$www" "max_ranges 0;"
"$BMAPTOOL" -q copy "$(web_url b disk.img)" "$TEST_TMP/b" || fail "the copy from a server without ranges failed"
cmp "$TEST_TMP/local" "$TEST_TMP/b" || fail "the copy from a server without ranges differs"

out=$TEST_TMP/out
web_start c "$www" "limit_rate 3m;"
"$BMAPTOOL" copy "$(web_url c disk.img)" "$TEST_TMP/c" >"$out" 2>&1 &
pid=$!
on_exit "kill $pid 2>/dev/null"
sleep 1.5
kill -0 "$pid" 2>/dev/null || { cat "$out" >&2; fail "the slow ranged copy ended before the kill"; }
web_kill c
sleep 1
web_restart c
wait "$pid" || { cat "$out" >&2; fail "the ranged copy through a killed server failed"; }
grep -q "resuming" "$out" || { cat "$out" >&2; fail "no resume of a range was reported"; }
cmp "$TEST_TMP/local" "$TEST_TMP/c" || fail "the resumed ranged copy differs from a local copy"
"$BMAPTOOL" -q verify "$(web_url c disk.img)" "$TEST_TMP/c" || fail "verify of the ranged copy failed"
log "PASS"
