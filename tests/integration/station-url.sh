#!/bin/bash
# The station with profiles whose image (and bmap) are URLs on a real nginx
# on 127.0.0.1, the cards loop devices:
#
# - a .zst image at a URL with a password in it, no bmap key (the bmap is
#   found next to it, disk.img.zst -> disk.img.bmap), three cards: the image
#   is downloaded once (one request from its first byte, no range twice)
#   into the image cache, the server killed mid-download and
#   started again (the fill resumes), every card holds the image (its mapped data: the bmap's verify), the
#   journal says success; `status` shows the download while it runs; the
#   password is in no log line, journal row or `status` output; the image
#   replaced on the server (new ETag, Last-Modified) is another cache entry;
# - an image URL that is not there (404) fails its card without a worker,
#   the error naming the URL and the 404;
# - a bmap URL signed (BMAP.asc next to it) with signature = "required"
#   passes; the same image with an unsigned bmap URL is refused, unwritten;
# - a file: URL image is written through the cache too.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
. "$TESTS_DIR/lib/webserver.sh"
need_station_env
need_ours
need_nginx
need_cmd zstd
need_cmd gpg
need_cmd gpgconf
need_loops 8
ensure_udevd
install_test_rule

www=$TEST_TMP/www
mkdir -p "$www/signed" "$www/unsigned"
# Random data, so that the .zst is about as large as the data and its
# download at limit_rate lasts long enough to be cut.
mk_sparse_image "$www/disk.img" "size=24M+1000 data=0:3M islands=4M:4K:20:64K data=10M:5M data=24M:1000"
"$BMAPTOOL" -q create -o "$www/disk.img.bmap" "$www/disk.img" || fail "create"
zstd -q -1 -c "$www/disk.img" >"$www/disk.img.zst" || fail "zstd"
zsize=$(stat -c %s "$www/disk.img.zst")
((zsize > 6 * 1024 * 1024)) || fail "the .zst is too small to be cut mid-download ($zsize bytes)"
cp "$www/disk.img.zst" "$www/signed/disk.img.zst"
cp "$www/disk.img.bmap" "$www/signed/disk.img.bmap"
cp "$www/disk.img.zst" "$www/unsigned/disk.img.zst"
cp "$www/disk.img.bmap" "$www/unsigned/disk.img.bmap"

# A release key, the signed bmap's detached signature next to it.
g=$TEST_TMP/gnupg
mkdir -m 700 "$g"
on_exit "gpgconf --homedir '$g' --kill all"
gpg --homedir "$g" --batch --passphrase '' --quick-gen-key "Release <rel@example.com>" \
	default default 1y 2>"$TEST_TMP/gpg.err" || fail "gpg: $(cat "$TEST_TMP/gpg.err")"
fpr=$(gpg --homedir "$g" --with-colons --list-keys 2>/dev/null | awk -F: '$1 == "fpr" { print $10; exit }')
[[ $fpr =~ ^[0-9A-F]{40}$ ]] || fail "no fingerprint"
gpg --homedir "$g" --export "$fpr" >"$TEST_TMP/release.keyring" || fail "export"
gpg --homedir "$g" --batch --yes --armor --detach-sign -o "$www/signed/disk.img.bmap.asc" \
	"$www/signed/disk.img.bmap" 2>"$TEST_TMP/gpg.err" || fail "sign: $(cat "$TEST_TMP/gpg.err")"

# 1 MiB/s while $www/slow exists: the first download takes about 9 s, and
# is cut in the middle. The later ones (a replaced image, the signed bmap's
# image) need no cut and are served at full speed: 16 s less.
touch "$www/slow"
web_start w "$www" 'limit_rate 1m; if (!-f $document_root/slow) { set $limit_rate 0; }'
pass=s3cretPW
base="http://station:$pass@127.0.0.1:$WEB_PORT_w"
req="signature = \"required\"; keyring = \"$TEST_TMP/release.keyring\"; fingerprints = [ \"$fpr\" ];"

db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "url"; database = "$db"; max_workers = 4;
  require_tag = "bmap-station"; max_device_size = "1G"; cache_dir = "$TEST_TMP/cache"; cache_prefill = false; };
