#!/usr/bin/python3
# Attaches several files to free loop devices in one quick loop, each
# device given its card's bandwidth (a blkio cgroup's limits) before its
# file is on it: a line's cards "inserted together" without a shell, a
# `losetup` and a `stat` per card taking the CPU the first cards' workers
# need (bench-line.sh, through throttle.sh's attach_cards_at_speed).
#
# usage: attach-cards.py CGROUP VERSION OUT FILE:WRITE_BPS:READ_BPS...
# Writes to OUT, flushed as it goes (so that the caller can detach what was
# attached even when a later card fails), one line per card:
#   DEV MAJ:MIN INSERTED_AT   (INSERTED_AT: time.time() before the attach)
# Exits 1 with a message on the first card it cannot attach.
# ATTACH_CARDS_PAUSE=SECONDS: a pause after each card (tests of the caller).
import fcntl
import os
import signal
import sys
import time

LOOP_SET_FD = 0x4C00
LOOP_CTL_GET_FREE = 0x4C82
STOPS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


def limit(cg, version, mm, w, r):
    if version == "1":
        for name, v in (("write", w), ("read", r)):
            with open(f"{cg}/blkio.throttle.{name}_bps_device", "w") as f:
                f.write(f"{mm} {v}\n")
    else:
        with open(f"{cg}/io.max", "w") as f:
            f.write(f"{mm} wbps={int(w) or 'max'} rbps={int(r) or 'max'}\n")


def main():
    cg, version, out = sys.argv[1:4]
    # A pause after each card (seconds): for the test of a test stopped
    # while its cards are attached (throttle-cards.sh).
    pause = float(os.environ.get("ATTACH_CARDS_PAUSE", "0"))
    ctl = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
    with open(out, "w") as o:
        for spec in sys.argv[4:]:
            path, w, r = spec.rsplit(":", 2)
            backing = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            why = "no free loop device"
            # As attach_card_at_speed: a device another process takes first
            # (EBUSY), one whose node is not there yet or that goes away
            # meanwhile: tried again, for about five seconds.
            for _ in range(20):
                mm = None
                where = "/dev/loop-control"
                try:
                    n = fcntl.ioctl(ctl, LOOP_CTL_GET_FREE)
                    dev = where = f"/dev/loop{n}"
                    for _ in range(50):  # devtmpfs makes the node soon after
                        if os.path.exists(dev):
                            break
                        time.sleep(0.01)
                    st = os.stat(dev)
                    mm = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
                    limit(cg, version, mm, w, r)
                    fd = os.open(dev, os.O_RDWR | os.O_CLOEXEC)
                    # A signal between the attach and its record would
                    # leave a card nobody detaches: held until recorded.
                    signal.pthread_sigmask(signal.SIG_BLOCK, STOPS)
                    try:
                        at = time.time()
                        fcntl.ioctl(fd, LOOP_SET_FD, backing)
                        o.write(f"{dev} {mm} {at:.6f}\n")
                        o.flush()
                    finally:
                        os.close(fd)
                        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPS)
                except OSError as e:
                    why = f"{e.strerror} ({where})"
                    if mm:
                        try:
                            limit(cg, version, mm, 0, 0)
                        except OSError:
                            pass
                    time.sleep(0.25)
                    continue
                time.sleep(pause)
                break
            else:
                sys.exit(f"attach-cards: cannot attach {path} to a loop device: {why}")
            os.close(backing)


main()
