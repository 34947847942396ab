#!/usr/bin/env python3
"""How long a client waits to start talking: SMTP on 465 and 587 beside IMAP on 993.

Run against the local relay (`packaging/relay up`), with the e2e venv:

    .venv/bin/python tests/bench/connect_latency.py [--host 127.0.0.1] [--n 200]

For each service, `--n` fresh connections, taking turns between the services, each timed in
steps (ms): TCP connect; TLS handshake (implicit TLS on 465 and 993; on 587 after the
greeting, EHLO and STARTTLS); the greeting; EHLO (SMTP) or CAPABILITY (IMAP) after TLS; and
the total. Printed: p50 and p99 of each step.
"""

from __future__ import annotations

import argparse
import socket
import ssl
import time


def ctx() -> ssl.SSLContext:
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def reply(f, last) -> bytes:
    """Lines until `last(line)` is true; returns that line."""
    while True:
        line = f.readline()
        if not line:
            raise ConnectionError("closed")
        if last(line):
            return line


def smtp_done(line: bytes) -> bool:
    return len(line) >= 4 and line[3:4] == b" "


def timed(steps: dict, name: str, t0: float) -> float:
    now = time.perf_counter()
    steps[name] = (now - t0) * 1000
    return now


def implicit_tls(host: str, port: int, tls: ssl.SSLContext, greeting, probe: bytes, probe_done,
                 quit_: bytes) -> dict:
    """Implicit TLS (465, 993): connect, handshake, greeting, one command."""
    steps = {}
    start = t = time.perf_counter()
    raw = socket.create_connection((host, port), timeout=10)
    t = timed(steps, "tcp", t)
    s = tls.wrap_socket(raw)
    t = timed(steps, "tls", t)
    f = s.makefile("rb")
    reply(f, greeting)
    t = timed(steps, "greeting", t)
    s.sendall(probe)
    reply(f, probe_done)
    timed(steps, "ehlo", t)
    timed(steps, "total", start)
    s.sendall(quit_)
    s.close()
    return steps


def smtps(host: str, tls: ssl.SSLContext) -> dict:
    return implicit_tls(host, 465, tls, smtp_done, b"EHLO bench.example\r\n", smtp_done,
                        b"QUIT\r\n")


def submission(host: str, tls: ssl.SSLContext) -> dict:
    steps = {}
    start = t = time.perf_counter()
    raw = socket.create_connection((host, 587), timeout=10)
    t = timed(steps, "tcp", t)
    f = raw.makefile("rb")
    reply(f, smtp_done)
    t = timed(steps, "greeting", t)
    raw.sendall(b"EHLO bench.example\r\nSTARTTLS\r\n")
    reply(f, smtp_done)
    reply(f, smtp_done)
    s = tls.wrap_socket(raw)
    t = timed(steps, "tls", t)
    f = s.makefile("rb")
    s.sendall(b"EHLO bench.example\r\n")
    reply(f, smtp_done)
    timed(steps, "ehlo", t)
    timed(steps, "total", start)
    s.sendall(b"QUIT\r\n")
    s.close()
    return steps


def imaps(host: str, tls: ssl.SSLContext) -> dict:
    return implicit_tls(host, 993, tls, lambda line: line.startswith(b"* OK"),
                        b"a CAPABILITY\r\n", lambda line: line.startswith(b"a "),
                        b"b LOGOUT\r\n")


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--n", type=int, default=200)
    args = ap.parse_args()
    tls = ctx()
    services = {"smtps 465": smtps, "submission 587": submission, "imaps 993": imaps}
    results = {name: [] for name in services}
    for _ in range(args.n):
        for name, fn in services.items():
            results[name].append(fn(args.host, tls))
    cols = ["tcp", "tls", "greeting", "ehlo", "total"]
    print(f"{args.n} connections each to {args.host}, taking turns; ms, p50 / p99 "
          "(ehlo: CAPABILITY for IMAP; on 587 tls includes EHLO and STARTTLS)")
    print(f"{'service':<16}" + "".join(f"{c:>16}" for c in cols))
    for name, runs in results.items():
        cells = [f"{pct([r[c] for r in runs], 0.5):6.2f} / {pct([r[c] for r in runs], 0.99):6.2f}"
                 for c in cols]
        print(f"{name:<16}" + "".join(f"{c:>16}" for c in cells))


if __name__ == "__main__":
    main()
