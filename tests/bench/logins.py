#!/usr/bin/env python3
"""IMAP logins as users feel them: through the real Dovecot of a deployed relay.

Run as root on an otherwise quiet machine, with the e2e venv and a release build:

    .venv/bin/python tests/bench/logins.py [--suites bookworm,trixie] [--clients 8,64]
                                           [--seconds 30] [--slice 3] [--accounts 500]

For each suite (Debian 12: Dovecot 2.3, dict passdb/userdb; Debian 13: Dovecot 2.4, Lua
passdb/userdb over luasocket), a systemd container of test_deploy.py gets the package and
`chatmail-relay setup` (IP-only relay). `--accounts` accounts are created by their first login.
Then two configurations of the same Dovecot take turns:

* doveauth: the relay's dovecot.conf as setup rendered it;
* floor: the same file with passdb and userdb replaced by a `passwd-file` holding the same
  `{SHA512-CRYPT}` hashes and the same home, uid and gid: Dovecot's own cost of a login.

Each configuration is made current by `doveadm reload`, and the turns alternate in slices of
`--slice` seconds until each was measured for `--seconds`, so that the machine's drifts hit
both alike. Clients (one process each, on this machine, outside the container) log in as a
user does: a new TCP connection to port 993, the TLS 1.3 handshake, the greeting, `LOGIN`
(measured up to its tagged OK, when Dovecot has started the user's imap process), then
`LOGOUT`. Users are taken in turn, so Dovecot's caches are as warm as on a relay where many
users log in (the relay has no auth cache; doveauth keeps records for 60 s).

Printed per suite and client count: logins per second, p50 and p99 of the login time, and the
ratios doveauth / floor.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import secrets
import socket
import ssl
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from test_deb import build_deb  # noqa: E402
from test_deb_systemd import build_rootfs  # noqa: E402
from test_deploy import Server  # noqa: E402

MACHINE = "cm-bench"
WORK = Path("/var/tmp/chatmail-login-bench")
BOX_IP = "10.213.77.2"
PASSWORD = "bench-password-" + "x" * 12
USERS_FILE = "/etc/dovecot/bench-users"

# The passdb/userdb of each Dovecot series in the relay's configuration, and the floor's.
AUTH_BLOCKS = {
    "2.3": (
        re.compile(r"passdb \{\n  driver = dict\n.*?\n\}\nuserdb \{\n  driver = dict\n.*?\n\}\n",
                   re.S),
        f"passdb {{\n  driver = passwd-file\n  args = scheme=SHA512-CRYPT {USERS_FILE}\n}}\n"
        f"userdb {{\n  driver = passwd-file\n  args = {USERS_FILE}\n}}\n",
    ),
    "2.4": (
        re.compile(r"passdb lua \{\n.*?\n\}\nuserdb lua \{\n.*?\n\}\n", re.S),
        f"passdb passwd-file {{\n  passwd_file_path = {USERS_FILE}\n"
        f"  default_password_scheme = SHA512-CRYPT\n}}\n"
        f"userdb passwd-file {{\n  passwd_file_path = {USERS_FILE}\n}}\n",
    ),
}


def tls() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def read_reply(f, tag: bytes) -> bytes:
    """Lines up to the tagged reply `tag`; returns that line."""
    while True:
        line = f.readline()
        if not line:
            raise ConnectionError("connection closed")
        if line.startswith(tag + b" "):
            return line


def login(ctx: ssl.SSLContext, user: str) -> float:
    """One login as a client makes it; returns the seconds from connect to LOGIN's OK."""
    t0 = time.perf_counter()
    raw = socket.create_connection((BOX_IP, 993), timeout=30)
    with ctx.wrap_socket(raw) as s:
        f = s.makefile("rb")
        if not f.readline().startswith(b"* OK"):
            raise ConnectionError("no greeting")
        s.sendall(f'a LOGIN "{user}" "{PASSWORD}"\r\n'.encode())
        reply = read_reply(f, b"a")
        took = time.perf_counter() - t0
        if not reply.startswith(b"a OK"):
            raise RuntimeError(f"login of {user} failed: {reply!r}")
        s.sendall(b"b LOGOUT\r\n")
        read_reply(f, b"b")
    return took


