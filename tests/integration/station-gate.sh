#!/bin/bash
# The station never opens the wrong device for writing. The daemon runs as
# an unprivileged user of its own, under strace; the test udev rule gives
# that user's group the tagged cards, and nothing else. Each case is a real
# loop card:
#  - a card with a partition (node loopNp1) mounted: refused "mounted on ..."
#  - a card holding an active swap area: refused "holds an active swap area"
#  - a card no rule tagged while require_tag is set: ignored "not tagged"
#  - a card above max_device_size (sparse): refused "larger than max_device_size"
#  - a read-only card (losetup -r): refused "read-only"
#  - a card swapped (detached, another file attached on the same loop device)
#    between its event and the worker's open: refused naming DISKSEQ; the new
#    card untouched
#  - the disk holding "/": the daemon in a chroot whose "/" is a file system
#    on a card: refused "holds the root file system"
#  - a positive control: a plain card is flashed and verified, unprivileged
# For each refusal: the journal row and its reason, the card's bytes
# (sha256 before/after), and strace's record of every open(2) of the daemon
# and its workers: the one open of a card for writing is the control's.
# eMMC boot/RPMB partitions exist on no machine here: tests/unit/test_device.c.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
for c in strace setpriv useradd userdel mkswap swapon swapoff mkfs.ext4 sgdisk \
	partx unshare chroot zstd openssl; do
	need_cmd "$c"
done
# LeakSanitizer cannot run under ptrace and the daemon runs under strace here;
# ASan and UBSan still do (leaks are checked by the other station tests).
[[ -n ${BMAP_SANITIZERS:-} ]] && export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0"
ensure_udevd

# ---- the unprivileged user, and the rule giving it the tagged cards ----------
USER_NAME=bmapgate$$
useradd -r -M -U -d /nonexistent -s /usr/sbin/nologin "$USER_NAME" || fail "useradd"
# After the daemon is gone (userdel refuses a user that runs processes); a
# few tries, as another test may hold the passwd lock for a moment.
remove_user() {
	stop_traced_station
	for _ in $(seq 20); do
		userdel "$USER_NAME" 2>/dev/null && return
		sleep 0.5
	done
	log "could not remove the user $USER_NAME"
}
on_exit remove_user
USER_ID=$(id -u "$USER_NAME")
GROUP_ID=$(id -g "$USER_NAME")
install_test_rule "$USER_NAME"

# Loop nodes keep what a rule gave them after the card goes: put back what
# they had (root:root 0600 here) for the devices this test used.
declare -A NODE_WAS=()
remember_node() {
	[[ -n ${NODE_WAS[$1]:-} ]] && return
	NODE_WAS[$1]=$(stat -c '%u:%g %a' "$1")
	# Once udevd is done: an event still queued would give the group again.
	on_exit "udevadm settle -t 10; chown ${NODE_WAS[$1]% *} '$1'; chmod ${NODE_WAS[$1]#* } '$1'"
}

AS_USER=(setpriv --reuid="$USER_ID" --regid="$GROUP_ID" --init-groups --no-new-privs
	--inh-caps=-all --bounding-set=-all --)

# ---- image, configuration, journal ------------------------------------------
chmod 711 "$TEST_TMP"
images=$TEST_TMP/images
mkdir -p "$images"
img=$images/disk.img
mk_sparse_image "$img" "size=8M data=0:1M data=3M:2M"
sgdisk -o -n 1:2048:0 "$img" >/dev/null || fail "sgdisk"
"$BMAPTOOL" -q create -o "$img.bmap" "$img" || fail "bmaptool create"
zstd -q "$img" -o "$img.zst" || fail "zstd"
mkfifo "$images/seq.img.zst"
chmod -R a+rX "$images"
state=$TEST_TMP/state
mkdir -m 0750 "$state"
chown "$USER_ID:$GROUP_ID" "$state"
db=$state/journal.db
conf=$TEST_TMP/station.conf
cat >"$conf" <<CONF
station = { name = "gate"; database = "$db"; cache_dir = "$state/cache"; max_workers = 2;
  require_tag = "bmap-station"; max_device_size = "256M"; };
