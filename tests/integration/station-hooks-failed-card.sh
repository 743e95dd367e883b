#!/bin/bash
# on_failure did not run for cards recorded `failed` without a worker: an
# image or bmap missing when the card was inserted, or an image gone by the
# time a queued card's turn came (only a `refused` card ran it). Every
# failure outcome runs on_failure: each of these cards gets one on_failure
# run, with outcome `failed` and its job; the card that passed gets
# on_success and no on_failure.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
need_cmd zstd
ensure_udevd
install_test_rule

cat >"$TEST_TMP/say.sh" <<'SAY'
#!/bin/sh
# say.sh EVENT -- SERIAL OUTCOME JOB: prints what follows "--" (the
# journal keeps it as the hook's output)
shift 2
echo "$*"
SAY
chmod +x "$TEST_TMP/say.sh"
im=$TEST_TMP/images
mkdir -p "$im"
mk_sparse_image "$im/q.img" "size=16M data=0:1M data=3M:4M"
"$BMAPTOOL" -q create -o "$im/q.img.bmap" "$im/q.img" || fail "bmaptool create"
zstd -q "$im/q.img" -o "$im/q.img.zst" || fail "zstd"
cp "$im/q.img.zst" "$im/nobmap.img.zst"

db=$TEST_TMP/journal.db
cache=$TEST_TMP/cache
args='"--", "%serial", "%outcome", "%job"'
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "hooks-failed"; database = "$db"; max_workers = 1; max_device_size = "1G";
  cache_dir = "$cache";
  hooks = { on_success = [ "$TEST_TMP/say.sh", "success", $args ];
            on_failure = [ "$TEST_TMP/say.sh", "failure", $args ]; }; };
profiles = (
  { name = "gone"; image = "images/gone.img.zst"; removable_only = false;
    match = { serial = "gone-*"; }; },
  { name = "nobmap"; image = "images/nobmap.img.zst"; bmap = "images/none.bmap";
    removable_only = false; match = { serial = "nobmap-*"; }; },
  { name = "q"; image = "images/q.img.zst"; bmap = "images/q.img.bmap";
    removable_only = false; match = { serial = "q-*"; }; }
);
CONF
start_station "$TEST_TMP/station.conf"
station_ready "$db"

# failed when inserted: the image, or the bmap, is missing
c=$(make_card gone-1.img 32M)
insert_card "$c"
c=$(make_card nobmap-1.img 32M)
insert_card "$c"
wait_for "$db" "select count(*) from jobs where outcome = 'failed' and serial in ('gone-1.img', 'nobmap-1.img')" 2 30 ||
	fail "the cards without image or bmap were not recorded failed"

# failed when its turn came: q-1's worker is held at the cache entry's lock
# (max_workers = 1), q-2 waits in the queue, the image goes meanwhile.
mkdir -p "$cache"
exec 8>>"$cache/$(cache_key "$im/q.img.zst" "$im/q.img.bmap").lock"
flock -x 8 || fail "flock"
c1=$(make_card q-1.img 32M)
insert_card "$c1"
wait_for "$db" "select count(*) from jobs where serial = 'q-1.img' and outcome = 'running'" 1 30 ||
	fail "q-1's job did not start"
c2=$(make_card q-2.img 32M)
insert_card "$c2"
wait_for "$db" "select state from live where serial = 'q-2.img'" waiting 30 || fail "q-2 is not waiting"
rm -f "$im/q.img.zst"
exec 8>&-
wait_for "$db" "select outcome from jobs where serial = 'q-2.img'" failed 30 ||
	fail "q-2 (image gone while it waited): $(q "$db" "select outcome, error from jobs where serial = 'q-2.img'")"
wait_for "$db" "select count(*) from jobs where serial = 'q-1.img' and outcome != 'running'" 1 60 ||
	fail "q-1 did not end"

for serial in gone-1.img nobmap-1.img q-2.img; do
	job=$(q "$db" "select job from jobs where serial = '$serial'")
	wait_for "$db" "select count(*) from hooks where job = $job" 1 10 ||
		fail "$serial (failed, job $job): no hook ran; hooks: $(q "$db" "select job, event, output from hooks")"
	row=$(q "$db" "select event, output from hooks where job = $job")
	[[ $row == "on_failure|$serial failed $job" ]] ||
		fail "$serial (failed, job $job): the hook run is '$row', expected on_failure with '$serial failed $job'"
done
# q-1 ran with the image it had opened: whatever its end, one hook for it,
# the one its outcome asks for.
read -r job1 out1 < <(q "$db" "select job, outcome from jobs where serial = 'q-1.img'" | tr '|' ' ')
want=on_failure
[[ $out1 == success ]] && want=on_success
wait_for "$db" "select count(*) from hooks where job = $job1" 1 10 || fail "q-1 ($out1): no hook ran"
[[ $(q "$db" "select event from hooks where job = $job1") == "$want" ]] ||
	fail "q-1 ($out1): hooks $(q "$db" "select event from hooks where job = $job1")"
station_alive
log "ok: on_failure ran for the cards failed before any worker (q-1 ended $out1)"