profiles = (
  { name = "url"; image = "$base/disk.img.zst"; removable_only = false;
    verify = "readback"; match = { serial = "a-*"; }; },
  { name = "missing"; image = "$base/nope.img.zst"; bmap = "$base/disk.img.bmap";
    removable_only = false; match = { serial = "m-*"; }; },
  { name = "signed"; image = "$base/signed/disk.img.zst"; bmap = "$base/signed/disk.img.bmap";
    removable_only = false; $req match = { serial = "s-*"; }; },
  { name = "unsigned"; image = "$base/unsigned/disk.img.zst";
    bmap = "$base/unsigned/disk.img.bmap";
    removable_only = false; $req match = { serial = "u-*"; }; },
  { name = "file"; image = "file://$www/disk.img.zst"; removable_only = false;
    match = { serial = "f-*"; }; }
);
CONF
"$BMAP_STATION" check --config "$TEST_TMP/station.conf" >"$TEST_TMP/check.out" 2>&1
grep -q "$pass" "$TEST_TMP/check.out" && fail "check printed the password: $(cat "$TEST_TMP/check.out")"
start_station "$TEST_TMP/station.conf"
station_ready "$db"

for i in 1 2 3; do
	c[$i]=$(make_card "a-$i.img" 32M)
	insert_card "${c[$i]}"
done
# The download shows in `status` while it runs; then the server dies under it.
seen=
for _ in $(seq 100); do
	"$BMAP_STATION" status --db "$db" >"$TEST_TMP/status.out" 2>&1
	if grep -q "downloading" "$TEST_TMP/status.out"; then
		seen=1
		break
	fi
	sleep 0.1
done
[[ -n $seen ]] || fail "status never showed the download: $(cat "$TEST_TMP/status.out")"
grep -q "$pass" "$TEST_TMP/status.out" && fail "status shows the password: $(cat "$TEST_TMP/status.out")"
sleep 1
[[ -n $(q "$db" "select count(*) from jobs where serial glob 'a-*' and outcome = 'success'" | grep -v '^0$') ]] &&
	fail "the cards were done before the server could be cut"
web_kill w
sleep 1
web_restart w
wait_for "$db" "select count(*) from jobs where serial glob 'a-*' and outcome = 'success'" 3 120 ||
	fail "the URL cards: $(q "$db" "select serial, outcome, error from jobs")"
for i in 1 2 3; do
	"$BMAPTOOL" -q verify --bmap "$www/disk.img.bmap" "$www/disk.img" "${c[$i]}" ||
		fail "a-$i does not hold the image"
done
# Downloaded once: one request from the first byte (the source asks for the
# first MiB, then the rest), no range asked twice, and a resume from where
# the cut left it (nginx logs no request it was killed in).
img_gets() { grep '^GET /disk.img.zst ' "$WEB_LOG_w"; }
from0=$(img_gets | grep -c -e ' "-"$' -e '"bytes=0-')
((from0 == 1)) || fail "the image was downloaded $from0 times from its start: $(cat "$WEB_LOG_w")"
[[ -z $(img_gets | awk '{ print $5 }' | sort | uniq -d) ]] ||
	fail "a range of the image was downloaded twice: $(cat "$WEB_LOG_w")"
img_gets | grep -v -e '"bytes=0-' -e '"bytes=1048576-"' | grep -q ' 206 .*"bytes=[1-9][0-9]*-"' ||
	fail "the cut download was not resumed: $(cat "$WEB_LOG_w")"
log "three cards from one download: the .zst is $zsize bytes, the server logged $(web_sent w '^/disk.img.zst$') bytes sent for it in $(img_gets | wc -l) GET(s) (the request cut by the kill is not logged)"
n=$(grep -c "cache built" "$TEST_TMP/station.log")
((n == 1)) || fail "the cache was filled $n times: $(grep cache "$TEST_TMP/station.log")"

rm -f "$www/slow"

# The image replaced on the server (a new Last-Modified and ETag, the same
# bmap): the next card does not take the old entry, it downloads again.
key_of() { grep "serial $1)" "$TEST_TMP/station.log" | sed -n -E 's#.*cache (built|used): .*/([0-9a-f]{64})\.(part|img).*#\2#p'; }
touch -d '+1 hour' "$www/disk.img.zst"
c[4]=$(make_card "a-4.img" 32M)
insert_card "${c[4]}"
wait_for "$db" "select outcome from jobs where serial = 'a-4.img'" success 120 ||
	fail "a-4 after the image changed: $(q "$db" "select serial, outcome, error from jobs")"
