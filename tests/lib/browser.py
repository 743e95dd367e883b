#!/usr/bin/python3
"""Headless Chromium driven over the Chrome DevTools Protocol (tests only).

Owns: starting Debian's Chromium headless as a child in its own process
group, talking CDP to one page of it over one websocket (websocket-client,
Debian's python3-websocket), and stopping it by its pid and process group,
always: at close, at exit, on SIGINT/SIGTERM/SIGHUP, and (PR_SET_PDEATHSIG)
when this process dies without cleaning up.

As a module (tests/lib on sys.path, e.g. through tests/lib/browser.sh):

    with Browser(width=1024, height=768) as b:
        p = b.page
        p.navigate(url)                      # waits for the load event
        p.expect_navigation("document.forms[0].submit()")
        p.wait_for("document.querySelectorAll('.tile').length >= 2")
        v = p.evaluate("document.title")     # the value, by JSON
        p.screenshot("shot.png")
        p.console, p.exceptions, p.violations, p.log_entries, p.responses

As a command, steps run in the order given; each --eval prints its value as
one JSON line on stdout:

    browser.py [--width W] [--height H] [--timeout S] [--report FILE]
               --url URL --wait-for JS --eval JS --sleep S
               --screenshot FILE --expect-clean ...

Exit status: 0 every step passed, 1 a step failed (the reason on stderr),
2 usage, 77 Chromium or websocket-client missing, 130/143/129 stopped by
SIGINT/SIGTERM/SIGHUP (Chromium stopped all the same).
"""
import argparse
import base64
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

try:
    import websocket  # python3-websocket
except ImportError:  # the command exits 77, the module raises at Browser()
    websocket = None

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")

# Installed before any page script runs: CSP violations reach us through a
# binding (Runtime.bindingCalled), with the fields a test wants to check,
# whether or not Chromium also logs them to the console.
_CSP_LISTENER = """
(() => {
  const send = globalThis.__bmapHarnessCsp;
  document.addEventListener('securitypolicyviolation', (e) => {
    try {
      send(JSON.stringify({directive: e.violatedDirective,
        effective: e.effectiveDirective, blocked: e.blockedURI,
        sample: e.sample, source: e.sourceFile, line: e.lineNumber,
        disposition: e.disposition, document: e.documentURI}));
    } catch (err) { /* the page replaced the binding: nothing to report */ }
  }, true);
})();
"""


class BrowserError(Exception):
    """Chromium could not be started or talked to, or a step failed."""


class JSError(BrowserError):
    """An evaluated expression threw."""


def find_chromium():
    env = os.environ.get("CHROMIUM")
    if env:
        return env if os.access(env, os.X_OK) else None
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _become_subreaper():
    # Chromium's crash handlers double-fork into sessions of their own: as a
    # subreaper we become their parent, so close() can find and stop them.
    try:
        _libc().prctl(36, 1)  # PR_SET_CHILD_SUBREAPER
    except Exception:
        pass


def _processes():
    """(pid, ppid, pgrp) of every process, zombies too (read-only)."""
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            yield int(d), int(fields[1]), int(fields[2])
        except (OSError, ValueError, IndexError):
            continue


def _exe_dir_of(pid):
    try:
        return os.path.dirname(os.readlink(f"/proc/{pid}/exe"))
    except OSError:  # gone, or a zombie
        return None


def _set_pdeathsig():
    # In the child between fork and exec: Chromium gets SIGKILL when we die,
    # even by SIGKILL (the wrapper script execs, so the flag stays on it).
    try:
        _libc().prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _remote_text(obj):
    if "value" in obj:
        v = obj["value"]
        return v if isinstance(v, str) else json.dumps(v)
    return obj.get("description", obj.get("type", "?"))


