# Helpers shared by the integration tests (sourced, not run).
#
# Owns: skip/fail conventions (exit 77 / 1), the per-test temporary folder,
# building sparse images with awkward layouts from a compact spec, and loop
# devices attached by the test (detached again on exit, even on failure) and
# how many of them the machine can give.
#
# Environment: BMAPTOOL (our binary, set by ctest), BMAPTOOL_REF (reference,
# default /usr/bin/bmaptool), TMPDIR (where images go; must support FIEMAP or
# SEEK_HOLE for the create tests, /tmp by default).

set -u

REF=${BMAPTOOL_REF:-/usr/bin/bmaptool}
BMAPTOOL=${BMAPTOOL:-${BUILD_DIR:+$BUILD_DIR/bmaptool}}
TEST_NAME=$(basename "$0" .sh)

_LOOPS=()
_CLEANUP_CMDS=()

log() { printf '%s: %s\n' "$TEST_NAME" "$*" >&2; }
skip() { log "SKIP: $*"; exit 77; }
# A failing station test also shows the end of the daemon's log: in CI that
# is all there is to go on.
fail() {
	log "FAIL: $*"
	if [[ -s ${TEST_TMP:-}/station.log ]]; then
		log "the station log's last lines:"
		tail -n 40 "$TEST_TMP/station.log" >&2
	fi
	exit 1
}

# Run a command at exit (before the temp dir goes), e.g. to stop a process
# the test started, by its pid.
on_exit() { _CLEANUP_CMDS+=("$1"); }