profiles = (
  { name = "cards"; image = "$img.zst"; bmap = "$img.bmap"; removable_only = false;
    verify = "readback"; match = { serial = "card-*"; }; },
  { name = "swap-race"; image = "$images/seq.img.zst"; bmap = "$img.bmap";
    removable_only = false; match = { serial = "seq-*"; }; }
);
CONF
chmod 644 "$conf"

UNTAGGED_DIR=/dev/shm/bmap-station-untagged.$$
mkdir -p "$UNTAGGED_DIR"
on_exit "rm -rf '$UNTAGGED_DIR'"

# ---- helpers -----------------------------------------------------------------
diskseq_of() { cat "/sys/block/${1#/dev/}/diskseq"; }
declare -A SUM=()
# openssl's SHA-256 (the CPU's SHA extensions where it has them): six
# times coreutils' on these cards, 5 s of the test.
card_sum() { openssl dgst -sha256 <"$1"; }
remember_sum() { SUM[$1]=$(card_sum "$1"); }
same_sum() { [[ $(card_sum "$1") == "${SUM[$1]}" ]]; }

# expect SEQ OUTCOME REASON LABEL: the journal row of the medium with DISKSEQ
# SEQ ends OUTCOME, and its error column holds REASON.
expect() {
	local seq=$1 outcome=$2 reason=$3 label=$4 err
	wait_for "$db" "select outcome from jobs where diskseq=$seq order by job desc limit 1" \
		"$outcome" 20 || fail "$label: not '$outcome': $(q "$db" "select outcome, error from jobs where diskseq=$seq")"
	err=$(q "$db" "select error from jobs where diskseq=$seq order by job desc limit 1")
	[[ $err == *"$reason"* ]] || fail "$label: the reason '$err' does not say '$reason'"
	[[ $(q "$db" "select count(*) from jobs where diskseq=$seq") == 1 ]] ||
		fail "$label: more than one row"
	log "$label: $outcome: $err"
}

# The daemon as the unprivileged user, every open(2) of it and its workers
# recorded with a timestamp.
TRACE=$TEST_TMP/strace.out
start_traced_station() {
	(cd / && exec strace -f -ttt -qq -e trace=open,openat,openat2 -o "$TRACE" \
		"${AS_USER[@]}" "$BMAP_STATION" run --config "$conf") >>"$TEST_TMP/station.log" 2>&1 &
	TRACER_PID=$!
	on_exit "stop_traced_station"
	for _ in $(seq 50); do
		DAEMON_PID=$(cat "/proc/$TRACER_PID/task/$TRACER_PID/children" 2>/dev/null)
		DAEMON_PID=${DAEMON_PID%% *}
		[[ -n $DAEMON_PID ]] && grep -q "running:" "$TEST_TMP/station.log" && return
		sleep 0.1
	done
	fail "the station did not start: $(tail -n 5 "$TEST_TMP/station.log")"
}
stop_traced_station() {
	[[ -n ${TRACER_PID:-} ]] || return 0
	[[ -n ${DAEMON_PID:-} ]] && kill -CONT "$DAEMON_PID" 2>/dev/null
	[[ -n ${DAEMON_PID:-} ]] && kill -TERM "$DAEMON_PID" 2>/dev/null
	for _ in $(seq 100); do
		kill -0 "$TRACER_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$TRACER_PID" 2>/dev/null
	[[ -n ${DAEMON_PID:-} ]] && kill -KILL "$DAEMON_PID" 2>/dev/null
	wait "$TRACER_PID" 2>/dev/null
	TRACER_PID= DAEMON_PID=
}

# write_opens TRACE: "time pid path" for every open of a block device
# (anything under /dev but the usual character devices) with O_WRONLY or O_RDWR.
write_opens() {
	# (-f splits a call cut by another process: "<unfinished ...>", no ")".)
	sed -nE 's/^([0-9]+) +([0-9.]+ +)?open(at2?)?\((AT_FDCWD, *)?"(\/dev\/[^"]*)", *([^)<]*).*/\2 \1 \5 \6/p' "$1" |
		grep -E 'O_WRONLY|O_RDWR' | grep -vE ' /dev/(null|zero|u?random|tty|pts/|fd/)' |
		awk '{ print $1, $2, $3 }'
}

