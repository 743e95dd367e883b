# Helpers for the copy and verify integration tests (sourced after common.sh).
#
# Owns: "cards" (loop devices over backing files pre-filled with a 0xA5
# pattern, kept in tmpfs under /dev/shm), checks that a card is untouched,
# failure counting that lets a test go on after a failed check, and pulling
# the data digests out of bmaptool's messages.
#
# Cleanup rides on common.sh: the card folder is removed by an on_exit
# command and the loop devices are detached by common.sh's own trap (an
# unlinked backing file lives until its loop device is detached).

# Card backing files go to tmpfs when there is one: fast, and no disk I/O.
if [[ -d /dev/shm && -w /dev/shm ]]; then
	CARD_DIR=$(mktemp -d "/dev/shm/bmaptest-$TEST_NAME.XXXXXX") ||
		fail "cannot create a folder in /dev/shm"
else
	CARD_DIR=$TEST_TMP/cards
	mkdir -p "$CARD_DIR" || fail "cannot create $CARD_DIR"
fi
on_exit 'rm -rf -- "$CARD_DIR"'

FAILURES=0
# bad MESSAGE: record a failed check and go on.
bad() { log "FAIL: $*"; FAILURES=$((FAILURES + 1)); }
# finish SUMMARY: exit 1 when any check failed, else log SUMMARY and exit 0.
finish() {
	[[ $FAILURES -eq 0 ]] || fail "$FAILURES check(s) failed"
	log "$*"
	exit 0
}

# pattern_stream SIZE [BYTE]: SIZE bytes of BYTE (default 0xA5) on stdout.
pattern_stream() {
	perl -e 'my ($n, $b) = @ARGV; binmode STDOUT;
		my $chunk = chr($b) x 1048576;
		while ($n > 0) {
			my $l = $n < 1048576 ? $n : 1048576;
			print STDOUT substr($chunk, 0, $l) or die "write: $!";
			$n -= $l;
		}' "$1" "${2:-165}"
}

# fill_pattern PATH SIZE [BYTE]: a file of SIZE bytes of BYTE (0xA5).
fill_pattern() {
	pattern_stream "$2" "${3:-165}" >"$1" || fail "cannot fill $1"
}

# is_pattern PATH [BYTE]: the whole file still holds the pattern.
is_pattern() {
	pattern_stream "$(stat -c %s "$1")" "${2:-165}" | cmp -s - "$1"
}

# card_size IMAGE_SIZE: whole 4 KiB blocks plus 64 KiB of slack that a copy
# must leave untouched.
card_size() { echo $((($1 + 4095) / 4096 * 4096 + 65536)); }

# fill_stripes PATH SIZE: a sparse file of SIZE bytes holding the 0xA5
# pattern in its first and last 4 MiB and in 1 MiB every 16 MiB; the rest
# are holes (zeros). For big cards, where a full fill costs seconds: a write
# of non-zero data anywhere still shows, a stray write of zeros only where
# the pattern is.
fill_stripes() {
	rm -f -- "$1"
	truncate -s "$2" "$1" || fail "cannot create $1"
	perl -e 'my ($p, $n) = @ARGV; my $M = 1048576;
		open(my $f, "+<", $p) or die "$p: $!"; binmode $f;
		my $chunk = chr(165) x $M;
		my @at = (0, 1, 2, 3);
		for (my $o = 16; ($o + 1) * $M <= $n; $o += 16) { push @at, $o; }
		for my $i (0 .. 3) { push @at, ($n - ($i + 1) * $M) / $M if $n >= ($i + 1) * $M; }
		for my $a (@at) {
			my $off = int($a * $M); my $l = $n - $off < $M ? $n - $off : $M;
			next if $l <= 0;
			sysseek($f, $off, 0) or die "seek: $!";
			syswrite($f, $chunk, $l) == $l or die "write: $!";
		}' "$1" "$2" || fail "cannot fill $1"
}

# Cards bigger than this get stripes instead of a full pattern fill.
CARD_FULL_FILL_MAX=$((256 * 1048576))

_CARD_N=0
# new_card SIZE [NAME]: a 0xA5-filled backing file in CARD_DIR attached to a
# loop device (striped, see fill_stripes, above CARD_FULL_FILL_MAX); sets
# CARD_FILE and CARD_DEV. Not for $(...) (see attach_loop).
new_card() {
	_CARD_N=$((_CARD_N + 1))
	CARD_FILE=$CARD_DIR/${2:-card$_CARD_N}.bin
	if (($1 > CARD_FULL_FILL_MAX)); then
		fill_stripes "$CARD_FILE" "$1"
	else
		fill_pattern "$CARD_FILE" "$1"
	fi
	attach_card "$CARD_FILE"
}

