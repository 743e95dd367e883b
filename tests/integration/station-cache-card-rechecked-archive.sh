#!/bin/bash
# A .tar.gz profile with the image cache: only the cache's filler checks
# the archive whole (for a tar under gzip that is a full decode); a card
# served from the complete entry reads no more of the archive than its
# headers. Before, every card's worker decoded the whole .tar.gz again to
# check it was not cut short, entry or no entry (strace counts the bytes
# the second card's worker read from the archive). And a cut .tar.gz still
# writes nothing: the filler's check fails the card, its bytes unchanged.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
need_cmd tar
need_cmd gzip
need_cmd strace
need_loops 3
ensure_udevd
install_test_rule

im=$TEST_TMP/images
mkdir -p "$im"
mk_sparse_image "$im/disk.img" "size=24M data=0:1M data=4M:12M data=20M:2M"
"$BMAPTOOL" -q create -o "$im/disk.img.bmap" "$im/disk.img" || fail "create"
(cd "$im" && tar -cf - disk.img | gzip -1 >disk.img.tar.gz) || fail "tar | gzip"
size=$(stat -c %s "$im/disk.img.tar.gz")
((size > 8 * 1048576)) || fail "the archive is only $size bytes: its data should not compress"
head -c $((size / 2)) "$im/disk.img.tar.gz" >"$im/cut.img.tar.gz"
cp "$im/disk.img.bmap" "$im/cut.img.bmap"

db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "archive-recheck"; database = "$db"; max_workers = 2;
  require_tag = "bmap-station"; max_device_size = "1G"; cache_dir = "$TEST_TMP/cache"; cache_prefill = false; };
profiles = (
  { name = "targz"; image = "$im/disk.img.tar.gz"; removable_only = false;
    verify = "readback"; match = { serial = "a-*"; }; },
  { name = "cut"; image = "$im/cut.img.tar.gz"; removable_only = false;
    match = { serial = "c-*"; }; }
);
CONF
start_station "$TEST_TMP/station.conf"
station_ready "$db"

a1=$(make_card "a-1.img" 32M)
insert_card "$a1"
wait_for "$db" "select outcome from jobs where serial = 'a-1.img'" success 60 ||
	fail "the first card: $(q "$db" "select serial, outcome, error from jobs")"
grep -q "cache built" "$TEST_TMP/station.log" || fail "the first card did not build the cache"

# The next card's worker, traced from its fork on.
strace -f -qq -e trace=openat,read,pread64,readv,close -o "$TEST_TMP/strace.log" -p "$STATION_PID" &
spid=$!
on_exit "kill $spid 2>/dev/null"
for _ in $(seq 50); do
	grep -q "^TracerPid:[[:space:]]*$spid\$" "/proc/$STATION_PID/status" && break
	sleep 0.1
done
grep -q "^TracerPid:[[:space:]]*$spid\$" "/proc/$STATION_PID/status" || fail "strace did not attach"
a2=$(make_card "a-2.img" 32M)
insert_card "$a2"
wait_for "$db" "select outcome from jobs where serial = 'a-2.img'" success 60 ||
	fail "the second card: $(q "$db" "select serial, outcome, error from jobs")"
kill -INT "$spid"
wait "$spid"
grep -q "cache used" "$TEST_TMP/station.log" || fail "the second card was not served by the cache"
for c in "$a1" "$a2"; do
	"$BMAPTOOL" -q verify --bmap "$im/disk.img.bmap" "$im/disk.img" "$c" || fail "$c does not hold the image"
done

# The most any one process read from the archive while the second card ran.
read_max=$(python3 - "$TEST_TMP/strace.log" "$im/disk.img.tar.gz" <<'PY'
import re, sys
log, path = sys.argv[1], sys.argv[2]
fds, pending, total = {}, {}, {}
for line in open(log, errors="replace"):
    m = re.match(r"(\d+) +(.*)", line)
    if not m:
        continue
    pid, rest = int(m.group(1)), m.group(2)
    r = re.match(r"<\.\.\. (\w+) resumed>.*\) += (-?\d+)", rest)
    if r:
        call, ret = r.group(1), int(r.group(2))
        call, arg = pending.pop(pid, (call, ""))
    else:
        c = re.match(r"(\w+)\((.*)", rest)
        if not c:
            continue
        call, arg = c.group(1), c.group(2)
        if "<unfinished ...>" in rest:
            pending[pid] = (call, arg)
            continue
        rr = re.search(r"\) += (-?\d+)", rest)
        ret = int(rr.group(1)) if rr else -1
    if call == "openat" and path in arg and ret >= 0:
        fds[(pid, ret)] = True
    elif call == "close":
        fds.pop((pid, int(re.match(r"\d+", arg).group(0))), None) if re.match(r"\d+", arg) else None
    elif call in ("read", "pread64", "readv") and ret > 0:
        fd = re.match(r"(\d+)", arg)
        if fd and (pid, int(fd.group(1))) in fds:
            total[pid] = total.get(pid, 0) + ret
print(max(total.values(), default=0))
PY
) || fail "cannot read strace's log"
log "the second card's processes read at most $read_max of the archive's $size bytes"
((read_max < size / 4)) ||
	fail "a card served from the complete cache entry read $read_max of the archive's $size bytes (checked it whole again)"

c1=$(make_card "c-1.img" 32M)
insert_card "$c1"
wait_for "$db" "select outcome from jobs where serial = 'c-1.img'" failed 60 ||
	fail "the cut archive: $(q "$db" "select serial, outcome, error from jobs")"
err=$(q "$db" "select error from jobs where serial = 'c-1.img'")
[[ $err == *truncated* && $err == *"nothing was written"* ]] || fail "the cut archive's error: $err"
cmp -s "$c1" <(head -c 32M /dev/zero | tr '\0' '\245') || fail "c-1 was written to"
log "ok: a card from the complete cache entry did not decode the .tar.gz again; a cut one wrote nothing"