def client(n: int, users: list[str], phase, busy, out) -> None:
    """Logs in while `phase` (a shared value) is ≥ 0, counting itself in `busy` meanwhile;
    puts ([(phase, seconds), ...], [(phase, error), ...]) on `out` when `phase` becomes -2."""
    ctx = tls()
    samples, errors = [], []
    i = n * 7919
    while True:
        # counted as busy before looking at the phase: the main process waits for busy == 0
        # after ending a turn, and no login of this turn starts after that
        with busy.get_lock():
            busy.value += 1
        p = phase.value
        if p < 0:
            with busy.get_lock():
                busy.value -= 1
            if p == -2:
                break
            time.sleep(0.01)
            continue
        user = users[i % len(users)]
        i += 1
        try:
            took = login(ctx, user)
        except (OSError, RuntimeError) as e:
            errors.append((p, f"{type(e).__name__}: {e}"))
            time.sleep(0.1)
            continue
        finally:
            with busy.get_lock():
                busy.value -= 1
        if phase.value == p:  # still the same turn: it counts
            samples.append((p, took))
    out.put((samples, errors))


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))] if values else float("nan")


class Relay:
    """The deployed relay in its container, and the two Dovecot configurations."""

    def __init__(self, suite: str, deb: Path):
        self.suite = suite
        self.box = Server(deb.parent, machine=MACHINE, work=WORK / suite, address=BOX_IP,
                          rootfs=build_rootfs(suite))
        self.box.boot()
        self.box.sh(f"DEBIAN_FRONTEND=noninteractive dpkg -i /mnt/deb/{deb.name}")
        self.box.sh(f"chatmail-relay init {BOX_IP} --set max_load_1m=1000")
        self.box.sh("chatmail-relay setup 2>&1")
        self.version = self.box.sh("dovecot --version").split()[0]
        self.series = "2.4" if self.version.startswith("2.4") else "2.3"
        self.domain = f"[{BOX_IP}]"

    def create_accounts(self, n: int) -> list[str]:
        users = [f"b{secrets.token_hex(4)}@{self.domain}" for _ in range(n)]
        ctx = tls()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda u: login(ctx, u), users))
        # the floor's passwd-file: the same hashes, homes and owner as doveauth answers
        mailboxes = self.box.sh("chatmail-relay get mailboxes_dir").strip()
        assert self.box.sh(f"doveadm user -f home '{users[0]}'").strip() == f"{mailboxes}/{users[0]}"
        lines = []
        for u in users:
            home = f"{mailboxes}/{u}"
            password = (self.box.root / home.lstrip("/") / "password").read_text().strip()
            lines.append(f"{u}:{password}:vmail:vmail::{home}::\n")
        users_file = self.box.root / USERS_FILE.lstrip("/")
        users_file.write_text("".join(lines))
        self.box.sh(f"chown root:dovecot {USERS_FILE} && chmod 0640 {USERS_FILE}")
        conf = self.box.root / "etc/dovecot/dovecot.conf"
        self.configs = {"doveauth": conf.read_text()}
        pattern, floor = AUTH_BLOCKS[self.series]
        self.configs["floor"], n_sub = pattern.subn(floor, self.configs["doveauth"])
        assert n_sub == 1, f"no passdb/userdb blocks found in the {self.series} configuration"
        return users

    def use(self, name: str, probe_user: str) -> None:
        (self.box.root / "etc/dovecot/dovecot.conf").write_text(self.configs[name])
        self.box.sh("doveadm reload")
        time.sleep(1.0)
        login(tls(), probe_user)  # the new auth process answers

    def close(self) -> None:
        self.box.destroy()


