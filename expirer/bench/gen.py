#!/usr/bin/env python3
"""Generate a synthetic chatmail mailboxes tree for the chatmail-expire benchmark.

usage: gen.py ROOT MAILBOXES MESSAGES

ROOT/<addr>/ gets a password file (last login 0-120 days ago), enforceE2EEincoming,
dovecot-uidlist, cur/ new/ tmp/, and one mailbox in ten a .DeltaChat/cur folder. Messages are
empty files with Dovecot-style names (`<time>.M<n>P<pid>.host,S=<size>,W=<size>:2,S`) and
mtimes 0-30 days back, so the dry run has real work to plan. Deterministic (fixed seed).
"""
import os
import random
import sys
import time


def main():
    root, n_boxes, n_msgs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rnd = random.Random(42)
    now = int(time.time())
    day = 86400
    os.makedirs(root, exist_ok=True)
    per_box, extra = divmod(n_msgs, n_boxes)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    for b in range(n_boxes):
        box = os.path.join(root, f"u{b:07d}x@bench.example")
        folders = ["cur", "new", "tmp"]
        if b % 10 == 0:
            folders.append(".DeltaChat/cur")
        for f in folders:
            os.makedirs(os.path.join(box, f))
        for name in ("password", "enforceE2EEincoming", "dovecot-uidlist"):
            p = os.path.join(box, name)
            os.close(os.open(p, flags, 0o600))
        login = now - rnd.randrange(0, 120) * day
        os.utime(os.path.join(box, "password"), (login, login))
        count = per_box + (1 if b < extra else 0)
        for m in range(count):
            t = now - rnd.randrange(0, 30 * day)
            size = rnd.choice((2000, 5000, 30000, 250000, 1200000))
            folder = folders[0] if m % 4 else rnd.choice(folders[1:])
            info = ":2,S" if folder.endswith("cur") else ""
            name = f"{t}.M{m}P{b}.bench,S={size},W={size + 40}{info}"
            p = os.path.join(box, folder, name)
            os.close(os.open(p, flags, 0o600))
            os.utime(p, (t, t))
        if b % 10000 == 0:
            print(f"  {b}/{n_boxes} mailboxes", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
