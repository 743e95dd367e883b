#!/bin/bash
# A slow client cannot stall `bmap-station serve`: while ten clients have
# sent half a request each and one reads a 2 MB live page one small read at
# a time (its socket buffer shrunk, so that the server really has to wait
# for it), another client gets every page it asks for, each within a wide
# margin (10 s; they take milliseconds). Then the bounds: the slow clients
# are still connected when the fast one is done (they were served at the
# same time, not one after the other), an address holding 6 connections
# gets no 7th while other addresses are served, and the half requests are
# dropped by the server (5 s idle, 10 s for a request's head).
#
# Regression: trickling clients locked everyone out. MHD's timeout counts
# idle time only, so clients sending one header byte every 2 s were never
# dropped, and 4 addresses x 16 of them filled all 64 slots. Here 4
# addresses open 16 such connections each: a fresh client must still be
# served, and every trickling connection must be closed within 30 s while
# it keeps trickling. (127.0.0.0/8 all reaches loopback.)
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/serve.sh"

FIXTURE=$BUILD_DIR/tests/test_journal
[[ -x $STATION ]] || skip "bmap-station not built"
[[ -x $FIXTURE ]] || skip "tests/test_journal not built"
need_cmd sqlite3
PY=$(command -v /usr/bin/python3 || command -v python3)

db=$TEST_TMP/journal.db
"$FIXTURE" --write-fixture "$db" || fail "cannot write the fixture journal"
# 3000 cards: a live page of about 2 MB.
sqlite3 "$db" "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
	INSERT INTO live (syspath, station, slot, devnode, serial, profile, state, job, done,
	  total, rate, last_outcome, updated)
	SELECT '/sys/' || i, 'line-1', 'slot-' || i, '/dev/sd' || i, 'serial-' || i, 'p',
	  'writing', i, i * 1000, 1000000000, 1e7, 'success', 'now' FROM n" ||
	fail "cannot write the live rows"
serve_start s --db "$db" --listen 127.0.0.1:0 || fail "serve did not start"
port=${SERVE_URL_s##*:}

"$PY" - "$port" <<'PY' || fail "a slow client stalled the server (see above)"
import socket, sys, threading, time

port = int(sys.argv[1])
fail = lambda msg: (print("serve-slow-client:", msg, file=sys.stderr), sys.exit(1))

def connect(src="127.0.0.1", rcvbuf=None):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.bind((src, 0))
    s.settimeout(30)
    s.connect(("127.0.0.1", port))
    return s

def get(path, src="127.0.0.1"):
    s = connect(src)
    s.sendall(b"GET " + path + b" HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
    data = b""
    while True:
        c = s.recv(1 << 16)
        if not c:
            break
        data += c
    s.close()
    return data

# Two half requests per address: no address near its limit of 6.
half = [connect("127.0.0.%d" % (10 + i // 2)) for i in range(10)]
for s in half:
    s.sendall(b"GET /api/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")

slow = connect("127.0.0.20", rcvbuf=4096)
slow.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
slow_got = [0]
slow_done = threading.Event()
def trickle():
    while True:
        c = slow.recv(64)
        if not c:
            break
        slow_got[0] += len(c)
        time.sleep(0.05)
    slow_done.set()
threading.Thread(target=trickle, daemon=True).start()
time.sleep(0.5)

for i in range(20):
    t0 = time.monotonic()
    for path in (b"/api/live", b"/static/live.js", b"/"):
        r = get(path)
        if not r.startswith(b"HTTP/1.1 200 ") and not r.startswith(b"HTTP/1.0 200 "):
            fail("GET %s: %r" % (path, r[:60]))
    if time.monotonic() - t0 > 10:
        fail("three pages took %.1f s while slow clients were connected" % (time.monotonic() - t0))
if slow_done.is_set():
    fail("the slow reader finished before the fast client (%d bytes): nothing was slow" % slow_got[0])
print("serve-slow-client: fast client served 60 pages while the slow reader had %d bytes"
      % slow_got[0], file=sys.stderr)

# Per address: 6 connections; the 7th is closed at once, others served.
held = [connect("127.0.0.3") for _ in range(6)]
extra = connect("127.0.0.3")
extra.sendall(b"GET /api/live HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
try:
    r = extra.recv(100)
except ConnectionResetError:
    r = b""
if r.startswith(b"HTTP/"):
    fail("a 7th connection from one address was served")
if not get(b"/api/live", "127.0.0.4").startswith(b"HTTP/1.1 200 "):
    fail("another address was not served while one held its 6 connections")
for s in held:
    s.close()

# The half requests are dropped by the server's timeout.
deadline = time.monotonic() + 40
for s in half:
    s.settimeout(max(deadline - time.monotonic(), 0.1))
    try:
        while s.recv(4096):
            pass
    except socket.timeout:
        fail("a half request was kept open for more than 40 s")
    except ConnectionResetError:
        pass

# Trickling clients: one header byte every 2 s, below any idle timeout,
# from a thread of their own while the fresh client asks (within 5 s).
def open_trickler(src):
    s = connect(src)
    s.sendall(b"GET /api/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Trickle: ")
    s.setblocking(False)
    return s
trick = [open_trickler("127.0.0.%d" % (30 + a)) for a in range(4) for _ in range(16)]
alive = [True] * len(trick)
t0 = time.monotonic()
def trickler():
    while any(alive) and time.monotonic() - t0 < 40:
        for i, s in enumerate(trick):
            if not alive[i]:
                continue
            try:
                try:
                    if s.recv(4096) == b"":
                        alive[i] = False
                        continue
                except BlockingIOError:
                    pass
                s.sendall(b"x")
            except OSError:
                alive[i] = False
        time.sleep(2)
threading.Thread(target=trickler, daemon=True).start()
time.sleep(1)
fresh = connect("127.0.0.40")
fresh.settimeout(5)
fresh.sendall(b"GET /api/live HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
try:
    r = fresh.recv(100)
except (socket.timeout, ConnectionResetError):
    r = b""
if not r.startswith(b"HTTP/1.1 200 "):
    fail("a fresh client was not served within 5 s while 4 x 16 clients trickled: %r" % r[:60])
print("serve-slow-client: fresh client served while 64 connections trickled", file=sys.stderr)
while any(alive):
    if time.monotonic() - t0 > 30:
        fail("%d trickling connections still open after 30 s" % sum(alive))
    time.sleep(0.5)
print("serve-slow-client: every trickling connection closed after %.0f s"
      % (time.monotonic() - t0), file=sys.stderr)
PY
kill -0 "$SERVE_PID_s" || fail "the server died"
log "ok"