def measure(relay: Relay, users: list[str], clients: int, seconds: float, slice_s: float):
    names = ["floor", "doveauth"]
    slices = max(1, round(seconds / slice_s))
    phase = mp.Value("i", -1, lock=False)
    busy = mp.Value("i", 0)
    out = mp.Queue()
    procs = [mp.Process(target=client, args=(n, users, phase, busy, out))
             for n in range(clients)]
    for p in procs:
        p.start()
    active = {name: 0.0 for name in names}
    turns = []  # phase index → configuration name
    try:
        for _ in range(slices):
            for name in names:
                relay.use(name, users[0])
                phase.value = len(turns)
                turns.append(name)
                t0 = time.monotonic()
                time.sleep(slice_s)
                phase.value = -1
                active[name] += time.monotonic() - t0
                # logins in flight end before the next reload (which would cut them off)
                deadline = time.monotonic() + 60
                while busy.value > 0 and time.monotonic() < deadline:
                    time.sleep(0.01)
        phase.value = -2
        samples, errors = [], []
        for _ in procs:
            s, e = out.get(timeout=120)
            samples += s
            errors += e
    finally:
        phase.value = -2
        for p in procs:
            p.join(timeout=30)
    results = {}
    for name in names:
        times = [t for p, t in samples if turns[p] == name]
        failed = [e for p, e in errors if turns[p] == name]
        if failed:
            print(f"    {name}: {len(failed)} failed logins, e.g. {failed[0]}", flush=True)
        results[name] = {
            "rate": len(times) / active[name],
            "p50": percentile(times, 0.50) * 1000,
            "p99": percentile(times, 0.99) * 1000,
        }
    if errors:
        print(relay.box.sh("journalctl -u dovecot --since -5min --no-pager | "
                           "grep -iE 'error|warn|fatal|limit|refus|disconnected:' | "
                           "grep -v 'Logged out' | tail -8", check=False), flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--suites", default="bookworm,trixie")
    ap.add_argument("--clients", default="8,64")
    ap.add_argument("--seconds", type=float, default=30.0, help="per configuration")
    ap.add_argument("--slice", type=float, default=3.0)
    ap.add_argument("--accounts", type=int, default=500)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (systemd containers)")
    deb = build_deb(Path(tempfile.mkdtemp(prefix="login-bench-")))
    rows = []
    for suite in args.suites.split(","):
        relay = Relay(suite, deb)
        try:
            users = relay.create_accounts(args.accounts)
            print(f"{suite}: Dovecot {relay.version}, {len(users)} accounts", flush=True)
            for clients in [int(c) for c in args.clients.split(",")]:
                r = measure(relay, users, clients, args.seconds, args.slice)
                rows.append((suite, relay.version, clients, r))
                f, d = r["floor"], r["doveauth"]
                print(f"  {clients:>3} clients: floor {f['rate']:.0f}/s p99 {f['p99']:.1f} ms, "
                      f"doveauth {d['rate']:.0f}/s p99 {d['p99']:.1f} ms", flush=True)
        finally:
            relay.close()
    print(f"\nIMAP logins through the real Dovecot, {args.seconds:.0f} s per configuration in "
          f"slices of {args.slice:.0f} s; load average at the end: {os.getloadavg()[0]:.1f}")
    print(f"{'suite':<9} {'dovecot':<8} {'clients':>7} | {'floor/s':>8} {'p50ms':>6} {'p99ms':>6}"
          f" | {'doveauth/s':>10} {'p50ms':>6} {'p99ms':>6} | {'rate':>5} {'p99':>5}")
    for suite, version, clients, r in rows:
        f, d = r["floor"], r["doveauth"]
        print(f"{suite:<9} {version:<8} {clients:>7} | {f['rate']:>8.0f} {f['p50']:>6.1f} "
              f"{f['p99']:>6.1f} | {d['rate']:>10.0f} {d['p50']:>6.1f} {d['p99']:>6.1f} | "
              f"{d['rate'] / f['rate']:>5.2f} {d['p99'] / f['p99']:>5.2f}")
    print("(rate: doveauth / floor, ≥ 0.9 is the target; p99: doveauth / floor, ≤ 1.5)")


if __name__ == "__main__":
    main()
