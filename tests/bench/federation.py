#!/usr/bin/env python3
"""Federation benchmark: mail from one of our relays to another, beside mail within one relay.

Run as root on an otherwise quiet machine, with the e2e venv and a release build:

    .venv/bin/python tests/bench/federation.py [--latency 1000] [--senders 8] [--batch 200]

It brings up tests/e2e/fednet.py's network (alpha.test and beta.test in systemd containers
from the .deb, nsd, pebble; ~1 min) with the per-sender rate limit lifted, and measures, for
each message both ways in the same run: to an account on beta (alpha signs, beta verifies,
TLS verified between them) and to an account on alpha itself (the baseline: one relay, no
signature, as users of one relay send each other).

1. Latency, messages sent one after another (10 kB, encrypted) over one authenticated
   submission connection to alpha: from the sender's DATA command to (a) the message file in
   the recipient's maildir (Dovecot's file name carries the delivery time; the containers
   share this machine's clock) and (b) the `EXISTS` that the recipient's IMAP IDLE connection
   gets. p50, p90, p99 and max over `--latency` messages per destination: one to each, back
   to back, then the next pair once both notifications have come.
2. Throughput: `--senders` processes, each its own account and submission connection, send
   `--batch` messages each; timed until every message is accepted and until every message is
   in the recipient's maildir. Rounds alternate between the destinations (`--rounds` each);
   printed: messages per second of each round and how busy the machine's CPUs were (both
   relays share them), the medians, and the ratio beta / alpha.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import smtplib
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from fednet import Federation, User, read_stored  # noqa: E402
from relaytest import tls_context  # noqa: E402
from test_deb import build_deb  # noqa: E402
from test_milter import encrypted_message  # noqa: E402

SIZE = 7_400  # random bytes: a message of about 10 kB once armored
UNLIMITED = " --set max_user_send_per_minute=1000000 --set max_user_send_burst_size=1000000"
DELIVERED_AT = re.compile(r"^(\d+)\.M(\d+)P")


def delivery_times(account: User) -> dict[str, float]:
    """Message-ID → the time Dovecot delivered it (its maildir file name)."""
    times = {}
    for path in account.files():
        m = DELIVERED_AT.match(path.name)
        mid = re.search(r"(?im)^Message-ID:\s*(<[^>]+>)", read_stored(path.read_bytes()))
        if m and mid:
            times[mid[1]] = int(m[1]) + int(m[2]) / 1e6
    return times


def count(account: User) -> int:
    """Messages in the maildir (none yet: no maildir yet)."""
    dirs = [account.maildir / sub for sub in ("new", "cur")]
    return sum(len(os.listdir(d)) for d in dirs if d.is_dir())


class Idle:
    """An IMAP IDLE connection to the INBOX: the time of each new EXISTS."""

    def __init__(self, account: User):
        self.imap = account.imap()
        self.imap.select("INBOX")
        self.seen: list[float] = []
        self.cond = threading.Condition()
        tag = self.imap._new_tag().decode()
        self.imap.send(f"{tag} IDLE\r\n".encode())
        assert self.imap.readline().startswith(b"+"), "IDLE refused"
        threading.Thread(target=self.read, daemon=True).start()

    def read(self) -> None:
        while True:
            line = self.imap.readline()
            if not line:
                return
            if re.match(rb"^\* \d+ EXISTS", line):
                with self.cond:
                    self.seen.append(time.time())
                    self.cond.notify_all()

    def wait(self, n: int, timeout: float = 60) -> float:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.seen) >= n, timeout), "no EXISTS"
            return self.seen[n - 1]


def percentiles(values: list[float]) -> str:
    v = sorted(values)
    pick = lambda q: v[min(len(v) - 1, int(q * len(v)))] * 1000  # noqa: E731
    return (f"p50 {pick(0.50):6.1f} ms  p90 {pick(0.90):6.1f} ms  p99 {pick(0.99):6.1f} ms  "
            f"max {v[-1] * 1000:6.1f} ms")


def latency(sender: User, targets: dict[str, User], n: int) -> None:
    idles = {name: Idle(acc) for name, acc in targets.items()}
    sent: dict[str, dict[str, float]] = {name: {} for name in targets}
    exists: dict[str, list[float]] = {name: [] for name in targets}
    smtp = sender.smtp()
    try:
        for _ in range(n):
            # One message to each destination, back to back, then the IDLE notifications:
            # Dovecot notifies 0.5 s after a change at the earliest (NOTIFY_DELAY_MSECS in its
            # lib-storage), so waiting for each in turn would double the run.
            started = {}
            for name, acc in targets.items():
                msg = encrypted_message(sender.addr, acc.addr, size=SIZE)
                mid = re.search(r"Message-ID: (<[^>]+>)", msg)[1]
                smtp.mail(sender.addr)
                smtp.rcpt(acc.addr)
                started[name] = time.time()
                code, reply = smtp.data(msg.encode())
                assert code == 250, (code, reply)
                sent[name][mid] = started[name]
            for name in targets:
                seen = idles[name].wait(len(exists[name]) + 1)
                exists[name].append(seen - started[name])
    finally:
        smtp.quit()
    for name, acc in targets.items():
        stored = delivery_times(acc)
        to_mailbox = [stored[mid] - start for mid, start in sent[name].items() if mid in stored]
        assert len(to_mailbox) == n, f"{name}: {len(to_mailbox)} of {n} in the maildir"
        print(f"  {name:28} DATA → maildir   {percentiles(to_mailbox)}")
        print(f"  {name:28} DATA → IDLE      {percentiles(exists[name])}")


def send_batch(args: tuple[str, str, str, str, int]) -> float:
    """One sender's batch (in a process of the pool): the time its last message was accepted."""
    address, addr, password, rcpt, count = args
    msgs = [encrypted_message(addr, rcpt, size=SIZE).encode() for _ in range(count)]
    with smtplib.SMTP(address, 587, timeout=120) as smtp:
        smtp.starttls(context=tls_context())
        smtp.login(addr, password)
        for msg in msgs:
            assert smtp.sendmail(addr, [rcpt], msg) == {}
        return time.monotonic()


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def cpu_busy(since: tuple[int, int]) -> float:
    busy, total = cpu_times()
    return (busy - since[0]) / max(1, total - since[1])


