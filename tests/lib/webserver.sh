# A real web server for the URL tests (sourced after common.sh, not run).
#
# Owns: starting Debian's nginx (nginx-light) on 127.0.0.1 with a port it
# picks and a configuration the test gives, in a folder of the test's own
# (no root needed: one process, master_process off), its access log
# ($bytes_sent per request), stopping it by pid (at exit too), and
# starting it again on the same port (a server that went away and came
# back).
#
# web_start NAME DOCROOT [SERVER_DIRECTIVES] [LISTEN_OPTIONS]
#   sets WEB_PORT_<NAME>, WEB_PID_<NAME>, WEB_LOG_<NAME> (the access log:
#   "METHOD URI STATUS BYTES_SENT RANGE" per request); LISTEN_OPTIONS e.g.
#   "ssl" (then SERVER_DIRECTIVES give ssl_certificate...).
# web_stop NAME / web_restart NAME / web_url NAME [PATH] / web_sent NAME

need_nginx() {
	NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
	[[ -x $NGINX ]] || skip "needs nginx (Debian's nginx-light)"
}

_web_free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

_web_conf() {
	local name=$1 dir=$2 root=$3 extra=$4 listen=$5 port=$6
	cat >"$dir/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
error_log $dir/error.log info;
pid $dir/nginx.pid;
events { worker_connections 64; }
http {
	log_format counted '\$request_method \$uri \$status \$bytes_sent "\$http_range"';
	access_log $dir/access.log counted;
	client_body_temp_path $dir/tmp-body;
	proxy_temp_path $dir/tmp-proxy;
	fastcgi_temp_path $dir/tmp-fastcgi;
	uwsgi_temp_path $dir/tmp-uwsgi;
	scgi_temp_path $dir/tmp-scgi;
	default_type application/octet-stream;
	server {
		listen 127.0.0.1:$port $listen;
		root $root;
		$extra
	}
}
CONF
}

# _web_run NAME: starts the server of NAME's folder, waits for its port.
_web_run() {
	local name=$1 dir=$TEST_TMP/web-$1 port pid i
	port=$(cat "$dir/port")
	"$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" </dev/null >>"$dir/stdout" 2>&1 &
	pid=$!
	echo "$pid" >"$dir/pid"
	for ((i = 0; i < 100; i++)); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			printf -v "WEB_PID_$name" %s "$pid"
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 1
}

web_start() {
	local name=$1 root=$2 extra=${3:-} listen=${4:-} dir=$TEST_TMP/web-$1 try port
	mkdir -p "$dir"
	on_exit "web_stop $name"
	for try in 1 2 3 4 5; do
		port=$(_web_free_port) || fail "cannot pick a port"
		echo "$port" >"$dir/port"
		_web_conf "$name" "$dir" "$root" "$extra" "$listen" "$port"
		if _web_run "$name"; then
			printf -v "WEB_PORT_$name" %s "$port"
			printf -v "WEB_LOG_$name" %s "$dir/access.log"
			return 0
		fi
	done
	cat "$dir/error.log" "$dir/stdout" >&2 2>/dev/null
	fail "nginx ($name) did not start"
}

web_stop() {
	local dir=$TEST_TMP/web-$1 pid
	[[ -f $dir/pid ]] || return 0
	pid=$(cat "$dir/pid")
	rm -f "$dir/pid"
	kill "$pid" 2>/dev/null || return 0
	wait "$pid" 2>/dev/null || true
}

# web_kill NAME: the server dies at once (SIGKILL), connections and all.
web_kill() {
	local dir=$TEST_TMP/web-$1 pid
	pid=$(cat "$dir/pid")
	rm -f "$dir/pid"
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null || true
}

web_restart() {
	_web_run "$1" || fail "nginx ($1) did not start again"
}

# web_url NAME [PATH] [SCHEME]
web_url() {
	local port_var=WEB_PORT_$1
	echo "${3:-http}://127.0.0.1:${!port_var}/${2:-}"
}

# web_sent NAME [URI_REGEX]: the bytes the server sent (headers and bodies)
# for the requests whose URI matches.
web_sent() {
	local log_var=WEB_LOG_$1
	awk -v re="${2:-.}" '$2 ~ re { n += $4 } END { print n + 0 }' "${!log_var}"
}
