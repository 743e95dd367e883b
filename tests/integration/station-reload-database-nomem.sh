#!/bin/bash
# The daemon survives a reload (SIGHUP) whose copy of the database setting
# cannot be allocated. It used to strdup() the old path into the new
# configuration unchecked: on ENOMEM the setting became NULL and the next
# SIGHUP crashed the station on strcmp(NULL) (SIGSEGV).
#
# A small LD_PRELOAD shim, compiled here, makes strdup() of the database
# path fail once, on its second call after the test says so: the first is
# the reload's own reading of the file (config_load), the second was the
# copy. The daemon touches no disk: no device carries its tag.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_ours
need_cmd cc
[[ -n $BMAP_STATION && -x $BMAP_STATION ]] || fail "bmap-station not built"

shim=$TEST_TMP/strdup-fail.so
cat >"$TEST_TMP/strdup-fail.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* strdup(STRDUP_FAIL_MATCH) fails with ENOMEM on its STRDUP_FAIL_NTH call
 * made while the file STRDUP_FAIL_ARMED exists; every other call is real. */
static atomic_int armed_calls;

char *strdup(const char *s)
{
	static char *(*real)(const char *);
	const char *match = getenv("STRDUP_FAIL_MATCH"), *armed = getenv("STRDUP_FAIL_ARMED");
	const char *nth = getenv("STRDUP_FAIL_NTH");

	if (!real)
		real = (char *(*)(const char *))dlsym(RTLD_NEXT, "strdup");
	if (match && armed && nth && strcmp(s, match) == 0 && access(armed, F_OK) == 0 &&
	    atomic_fetch_add(&armed_calls, 1) + 1 == atoi(nth)) {
		errno = ENOMEM;
		return NULL;
	}
	return real(s);
}
C
cc -shared -fPIC -O1 -o "$shim" "$TEST_TMP/strdup-fail.c" -ldl || fail "cannot build the strdup shim"

db=$TEST_TMP/journal.db
conf=$TEST_TMP/station.conf
cat >"$conf" <<CONF
station = { name = "reload"; database = "$db"; cache_dir = "$TEST_TMP/cache";
  require_tag = "bmap-station-reload-test-$$"; };
profiles = ( { name = "none"; image = "$TEST_TMP/none.img"; match = { serial = "no-such-card-$$"; }; } );
CONF

armed=$TEST_TMP/armed
start_station "$conf" env STRDUP_FAIL_MATCH="$db" STRDUP_FAIL_ARMED="$armed" STRDUP_FAIL_NTH=2 \
	LD_PRELOAD="$shim" ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
wait_log() {
	local want=$1 n=$2
	for _ in $(seq 100); do
		[[ $(grep -c -- "$want" "$TEST_TMP/station.log") -ge $n ]] && return 0
		station_alive
		sleep 0.1
	done
	fail "the station did not log '$want' ($n times)"
}
wait_log "running:" 1

touch "$armed"
kill -HUP "$STATION_PID"
wait_log "SIGHUP: " 1
# The second reload compares the database setting with the one in force.
kill -HUP "$STATION_PID"
wait_log "SIGHUP: " 2
station_alive
grep -- "SIGHUP: " "$TEST_TMP/station.log" | while read -r line; do log "$line"; done

kill -TERM "$STATION_PID"
for _ in $(seq 100); do
	kill -0 "$STATION_PID" 2>/dev/null || break
	sleep 0.1
done
wait "$STATION_PID"
rc=$?
STATION_PID=
[[ $rc -eq 0 ]] || fail "the station exited $rc after two reloads: $(tail -n 5 "$TEST_TMP/station.log")"
log "ok: two reloads, the first short of memory for the database setting; the station stopped cleanly"