# ==== Phase A: five wrong cards in place before the daemon starts ============
# Mounted: a GPT card whose partition (node loopNp1, made by partx) holds a
# mounted ext4 file system (this kernel has no vfat). ext4 writes its own
# superblock and journal while mounted, so the bytes compared are those
# outside the partition: the GPT's first and last MiB, which any flash of the
# image would overwrite.
mounted=$(make_card card-mounted.img 32M)
sgdisk -o -n 1:2048:0 "$mounted" >/dev/null || fail "sgdisk on the mounted card"
insert_card "$mounted"
dev_mounted=$LOOP_DEV
remember_node "$dev_mounted"
partx -a "$dev_mounted" || fail "partx -a $dev_mounted"
part=${dev_mounted}p1
for _ in $(seq 50); do [[ -b $part ]] && break; sleep 0.1; done
[[ -b $part ]] || fail "no partition node $part"
mkfs.ext4 -q "$part" || fail "mkfs.ext4 $part"
sync
gpt_sum() { { head -c 1M "$1"; tail -c 1M "$1"; } | sha256sum; }
gpt_before=$(gpt_sum "$mounted")
mkdir -p "$TEST_TMP/mnt"
mount "$part" "$TEST_TMP/mnt" || fail "mount $part"
on_exit "umount '$TEST_TMP/mnt' 2>/dev/null"
# Partitions outlive the loop device's detach here: always delete them
# (after the umount above: on_exit runs in order).
PART_OF=$dev_mounted
on_exit '[[ -n $PART_OF ]] && partx -d "$PART_OF"'
seq_mounted=$(diskseq_of "$dev_mounted")

# Swap.
swapcard=$(make_card card-swap.img 32M)
chmod 600 "$swapcard"
mkswap "$swapcard" >/dev/null || fail "mkswap"
# The kernel may page out to this swap area while it is active (it belongs to
# the whole machine meanwhile): only its header page is sure to stay as it
# was, and any write of the image would change it (the image maps 0-1M).
swap_header=$(head -c 4096 "$swapcard" | sha256sum)
remember_sum "$swapcard"
insert_card "$swapcard"
dev_swap=$LOOP_DEV
remember_node "$dev_swap"
swapon "$dev_swap" || fail "swapon $dev_swap"
SWAP_ON=$dev_swap
on_exit '[[ -n $SWAP_ON ]] && swapoff "$SWAP_ON"'
seq_swap=$(diskseq_of "$dev_swap")

# Untagged: its backing file is outside the rule's folder.
untagged=$UNTAGGED_DIR/card-untagged.img
head -c 32M /dev/zero | tr '\0' '\245' >"$untagged"
remember_sum "$untagged"
insert_card "$untagged"
dev_untagged=$LOOP_DEV
remember_node "$dev_untagged"
seq_untagged=$(diskseq_of "$dev_untagged")

# Bigger than max_device_size (256M): sparse, a pattern at both ends.
big=$CARD_DIR/card-big.img
truncate -s 300M "$big"
pattern 0 1M | dd of="$big" conv=notrunc status=none
pattern 1 1M | dd of="$big" bs=1M seek=299 conv=notrunc status=none
remember_sum "$big"
insert_card "$big"
dev_big=$LOOP_DEV
remember_node "$dev_big"
seq_big=$(diskseq_of "$dev_big")

# Read-only.
ro=$(make_card card-ro.img 32M)
remember_sum "$ro"
LOOP_DEV=$(losetup -f --show -r -- "$ro") || fail "losetup -r"
_LOOPS+=("$LOOP_DEV")
dev_ro=$LOOP_DEV
remember_node "$dev_ro"
seq_ro=$(diskseq_of "$dev_ro")
udevadm settle

# The rule's work: tagged cards belong to the group, the untagged one does not.
for d in "$dev_mounted" "$dev_swap" "$dev_big" "$dev_ro"; do
	[[ $(stat -c '%G %a' "$d") == "$USER_NAME 660" ]] ||
		fail "the rule did not give $d to $USER_NAME: $(stat -c '%U:%G %a' "$d")"
