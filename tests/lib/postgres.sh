# A real PostgreSQL for the sync tests (sourced after common.sh, not run).
#
# Owns: starting Debian's PostgreSQL (initdb, pg_ctl) in a temporary folder
# as an unprivileged user (root cannot run postgres), listening on a Unix
# socket in that folder only; stopping and starting it again; stopping it
# by pg_ctl and then its pid at exit, even on failure; psql against it; and
# the comparison of the central rows with the journals' (sqlite3 dumps).
#
# After start_postgres: PG_DIR, PG_DATA, PG_SOCK, PG_PORT, PG_CONNINFO.

PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
PG_USER=${PG_USER:-nobody}

need_postgres() {
	need_root
	[[ -n $PG_BIN && -x $PG_BIN/initdb && -x $PG_BIN/pg_ctl ]] ||
		skip "needs Debian's postgresql (initdb and pg_ctl in /usr/lib/postgresql/*/bin)"
	need_cmd psql
	need_cmd sqlite3
	need_cmd runuser
	id -u "$PG_USER" >/dev/null 2>&1 || skip "needs the user '$PG_USER' to run postgres"
}

_pg() { runuser -u "$PG_USER" -- "$@"; }

# The postmaster's pid, from its pid file (empty when it is not running).
postgres_pid() { [[ -s $PG_DATA/postmaster.pid ]] && head -n 1 "$PG_DATA/postmaster.pid"; }

_postgres_cleanup() {
	local pid
	[[ -n ${PG_DATA:-} ]] || return 0
	pid=$(postgres_pid)
	if [[ -n $pid ]]; then
		_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w -t 20 stop >/dev/null 2>&1 ||
			kill -KILL "$pid" 2>/dev/null
	fi
	rm -rf -- "$PG_DIR"
}

start_postgres() {
	PG_DIR=$(mktemp -d /tmp/bmap-pg.XXXXXX) || fail "cannot create a folder for PostgreSQL"
	on_exit _postgres_cleanup
	PG_DATA=$PG_DIR/data
	PG_SOCK=$PG_DIR
	PG_PORT=5432
	chown "$PG_USER" "$PG_DIR" || fail "cannot give $PG_DIR to $PG_USER"
	_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
		>"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; fail "initdb failed"; }
	postgres_start
	PG_CONNINFO="host=$PG_SOCK port=$PG_PORT user=postgres dbname=postgres"
}

# (Re)starts the server of start_postgres (no TCP: the socket only).
postgres_start() {
	_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DIR/server.log" -w -t 60 \
		-o "-k $PG_SOCK -p $PG_PORT -c listen_addresses= -c fsync=off" start >/dev/null ||
		{ tail -n 20 "$PG_DIR/server.log" >&2; fail "PostgreSQL did not start"; }
}

postgres_stop() {
	_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null ||
		fail "PostgreSQL did not stop"
}

# pq SQL: one query's rows, unaligned, '|' between columns.
pq() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$PG_CONNINFO" -c "$1"; }

# The rows of every table, one line each, in one form for both sides:
# journal_rows STATION DB (through test_sync --dump, which has the journal's
# bmap_utf8(): sync makes invalid UTF-8 valid as the reports do) and
# central_rows. Text as the hex of its UTF-8, integers and numerics in
# decimal, doubles as the hex of their IEEE bits (exact), hook output as the
# hex of its bytes.
_JOB_COLS=(station:T started:T finished:T duration:R slot:T devnode:T syspath:T diskseq:N
	serial:T reader_serial:T vendor:T model:T bus:T id_path:T size:N removable:N mmc_cid:T
	mmc_manfid:T mmc_oemid:T mmc_name:T mmc_date:T content_before:T content_after:T
	profile:T image:T image_size:N bmap:T bmap_sha256:T outcome:T error:T bytes_written:N
	throughput:R data_sha256:T readback_sha256:T boot_id:T)
_HOOK_COLS=(job:N event:T command:T finished:T duration:R exit_status:N signal:N
	timed_out:N output:B)
_FORGOTTEN_COLS=(serial:T at:T)

