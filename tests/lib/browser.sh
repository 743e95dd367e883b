# Headless Chromium for the web tests (sourced after common.sh; or run as
# `bash tests/lib/browser.sh STEPS...`, which exits 77 where it cannot run).
#
# Owns: finding a Chromium and a Python with websocket-client (Debian's
# chromium and python3-websocket: the fresh-machine path installs them,
# deploy/install-deps.sh) or skipping the test (77), and running
# tests/lib/browser.py, the DevTools client, either as a command or as a
# module for a script.
#
# need_browser              exit 77 unless Chromium and websocket-client exist
# browser STEPS...          browser.py's command: --url, --wait-for, --eval,
#                           --sleep, --screenshot, --expect-clean, --report
# browser_script [ARGS...]  runs the Python script on stdin with browser.py
#                           importable (`from browser import Browser`);
#                           `browser ... &` and `browser_script ... &` give
#                           the harness's own pid in $!
# png FILE [X Y|--colours]  tests/lib/png.py: checks a PNG, prints its size,
#                           a pixel or its number of colours

_BROWSER_LIB=$(dirname "${BASH_SOURCE[0]}")

# Debian's python3-websocket is in the system Python; a python3 first on
# PATH (pyenv, a venv) may not have it.
_browser_python() {
	local py
	for py in ${BROWSER_PYTHON:-} /usr/bin/python3 python3; do
		command -v "$py" >/dev/null 2>&1 || continue
		if "$py" -c 'import websocket' 2>/dev/null; then
			BROWSER_PYTHON=$(command -v "$py")
			return 0
		fi
	done
	return 1
}

# have_browser: true when a test can drive Chromium here (says why not).
have_browser() {
	BROWSER_MISSING=
	if [[ -n ${CHROMIUM:-} ]]; then
		[[ -x $CHROMIUM ]] || BROWSER_MISSING="CHROMIUM=$CHROMIUM is not executable"
	elif ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 &&
		! command -v google-chrome >/dev/null 2>&1; then
		BROWSER_MISSING="needs chromium (Debian package chromium)"
	fi
	if [[ -z $BROWSER_MISSING ]] && ! _browser_python; then
		BROWSER_MISSING="needs websocket-client for python3 (Debian package python3-websocket)"
	fi
	[[ -z $BROWSER_MISSING ]]
}

need_browser() {
	have_browser || skip "$BROWSER_MISSING"
}

# In a subshell of their own (`browser ... &`) these replace it, so that $!
# is the harness's pid (stopping that stops Chromium); nothing after them in
# the same subshell runs.
browser() {
	[[ $BASHPID != "$$" ]] && exec "$BROWSER_PYTHON" "$_BROWSER_LIB/browser.py" "$@"
	"$BROWSER_PYTHON" "$_BROWSER_LIB/browser.py" "$@"
}

browser_script() {
	local path="$_BROWSER_LIB${PYTHONPATH:+:$PYTHONPATH}"
	[[ $BASHPID != "$$" ]] && PYTHONPATH=$path exec "$BROWSER_PYTHON" - "$@"
	PYTHONPATH=$path "$BROWSER_PYTHON" - "$@"
}

png() {
	"${BROWSER_PYTHON:-python3}" "$_BROWSER_LIB/png.py" "$@"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	if ! have_browser; then
		echo "browser: SKIP: $BROWSER_MISSING" >&2
		exit 77
	fi
	exec "$BROWSER_PYTHON" "$_BROWSER_LIB/browser.py" "$@"
fi