class Page:
    """One tab, attached through a flat CDP session of the browser socket."""

    def __init__(self, browser, session_id, width, height):
        self._b = browser
        self.session = session_id
        self.console = []      # {"type", "text"}
        self.exceptions = []   # {"text", "description"}
        self.violations = []   # the securitypolicyviolation event's fields
        self.log_entries = []  # Log.entryAdded: {"source", "level", "text", "url"}
        self.responses = []    # documents and subresources: {"url", "status", "type", "headers"}
        self.navigations = 0   # main-frame navigations committed (a reload counts)
        self._main_frame = None
        self._loaded = False
        for method in ("Page.enable", "Runtime.enable", "Log.enable", "Network.enable"):
            self.send(method)
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        self.send("Runtime.addBinding", name="__bmapHarnessCsp")
        self.send("Page.addScriptToEvaluateOnNewDocument", source=_CSP_LISTENER)
        self._main_frame = self.send("Page.getFrameTree")["frameTree"]["frame"]["id"]

    def send(self, method, timeout=None, **params):
        return self._b.call(method, params, self.session, timeout)

    def _event(self, method, p):
        if method == "Runtime.consoleAPICalled":
            text = " ".join(_remote_text(a) for a in p.get("args", []))
            self.console.append({"type": p.get("type"), "text": text})
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.exceptions.append({"text": d.get("text", ""),
                                    "description": d.get("exception", {}).get("description", "")})
        elif method == "Runtime.bindingCalled" and p.get("name") == "__bmapHarnessCsp":
            try:
                self.violations.append(json.loads(p.get("payload", "{}")))
            except ValueError:
                self.violations.append({"raw": p.get("payload")})
        elif method == "Log.entryAdded":
            e = p.get("entry", {})
            self.log_entries.append({k: e.get(k) for k in ("source", "level", "text", "url")})
        elif method == "Network.responseReceived":
            r = p.get("response", {})
            self.responses.append({"url": r.get("url"), "status": r.get("status"),
                                   "type": p.get("type"), "headers": r.get("headers", {})})
        elif method == "Page.frameNavigated":
            f = p.get("frame", {})
            if not f.get("parentId"):
                self._main_frame = f.get("id")
                self.navigations += 1
        elif method == "Page.loadEventFired":
            self._loaded = True
        elif method in ("Inspector.targetCrashed", "Target.targetCrashed"):
            raise BrowserError("the page's renderer crashed")

    def navigate(self, url, timeout=None):
        """Loads URL and waits for its load event; returns the document's HTTP status."""
        timeout = timeout or self._b.timeout
        self._loaded = False
        first = len(self.responses)
        r = self.send("Page.navigate", url=url)
        if r.get("errorText"):
            raise BrowserError(f"cannot load {url}: {r['errorText']}")
        self._b.pump_until(lambda: self._loaded, timeout, f"the load event of {url}")
        docs = [x for x in self.responses[first:] if x["type"] == "Document"]
        return docs[-1]["status"] if docs else None

    def expect_navigation(self, expression, timeout=None):
        """Evaluates an expression that navigates (a form's submit(), a
        link's click()) and waits for the new document's load event;
        returns its HTTP status."""
        timeout = timeout or self._b.timeout
        self._loaded = False
        first = len(self.responses)
        self.evaluate(expression)
        self._b.pump_until(lambda: self._loaded, timeout, f"a page loaded after {expression!r}")
        docs = [x for x in self.responses[first:] if x["type"] == "Document"]
        return docs[-1]["status"] if docs else None

    def evaluate(self, expression, timeout=None):
        """The expression's value (by JSON; undefined is None); awaits a promise."""
        r = self.send("Runtime.evaluate", timeout=timeout, expression=expression,
                      returnByValue=True, awaitPromise=True, userGesture=False)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            desc = d.get("exception", {}).get("description") or d.get("text", "")
            raise JSError(f"{expression!r} threw: {desc}")
        return r.get("result", {}).get("value")

    def wait_for(self, expression, timeout=None, interval=0.1):
        """Polls until the expression is truthy (JavaScript's truthiness)."""
        timeout = timeout or self._b.timeout
        deadline = time.monotonic() + timeout
        last_error = None
        while True:
            try:
                # A promise is awaited first; a DOM node comes back by
                # value as {}, so JavaScript judges, not Python.
                if self.evaluate(f"(async () => !!(await (\n{expression}\n)))()",
                                 timeout=max(1.0, deadline - time.monotonic())):
                    return True
            except JSError as e:  # e.g. the element is not there yet
                last_error = e
            if time.monotonic() >= deadline:
                why = f" (last: {last_error})" if last_error else ""
                raise BrowserError(f"timed out after {timeout}s waiting for {expression!r}{why}")
            self._b.pump(interval)

    def screenshot(self, path):
        """Writes the viewport as a PNG file."""
        r = self.send("Page.captureScreenshot", format="png", fromSurface=True)
        data = base64.b64decode(r["data"])
        with open(path, "wb") as f:
            f.write(data)
        return len(data)

    def report(self):
        return {"console": self.console, "exceptions": self.exceptions,
                "violations": self.violations, "log": self.log_entries,
                "responses": self.responses, "navigations": self.navigations}