done
[[ $(stat -c '%G' "$dev_untagged") != "$USER_NAME" ]] || fail "the untagged card $dev_untagged is the station's"
"${AS_USER[@]}" test -r "$dev_untagged" && fail "the user can read the untagged card"

# What the unprivileged user's `check` says before anything runs.
(cd / && "${AS_USER[@]}" "$BMAP_STATION" check --config "$conf") >"$TEST_TMP/check.out" 2>&1 ||
	fail "check as $USER_NAME: $(cat "$TEST_TMP/check.out")"
grep -q "^${part} " "$TEST_TMP/check.out" && fail "check lists the partition $part"

start_traced_station
expect "$seq_mounted" refused "mounted on $TEST_TMP/mnt" "mounted partition"
expect "$seq_swap" refused "holds an active swap area" "swap"
expect "$seq_untagged" ignored "not tagged 'bmap-station' by the udev rules" "untagged"
expect "$seq_big" refused "is larger than max_device_size" "too big"
expect "$seq_ro" refused "read-only" "read-only"
[[ $(q "$db" "select count(*) from jobs where devnode = '$part' or syspath like '%/${part#/dev/}'") == 0 ]] ||
	fail "the partition $part has a journal row"

umount "$TEST_TMP/mnt" || fail "umount"
swapoff "$dev_swap" || fail "swapoff"
SWAP_ON=
partx -d "$dev_mounted" || fail "partx -d $dev_mounted"
PART_OF=
for d in "$dev_mounted" "$dev_swap" "$dev_untagged" "$dev_big" "$dev_ro"; do detach_loop "$d"; done
[[ $(gpt_sum "$mounted") == "$gpt_before" ]] || fail "card-mounted.img's GPT was modified"
[[ $(head -c 4096 "$swapcard" | sha256sum) == "$swap_header" ]] ||
	fail "card-swap.img's swap header was modified"
same_sum "$swapcard" || log "swap: the kernel paged out to the swap card meanwhile (its header is intact)"
for f in "$untagged" "$big" "$ro"; do
	same_sum "$f" || fail "$(basename "$f") was modified"
done
t_phase_b=$(date +%s.%N)

# ==== Phase B: a card swapped between its event and the worker's open ========
# The worker reads the image (a FIFO here) before it opens the card. While it
# waits, the daemon is stopped (SIGSTOP: it must not see the swap's events
# and stop the worker), the card is detached and another one attached on the
# same loop device; then the image flows, and the worker finds another
# DISKSEQ. The new card matches no profile: it must stay as it is.
seqcard=$(make_card seq-1.img 32M)
swapped=$(make_card swapped-1.img 32M)
head -c 4096 /dev/zero | tr '\0' '\132' | dd of="$swapped" conv=notrunc status=none
remember_sum "$seqcard"
remember_sum "$swapped"
insert_card "$seqcard"
dev_seq=$LOOP_DEV
remember_node "$dev_seq"
seq_seq=$(diskseq_of "$dev_seq")
wait_for "$db" "select outcome from jobs where diskseq=$seq_seq" running 20 ||
	fail "the swap-race job did not start"
worker=
for _ in $(seq 50); do
	worker=$(cat "/proc/$DAEMON_PID/task/$DAEMON_PID/children" 2>/dev/null)
	worker=${worker%% *}
	[[ -n $worker ]] && break
	sleep 0.1
done
[[ -n $worker ]] || fail "no worker for the swap-race job"
kill -STOP "$DAEMON_PID"
losetup -d "$dev_seq" || fail "losetup -d $dev_seq"
for _ in $(seq 50); do losetup "$dev_seq" "$swapped" 2>/dev/null && break; sleep 0.1; done
[[ $(losetup -n -O BACK-FILE "$dev_seq" 2>/dev/null) == "$swapped" ]] ||
	fail "could not attach the new card on $dev_seq"