def throughput(senders: list[User], targets: dict[str, User], batch: int,
               rounds: int) -> None:
    rates: dict[str, list[tuple[float, float]]] = {name: [] for name in targets}
    with mp.Pool(len(senders)) as pool:
        for _ in range(rounds):
            for name, acc in targets.items():
                before = count(acc)
                total = batch * len(senders)
                cpu = cpu_times()
                start = time.monotonic()
                jobs = [(s.relay.address, s.addr, s.password, acc.addr, batch) for s in senders]
                accepted = max(pool.map(send_batch, jobs))
                while count(acc) < before + total:
                    if time.monotonic() - start > 600:
                        raise SystemExit(f"{name}: not all delivered")
                    time.sleep(0.005)
                delivered = time.monotonic()
                busy = cpu_busy(cpu)
                rates[name].append((total / (accepted - start), total / (delivered - start)))
                print(f"  {name:28} accepted {rates[name][-1][0]:6.1f} msg/s  "
                      f"in the maildir {rates[name][-1][1]:6.1f} msg/s  "
                      f"(CPU busy {busy:.0%} of {os.cpu_count()} cores)")
    medians = {name: (statistics.median(a for a, _ in r), statistics.median(d for _, d in r))
               for name, r in rates.items()}
    for name, (a, d) in medians.items():
        print(f"  median {name:21} accepted {a:6.1f} msg/s  in the maildir {d:6.1f} msg/s")
    (fed, fed_rates), (local, local_rates) = list(medians.items())
    print(f"  ratio {fed} / {local}: accepted {fed_rates[0] / local_rates[0]:.2f}, "
          f"in the maildir {fed_rates[1] / local_rates[1]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=int, default=1000, help="messages per destination")
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--batch", type=int, default=200, help="messages per sender and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per destination")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        net = Federation(build_deb(Path(tmp)), settings=UNLIMITED)
        try:
            sender = User(net.alpha)
            targets = {"alpha → beta (federated)": User(net.beta),
                       "alpha → alpha (one relay)": User(net.alpha)}
            print(f"latency, {args.latency} messages of 10 kB each way, one at a time:")
            latency(sender, targets, args.latency)
            senders = [User(net.alpha) for _ in range(args.senders)]
            print(f"throughput, {args.senders} senders × {args.batch} messages of "
                  f"10 kB, {args.rounds} rounds each way:")
            throughput(senders, targets, args.batch, args.rounds)
        finally:
            net.close()


if __name__ == "__main__":
    main()