class Browser:
    """Chromium headless with one page; a context manager that always stops it."""

    def __init__(self, width=1280, height=800, timeout=15.0, chromium=None, verbose=False):
        if websocket is None:
            raise BrowserError("python3-websocket (websocket-client) is not installed")
        self.chromium = chromium or find_chromium()
        if not self.chromium:
            raise BrowserError("no chromium found (Debian package chromium, or set CHROMIUM)")
        self.timeout = timeout
        self.verbose = verbose
        self.proc = None
        self.ws = None
        self._next_id = 0
        self._pages = {}
        stop_on_signals()
        self._dir = tempfile.mkdtemp(prefix="bmap-browser.")
        try:
            self._start(width, height)
        except BaseException:
            self.close()
            raise

    def _start(self, width, height):
        profile = os.path.join(self._dir, "profile")
        os.mkdir(profile)
        args = [self.chromium, "--headless=new", "--disable-gpu", "--no-first-run",
                "--no-default-browser-check", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions",
                "--disable-crash-reporter", "--disable-breakpad",
                "--disable-dev-shm-usage", "--mute-audio", "--hide-scrollbars",
                "--password-store=basic", "--use-mock-keychain",
                f"--window-size={width},{height}", f"--user-data-dir={profile}",
                "--remote-debugging-port=0", "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run as root otherwise
        self._log_path = os.path.join(self._dir, "chromium.log")
        env = dict(os.environ, HOME=self._dir, XDG_CONFIG_HOME=self._dir,
                   XDG_CACHE_HOME=self._dir)
        _become_subreaper()
        with open(self._log_path, "wb") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env=env, start_new_session=True,
                                         preexec_fn=_set_pdeathsig, close_fds=True)
        self.pid = self.proc.pid
        self._exe_dir = None
        if self.verbose:
            print(f"browser: chromium pid {self.pid}, profile {profile}", file=sys.stderr)
        # Chromium writes the port it chose and the browser target's path.
        port_file = os.path.join(profile, "DevToolsActivePort")
        deadline = time.monotonic() + max(self.timeout, 20.0)
        lines = []
        while True:
            if self.proc.poll() is not None:
                raise BrowserError(f"chromium exited ({self.proc.returncode}) at start:\n"
                                   + self.chromium_log())
            try:
                with open(port_file) as f:
                    lines = f.read().split()
            except FileNotFoundError:
                pass
            if len(lines) >= 2:
                break
            if time.monotonic() >= deadline:
                raise BrowserError("chromium wrote no DevToolsActivePort:\n" + self.chromium_log())
            time.sleep(0.05)
        # Chromium itself wrote the file: the wrapper script has exec'd it.
        self._exe_dir = os.path.dirname(os.readlink(f"/proc/{self.pid}/exe"))
        url = f"ws://127.0.0.1:{int(lines[0])}{lines[1]}"
        # No Origin header: Chromium refuses websocket clients that send one
        # it was not told to allow (--remote-allow-origins).
        self.ws = websocket.create_connection(url, timeout=self.timeout, suppress_origin=True,
                                              enable_multithread=False)
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})
        sid = session["sessionId"]
        self._pages[sid] = None  # events may come before the Page exists
        self.page = Page(self, sid, width, height)
        self._pages[sid] = self.page

    def chromium_log(self, lines=30):
        try:
            with open(self._log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def _dispatch(self, msg):
        sid = msg.get("sessionId")
        page = self._pages.get(sid)
        if page is not None and "method" in msg:
            page._event(msg["method"], msg.get("params", {}))
        elif msg.get("method") == "Target.detachedFromTarget" and \
                msg.get("params", {}).get("sessionId") in self._pages:
            raise BrowserError("the page went away (detached from its target)")

    def _recv(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        self.ws.settimeout(left)
        try:
            raw = self.ws.recv()
        except websocket.WebSocketTimeoutException:
            return None
        except (websocket.WebSocketException, OSError) as e:
            raise BrowserError(f"lost chromium's DevTools socket: {e}\n" + self.chromium_log())
        return json.loads(raw)

    def call(self, method, params=None, session=None, timeout=None):
        """Sends one command, handles the events that come first, returns its result."""
        self._next_id += 1
        mid = self._next_id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            r = self._recv(deadline)
            if r is None:
                raise BrowserError(f"no answer to {method} within {timeout or self.timeout}s")
            if r.get("id") == mid:
                if "error" in r:
                    raise BrowserError(f"{method} failed: {r['error'].get('message')}")
                return r.get("result", {})
            self._dispatch(r)

    def pump(self, seconds):
        """Handles events for a while (console messages, loads, violations)."""
        deadline = time.monotonic() + seconds
        while self._recv_dispatch(deadline):
            pass

    def _recv_dispatch(self, deadline):
        r = self._recv(deadline)
        if r is None:
            return False
        self._dispatch(r)
        return True

    def pump_until(self, cond, timeout, what):
        deadline = time.monotonic() + timeout
        while not cond():
            if not self._recv_dispatch(deadline) and time.monotonic() >= deadline:
                raise BrowserError(f"timed out after {timeout}s waiting for {what}")

    def close(self):
        """Stops Chromium and every process of its group; removes its profile."""
        if self.ws is not None:
            try:
                self.ws.close()
            except Exception:
                pass
            self.ws = None
        if self.proc is not None:
            self._stop()
            self.proc = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def _stop(self):
        pid = self.proc.pid
        me = os.getpid()
        # The leader is reaped last: while it is a zombie its pid (the group's
        # id) cannot be reused, so killpg() reaches only Chromium's processes.
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                    break
            except ChildProcessError:
                break
            time.sleep(0.05)
        try:
            os.killpg(pid, signal.SIGKILL)  # renderers, zygotes, a leader that hung
        except ProcessLookupError:
            pass
        # SIGKILL takes effect later: wait until the group holds nobody but
        # the leader's zombie. Its members that lost their parent are ours
        # (we are a subreaper): reap them.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            members = [(p, pp) for p, pp, g in _processes() if g == pid and p != pid]
            if not members:
                break
            for p, pp in members:
                if pp == me:
                    try:
                        os.waitpid(p, os.WNOHANG)
                    except ChildProcessError:
                        pass
            time.sleep(0.02)
        self.proc.wait()
        # The crash handlers (sessions of their own, children of ours since
        # their parent exited): unreaped children, so their pids are safe.
        for p, pp, _g in list(_processes()):
            if pp == me and self._exe_dir and _exe_dir_of(p) == self._exe_dir:
                try:
                    os.kill(p, signal.SIGKILL)
                    os.waitpid(p, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _raise_exit(signum, _frame):
    raise SystemExit(128 + signum)


def stop_on_signals():
    """SIGTERM and SIGHUP unwind like Ctrl-C does, so `with Browser()` cleans
    up; a handler the caller installed stays."""
    if threading.current_thread() is not threading.main_thread():
        return
    for s in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(s) == signal.SIG_DFL:
            signal.signal(s, _raise_exit)


class _Step(argparse.Action):
    def __call__(self, parser, ns, value, option=None):
        ns.steps.append((self.dest, value))


def _parse(argv):
    ap = argparse.ArgumentParser(prog="browser.py",
                                 description="Drive headless Chromium through steps, in order.")
    ap.set_defaults(steps=[])
    ap.add_argument("--width", type=int, default=1280, help="viewport width (default 1280)")
    ap.add_argument("--height", type=int, default=800, help="viewport height (default 800)")
    ap.add_argument("--timeout", type=float, default=15.0,
                    help="seconds a load, command or --wait-for may take (default 15)")
    ap.add_argument("--report", metavar="FILE",
                    help="write console messages, exceptions, CSP violations, log entries and "
                         "responses as JSON to FILE at the end (also after a failure)")
    ap.add_argument("--verbose", action="store_true", help="say Chromium's pid on stderr")
    for opt, meta, doc in (("--url", "URL", "load URL and wait for its load event"),
                           ("--wait-for", "JS", "wait until the expression is truthy"),
                           ("--eval", "JS", "print the expression's value as a JSON line"),
                           ("--sleep", "SECONDS", "let the page run a while"),
                           ("--screenshot", "FILE", "write the viewport as a PNG file")):
        ap.add_argument(opt, metavar=meta, action=_Step, help=doc)
    ap.add_argument("--expect-clean", action=_Step, nargs=0,
                    help="fail if the page threw or violated its CSP so far")
    return ap.parse_args(argv)


def main(argv=None):
    args = _parse(argv)
    if websocket is None:
        print("browser: SKIP: python3-websocket (websocket-client) missing", file=sys.stderr)
        return 77
    if not find_chromium():
        print("browser: SKIP: chromium missing", file=sys.stderr)
        return 77
    b = None
    try:
        b = Browser(args.width, args.height, args.timeout, verbose=args.verbose)
        p = b.page
        for step, value in args.steps:
            if step == "url":
                status = p.navigate(value)
                if status is not None and status >= 400:
                    raise BrowserError(f"{value} answered HTTP {status}")
            elif step == "wait_for":
                p.wait_for(value)
            elif step == "eval":
                print(json.dumps(p.evaluate(value)), flush=True)
            elif step == "sleep":
                b.pump(float(value))
            elif step == "screenshot":
                p.screenshot(value)
            elif step == "expect_clean":
                b.pump(0.2)  # events already sent but not read yet
                if p.exceptions or p.violations:
                    raise BrowserError("the page was not clean: "
                                       + json.dumps({"exceptions": p.exceptions,
                                                     "violations": p.violations}))
        b.pump(0.1)
        return 0
    except BrowserError as e:
        print(f"browser: FAIL: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("browser: interrupted", file=sys.stderr)
        return 130
    finally:
        if b is not None:
            if args.report:
                with open(args.report, "w") as f:
                    json.dump(b.page.report() if hasattr(b, "page") else {}, f, indent=1)
            b.close()


if __name__ == "__main__":
    sys.exit(main())
