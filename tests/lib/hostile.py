#!/usr/bin/env python3
"""Helper of tests/integration/station-hostile.sh (not a test by itself).

  values DIR              write DIR/values.json {name: hex} and print the names
                          of the values udev can carry (the others: see inject)
  props DIR CARD_DIR      write CARD_DIR/hx-NAME.img.props for udev's IMPORT
  udev DIR NAME DEV       what udev holds for DEV is the value NAME, byte for byte
  status BIN DB DIR NAMES `status` and `status --json` while NAMES are present
  inject DB DIR           copy a job row with the values udev cannot carry
  final BIN DB DIR        journal, reports, history, log and hook arguments

What udev 252 carries (measured): a rule's ENV{}= refuses values of 512
bytes or more and values with a newline; IMPORT{program} output is read line
by line and a CR ends the value; quotes, '$()', backquotes, '%', ESC, tab,
C1 controls, invalid UTF-8 and 4 KiB values pass unchanged through IMPORT.
So newline and CR cannot reach the daemon from udev: their rows are copied
into the journal directly (as another station's journal or a future source
could hold them) to check the reports.

Values are bytes. What the station does with them, by output:
  journal, CSV, history filter, hook argv: the bytes exactly as udev gave them
  JSON: invalid UTF-8 sequences become U+FFFD, controls are \\u escapes
  table, status table: controls (C0, DEL, C1), bidi overrides and invalid
    UTF-8 become '?', long values are cut with an ellipsis
  log: controls become '?' (station.c's printable()), so one line per event
"""
import csv
import json
import os
import re
import sqlite3
import subprocess
import sys


def values(tmp):
    return {
        "dquote": b'say "hi" ""',
        "squote": b"it's 'quoted'",
        "csv": b'a,b;c,"d",',
        "subst": ("$(touch %s/pwned-subst);touch %s/pwned-semi" % (tmp, tmp)).encode(),
        "backtick": ("`touch %s/pwned-backtick`" % tmp).encode(),
        "percent": b"%serial %job %% %s",
        "newline": b"line1\nline2",
        "cr": b"cr\r\nlf",
        "esc": b"\x1b[2J\x1b[31mred\x1b]0;title\x07",
        "tab": b"a\tb",
        "long": b"L" * 4092 + b"-end",
        "nonutf8": b"bad\xff\xfe\xc3(\xed\xa0\x80end",
        "c1bidi": "c1\u009b2J \u202eevil\x7f".encode(),
    }


NOT_VIA_UDEV = ("newline", "cr")


def load(tmp):
    return {k: bytes.fromhex(v) for k, v in json.load(open(os.path.join(tmp, "values.json"))).items()}


def fail(msg):
    sys.stderr.write("station-hostile: FAIL: %s\n" % msg)
    sys.exit(1)


def cmd_props(tmp, card_dir):
    for name, v in load(tmp).items():
        if name in NOT_VIA_UDEV:
            continue
        with open(os.path.join(card_dir, "hx-%s.img.props" % name), "wb") as f:
            for key in ("ID_SERIAL_SHORT", "ID_VENDOR", "ID_MODEL"):
                f.write(key.encode() + b"=" + v + b"\n")


def cmd_udev(tmp, name, dev):
    v = load(tmp)[name]
    out = subprocess.run(["udevadm", "info", "-q", "property", "-n", dev], stdout=subprocess.PIPE).stdout
    props = dict(l.split(b"=", 1) for l in out.split(b"\n") if b"=" in l)
    for key in (b"ID_SERIAL_SHORT", b"ID_VENDOR", b"ID_MODEL"):
        if props.get(key) != v:
            fail("udev changed %s of %s: %r, expected %r" % (key.decode(), name, props.get(key, b"")[:60], v[:60]))