# _cols SIDE COL:KIND...: the select list for sqlite (SIDE s) or PostgreSQL (p).
_cols() {
	local side=$1 spec c k out=""
	shift
	for spec in "$@"; do
		c=${spec%%:*} k=${spec#*:}
		if [[ $side == s ]]; then
			[[ $k == T ]] && c="bmap_utf8($c)"
			out+=", $c"
			continue
		fi
		[[ $c == station ]] && c=journal_station
		case $k in
		T) out+=" || '|' || coalesce(upper(encode(convert_to($c, 'UTF8'), 'hex')), 'N')" ;;
		N) out+=" || '|' || coalesce($c::text, 'N')" ;;
		R) out+=" || '|' || coalesce(upper(encode(float8send($c), 'hex')), 'N')" ;;
		B) out+=" || '|' || coalesce(upper(encode($c, 'hex')), 'N')" ;;
		esac
	done
	printf '%s' "$out"
}

journal_rows() {
	local station=$1 db=$2 d=$BUILD_DIR/tests/test_sync
	{
		"$d" --dump "$db" "SELECT job $(_cols s "${_JOB_COLS[@]}") FROM jobs" |
			sed "s/^/job|$station|/" &&
		"$d" --dump "$db" "SELECT rowid $(_cols s "${_HOOK_COLS[@]}") FROM hooks" |
			sed "s/^/hook|$station|/" &&
		"$d" --dump "$db" "SELECT rowid $(_cols s "${_FORGOTTEN_COLS[@]}") FROM forgotten" |
			sed "s/^/forgotten|$station|/"
	}
}

central_rows() {
	pq "SELECT 'job|' || station || '|' || job $(_cols p "${_JOB_COLS[@]}") FROM bmap_jobs
		UNION ALL SELECT 'hook|' || station || '|' || id $(_cols p "${_HOOK_COLS[@]}")
		  FROM bmap_hooks
		UNION ALL SELECT 'forgotten|' || station || '|' || id
		  $(_cols p "${_FORGOTTEN_COLS[@]}") FROM bmap_forgotten"
}

# central_matches STATION=DB...: whether the central rows are now exactly
# the union of the journals' (in $TEST_TMP/want.rows and got.rows).
central_matches() {
	local pair want=$TEST_TMP/want.rows got=$TEST_TMP/got.rows
	: >"$want"
	for pair in "$@"; do
		journal_rows "${pair%%=*}" "${pair#*=}" >>"$want" ||
			fail "cannot dump journal ${pair#*=}"
	done
	central_rows >"$got" 2>/dev/null || : >"$got"
	sort -o "$want" "$want"
	sort -o "$got" "$got"
	cmp -s "$want" "$got"
}

# expect_central STATION=DB...: the central rows are exactly the union of
# the journals' (nothing missing, nothing twice), and no key is held twice.
expect_central() {
	local want=$TEST_TMP/want.rows got=$TEST_TMP/got.rows dups
	central_matches "$@"
	dups=$(cut -d'|' -f1-3 "$got" | uniq -d | head -n 3)
	[[ -z $dups ]] || fail "central rows held twice: $dups"
	if ! cmp -s "$want" "$got"; then
		log "journal rows: $(wc -l <"$want"), central rows: $(wc -l <"$got")"
		diff "$want" "$got" | head -n 10 >&2
		fail "the central rows are not the union of the journals'"
	fi
	log "central rows = union of the journals: $(wc -l <"$got") rows"
}

# wait_central SECONDS STATION=DB...: until the central rows equal the union
# of the journals (then as expect_central), or fail after SECONDS.
wait_central() {
	local deadline=$((SECONDS + $1))
	shift
	while ! central_matches "$@"; do
		((SECONDS < deadline)) || break
		sleep 0.5
	done
	expect_central "$@"
}

# start_sync NAME DB STATION [ARGS...]: `bmap-station sync` following DB in
# the background (log $TEST_TMP/sync-NAME.log), its pid in SYNC_PID[NAME];
# stopped by that pid at exit.
declare -A SYNC_PID=()
start_sync() {
	local name=$1 db=$2 station=$3
	shift 3
	"$BUILD_DIR/bmap-station" sync --db "$db" --pg "$PG_CONNINFO" --station "$station" "$@" \
		>"$TEST_TMP/sync-$name.log" 2>&1 &
	SYNC_PID[$name]=$!
	on_exit "kill ${SYNC_PID[$name]} 2>/dev/null; wait ${SYNC_PID[$name]} 2>/dev/null"
}

# stop_sync NAME: SIGTERM, and it exits 0.
stop_sync() {
	local rc=0
	kill -TERM "${SYNC_PID[$1]}" 2>/dev/null
	wait "${SYNC_PID[$1]}" || rc=$?
	[[ $rc -eq 0 ]] || { cat "$TEST_TMP/sync-$1.log" >&2; fail "sync $1 exited $rc on SIGTERM"; }
}