# attach_card FILE [LOSETUP_OPTION...]: attach FILE to a free loop device,
# retrying for a few seconds (other tests may hold them all for a moment;
# two `losetup -f` may race for the same one); sets CARD_DEV and LOOP_DEV.
# The device is detached on exit, as with attach_loop.
attach_card() {
	local file=$1 try dev
	shift
	for try in $(seq 20); do
		if dev=$(losetup -f --show "$@" -- "$file" 2>"$TEST_TMP/losetup.err"); then
			_LOOPS+=("$dev")
			CARD_DEV=$dev
			LOOP_DEV=$dev
			return 0
		fi
		sleep 0.5
	done
	fail "losetup failed for $file: $(cat "$TEST_TMP/losetup.err")"
}

# hold_card DEV: another process holds DEV open with O_EXCL, as a mount
# does, until release_card or the test's end; sets HOLDER (its pid). Fails
# (HOLD_ERROR says why) when it could not.
hold_card() {
	local out
	out=$(mktemp "$TEST_TMP/holder.XXXXXX") || fail "cannot create a file in $TEST_TMP"
	/usr/bin/python3 -c '
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_EXCL)
print("held", flush=True)
time.sleep(120)' "$1" >"$out" 2>&1 &
	HOLDER=$!
	on_exit "kill $HOLDER 2>/dev/null; wait $HOLDER 2>/dev/null"
	for _ in $(seq 50); do
		[[ -s $out ]] && break
		sleep 0.1
	done
	HOLD_ERROR=$(cat "$out")
	grep -q held "$out"
}
release_card() {
	kill "$HOLDER" 2>/dev/null
	wait "$HOLDER" 2>/dev/null
}

# new_file_card SIZE [NAME]: a pre-filled regular file as a target (no loop
# device), filled like new_card's; sets CARD_FILE.
new_file_card() {
	_CARD_N=$((_CARD_N + 1))
	CARD_FILE=$CARD_DIR/${2:-card$_CARD_N}.bin
	if (($1 > CARD_FULL_FILL_MAX)); then
		fill_stripes "$CARD_FILE" "$1"
	else
		fill_pattern "$CARD_FILE" "$1"
	fi
}

# digest_of LOG: the 64-hex digest of a "sha256 of the data written|read
# back" message, or nothing.
digest_of() {
	sed -nE 's/.*sha256 of the data (written|read back): ([0-9a-f]{64}).*/\2/p' "$1" |
		tail -n 1
}

# first_diff A B: the 0-based offset of the first differing byte, or nothing.
first_diff() {
	local byte
	byte=$(cmp "$1" "$2" 2>&1 | sed -nE 's/.* byte ([0-9]+).*/\1/p')
	[[ -n $byte ]] && echo $((byte - 1))
}

# poke FILE OFFSET [BYTE]: overwrite one byte in place (default: the byte's
# complement, so that it surely changes).
poke() {
	local old new
	if [[ $# -ge 3 ]]; then
		new=$3
	else
		old=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
		new=$((255 - old))
	fi
	printf "\\$(printf '%03o' "$new")" |
		dd of="$1" bs=1 seek="$2" count=1 conv=notrunc status=none ||
		fail "cannot poke $1 at $2"
}

# fix_bmap_checksum BMAP: recompute the bmap's own checksum after an edit,
# as the format says: hash the file with the checksum's hex digits replaced
# by ASCII '0' and put the digest in their place (BmapFileChecksum with
# ChecksumType, or BmapFileSHA1 for 1.3).
fix_bmap_checksum() {
	/usr/bin/python3 - "$1" <<-'EOF' || fail "cannot fix the checksum of $1"
	import hashlib, re, sys
	path = sys.argv[1]
	text = open(path, "rb").read()
	m = re.search(rb"<(BmapFileChecksum|BmapFileSHA1)>\s*([0-9a-fA-F]+)\s*<", text)
	if not m:
	    sys.exit("no self-checksum in " + path)
	if m.group(1) == b"BmapFileSHA1":
	    algo = "sha1"
	else:
	    algo = re.search(rb"<ChecksumType>\s*(\w+)\s*<", text).group(1).decode()
	start, end = m.span(2)
	zeroed = text[:start] + b"0" * (end - start) + text[end:]
	digest = hashlib.new(algo, zeroed).hexdigest().encode()
	open(path, "wb").write(zeroed[:start] + digest + zeroed[end:])
	EOF
}

# dev_is_pattern DEV: the whole device, read with O_DIRECT (so that what
# sits dirty in its page cache is written back first and what the cache
# holds is not trusted), still holds the 0xA5 pattern.
dev_is_pattern() {
	local size
	size=$(blockdev --getsize64 "$1") || return 1
	dd if="$1" bs=1M iflag=direct status=none | cmp -s - <(pattern_stream "$size")
}

# refill_dev DEV: write the 0xA5 pattern over the whole device again
# (through the device, so that its page cache cannot disagree).
refill_dev() {
	local size
	size=$(blockdev --getsize64 "$1") || return 1
	pattern_stream "$size" |
		dd of="$1" bs=1M iflag=fullblock oflag=direct conv=fsync status=none
}
