#!/bin/bash
# Signed bmaps in the station (issue 11): a production line proves that only
# released images went onto its cards. Through the daemon, real udevd, loop
# devices as cards, keys the test makes itself:
#   signature = "required", keyring, fingerprints:
#     a detached BMAP.asc by the wanted key          -> success, signer in the journal
#     a clearsigned bmap by the wanted key           -> success, signer in the journal
#     an unsigned bmap                               -> refused, without a worker
#     signed by a key not in the keyring             -> refused ("BAD GPG signature")
#     signed by a key in the keyring, not in fingerprints -> refused ("did not sign")
#   no signature rule (optional): an unsigned bmap   -> success, no signer
#   the same optional profile with a foreign .asc    -> refused (a signature there is checked)
# A refused card is never written (all 0xA5) and no worker starts for it;
# `report` shows the signer in csv and json; `check` refuses a fingerprint
# that is not 40 hex digits, an unknown signature value and an unreadable
# keyring.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
need_cmd gpg
need_cmd gpgconf
ensure_udevd
install_test_rule

d=$TEST_TMP
mk_home() {
	mkdir -m 700 "$1" || fail "cannot create $1"
	on_exit "gpgconf --homedir '$1' --kill all"
}
gen_key() {
	gpg --homedir "$1" --batch --passphrase '' --quick-gen-key "$2" default default 1y \
		2>"$d/gpg.err" || fail "gpg --quick-gen-key: $(cat "$d/gpg.err")"
	FPR=$(gpg --homedir "$1" --with-colons --list-keys "$2" 2>/dev/null |
		awk -F: '/^fpr/ { print $10; exit }')
	[[ $FPR =~ ^[0-9A-F]{40}$ ]] || fail "no fingerprint for '$2'"
}
sign() { # HOME MODE IN OUT
	gpg --homedir "$1" --batch --yes --armor "--$2" -o "$4" "$3" 2>"$d/gpg.err" ||
		fail "gpg --$2 $3: $(cat "$d/gpg.err")"
}
mk_home "$d/release.gnupg"
mk_home "$d/other.gnupg"
gen_key "$d/release.gnupg" "release <release@line.example>"
FREL=$FPR
gen_key "$d/other.gnupg" "someone <else@example.org>"
FOTH=$FPR
gpg --homedir "$d/release.gnupg" --export "$FREL" >"$d/release.keyring" || fail "export"
gpg --homedir "$d/release.gnupg" --export "$FREL" >"$d/both.keyring" || fail "export"
gpg --homedir "$d/other.gnupg" --export "$FOTH" >>"$d/both.keyring" || fail "export"

im=$d/images
for k in signed clear unsigned foreign optforeign; do
	mkdir -p "$im/$k"
	mk_image_bmap "$im/$k/disk.img" "size=6M data=0:256K data=2M:64K+5 data=5M:300K"
done
sign "$d/release.gnupg" detach-sign "$im/signed/disk.img.bmap" "$im/signed/disk.img.bmap.asc"
sign "$d/release.gnupg" clearsign "$im/clear/disk.img.bmap" "$im/clear/disk.img.bmap.signed"
mv "$im/clear/disk.img.bmap.signed" "$im/clear/disk.img.bmap"
sign "$d/other.gnupg" detach-sign "$im/foreign/disk.img.bmap" "$im/foreign/disk.img.bmap.asc"
sign "$d/other.gnupg" detach-sign "$im/optforeign/disk.img.bmap" "$im/optforeign/disk.img.bmap.asc"

db=$d/journal.db
req="signature = \"required\"; keyring = \"$d/release.keyring\"; fingerprints = [ \"$FREL\" ];"
cat >"$d/station.conf" <<CONF
station = { name = "signatures"; database = "$db"; max_workers = 2;
  require_tag = "bmap-station"; max_device_size = "1G"; cache_dir = "$d/cache"; };
profiles = (
  { name = "signed"; image = "$im/signed/disk.img"; removable_only = false; $req
    match = { serial = "s-*"; }; },
  { name = "clear"; image = "$im/clear/disk.img"; removable_only = false; $req
    match = { serial = "c-*"; }; },
  { name = "unsigned"; image = "$im/unsigned/disk.img"; removable_only = false; $req
    match = { serial = "u-*"; }; },
  { name = "foreign"; image = "$im/foreign/disk.img"; removable_only = false; $req
    match = { serial = "f-*"; }; },
  { name = "wrongfpr"; image = "$im/signed/disk.img"; removable_only = false;
    signature = "required"; keyring = "$d/both.keyring"; fingerprints = [ "$FOTH" ];
    match = { serial = "w-*"; }; },
  { name = "optional"; image = "$im/unsigned/disk.img"; removable_only = false;
    match = { serial = "o-*"; }; },
  { name = "optforeign"; image = "$im/optforeign/disk.img"; removable_only = false;
    keyring = "$d/release.keyring"; match = { serial = "x-*"; }; }
);
CONF
"$BMAP_STATION" check --config "$d/station.conf" >"$d/check.out" 2>&1 ||
	fail "check of a good configuration: $(cat "$d/check.out")"
grep -q "profile signed: .*signature required" "$d/check.out" || fail "check does not show the rule: $(cat "$d/check.out")"

