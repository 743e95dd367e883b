# `bmap-station serve` for the serve-*.sh tests (sourced after common.sh).
#
# Owns: starting the server on a port it picks itself (--listen ADDR:0; the
# port is read from its "listening on" log line), waiting for it, and
# stopping it by pid (at exit too).
#
# serve_start NAME ARGS...   sets SERVE_URL_<NAME> (http[s]://ADDR:PORT),
#                            SERVE_PID_<NAME>, SERVE_LOG_<NAME>; ARGS go to
#                            `bmap-station serve` (give --listen ADDR:0)
# serve_stop NAME
# serve_url NAME             the base URL

STATION=${STATION:-$BUILD_DIR/bmap-station}

serve_start() {
	local name=$1 log=$TEST_TMP/serve-$1.log pid url i
	shift
	: >"$log"
	"$STATION" serve "$@" </dev/null >>"$log" 2>&1 &
	pid=$!
	printf -v "SERVE_PID_$name" %s "$pid"
	printf -v "SERVE_LOG_$name" %s "$log"
	on_exit "serve_stop $name"
	for ((i = 0; i < 100; i++)); do
		url=$(sed -n 's|.*serve: listening on \(https\{0,1\}://[^/]*\)/.*|\1|p' "$log")
		if [[ -n $url ]]; then
			printf -v "SERVE_URL_$name" %s "$url"
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; return 1; }
		sleep 0.1
	done
	cat "$log" >&2
	return 1
}

serve_stop() {
	local pidvar=SERVE_PID_$1 pid
	pid=${!pidvar:-}
	[[ -n $pid ]] || return 0
	kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	printf -v "SERVE_PID_$1" %s ""
	return 0
}

serve_url() { local v=SERVE_URL_$1; printf '%s' "${!v}"; }