def cmd_inject(db, tmp):
    con = sqlite3.connect(db)
    cols = [r[1] for r in con.execute("pragma table_info(jobs)") if r[1] != "job"]
    src = con.execute("select min(job) from jobs where bus = 'hostile'").fetchone()[0]
    # Bytes bind as a blob: cast, so the rows hold text like the daemon's.
    exprs = ["cast(? as text)" if c in ("serial", "vendor", "model") else c for c in cols]
    for name, v in load(tmp).items():
        if name not in NOT_VIA_UDEV:
            continue
        con.execute(
            "insert into jobs (%s) select %s from jobs where job = ?" % (", ".join(cols), ", ".join(exprs)),
            [v, v, v, src],  # serial, vendor, model: in the table's order
        )
    con.commit()


def check_terminal_safe(what, data):
    """Text meant for a terminal: UTF-8, no controls but LF, no bidi overrides."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        fail("%s is not valid UTF-8: %s" % (what, e))
    for i, ch in enumerate(text):
        cp = ord(ch)
        if (cp < 0x20 and ch != "\n") or 0x7F <= cp <= 0x9F or 0x202A <= cp <= 0x202E or 0x2066 <= cp <= 0x2069:
            fail("%s holds U+%04X at %d: %r" % (what, cp, i, text[max(0, i - 20) : i + 20]))
    return text


def run(args):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        fail("%r exited %d: %s" % (args[:2], p.returncode, p.stderr.decode(errors="replace")))
    return p.stdout


def cmd_status(binary, db, names, tmp):
    vals = load(tmp)
    table = run([binary, "status", "--db", db])
    text = check_terminal_safe("status table", table)
    rows = json.loads(run([binary, "status", "--db", db, "--json"]).decode("utf-8"))
    lines = text.rstrip("\n").split("\n")
    if len(lines) != 1 + len(rows):
        fail("status table has %d lines for %d live rows:\n%s" % (len(lines), len(rows), text))
    serials = [r["serial"] for r in rows]
    for n in names:
        want = vals[n].decode("utf-8", "replace")
        if serials.count(want) != 1:
            fail("status --json: serial %s (%r) not listed once: %r" % (n, want[:60], serials))


def cmd_final(binary, db, tmp):
    vals = load(tmp)
    con = sqlite3.connect(db)
    con.text_factory = bytes
    jobs = {}
    for job, serial, vendor, model, outcome in con.execute(
        "select job, serial, vendor, model, outcome from jobs where bus = 'hostile'"
    ):
        jobs[job] = (serial, vendor, model, outcome)
    if len(jobs) != len(vals):
        fail("%d hostile jobs in the journal, expected %d" % (len(jobs), len(vals)))
    job_of = {}
    for name, v in vals.items():
        hit = [j for j, r in jobs.items() if r[0] == v]
        if len(hit) != 1:
            fail("journal: serial %s (%r) found %d times" % (name, v[:60], len(hit)))
        j = hit[0]
        job_of[name] = j
        serial, vendor, model, outcome = jobs[j]
        if vendor != v or model != v:
            fail("journal: %s: vendor %r / model %r differ from %r" % (name, vendor[:60], model[:60], v[:60]))
        if outcome != b"success":
            fail("journal: %s: outcome %r" % (name, outcome))
    all_jobs = con.execute("select count(*) from jobs").fetchone()[0]

    # CSV: the bytes as they are, RFC 4180 quoting.
    out = run([binary, "report", "--db", db, "--format", "csv"])
    rows = list(csv.reader(out.decode("utf-8", "surrogateescape").splitlines(keepends=True)))
    head = rows[0]
    if len(rows) != 1 + all_jobs:
        fail("CSV: %d records for %d jobs" % (len(rows) - 1, all_jobs))
    for r in rows:
        if len(r) != len(head):
            fail("CSV: a record has %d fields, the header %d: %r" % (len(r), len(head), r[:8]))
    by_job = {int(r[0]): dict(zip(head, r)) for r in rows[1:]}
    for name, v in vals.items():
        r = by_job[job_of[name]]
        for col in ("serial", "vendor", "model"):
            got = r[col].encode("utf-8", "surrogateescape")
            if got != v:
                fail("CSV: %s %s came back as %r, expected %r" % (name, col, got[:60], v[:60]))

    # JSON: valid UTF-8 (invalid sequences as U+FFFD), strict parse.
    out = run([binary, "report", "--db", db, "--format", "json"])
    try:
        doc = json.loads(out.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        fail("JSON report does not parse: %s" % e)
    if len(doc) != all_jobs:
        fail("JSON: %d objects for %d jobs" % (len(doc), all_jobs))
    by_job = {o["job"]: o for o in doc}
    for name, v in vals.items():
        o = by_job[job_of[name]]
        want = v.decode("utf-8", "replace")
        for col in ("serial", "vendor", "model"):
            if o[col] != want:
                fail("JSON: %s %s came back as %r, expected %r" % (name, col, o[col][:60], want[:60]))

    # Table: one line per job, nothing a terminal would act on.
    out = run([binary, "report", "--db", db])
    text = check_terminal_safe("report table", out)
    lines = text.rstrip("\n").split("\n")
    if len(lines) != 1 + all_jobs:
        fail("report table: %d lines for %d jobs" % (len(lines), all_jobs))

    # history SERIAL: the exact bytes find the job, and only it.
    for name, v in vals.items():
        o = json.loads(run([binary, "history", v, "--db", db, "--format", "json"]).decode("utf-8"))
        if [x["job"] for x in o] != [job_of[name]]:
            fail("history %s: jobs %r, expected [%d]" % (name, [x["job"] for x in o], job_of[name]))
        t = check_terminal_safe("history %s table" % name, run([binary, "history", v, "--db", db]))
        if len(t.rstrip("\n").split("\n")) != 2:
            fail("history %s table:\n%s" % (name, t))

    # Hooks: each value arrived as whole argv entries, nothing ran.
    for name, v in vals.items():
        if name in NOT_VIA_UDEV:
            continue
        path = os.path.join(tmp, "hooks", "job-%d" % job_of[name])
        try:
            argv = open(path, "rb").read().split(b"\0")[:-1]
        except OSError:
            fail("no on_success hook call recorded for %s (%s)" % (name, path))
        want = [v, b"<" + v + b">", v + v]
        if argv != want:
            fail("hook argv for %s: %r, expected %r" % (name, [a[:60] for a in argv], [a[:60] for a in want]))
    for d in (tmp, os.path.join(tmp, "cwd")):
        bad = [f for f in os.listdir(d) if "pwned" in f]
        if bad:
            fail("a hostile value ran a command: %s in %s" % (bad, d))

    # The log: one line per message, each starting with its priority and the
    # program's name (sd-daemon's "<N>" prefix, which journald takes),
    # nothing a terminal would act on; one 'inserted' and one 'success' per job.
    log = open(os.path.join(tmp, "station.log"), "rb").read()
    text = check_terminal_safe("station log", log)
    for line in text.rstrip("\n").split("\n"):
        if not re.match(r"<[0-7]>bmap-station: ", line):
            fail("station log line not from the station (a value broke a line?): %r" % line[:120])
    for name, j in job_of.items():
        if name in NOT_VIA_UDEV:
            continue
        n = text.count("job %d success" % j)
        if n != 1:
            fail("station log: %d 'job %d success' lines for %s" % (n, j, name))
    print("journal, CSV, JSON, table, history: %d hostile values ok; hooks and log: %d"
          % (len(vals), len([n for n in vals if n not in NOT_VIA_UDEV])))


def main():
    cmd = sys.argv[1]
    if cmd == "values":
        vals = values(sys.argv[2])
        with open(os.path.join(sys.argv[2], "values.json"), "w") as f:
            json.dump({k: v.hex() for k, v in vals.items()}, f)
        print(" ".join(k for k in vals if k not in NOT_VIA_UDEV))
    elif cmd == "props":
        cmd_props(sys.argv[2], sys.argv[3])
    elif cmd == "udev":
        cmd_udev(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "inject":
        cmd_inject(sys.argv[2], sys.argv[3])
    elif cmd == "status":
        cmd_status(sys.argv[2], sys.argv[3], sys.argv[5:], sys.argv[4])
    elif cmd == "final":
        cmd_final(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        fail("unknown command %s" % cmd)


main()