seq_swapped=$(diskseq_of "$dev_seq")
log "swap-race: $dev_seq DISKSEQ $seq_seq -> $seq_swapped, the daemon stopped"
{ cat "$img.zst"; exec sleep 30; } >"$images/seq.img.zst" 2>/dev/null &
feeder=$!
on_exit "kill $feeder 2>/dev/null"
# The worker ends while its parent sleeps: a zombie.
for _ in $(seq 100); do
	[[ $(awk '{ print $3 }' "/proc/$worker/stat" 2>/dev/null) == Z ]] && break
	sleep 0.1
done
[[ $(awk '{ print $3 }' "/proc/$worker/stat" 2>/dev/null) == Z ]] || fail "the worker did not end"
kill -CONT "$DAEMON_PID"
expect "$seq_seq" refused "the medium changed since it was seen (DISKSEQ $seq_seq, now $seq_swapped): nothing was written" "swap-race"
expect "$seq_swapped" ignored "no profile matches" "swap-race's new card"
kill "$feeder" 2>/dev/null
wait "$feeder" 2>/dev/null
detach_loop "$dev_seq"
same_sum "$swapped" || fail "the card swapped in was written"
same_sum "$seqcard" || fail "the card swapped out was written"
t_control=$(date +%s.%N)

# ==== Positive control: flashed and verified, unprivileged ===================
ok=$(make_card card-ok.img 32M)
insert_card "$ok"
dev_ok=$LOOP_DEV
remember_node "$dev_ok"
seq_ok=$(diskseq_of "$dev_ok")
wait_for "$db" "select outcome from jobs where diskseq=$seq_ok" success 30 ||
	fail "the control card was not flashed: $(q "$db" "select outcome, error from jobs where diskseq=$seq_ok")"
[[ $(q "$db" "select data_sha256 = readback_sha256 from jobs where diskseq=$seq_ok") == 1 ]] ||
	fail "the control card's read-back differs"
detach_loop "$dev_ok"
"$BMAPTOOL" -q verify --bmap "$img.bmap" "$img" "$ok" || fail "the control card does not hold the image"
stop_traced_station

# ==== What strace saw ========================================================
write_opens "$TRACE" >"$TEST_TMP/write-opens"
[[ -s $TRACE ]] && grep -q 'openat' "$TRACE" || fail "strace recorded nothing"
grep -qE "open(at)?\(.*\"$dev_untagged\"" <(awk -v t="$t_phase_b" '$2 < t' "$TRACE") &&
	fail "the untagged card $dev_untagged was opened: $(grep "\"$dev_untagged\"" "$TRACE")"
grep -q "\"$part\"" "$TRACE" && fail "the partition $part was opened: $(grep "\"$part\"" "$TRACE")"
# Every open for writing: only the control card, after the control began.
awk -v t="$t_control" -v d="$dev_ok" '$1 < t || $3 != d' "$TEST_TMP/write-opens" >"$TEST_TMP/wrong-opens"
[[ -s $TEST_TMP/wrong-opens ]] && fail "opened for writing: $(cat "$TEST_TMP/wrong-opens")"
[[ $(wc -l <"$TEST_TMP/write-opens") -ge 1 ]] ||
	fail "strace shows no open for writing at all (not even the control card)"
# The swap-race worker opened the card read-only for its DISKSEQ check only.
grep -E "^$worker .*\"$dev_seq\"" "$TRACE" | grep -qE 'O_RDWR|O_WRONLY' &&
	fail "the swap-race worker opened $dev_seq for writing"
log "strace: $(wc -l <"$TRACE") open calls, $(wc -l <"$TEST_TMP/write-opens") for writing: $(cat "$TEST_TMP/write-opens")"

