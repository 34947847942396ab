#!/usr/bin/env python3
"""TURN on loopback with coturn's own load tool: the relay's coturn configuration beside a
stock one, in the same run.

Run as root with the local relay's configuration in place (`packaging/relay up`), on an
otherwise quiet machine:

    .venv/bin/python tests/bench/turn.py [--rounds 3] [--clients 10] [--messages 20000]

Two coturn processes are started on loopback beside the relay's own:

* relay: /etc/chatmail/turnserver.conf as `chatmail-relay setup` rendered it, with one change
  that a benchmark on one machine needs: loopback peers are allowed (the relay denies them;
  here both ends of every relayed flow are on this machine), and its own port;
* stock: coturn with nothing but the same secret, port range and loopback peers: coturn's
  defaults, the baseline.

For each, taking turns `--rounds` times, `turnutils_uclient` (coturn's client) measures:

1. allocations: `--clients` × 20 clients that each allocate, send one message to each other
   (client to client, `-y`) and leave; allocations per second of wall time;
2. relayed traffic: `--clients` clients in pairs, each sending `--messages` messages of 1000
   bytes as fast as it can through the relay to its partner; relayed messages per second
   and megabits per second (each way) of wall time, and loss.

uclient spends about 5 s waiting at its end whatever the load, which is in the wall times:
the absolute figures are lower bounds, the ratios are what to compare. Printed: each figure
per configuration (median over rounds) and the ratio relay / stock.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

RELAY_CONF = Path("/etc/chatmail/turnserver.conf")
PORTS = {"relay": 13478, "stock": 13479}
LENGTH = 1000


def rest_credentials(secret: str) -> tuple[str, str]:
    user = str(int(time.time()) + 3600)
    mac = hmac.new(secret.encode(), user.encode(), hashlib.sha1).digest()
    return user, base64.b64encode(mac).decode()


def configs(work: Path) -> dict[str, Path]:
    rendered = RELAY_CONF.read_text()
    secret = re.search(r"^static-auth-secret=(.+)$", rendered, re.M).group(1).strip()
    ports = re.findall(r"^(min-port|max-port)=(\d+)$", rendered, re.M)
    keep = []
    for line in rendered.splitlines():
        if line.startswith("denied-peer-ip=127.") or line.startswith("listening-port="):
            continue
        if line.startswith(("log-file", "syslog", "simple-log")):
            continue
        keep.append(line)
    relay = work / "relay.conf"
    relay.write_text("\n".join(keep + [f"listening-port={PORTS['relay']}",
                                       "allow-loopback-peers", "no-stdout-log",
                                       "log-file=/dev/null", ""]))
    stock = work / "stock.conf"
    stock.write_text("\n".join([f"listening-port={PORTS['stock']}", "listening-ip=127.0.0.1",
                                "use-auth-secret", f"static-auth-secret={secret}",
                                *(f"{k}={v}" for k, v in ports), "allow-loopback-peers",
                                "realm=bench", "no-cli", "no-stdout-log", "log-file=/dev/null",
                                ""]))
    return {"relay": relay, "stock": stock}, secret


def uclient(port: int, user: str, password: str, *args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        ["turnutils_uclient", "-p", str(port), "-u", user, "-w", password, "-l", str(LENGTH),
         *args, "127.0.0.1"],
        capture_output=True, text=True, timeout=timeout)
    return done.stdout + done.stderr


def number(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    return float(m.group(1)) if m else float("nan")


def allocations(port: int, user: str, password: str, clients: int) -> float:
    start = time.perf_counter()
    out = uclient(port, user, password, "-y", "-c", "-m", str(clients), "-n", "1", "-z", "0")
    took = time.perf_counter() - start
    if "Total lost packets" not in out:
        raise RuntimeError(f"uclient failed: {out[-500:]}")
    return clients / took


def traffic(port: int, user: str, password: str, clients: int, messages: int) -> dict:
    start = time.perf_counter()
    out = uclient(port, user, password, "-y", "-c", "-m", str(clients), "-n", str(messages),
                  "-z", "0")
    seconds = time.perf_counter() - start
    sent = clients * messages
    lost = number(r"Total lost packets (\d+)", out)
    return {
        "pps": sent / seconds,
        "mbit": sent * LENGTH * 8 / seconds / 1e6,
        "loss": lost / sent * 100,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--messages", type=int, default=20000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="turn-bench-"))
    confs, secret = configs(work)
    user, password = rest_credentials(secret)
    servers = {name: subprocess.Popen(["turnserver", "-c", str(conf), "--pidfile="],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for name, conf in confs.items()}
    results = {name: {"alloc": [], "pps": [], "mbit": [], "loss": []}
               for name in confs}
    try:
        time.sleep(1.0)
        for _ in range(args.rounds):
            for name in confs:
                port = PORTS[name]
                results[name]["alloc"].append(
                    allocations(port, user, password, args.clients * 20))
                t = traffic(port, user, password, args.clients, args.messages)
                for k, v in t.items():
                    results[name][k].append(v)
    finally:
        for p in servers.values():
            p.terminate()
            p.wait(timeout=10)
    med = {n: {k: statistics.median(v) for k, v in r.items()} for n, r in results.items()}
    print(f"coturn on loopback, {args.rounds} rounds taking turns, medians; "
          f"{args.clients * 20} clients allocating, {args.clients} clients relaying "
          f"{args.messages} × {LENGTH} B each")
    print(f"{'config':<7} {'alloc/s':>8} {'msg/s':>8} {'Mbit/s':>7} {'loss %':>7}")
    for name, m in med.items():
        print(f"{name:<7} {m['alloc']:>8.0f} {m['pps']:>8.0f} {m['mbit']:>7.1f} "
              f"{m['loss']:>7.2f}")
    r, s = med["relay"], med["stock"]
    print(f"ratio relay/stock: allocations {r['alloc'] / s['alloc']:.2f}, "
          f"messages {r['pps'] / s['pps']:.2f}")


if __name__ == "__main__":
    main()
