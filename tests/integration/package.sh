#!/bin/bash
# package: the Debian package CPack builds installs every file in place,
# creates the user, its groups (bmap-station-cards may write cards,
# bmap-station-audit may read the journal) and directories, carries rules
# that call this machine's root disk a system disk, a unit that
# systemd-analyze accepts (and rates well hardened), lets the daemon start as
# the unprivileged bmap-station user, and goes away again: `dpkg -r` keeps the
# configuration, `dpkg -P` removes it and the cache but keeps the journal.
#
# This machine has no systemd as PID 1, so the unit itself is not started
# here; the daemon is started by hand, as its user, with no capabilities.
#
# The machine is left as found: the package is purged, and the user, group and
# directories the package created are removed again when they did not exist
# before the test (a real purge leaves them: they own the journal). Skips
# (77) without root, dpkg, cpack or systemd's tools, or when bmap-station is
# already installed (it is not ours to remove).

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"

need_root
for c in cmake cpack dpkg dpkg-deb dpkg-shlibdeps systemd-analyze systemd-sysusers \
	systemd-tmpfiles setpriv getent; do
	need_cmd "$c"
done
# installed, config-files, half-installed, ...; not-installed or unknown: ours.
pkg_state() { dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null; }
case $(pkg_state bmap-station) in
"" | not-installed) ;;
*) skip "the package bmap-station is on this machine ($(pkg_state bmap-station)); not touching it" ;;
esac

SRC=$(cd "${TESTS_DIR:-$(dirname "$0")/..}/.." && pwd)
PKG=bmap-station
UNIT=/usr/lib/systemd/system/bmap-station.service
CONF=/etc/bmap-station/station.conf
STATE=/var/lib/bmap-station
CACHE=/var/cache/bmap-station

# What was there before, so that the cleanup restores exactly that.
had_user=0 had_group=0 had_cards=0 had_audit=0 had_state=0 had_cache=0 had_etc=0
getent passwd bmap-station >/dev/null && had_user=1
getent group bmap-station >/dev/null && had_group=1
getent group bmap-station-cards >/dev/null && had_cards=1
getent group bmap-station-audit >/dev/null && had_audit=1
had_serve=0 had_serve_group=0
getent passwd bmap-station-serve >/dev/null && had_serve=1
getent group bmap-station-serve >/dev/null && had_serve_group=1
AUDITOR=bmapaudit$$ OUTSIDER=bmapout$$
[[ -e $STATE ]] && had_state=1
[[ -e $CACHE ]] && had_cache=1
[[ -e /etc/bmap-station ]] && had_etc=1
DAEMON_PID=

restore_machine() {
	if [[ -n $DAEMON_PID ]]; then
		kill -KILL "$DAEMON_PID" 2>/dev/null
		wait "$DAEMON_PID" 2>/dev/null
	fi
	# Purge also clears a "not-installed" record a failed install leaves.
	if [[ -n $(pkg_state "$PKG") ]]; then
		dpkg -P "$PKG" >/dev/null 2>&1 || log "could not purge $PKG"
	fi
	rm -f -- /etc/systemd/system/multi-user.target.wants/bmap-station.service
	((had_state)) || rm -rf -- "$STATE"
	((had_cache)) || rm -rf -- "$CACHE"
	((had_etc)) || rm -rf -- /etc/bmap-station
	if ! ((had_user)) && getent passwd bmap-station >/dev/null; then
		userdel bmap-station 2>/dev/null || log "could not remove the user bmap-station"
	fi
	if ! ((had_group)) && getent group bmap-station >/dev/null; then
		groupdel bmap-station 2>/dev/null || log "could not remove the group bmap-station"
	fi
	if ! ((had_serve)) && getent passwd bmap-station-serve >/dev/null; then
		userdel bmap-station-serve 2>/dev/null || log "could not remove the user bmap-station-serve"
	fi
	if ! ((had_serve_group)) && getent group bmap-station-serve >/dev/null; then
		groupdel bmap-station-serve 2>/dev/null || log "could not remove the group bmap-station-serve"
	fi
	for u in "$AUDITOR" "$OUTSIDER"; do
		getent passwd "$u" >/dev/null && { userdel "$u" 2>/dev/null || log "could not remove the user $u"; }
	done
	for g in cards audit; do
		local had=had_$g
		if ! ((${!had})) && getent group "bmap-station-$g" >/dev/null; then
			groupdel "bmap-station-$g" 2>/dev/null || log "could not remove the group bmap-station-$g"
		fi
	done
}
on_exit restore_machine