k1=$(key_of a-1.img) k4=$(key_of a-4.img)
[[ -n $k1 && -n $k4 ]] || fail "no cache line for a-1 or a-4: $(grep cache "$TEST_TMP/station.log")"
[[ $k1 != "$k4" ]] || fail "the image replaced on the server reused the old cache entry $k1"
"$BMAPTOOL" -q verify --bmap "$www/disk.img.bmap" "$www/disk.img" "${c[4]}" ||
	fail "a-4 does not hold the image"

# 404: failed before any worker, naming the URL (without the password).
m=$(make_card "m-1.img" 32M)
insert_card "$m"
wait_for "$db" "select outcome from jobs where serial = 'm-1.img'" failed 60 ||
	fail "the 404 card: $(q "$db" "select serial, outcome, error from jobs")"
err=$(q "$db" "select error from jobs where serial = 'm-1.img'")
[[ $err == *"http://127.0.0.1:$WEB_PORT_w/nope.img.zst"* && $err == *404* ]] ||
	fail "the 404's error does not name the URL and the 404: $err"
grep "m-1.img" "$TEST_TMP/station.log" | grep -q "started (worker" &&
	fail "a worker was started for the 404 image"
cmp -s "$m" <(head -c 32M /dev/zero | tr '\0' '\245') || fail "m-1 was written to"

# A signed bmap URL with signature = "required" passes; an unsigned one is refused.
s=$(make_card "s-1.img" 32M)
insert_card "$s"
u=$(make_card "u-1.img" 32M)
insert_card "$u"
wait_for "$db" "select outcome from jobs where serial = 's-1.img'" success 120 ||
	fail "the signed bmap URL: $(q "$db" "select serial, outcome, error from jobs")"
[[ $(q "$db" "select signer from jobs where serial = 's-1.img'") == "$fpr" ]] ||
	fail "the signer is not recorded: $(q "$db" "select signer from jobs where serial = 's-1.img'")"
"$BMAPTOOL" -q verify --bmap "$www/disk.img.bmap" "$www/disk.img" "$s" ||
	fail "s-1 does not hold the image"
wait_for "$db" "select outcome from jobs where serial = 'u-1.img'" refused 60 ||
	fail "the unsigned bmap URL: $(q "$db" "select serial, outcome, error from jobs")"
cmp -s "$u" <(head -c 32M /dev/zero | tr '\0' '\245') || fail "u-1 was written to"

# A file: URL: a local file through the same path (its identity from stat).
fc=$(make_card "f-1.img" 32M)
insert_card "$fc"
wait_for "$db" "select outcome from jobs where serial = 'f-1.img'" success 60 ||
	fail "the file: URL: $(q "$db" "select serial, outcome, error from jobs")"
"$BMAPTOOL" -q verify --bmap "$www/disk.img.bmap" "$www/disk.img" "$fc" ||
	fail "f-1 does not hold the image"

# The password: in no log line, journal row, report or status.
"$BMAP_STATION" status --db "$db" >>"$TEST_TMP/status.out" 2>&1
"$BMAP_STATION" report --db "$db" --format csv >"$TEST_TMP/report.out" 2>&1
for f in station.log status.out report.out; do
	grep -q "$pass" "$TEST_TMP/$f" && fail "$f shows the password: $(grep "$pass" "$TEST_TMP/$f" | head -3)"
done
sqlite3 "$db" .dump | grep -q "$pass" && fail "the journal holds the password"
q "$db" "select image from jobs where serial = 'a-1.img'" | grep -q "^http://127.0.0.1:$WEB_PORT_w/disk.img.zst$" ||
	fail "the journal's image is not the URL without credentials: $(q "$db" "select image from jobs")"
log "ok: URL profiles: one download into the cache (resumed through a server restart) for three cards, a replaced image another entry, a 404 failed without a worker, a signed bmap URL required and checked, a file: URL, no password shown"