start_station "$d/station.conf"
station_ready "$db"

# card NAME OUTCOME: inserts a card, waits for its job's outcome.
card() {
	local f
	f=$(make_card "$1" 8M)
	insert_card "$f"
	wait_for "$db" "select outcome from jobs where serial='$1'" "$2" 60 ||
		fail "$1: expected $2: $(q "$db" "select outcome, error from jobs where serial='$1'")"
	CARD=$f
}
# refused NAME WORDS: the card was refused with WORDS, never written, no worker.
refused() {
	local err job
	card "$1" refused
	err=$(q "$db" "select error from jobs where serial='$1'")
	grep -qF -- "$2" <<<"$err" || fail "$1: refused for another reason: $err"
	job=$(q "$db" "select job from jobs where serial='$1'")
	grep -q "job $job started (worker" "$d/station.log" && fail "$1: a worker was started for job $job"
	[[ $(q "$db" "select coalesce(signer, '-') from jobs where serial='$1'") == - ]] ||
		fail "$1: a refused card has a signer"
	cmp -s "$CARD" <(head -c $((8 << 20)) /dev/zero | tr '\0' '\245') || fail "$1: the card was written to"
	log "$1: refused: $err"
}
# passed NAME SIGNER: success, the journal names SIGNER ('-': none), the card holds the image.
passed() {
	local img=$3 first last
	card "$1" success
	[[ $(q "$db" "select coalesce(signer, '-') from jobs where serial='$1'") == "$2" ]] ||
		fail "$1: signer $(q "$db" "select signer from jobs where serial='$1'"), expected $2"
	while read -r first last; do
		cmp_range "$img" "$CARD" $((first * 4096)) $(((last - first + 1) * 4096)) ||
			fail "$1 does not hold the image in blocks $first-$last"
	done < <(bmap_ranges "$im/unsigned/disk.img.bmap")
}

passed s-1.img "$FREL" "$im/signed/disk.img"
passed c-1.img "$FREL" "$im/clear/disk.img"
passed o-1.img - "$im/unsigned/disk.img"
refused u-1.img "signature is required"
refused f-1.img "discovered a BAD GPG signature"
refused w-1.img "requested fingerprint $FOTH did not sign"
refused x-1.img "discovered a BAD GPG signature"
station_alive

# report: the signer column in csv and json, every other column as before.
"$BMAP_STATION" report --db "$db" --format csv >"$d/report.csv" || fail "report csv"
head -n 1 "$d/report.csv" | grep -q ',bmap_sha256,signer$' || fail "csv header: $(head -n 1 "$d/report.csv")"
grep "s-1.img" "$d/report.csv" | grep -q ",$FREL\$" || fail "csv row of s-1 lacks the signer"
"$BMAP_STATION" report --db "$db" --format json >"$d/report.json" || fail "report json"
python3 - "$d/report.json" "$FREL" <<-'EOF' || fail "json report: $(head -c 600 "$d/report.json")"
import json, sys
rows = json.load(open(sys.argv[1]))
rows = rows if isinstance(rows, list) else rows.get("jobs", rows)
by = {r["serial"]: r for r in rows}
assert by["s-1.img"]["signer"] == sys.argv[2], by["s-1.img"]
assert by["c-1.img"]["signer"] == sys.argv[2]
assert by["o-1.img"]["signer"] is None
assert by["u-1.img"]["signer"] is None
EOF

# check: what a profile's signature keys must be.
sed 's|fingerprints = \[ "'"$FREL"'" \];|fingerprints = [ "'"${FREL:0:16}"'" ];|' "$d/station.conf" >"$d/short.conf"
"$BMAP_STATION" check --config "$d/short.conf" >"$d/short.out" 2>&1 && fail "check: a key ID taken for a fingerprint"
grep -q "a fingerprint has 40" "$d/short.out" || fail "check short fingerprint: $(cat "$d/short.out")"
sed 's|fingerprints = \[ "'"$FREL"'" \];|fingerprints = [ "'"${FREL:0:39}X"'" ];|' "$d/station.conf" >"$d/hex.conf"
"$BMAP_STATION" check --config "$d/hex.conf" >"$d/hex.out" 2>&1 && fail "check: a non-hex fingerprint taken"
grep -q "is not a fingerprint" "$d/hex.out" || fail "check non-hex fingerprint: $(cat "$d/hex.out")"
sed 's|signature = "required"|signature = "always"|' "$d/station.conf" >"$d/value.conf"
"$BMAP_STATION" check --config "$d/value.conf" >"$d/value.out" 2>&1 && fail "check: signature = \"always\" taken"
grep -q "is not optional or required" "$d/value.out" || fail "check signature value: $(cat "$d/value.out")"
sed "s|$d/release.keyring|$d/no-such.keyring|" "$d/station.conf" >"$d/keyring.conf"
"$BMAP_STATION" check --config "$d/keyring.conf" >"$d/keyring.out" 2>&1 && fail "check: a missing keyring taken"
grep -q "keyring '$d/no-such.keyring'" "$d/keyring.out" || fail "check missing keyring: $(cat "$d/keyring.out")"

log "ok: signed cards pass with their signer journaled; unsigned, foreign and wrong-signer bmaps are refused without a worker"