# ==== The disk holding "/" ====================================================
# In a private mount namespace, a card with an ext4 file system becomes "/"
# of a chroot that sees the host's /usr, /dev, /sys, /proc and /run/udev.
# The daemon runs there, as the user; its journal lives on the card itself.
rootcard=$(make_card card-root.img 64M)
mkfs.ext4 -q -F "$rootcard" || fail "mkfs.ext4"
insert_card "$rootcard"
dev_root=$LOOP_DEV
remember_node "$dev_root"
seq_root=$(diskseq_of "$dev_root")
udevadm settle
cp "$BMAP_STATION" "$TEST_TMP/bmap-station.bin"
cat >"$TEST_TMP/chroot.sh" <<'SCRIPT'
set -u
dev=$1 root=$2 bin=$3 uid=$4 gid=$5 img=$6 trace=$7 out=$8
mount "$dev" "$root" || exit 10
mkdir -p "$root"/{usr,proc,sys,dev,run/udev,etc,state,images}
for l in bin sbin lib lib64; do [[ -L /$l ]] && ln -sfn "$(readlink "/$l")" "$root/$l"; done
mount --bind /usr "$root/usr" && mount --rbind /dev "$root/dev" && mount --rbind /sys "$root/sys" &&
	mount -t proc proc "$root/proc" && mount --bind /run/udev "$root/run/udev" &&
	mount --bind /etc "$root/etc" && mount -o remount,bind,ro "$root/etc" || exit 11
cp "$bin" "$root/bmap-station" && cp "$img.zst" "$img.bmap" "$root/images/" || exit 12
chown "$uid:$gid" "$root/state"
cat >"$root/station.conf" <<CONF
station = { name = "gate-root"; database = "/state/journal.db"; cache_dir = "/state/cache";
  require_tag = "bmap-station";
  max_device_size = "256M"; };
profiles = ( { name = "cards"; image = "/images/disk.img.zst"; bmap = "/images/disk.img.bmap";
  removable_only = false; match = { serial = "card-*"; }; } );
CONF
strace -f -qq -e trace=open,openat,openat2 -o "$trace" chroot "$root" \
	setpriv --reuid="$uid" --regid="$gid" --clear-groups --no-new-privs --inh-caps=-all \
	--bounding-set=-all -- /bmap-station run --config /station.conf >"$out.log" 2>&1 &
tracer=$!
seq=$(cat "/sys/block/${dev#/dev/}/diskseq")
for _ in $(seq 100); do
	# As the daemon's user: a root sqlite3 would create the file (or its
	# WAL files) owned by root, and the daemon could not write them.
	[[ -e $root/state/journal.db && $(setpriv --reuid="$uid" --regid="$gid" --clear-groups -- \
		sqlite3 -cmd '.timeout 2000' "$root/state/journal.db" \
		"select count(*) from jobs where diskseq=$seq and outcome != 'running'" 2>/dev/null) == 1 ]] && break
	sleep 0.1
done
daemon=$(cat "/proc/$tracer/task/$tracer/children" 2>/dev/null)
[[ -n $daemon ]] && kill -TERM ${daemon%% *}
wait "$tracer"
setpriv --reuid="$uid" --regid="$gid" --clear-groups -- sqlite3 "$root/state/journal.db" \
	"select diskseq, outcome, error from jobs where diskseq=$seq" >"$out" 2>&1
SCRIPT
unshare -m --propagation private bash "$TEST_TMP/chroot.sh" "$dev_root" "$TEST_TMP/mnt" \
	"$TEST_TMP/bmap-station.bin" "$USER_ID" "$GROUP_ID" "$img" "$TEST_TMP/strace-root.out" \
	"$TEST_TMP/root-rows" || fail "the chroot part failed (exit $?): $(cat "$TEST_TMP/root-rows.log" 2>/dev/null)"
grep -qxF "$seq_root|refused|holds the root file system" "$TEST_TMP/root-rows" ||
	fail "the card holding / was not refused as such: $(cat "$TEST_TMP/root-rows") $(tail -n 5 "$TEST_TMP/root-rows.log")"
log "root: refused: holds the root file system"
write_opens "$TEST_TMP/strace-root.out" >"$TEST_TMP/write-opens-root"
[[ -s $TEST_TMP/write-opens-root ]] && fail "opened for writing in the chroot: $(cat "$TEST_TMP/write-opens-root")"
grep -q 'openat' "$TEST_TMP/strace-root.out" || fail "strace recorded nothing in the chroot"
detach_loop "$dev_root"

log "ok: every wrong card refused with its reason, none opened for writing; the control flashed as $USER_NAME"