_common_cleanup() {
	local rc=$? cmd dev
	trap - EXIT INT TERM
	for cmd in "${_CLEANUP_CMDS[@]}"; do
		eval "$cmd" || true
	done
	for dev in "${_LOOPS[@]}"; do
		losetup -d "$dev" 2>/dev/null || log "could not detach $dev"
	done
	if [[ -n ${_SANITIZER_DIR:-} ]]; then
		if compgen -G "$_SANITIZER_DIR/*" >/dev/null; then
			log "FAIL: sanitizer reports (from any process of this test):"
			cat "$_SANITIZER_DIR"/* >&2
			rc=1
		fi
		rm -rf -- "$_SANITIZER_DIR"
	fi
	if [[ -n ${TEST_TMP:-} && -d $TEST_TMP ]]; then
		chmod -R u+rwx "$TEST_TMP" 2>/dev/null
		rm -rf -- "$TEST_TMP"
	fi
	exit "$rc"
}
trap _common_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/bmaptest-$TEST_NAME.XXXXXX") ||
	{ echo "$TEST_NAME: cannot create a temporary folder" >&2; exit 1; }

# A sanitizer build (ctest sets BMAP_SANITIZERS): every process of the test
# (tools, the daemon, its workers, also those whose stderr is redirected or
# whose exit status is ignored) writes its reports to a folder that must stay
# empty. World-writable: the daemon may run as another user.
if [[ -n ${BMAP_SANITIZERS:-} ]]; then
	_SANITIZER_DIR=$(mktemp -d /tmp/bmap-sanitizer.XXXXXX) && chmod 1777 "$_SANITIZER_DIR" ||
		fail "cannot create a folder for sanitizer reports"
	export ASAN_OPTIONS="${ASAN_OPTIONS:-}:log_path=$_SANITIZER_DIR/asan"
	export UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:log_path=$_SANITIZER_DIR/ubsan"
fi

need_root() { [[ $(id -u) -eq 0 ]] || skip "needs root"; }
need_cmd() { command -v "$1" >/dev/null 2>&1 || skip "needs '$1'"; }
need_reference() { [[ -x $REF ]] || skip "reference bmaptool ($REF) missing"; }
need_ours() {
	[[ -n $BMAPTOOL && -x $BMAPTOOL ]] ||
		fail "our bmaptool not found (set BMAPTOOL; got '${BMAPTOOL}')"
}

# True when loop devices can be used (root, losetup, a free device).
have_loop() {
	[[ $(id -u) -eq 0 ]] && command -v losetup >/dev/null 2>&1 &&
		losetup -f >/dev/null 2>&1
}
need_loop() { have_loop || skip "needs root and a free loop device"; }

# loop_capacity N: sets LOOP_CAPACITY to how many loop devices, at most N,
# this machine gives this test at once (devices others hold do not count).
# It really attaches N empty files and detaches them again: some machines
# have only /dev/loop0..7, on others (/dev a devtmpfs) `losetup -f` creates
# loop8, loop9, ... on demand.
loop_capacity() {
	local want=$1 dir dev i devs=()
	LOOP_CAPACITY=0
	have_loop || return 0
	dir=$(mktemp -d "$TEST_TMP/loops.XXXXXX") || fail "cannot create a folder in $TEST_TMP"
	for ((i = 0; i < want; i++)); do
		truncate -s 1M "$dir/$i" || fail "cannot create $dir/$i"
		dev=$(losetup -f --show -- "$dir/$i" 2>/dev/null) || break
		_LOOPS+=("$dev")
		devs+=("$dev")
	done
	LOOP_CAPACITY=${#devs[@]}
	for dev in "${devs[@]}"; do detach_loop "$dev"; done
	rm -rf -- "$dir"
}

# need_loops N: exits 77 unless the test can have N loop devices at once.
need_loops() {
	loop_capacity "$1"
	((LOOP_CAPACITY >= $1)) || skip "needs $1 loop devices at once, the machine gives $LOOP_CAPACITY"
}

# attach_loop FILE: sets LOOP_DEV; the device is detached on exit.
# (Not meant for $(...): the subshell would lose the record.)
attach_loop() {
	LOOP_DEV=$(losetup -f --show -- "$1") || fail "losetup failed for $1"
	_LOOPS+=("$LOOP_DEV")
}

detach_loop() {
	local dev=$1 i
	losetup -d "$dev" || fail "could not detach $dev"
	for i in "${!_LOOPS[@]}"; do
		[[ ${_LOOPS[$i]} == "$dev" ]] && unset '_LOOPS[i]'
	done
}

# to_bytes EXPR: integer arithmetic with K/M/G (binary) suffixes, e.g.
# "3*4096", "1G", "5M+100". Only digits, suffixes and + - * ( ) allowed.
to_bytes() {
	local e=$1
	[[ $e =~ ^[0-9KMG+*()\ -]+$ ]] || fail "bad size expression '$e'"
	e=$(sed -E 's/([0-9]+)K/(\1*1024)/g; s/([0-9]+)M/(\1*1048576)/g;
		   s/([0-9]+)G/(\1*1073741824)/g' <<<"$e")
	echo $((e))
}

# pattern SEED LEN: LEN deterministic pseudo-random bytes; the seed (an
# offset) selects the stream so that different ranges hold different data.
pattern() {
	head -c "$2" /dev/zero |
		openssl enc -aes-128-ctr -nosalt -K 0123456789abcdef0123456789abcdef \
			-iv "$(printf '%032x' "$1")" 2>/dev/null
}

# mk_sparse_image PATH SPEC: build an image from whitespace-separated tokens,
# applied in order to a fresh file. Offsets/lengths go through to_bytes.
#   size=N              set the file size (truncate; holes)
#   data=OFF:LEN        write pseudo-random data at OFF (dd conv=notrunc)
#   zero=OFF:LEN        write real zero bytes (mapped data that is zero)
#   unwritten=OFF:LEN   fallocate an unwritten extent (mapped, reads as zero)
#   prealloc=OFF:LEN    the same with --keep-size: may reach beyond the end
#   hole=OFF:LEN        punch a hole
#   islands=OFF:LEN:COUNT:STRIDE  COUNT data writes of LEN, STRIDE apart
# Example: mk_sparse_image a.img "size=1M data=0:4096 zero=64K:8K"
mk_sparse_image() {
	local path=$1 tok key val off len count stride
	rm -f -- "$path"
	: >"$path" || fail "cannot create $path"
	for tok in $2; do
		key=${tok%%=*}
		val=${tok#*=}
		IFS=: read -r off len count stride <<<"$val"
		case $key in
		size)
			truncate -s "$(to_bytes "$val")" "$path" ;;
		data)
			_mk_data "$path" "$(to_bytes "$off")" "$(to_bytes "$len")" ;;
		zero)
			off=$(to_bytes "$off") len=$(to_bytes "$len")
			head -c "$len" /dev/zero |
				dd of="$path" bs=64K seek="$off" oflag=seek_bytes \
					iflag=fullblock conv=notrunc status=none ||
				fail "zero write failed" ;;
		unwritten)
			fallocate -o "$(to_bytes "$off")" -l "$(to_bytes "$len")" "$path" ||
				fail "fallocate failed" ;;
		prealloc)
			fallocate -n -o "$(to_bytes "$off")" -l "$(to_bytes "$len")" "$path" ||
				fail "fallocate failed" ;;
		hole)
			fallocate -p -o "$(to_bytes "$off")" -l "$(to_bytes "$len")" "$path" ||
				fail "punch hole failed" ;;
		islands)
			off=$(to_bytes "$off") len=$(to_bytes "$len")
			stride=$(to_bytes "$stride")
			# One process for all islands: a dd per island is far too
			# slow for thousands of them.
			pattern "$off" $((len * count)) |
				perl -e 'my ($p, $o, $l, $n, $s) = @ARGV;
					open(my $f, "+<", $p) or die "$p: $!";
					binmode $f; binmode STDIN;
					for my $i (0 .. $n - 1) {
						read(STDIN, my $b, $l) == $l or die "short pattern";
						sysseek($f, $o + $i * $s, 0) or die "seek: $!";
						syswrite($f, $b) == $l or die "write: $!";
					}' "$path" "$off" "$len" "$count" "$stride" ||
				fail "islands write failed" ;;
		*)
			fail "mk_sparse_image: unknown token '$tok'" ;;
		esac
	done
}

# mk_image_bmap IMG SPEC [zst]: mk_sparse_image IMG SPEC, its bmap IMG.bmap
# made by our bmaptool and, with "zst", IMG.zst.
mk_image_bmap() {
	mk_sparse_image "$1" "$2"
	"$BMAPTOOL" -q create -o "$1.bmap" "$1" || fail "bmaptool create $1"
	[[ ${3:-} != zst ]] || zstd -q "$1" -o "$1.zst" || fail "zstd $1"
}

_mk_data() {
	pattern "$2" "$3" |
		dd of="$1" bs=64K seek="$2" oflag=seek_bytes iflag=fullblock \
			conv=notrunc status=none || fail "data write failed"
}

# cmp_range A B OFF LEN: the byte ranges of two files are equal.
cmp_range() {
	cmp -s <(_read_range "$1" "$3" "$4") <(_read_range "$2" "$3" "$4")
}

_read_range() {
	dd if="$1" bs=1M skip="$2" count="$3" iflag=skip_bytes,count_bytes \
		status=none
}

# bmap_ranges BMAP: print "first last" for each Range of a bmap file.
bmap_ranges() {
	sed -nE 's|.*<Range[^>]*>[[:space:]]*([0-9]+)(-([0-9]+))?[[:space:]]*</Range>.*|\1 \3|p' \
		"$1" | awk '{ print $1, ($2 == "" ? $1 : $2) }'
}

# bmap_field BMAP NAME: the value of a top-level element (ImageSize, ...).
bmap_field() {
	sed -nE "s|.*<$2>[[:space:]]*([^<[:space:]]+)[[:space:]]*</$2>.*|\1|p" "$1"
}