failures=0
bad() { log "FAIL: $*"; failures=$((failures + 1)); }

# run_logged NAME CMD...: run quietly, show the log's end on failure.
run_logged() {
	local name=$1
	shift
	"$@" >"$TEST_TMP/$name.log" 2>&1 ||
		{ tail -n 30 "$TEST_TMP/$name.log" >&2; fail "$name failed: $*"; }
}

# ---- build the package from the source tree, as a /usr install -----------
B=$TEST_TMP/build
run_logged configure cmake -S "$SRC" -B "$B" -DCMAKE_INSTALL_PREFIX=/usr -DBUILD_TESTING=OFF
run_logged build cmake --build "$B" -j "$(nproc)"
(cd "$B" && cpack -G DEB) >"$TEST_TMP/cpack.log" 2>&1 ||
	{ tail -n 30 "$TEST_TMP/cpack.log" >&2; fail "cpack -G DEB failed"; }
debs=("$B"/bmap-station_*.deb)
[[ ${#debs[@]} -eq 1 && -f ${debs[0]} ]] || fail "cpack made no single bmap-station_*.deb: ${debs[*]}"
DEB=${debs[0]}
tools=("$B"/bmap-station-bmaptool_*.deb)
[[ ${#tools[@]} -eq 1 && -f ${tools[0]} ]] || fail "cpack made no single bmap-station-bmaptool_*.deb"
TOOL_DEB=${tools[0]}
log "built $(basename "$DEB") and $(basename "$TOOL_DEB")"

# The files the station package must put in place (relative to /).
FILES=(
	usr/bin/bmap-station
	usr/lib/udev/rules.d/90-bmap-station.rules
	usr/lib/systemd/system/bmap-station.service
	usr/lib/systemd/system/bmap-station-sync.service
	usr/lib/systemd/system/bmap-station-serve.service
	usr/lib/sysusers.d/bmap-station.conf
	usr/lib/tmpfiles.d/bmap-station.conf
	etc/bmap-station/station.conf
	usr/share/doc/bmap-station/README.md
)
# The manual pages, when the build had scdoc to render them (CI must: its
# configure fails without it); bmaptool(1) goes with bmaptool.
TOOL_FILES=(usr/bin/bmaptool)
if command -v scdoc >/dev/null 2>&1; then
	FILES+=(usr/share/man/man8/bmap-station.8.gz usr/share/man/man5/bmap-station.conf.5.gz)
	TOOL_FILES+=(usr/share/man/man1/bmaptool.1.gz)
else
	log "no scdoc: the manual pages are not built, not looked for"
fi

# `cmake --install` with the same prefix puts exactly these files in place,
# and bmaptool.
run_logged install env DESTDIR="$TEST_TMP/root" cmake --install "$B"
for f in "${FILES[@]}" "${TOOL_FILES[@]}"; do
	[[ -f $TEST_TMP/root/$f ]] || bad "cmake --install did not install /$f"
done
extra=$(cd "$TEST_TMP/root" && find . -type f | sed 's|^\./||' | sort |
	comm -23 - <(printf '%s\n' "${FILES[@]}" "${TOOL_FILES[@]}" | sort))
[[ -z $extra ]] || bad "cmake --install installed unexpected files: $extra"

# ---- the packages' metadata -------------------------------------------------
# bmaptool is a package of its own: it takes /usr/bin/bmaptool from Debian's
# bmap-tools (which this machine keeps as the tests' reference: so it is not
# installed here).
[[ $(dpkg-deb -f "$TOOL_DEB" Package) == bmap-station-bmaptool ]] || bad "bmaptool package name"
[[ $(dpkg-deb -c "$TOOL_DEB" | awk '$NF !~ /\/$/ { print $NF }' | sed 's|^\./||' | sort) == \
	"$(printf '%s\n' "${TOOL_FILES[@]}" | sort)" ]] ||
	bad "the bmaptool package does not hold exactly ${TOOL_FILES[*]}: $(dpkg-deb -c "$TOOL_DEB")"
# Its manual renders (a package may not be installed here: read from the .deb).
if [[ ${#TOOL_FILES[@]} -gt 1 ]] && command -v man >/dev/null 2>&1; then
	mkdir -p "$TEST_TMP/tool" && dpkg-deb -x "$TOOL_DEB" "$TEST_TMP/tool" || bad "dpkg-deb -x $TOOL_DEB"
	man_out=$(MANWIDTH=80 man -l "$TEST_TMP/tool/usr/share/man/man1/bmaptool.1.gz" 2>&1)
	[[ $man_out == "bmaptool(1)"*"SYNOPSIS"*"bmaptool copy"* ]] ||
		bad "man -l does not render bmaptool(1) from the package: $(head -c 300 <<<"$man_out")"
fi
[[ $(dpkg-deb -f "$TOOL_DEB" Conflicts) == *bmap-tools* && $(dpkg-deb -f "$TOOL_DEB" Replaces) == *bmap-tools* ]] ||
	bad "the bmaptool package does not conflict with and replace bmap-tools"
[[ $(dpkg-deb -f "$TOOL_DEB" Depends) == *libc6* ]] || bad "the bmaptool package has no computed Depends"
# Signed bmaps: libgpgme11, which brings gpg itself (gnupg | gpg).
[[ $(dpkg-deb -f "$TOOL_DEB" Depends) == *libgpgme11* ]] || bad "the bmaptool package does not depend on libgpgme11"
# URLs: libbmap links libcurl (issue 11).
[[ $(dpkg-deb -f "$TOOL_DEB" Depends) == *libcurl4* ]] || bad "the bmaptool package's Depends lacks libcurl4"
[[ $(dpkg-deb -f "$DEB" Package) == bmap-station ]] || bad "package name: $(dpkg-deb -f "$DEB" Package)"
depends=$(dpkg-deb -f "$DEB" Depends)
for lib in libc6 libudev1 libsqlite3-0 libconfig9 libxml2 libcurl4 libgpgme11 libmicrohttpd12; do
	[[ $depends == *"$lib"* ]] || bad "Depends lacks $lib (shlibdeps): $depends"
done
listing=$(dpkg-deb -c "$DEB" | awk '$NF !~ /\/$/ { print $NF }' | sed 's|^\./||' | sort)
[[ $listing == "$(printf '%s\n' "${FILES[@]}" | sort)" ]] ||
	bad "the package's files differ: $(diff <(echo "$listing") <(printf '%s\n' "${FILES[@]}" | sort))"
dpkg-deb --ctrl-tarfile "$DEB" | tar -xf - -C "$TEST_TMP" ./conffiles ./postinst ./prerm ./postrm ||
	fail "cannot read the package's control files"
grep -qxF "$CONF" "$TEST_TMP/conffiles" || bad "$CONF is not a conffile: $(cat "$TEST_TMP/conffiles")"
for s in postinst prerm postrm; do
	[[ -x $TEST_TMP/$s ]] || bad "maintainer script $s missing or not executable"
	sh -n "$TEST_TMP/$s" || bad "maintainer script $s: syntax error"
done

# ---- install ---------------------------------------------------------------
run_logged dpkg-install dpkg -i "$DEB"
for f in "${FILES[@]}"; do
	[[ -f /$f ]] || bad "not installed: /$f"
done
[[ -x /usr/bin/bmap-station ]] || bad "/usr/bin/bmap-station not executable"
for page in man8/bmap-station.8 man5/bmap-station.conf.5; do
	has_page=0
	for f in "${FILES[@]}"; do [[ $f == "usr/share/man/$page.gz" ]] && has_page=1; done
	((has_page)) && command -v man >/dev/null 2>&1 || continue
	title=$(basename "$page" | sed -E 's/\.([0-9])$/(\1)/')
	man_out=$(MANWIDTH=80 man -l "/usr/share/man/$page.gz" 2>&1)
	[[ $man_out == "$title"*"NAME"*"SEE ALSO"* ]] ||
		bad "man -l does not render the installed /usr/share/man/$page.gz: $(head -c 300 <<<"$man_out")"
done
RULES=/usr/lib/udev/rules.d/90-bmap-station.rules
grep -q '^GROUP="bmap-station-cards", MODE="0660"$' "$RULES" ||
	bad "the udev rules do not give tagged disks to the group bmap-station-cards"
grep -qF 'IMPORT{program}="/usr/bin/bmap-station system-disk $major:$minor $devnode"' "$RULES" ||
	bad "the udev rules do not ask the installed bmap-station for the system disk"

# The user and group, a system account without a login shell.
pw=$(getent passwd bmap-station) || bad "no user bmap-station after install"
getent group bmap-station >/dev/null || bad "no group bmap-station after install"
for g in bmap-station-cards bmap-station-audit; do
	getent group "$g" >/dev/null || bad "no group $g after install"
	[[ " $(id -nG bmap-station 2>/dev/null) " == *" $g "* ]] || bad "bmap-station is not in the group $g"
done
if [[ -n ${pw:-} ]]; then
	IFS=: read -r _ _ uid gid _ home shell <<<"$pw"
	((uid > 0 && uid < 1000)) || bad "bmap-station is not a system user (uid $uid)"
	[[ $(getent group "$gid" | cut -d: -f1) == bmap-station ]] ||
		bad "the user's primary group is not bmap-station"
	[[ $shell == */nologin || $shell == /bin/false ]] || bad "the user has a login shell: $shell"
	[[ $home == "$STATE" ]] || bad "home is $home, expected $STATE"
fi
# The dashboard's own user: a system account in the audit group only.
spw=$(getent passwd bmap-station-serve) || bad "no user bmap-station-serve after install"
if [[ -n ${spw:-} ]]; then
	IFS=: read -r _ _ suid _ _ _ sshell <<<"$spw"
	((suid > 0 && suid < 1000)) || bad "bmap-station-serve is not a system user (uid $suid)"
	[[ $sshell == */nologin || $sshell == /bin/false ]] ||
		bad "bmap-station-serve has a login shell: $sshell"
	[[ $suid != "$(id -u bmap-station 2>/dev/null)" ]] || bad "bmap-station-serve is bmap-station"
	sg=" $(id -nG bmap-station-serve 2>/dev/null) "
	[[ $sg == *" bmap-station-audit "* ]] || bad "bmap-station-serve is not in bmap-station-audit"
	[[ $sg == *" bmap-station-cards "* ]] && bad "bmap-station-serve is in bmap-station-cards"
fi
for d in "$STATE:2750" "$CACHE:700"; do
	st=$(stat -c '%U:%G %a' "${d%:*}" 2>/dev/null) || { bad "${d%:*} missing after install"; continue; }
	[[ $st == "bmap-station:bmap-station-audit ${d##*:}" ]] ||
		bad "${d%:*} is $st, expected bmap-station:bmap-station-audit ${d##*:}"
done

# Enabling works offline; removing the package must disable it again.
WANTS=/etc/systemd/system/multi-user.target.wants/bmap-station.service
if command -v systemctl >/dev/null 2>&1; then
	systemctl enable bmap-station.service >/dev/null 2>&1 && [[ -L $WANTS ]] ||
		bad "systemctl enable bmap-station.service did not enable it"
fi

# A second install (an upgrade path: postinst with an existing user) keeps
# a changed configuration.
echo "# changed by the package test" >>"$CONF"
run_logged dpkg-reinstall dpkg -i "$DEB"
grep -q "changed by the package test" "$CONF" || bad "reinstalling replaced the changed $CONF"

# ---- the unit ----------------------------------------------------------------
# Without systemd as PID 1, `verify` still loads the unit and its dependencies
# and checks the executables; any message at all is a complaint.
out=$(SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "$UNIT" 2>&1)
rc=$?
[[ $rc -eq 0 && -z $out ]] || bad "systemd-analyze verify (exit $rc): $out"
# shellcheck disable=SC2016 # $MAINPID is literal unit text
for opt in 'Type=notify' 'WatchdogSec=30s' 'ExecStart=/usr/bin/bmap-station run --config /etc/bmap-station/station.conf' \
	'ExecReload=/bin/kill -HUP $MAINPID' 'Restart=on-failure' 'User=bmap-station' \
	'Group=bmap-station-audit' 'SupplementaryGroups=bmap-station-cards' \
	'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' 'NoNewPrivileges=yes' \
	'DevicePolicy=closed' 'RestrictAddressFamilies=AF_UNIX AF_NETLINK'; do
	grep -qxF -- "$opt" "$UNIT" || bad "the unit lacks '$opt'"
done
# The dashboard's unit: its own user (not the station's), the journal's
# group, bounded memory.
SERVE_UNIT=/usr/lib/systemd/system/bmap-station-serve.service
out=$(SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "$SERVE_UNIT" 2>&1)
rc=$?
[[ $rc -eq 0 && -z $out ]] || bad "systemd-analyze verify $SERVE_UNIT (exit $rc): $out"
for opt in 'User=bmap-station-serve' 'Group=bmap-station-audit' 'NoNewPrivileges=yes' \
	'ProtectSystem=strict' 'PrivateDevices=yes' 'CapabilityBoundingSet='; do
	grep -qxF -- "$opt" "$SERVE_UNIT" || bad "the serve unit lacks '$opt'"
done
grep -qE '^MemoryMax=[0-9]+[KMG]$' "$SERVE_UNIT" || bad "the serve unit has no MemoryMax="
grep -E '^(User|SupplementaryGroups)=' "$SERVE_UNIT" | grep -qE '=bmap-station$|bmap-station-cards' &&
	bad "the serve unit runs as the station's user or with the cards group"
# systemd's own rating of the sandbox (0 = locked down, 10 = exposed).
if systemd-analyze security --help 2>/dev/null | grep -q -- --offline; then
	score=$(systemd-analyze security --offline=yes --man=no "$UNIT" 2>&1 |
		sed -nE 's/.*Overall exposure level for [^:]*: ([0-9.]+).*/\1/p')
	log "systemd-analyze security: exposure $score"
	[[ -n $score ]] && awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' ||
		bad "exposure level '${score}' above 2.0"
fi

# ---- the daemon starts unprivileged -------------------------------------------
# As the unit runs it: user and group bmap-station, no capabilities, no new
# privileges. Run from / (the test folder is root's).
AS_STATION=(setpriv --reuid=bmap-station --regid=bmap-station --init-groups
	--no-new-privs --inh-caps=-all --bounding-set=-all --)
as_station() { (cd / && exec "${AS_STATION[@]}" "$@"); }
[[ $(as_station id -un) == bmap-station ]] || bad "cannot run as bmap-station"
check_out=$(as_station /usr/bin/bmap-station check --config "$CONF" 2>&1)
rc=$?
[[ $rc -eq 0 ]] || bad "bmap-station check as bmap-station: exit $rc: $check_out"
# The example's image is not installed: a warning, not a problem.
grep -qE "^configuration $CONF: (ok|valid, [0-9]+ warning)" <<<"$check_out" ||
	bad "check did not accept $CONF: $check_out"
# Untagged disks stay out of its reach (the system disk is root:disk), and
# the installed rules' helper calls the disk holding / a system disk.
root_disk=$(stat -c '%Hd:%Ld' /)
[[ -e /sys/dev/block/$root_disk/partition ]] && root_disk=$(cat "/sys/dev/block/$root_disk/../dev")
if [[ -e /sys/dev/block/$root_disk ]]; then
	out=$(/usr/bin/bmap-station system-disk "$root_disk")
	[[ $out == *"BMAP_STATION_DISK=system"* ]] ||
		bad "bmap-station system-disk does not call $root_disk (holding /) a system disk: $out"
fi
for dev in /dev/vda /dev/sda /dev/nvme0n1 /dev/xvda; do
	[[ -b $dev ]] || continue
	as_station test -r "$dev" && bad "bmap-station can read the untagged disk $dev"
	break
done

# `run` as bmap-station: it opens the journal in its state directory and the
# udev monitor, and stops cleanly on SIGTERM. The example profile matches
# only a USB card in slot A1, and the user can open no untagged disk, so
# nothing is touched.
# (The subshell execs: $! is the daemon itself.)
(cd / && exec "${AS_STATION[@]}" /usr/bin/bmap-station run --config "$CONF") \
	>"$TEST_TMP/run.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 50); do
	[[ -e $STATE/journal.db ]] && break
	kill -0 "$DAEMON_PID" 2>/dev/null || break
	sleep 0.1
done
sleep 0.5
if kill -0 "$DAEMON_PID" 2>/dev/null; then
	# While the station writes it: the journal and its -wal and -shm are
	# the audit group's to read (the dashboard's user reads them so).
	for f in "$STATE/journal.db" "$STATE/journal.db-wal" "$STATE/journal.db-shm"; do
		[[ -e $f ]] || continue
		m=$(stat -c '%G %a' "$f")
		[[ $m == "bmap-station-audit "[67][4-7][0-7] ]] || bad "$f is '$m', not readable by its group"
	done
	out=$(cd / && setpriv --reuid=bmap-station-serve \
		--regid="$(getent group bmap-station-audit | cut -d: -f3)" --init-groups \
		-- /usr/bin/bmap-station report --db "$STATE/journal.db" 2>&1) ||
		bad "bmap-station-serve cannot read the journal the station writes: $out"
	kill -TERM "$DAEMON_PID"
	for _ in $(seq 100); do
		kill -0 "$DAEMON_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$DAEMON_PID" 2>/dev/null && { kill -KILL "$DAEMON_PID"; bad "bmap-station run ignored SIGTERM for 10 s"; }
	wait "$DAEMON_PID"
	rc=$?
	[[ $rc -eq 0 ]] || bad "bmap-station run exited $rc on SIGTERM: $(tail -n 5 "$TEST_TMP/run.log")"
else
	wait "$DAEMON_PID"
	bad "bmap-station run as bmap-station died (exit $?): $(tail -n 5 "$TEST_TMP/run.log")"
fi
DAEMON_PID=
[[ $(stat -c '%U:%G' "$STATE/journal.db" 2>/dev/null) == bmap-station:bmap-station-audit ]] ||
	bad "no journal owned by bmap-station and the group bmap-station-audit in $STATE: $(ls -l "$STATE")"

# Reading the journal is the audit group's: a member reads the report, anyone
# else cannot; neither may open the cards the rules tag (other group).
useradd -r -M -d /nonexistent -s /usr/sbin/nologin -G bmap-station-audit "$AUDITOR" &&
	useradd -r -M -d /nonexistent -s /usr/sbin/nologin "$OUTSIDER" || bad "useradd"
as_user() { (cd / && exec setpriv --reuid="$1" --regid="$(id -g "$1")" --init-groups -- "${@:2}"); }
out=$(as_user "$AUDITOR" /usr/bin/bmap-station report --db "$STATE/journal.db" 2>&1) ||
	bad "a member of bmap-station-audit cannot read the journal: $out"
as_user "$OUTSIDER" /usr/bin/bmap-station report --db "$STATE/journal.db" >/dev/null 2>&1 &&
	bad "a user outside bmap-station-audit can read the journal"

# ---- remove and purge -------------------------------------------------------
run_logged dpkg-remove dpkg -r "$PKG"
for f in "${FILES[@]}"; do
	[[ /$f == "$CONF" ]] && continue
	[[ -e /$f ]] && bad "still there after dpkg -r: /$f"
done
[[ -f $CONF ]] || bad "dpkg -r removed the configuration (a conffile stays until purge)"
[[ -L $WANTS ]] && bad "dpkg -r left the unit enabled: $WANTS"

run_logged dpkg-purge dpkg -P "$PKG"
case $(pkg_state "$PKG") in
"" | not-installed) ;;
*) bad "the package is still on the machine after purge: $(pkg_state "$PKG")" ;;
esac
[[ -e $CONF ]] && bad "dpkg -P left $CONF"
((had_etc)) || [[ ! -e /etc/bmap-station ]] || bad "dpkg -P left /etc/bmap-station"
((had_cache)) || [[ ! -e $CACHE ]] || bad "dpkg -P left the cache $CACHE"
[[ -f $STATE/journal.db ]] || bad "dpkg -P deleted the journal"
getent passwd bmap-station >/dev/null || bad "dpkg -P removed the user that owns the journal"

((failures == 0)) || fail "$failures check(s) failed"
log "ok"
