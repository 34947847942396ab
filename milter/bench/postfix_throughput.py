#!/usr/bin/env python3
"""chatmail-milter inside the real Postfix: throughput and CPU cost.

Run as root against the local relay (`packaging/relay up`), with the e2e venv:

    flock /tmp/relay.lock .venv/bin/python milter/bench/postfix_throughput.py

1. Messages per second through Postfix submission (STARTTLS + AUTH) with 8 parallel clients
   (processes), 10 kB encrypted messages to local accounts, through three services: the
   submission service with chatmail-milter (587), and two twins of it added to master.cf for
   the run, one without a milter (10587) and one with a no-op milter that negotiates the same
   events and accepts everything unseen (10588, milter/examples/noop_milter.rs: the cost of the
   milter protocol itself). Every client keeps a connection to each. Two ways:
   - sustained: the services take turns with batches of the same size, each started from an
     empty queue and empty mailboxes; timed until every message is accepted, and until every
     message is delivered into its mailbox (what the relay can carry: Postfix's in_flow_delay
     holds submission back to the delivery rate once the queue grows);
   - burst: the services take turns in slices of 1 s while the queue grows; messages accepted
     per second.
   Printed: each rate, its ratio to the milter-free one, and the median and range of the
   per-round (per-turn) ratios.
2. CPU time per 10 kB message through each of the three services, sent one after another
   until delivered: the milter's own (chatmail-milter, the no-op one) and the whole machine's
   (from /proc/stat: meaningful only on an otherwise quiet machine). Then chatmail-milter's
   CPU time (utime + stime from /proc) per message for 10 kB, 1 MB and 30 MB encrypted
   messages.

Both on the IP-only relay (`127.0.0.1`: no DKIM) and on a relay with a domain name
(`_chat.localhost`), one after the other (`--domains`). On the relay with a domain, two legs
(`--legs`): to local accounts (mail that never leaves the relay is not signed), and to a remote
domain (`bench.invalid`, sent to Postfix's discard transport for the run: every message gets
an RSA-2048 DKIM signature). At the end the milter's CPU per 10 kB message on each leg, the
difference signing makes (what it costs on the real stack) and OpenSSL's own RSA-2048 signing
time on this machine (`openssl speed rsa2048`).

For the run the per-sender rate limit is lifted (chatmail.ini is restored afterwards and the
relay brought up as it was), and the recipient's mailbox is emptied between phases.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing as mp
import base64
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "e2e"))

from relaytest import (  # noqa: E402
    CHATMAIL_INI,
    SUBMISSION_PORT,
    Account,
    create_account,
    read_config,
    smtp_connect,
)

REPO = Path(__file__).resolve().parents[2]
MILTER_PID = Path("/run/chatmail-relay/milter.pid")
SERVICE = "submission/inet/smtpd_milters"
# Twins of the submission service, for the run only: one without a milter, one with the
# no-op milter (milter/examples/noop_milter.rs).
TWIN_PORT = 10587
NOOP_PORT = 10588
NOOP_SOCKET = "chatmail/noop.sock"
# After a switch: messages in flight on the other port finish, uncounted.
SETTLE = 0.15
PORTS = [SUBMISSION_PORT, NOOP_PORT, TWIN_PORT]
# Recipients of the remote leg: a domain Postfix sends to its discard transport for the run.
REMOTE_DOMAIN = "bench.invalid"
NAMES = ["chatmail-milter (587)", f"no-op milter ({NOOP_PORT})", f"no milter ({TWIN_PORT})"]


def armor(size: int) -> str:
    """Structurally valid SKESK + SEIPD armor of about `size` bytes."""
    body_len = max(size * 3 // 4 * 64 // 66 - 40, 16)
    skesk = bytes([0xC3, 13, 4, 9, 3, 8]) + os.urandom(8) + bytes([96])
    body = bytes([1]) + os.urandom(body_len)
    seipd = bytes([0xD2, 255]) + len(body).to_bytes(4, "big") + body
    b64 = base64.b64encode(skesk + seipd).decode()
    lines = "\r\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
    return f"-----BEGIN PGP MESSAGE-----\r\n\r\n{lines}\r\n-----END PGP MESSAGE-----\r\n"


def message(sender: str, to: str, size: int) -> bytes:
    return (
        f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: [...]\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="b"\r\n'
        "\r\n--b\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n"
        "\r\n--b\r\nContent-Type: application/octet-stream\r\n\r\n" + armor(size) + "\r\n--b--\r\n"
    ).encode()


def run(cmd: list[str]) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")


@functools.cache
def queue_dir() -> Path:
    return Path(run(["postconf", "-h", "queue_directory"]).strip())


def queue_is_empty() -> bool:
    """No message file in any of Postfix's queues: everything submitted is delivered. Cheaper
    to poll every few milliseconds than `postqueue`."""
    for name in QUEUES:
        for _root, _dirs, files in os.walk(queue_dir() / name):
            if files:
                return False
    return True


def wait_delivered(timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not queue_is_empty():
        if time.monotonic() > deadline:
            raise SystemExit("the Postfix queue did not drain (deferred deliveries?)")
        time.sleep(0.01)


def empty_mailbox(rcpt: str) -> None:
    """Waits until everything is delivered, then empties `rcpt`'s INBOX (a local account;
    mail for the remote domain was discarded)."""
    wait_delivered()
    if not rcpt.endswith("@" + REMOTE_DOMAIN):
        run(["doveadm", "expunge", "-u", rcpt, "mailbox", "INBOX", "all"])


def discard_remote_domain(on: bool) -> None:
    """Mail for REMOTE_DOMAIN goes to Postfix's discard transport (accepted, signed on a relay
    with a domain, never sent): the remote leg's deliveries cost no network."""
    if on:
        run(["postconf", "-e", f"transport_maps = inline:{{{REMOTE_DOMAIN}=discard:}}"])
    else:
        run(["postconf", "-X", "transport_maps"])
    run(["postfix", "reload"])


def add_twin(port: int, milters: str, name: str) -> None:
    """The submission service once more on `port`, with `milters` as its smtpd_milters."""
    line = run(["postconf", "-M", "submission/inet"]).strip()
    entry = f"{port} {line.split(None, 1)[1]}"
    entry = re.sub(r"-o smtpd_milters=\S*", f"-o smtpd_milters={milters}", entry)
    entry = entry.replace("syslog_name=postfix/submission", f"syslog_name=postfix/submission-{name}")
    if f"smtpd_milters={milters} " not in entry + " ":
        raise SystemExit(f"cannot make a twin of: {line}")
    run(["postconf", "-Me", f"{port}/inet={entry}"])
    run(["postfix", "reload"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            smtp_connect(port).quit()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the twin submission service on {port} did not come up")


def remove_twins() -> None:
    for port in (NOOP_PORT, TWIN_PORT):
        if run(["postconf", "-M", f"{port}/inet"]).strip():
            run(["postconf", "-MX", f"{port}/inet"])
    run(["postfix", "reload"])


def start_noop_milter(insert_header: int = 0) -> subprocess.Popen:
    """The no-op milter (milter/examples/noop_milter.rs), built and listening."""
    subprocess.run(["cargo", "build", "--quiet", "--release", "-p", "chatmail-milter",
                    "--example", "noop_milter"], check=True, cwd=REPO)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    socket = queue_dir() / NOOP_SOCKET
    extra = ["--insert-header", str(insert_header)] if insert_header else []
    proc = subprocess.Popen([str(target / "release/examples/noop_milter"), str(socket), *extra])
    deadline = time.monotonic() + 10
    while not socket.exists():
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("the no-op milter did not start")
        time.sleep(0.1)
    return proc


def connect_all(sender: Account) -> list:
    """A logged-in SMTP connection to each port of PORTS."""
    conns = []
    for port in PORTS:
        smtp = smtp_connect(port)
        smtp.login(sender.addr, sender.password)
        conns.append(smtp)
    return conns


def client_process(i: int, sender: Account, rcpt: str, size: int, state, counts, slices: int,
                   ready, errors) -> None:
    """One client: a connection to each port; sends on the port whose turn it is, counts the
    messages sent and done within one counting window (`state`: port index, slice, counting,
    stop)."""
    msg = message(sender.addr, rcpt, size)
    conns = connect_all(sender)
    ready.wait()
    try:
        while not state[3]:
            now = tuple(state[:3])
            refused = conns[now[0]].sendmail(sender.addr, [rcpt], msg)
            if refused:
                errors.put(str(refused))
            if now[2] and tuple(state[:3]) == now:
                with counts.get_lock():
                    counts[now[0] * slices + now[1]] += 1
    except Exception as e:  # noqa: BLE001 - reported by the parent
        errors.put(f"client {i}: {e!r}")
    finally:
        for smtp in conns:
            smtp.quit()


def alternating(senders: list[Account], rcpts: list[str], slice_s: float, slices: int,
                size: int) -> tuple[list[list[int]], list[list[float]]]:
    """Counts of messages per (port index, slice) and the counted time of each. The clients
    are processes, so Python's GIL does not pace them."""
    state = mp.Array("i", [0, 0, 0, 0], lock=False)
    counts = mp.Array("i", len(PORTS) * slices)
    times = [[0.0] * slices for _ in PORTS]
    ready = mp.Barrier(len(senders) + 1)
    errors: mp.Queue = mp.Queue()
    procs = [
        mp.Process(target=client_process,
                   args=(i, s, rcpts[i % len(rcpts)], size, state, counts, slices, ready, errors))
        for i, s in enumerate(senders)
    ]
    for pr in procs:
        pr.start()
    ready.wait(timeout=60)
    try:
        for n in range(slices):
            # the order rotates, so no port always goes first
            for k in range(len(PORTS)):
                p = (n + k) % len(PORTS)
                state[0], state[1], state[2] = p, n, 0
                time.sleep(SETTLE)
                start = time.monotonic()
                state[2] = 1
                time.sleep(slice_s)
                state[2] = 0
                times[p][n] = time.monotonic() - start
    finally:
        state[3] = 1
        for pr in procs:
            pr.join()
    if not errors.empty():
        raise SystemExit(f"sending failed: {errors.get()}")
    return [list(counts[p * slices:(p + 1) * slices]) for p in range(len(PORTS))], times


def batch_client(i: int, sender: Account, rcpt: str, size: int, state, per_round: int,
                 barrier, errors) -> None:
    """One client of the sustained phase: a connection to each port; at every round sends
    `per_round` messages on the port the parent chose (`state`: port index, stop)."""
    msg = message(sender.addr, rcpt, size)
    conns = []
    try:
        conns = connect_all(sender)
        while True:
            barrier.wait()
            if state[1]:
                break
            smtp = conns[state[0]]
            for _ in range(per_round):
                refused = smtp.sendmail(sender.addr, [rcpt], msg)
                if refused:
                    errors.put(str(refused))
            barrier.wait()
    except Exception as e:  # noqa: BLE001 - reported by the parent
        errors.put(f"client {i}: {e!r}")
        barrier.abort()
    finally:
        for smtp in conns:
            smtp.quit()


def sustained(senders: list[Account], rcpts: list[str], rounds: int, per_client: int,
              size: int) -> list[list[tuple[float, float]]]:
    """Per port, per round: (seconds until every client had its messages accepted, seconds
    until all of them were delivered into the mailboxes). Each round starts from an empty
    queue and empty mailboxes; the order of the ports rotates."""
    state = mp.Array("i", [0, 0], lock=False)
    barrier = mp.Barrier(len(senders) + 1)
    errors: mp.Queue = mp.Queue()
    procs = [
        mp.Process(target=batch_client,
                   args=(i, s, rcpts[i % len(rcpts)], size, state, per_client, barrier, errors))
        for i, s in enumerate(senders)
    ]
    for pr in procs:
        pr.start()
    times: list[list[tuple[float, float]]] = [[] for _ in PORTS]
    try:
        for n in range(rounds):
            for k in range(len(PORTS)):
                p = (n + k) % len(PORTS)
                for rcpt in rcpts:
                    empty_mailbox(rcpt)
                state[0] = p
                barrier.wait(timeout=60)
                start = time.monotonic()
                barrier.wait(timeout=600)
                accepted = time.monotonic() - start
                wait_delivered()
                times[p].append((accepted, time.monotonic() - start))
        state[1] = 1
        barrier.wait(timeout=60)
    except Exception:
        barrier.abort()
        raise
    finally:
        for pr in procs:
            pr.join(timeout=60)
    if not errors.empty():
        raise SystemExit(f"sending failed: {errors.get()}")
    return times


def ratio_summary(own: list[float], base: list[float]) -> str:
    """Rate ratio from the seconds the same batches took: of the totals, and the median and
    range of the per-round ratios."""
    pairs = sorted(b / o for o, b in zip(own, base))
    return (f"ratio {sum(base) / sum(own):.2f}; per round: median {pairs[len(pairs) // 2]:.2f}, "
            f"range {pairs[0]:.2f}-{pairs[-1]:.2f}")


def process_cpu(pid: int | str) -> float:
    """CPU seconds (user + system) a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def milter_cpu() -> float:
    return process_cpu(MILTER_PID.read_text().strip())


def machine_cpu() -> float:
    """CPU seconds every process of the machine has used (all but idle and iowait)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]
    return busy / os.sysconf("SC_CLK_TCK")


def cpu_per_message(sender: Account, rcpt: str, size: int, count: int,
                    port: int = SUBMISSION_PORT, milter=milter_cpu) -> tuple[float, float, float]:
    """CPU seconds per message of the milter and of the whole machine (Postfix, Dovecot, the
    milter, this client), and the wall time per SMTP transaction, messages sent one after
    another on one connection to `port`."""
    msg = message(sender.addr, rcpt, size)
    smtp = smtp_connect(port)
    smtp.login(sender.addr, sender.password)
    before, machine_before = milter(), machine_cpu()
    start = time.monotonic()
    for _ in range(count):
        smtp.sendmail(sender.addr, [rcpt], msg)
    elapsed = time.monotonic() - start
    wait_delivered()
    used, machine_used = milter() - before, machine_cpu() - machine_before
    smtp.quit()
    return used / count, machine_used / count, elapsed / count


def openssl_sign_ms() -> float | None:
    """Milliseconds per RSA-2048 signature of `openssl speed` on this machine."""
    out = subprocess.run(["openssl", "speed", "-mr", "-seconds", "2", "rsa2048"],
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("+F2:"):
            sign = float(line.split(":")[3])
            return 1000 / sign if sign > 1 else sign * 1000
    return None


def relay_up(domain: str | None = None) -> None:
    env = {**os.environ, "RELAY_BUILD": "0"}
    args = [str(REPO / "packaging/relay"), "up"] + (["--domain", domain] if domain else [])
    subprocess.run(args, check=True, capture_output=True, env=env)


def bench_relay(args, relay, remote: bool) -> float:
    """The throughput phases and the CPU per message on the running relay, to local accounts or
    (`remote`) to REMOTE_DOMAIN; returns the milter's CPU seconds per 10 kB message."""
    if not run(["postconf", "-Ph", SERVICE]).strip():
        raise SystemExit(f"{SERVICE} is empty: is the milter wired into master.cf?")
    noop = None
    try:
        text = CHATMAIL_INI.read_text()
        for key in ("max_user_send_per_minute", "max_user_send_burst_size"):
            # the key's line, set or not (chatmail-relay init writes every key)
            text, n = re.subn(rf"(?m)^{key}\s*=.*$", f"{key} = 100000000", text)
            if not n:
                text += f"\n{key} = 100000000\n"
        CHATMAIL_INI.write_text(text)
        run([str(REPO / "packaging/relay"), "restart", "milter"])
        noop = start_noop_milter(args.noop_insert_header)
        add_twin(TWIN_PORT, "", "nomilter")
        add_twin(NOOP_PORT, f"unix:{NOOP_SOCKET}", "noop")
        discard_remote_domain(remote)

        senders = [create_account(relay) for _ in range(args.clients)]
        if remote:
            rcpts = [f"bench{i}@{REMOTE_DOMAIN}" for i in range(args.clients)]
        else:
            rcpts = [create_account(relay).addr for _ in range(args.clients)]
        wait_delivered()
        sustained(senders, rcpts, 1, 20, 10_000)  # warm-up
        batches = sustained(senders, rcpts, args.rounds, args.per_client, 10_000)
        total = args.clients * args.per_client
        base = len(PORTS) - 1
        print(f"Postfix submission, {args.clients} parallel clients, 10 kB encrypted messages, "
              f"sustained: {args.rounds} rounds of {total} messages per service, each from an "
              "empty queue until all are delivered (local: into the mailboxes; remote: to "
              "the discard transport), services taking turns:")
        for p, name in enumerate(NAMES):
            print(f"  {name}")
            for what, k in (("delivered", 1), ("accepted", 0)):
                own = [t[k] for t in batches[p]]
                line = f"    {what:10} {total * len(own) / sum(own):7.1f} msg/s"
                if p != base:
                    line += "   " + ratio_summary(own, [t[k] for t in batches[base]])
                print(line)
        print("  (targets: delivered, chatmail-milter >= 0.9 of no milter; accepted, within 0.05 "
              "of the no-op milter, which neither checks nor signs; on a relay with a domain, "
              "mail that leaves it is signed, mail between its own accounts is not)")

        alternating(senders, rcpts, 0.5, 1, 10_000)  # warm-up
        counts, times = alternating(senders, rcpts, args.slice, args.slices, 10_000)
        rates = [sum(c) / sum(t) for c, t in zip(counts, times)]
        print(f"Burst: messages accepted while the queue grows, {args.slices} turns of "
              f"{args.slice:g} s each per service, taking turns:")
        for p, name in enumerate(NAMES):
            line = f"  {name:26} {rates[p]:7.1f} msg/s   ({sum(counts[p])} messages)"
            if p != base:
                pairs = sorted((counts[p][n] / times[p][n]) / (counts[base][n] / times[base][n])
                               for n in range(args.slices) if counts[base][n])
                line += (f"   ratio {rates[p] / rates[base]:.2f}; per turn: median "
                         f"{pairs[len(pairs) // 2]:.2f}, range {pairs[0]:.2f}-{pairs[-1]:.2f}")
            print(line)
        print("  (the queue grows meanwhile; the sustained figure above is the one for the target)")
        for rcpt in rcpts:
            empty_mailbox(rcpt)

        print("CPU time per 10 kB message, sent one after another on one connection until "
              "delivered: the milter's own, and the whole machine's (Postfix, Dovecot, milter, client):")
        services = [("chatmail-milter", SUBMISSION_PORT, milter_cpu),
                    ("no-op milter", NOOP_PORT, lambda: process_cpu(noop.pid)),
                    ("no milter", TWIN_PORT, lambda: 0.0)]
        for label, port, cpu_of in services:
            cpu, machine, wall = cpu_per_message(senders[0], rcpts[0], 10_000, 300, port, cpu_of)
            print(f"  {label:16} milter {cpu * 1000:6.2f} ms   machine {machine * 1000:6.2f} ms"
                  f"   ({wall * 1000:.1f} ms per SMTP transaction)")
            empty_mailbox(rcpts[0])
        print("chatmail-milter CPU time per message, by size:")
        small = 0.0
        for size, count, label in [(10_000, 300, "10 kB"), (1_000_000, 30, "1 MB"), (30_000_000, 4, "30 MB")]:
            cpu, _, wall = cpu_per_message(senders[0], rcpts[0], size, count)
            small = small or cpu
            print(f"  {label:>6}: {cpu * 1000:8.2f} ms CPU   ({count} messages, {wall * 1000:.0f} ms per SMTP transaction)")
            empty_mailbox(rcpts[0])
        return small
    finally:
        remove_twins()
        discard_remote_domain(False)
        if noop is not None:
            noop.kill()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--slice", type=float, default=1.0, help="seconds per turn")
    p.add_argument("--slices", type=int, default=15, help="turns of each service")
    p.add_argument("--rounds", type=int, default=5, help="sustained rounds of each service")
    p.add_argument("--per-client", type=int, default=200,
                   help="messages each client sends in a sustained round")
    p.add_argument("--noop-insert-header", type=int, default=0, metavar="BYTES",
                   help="the no-op milter adds a constant header of BYTES to every message")
    p.add_argument("--domains", default="127.0.0.1,_chat.localhost",
                   help="relays to measure, one after the other (comma-separated mail_domain values)")
    p.add_argument("--legs", default="local,remote",
                   help="recipients, one leg after the other on each relay: local accounts, "
                        "and (on a relay with a domain: that mail is signed) a remote domain")
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    saved = CHATMAIL_INI.read_bytes()
    cpu = {}
    try:
        for domain in args.domains.split(","):
            named = not re.fullmatch(r"[0-9.]+|\[.*\]", domain)
            for leg in args.legs.split(","):
                if leg == "remote" and not named:
                    continue  # nothing is signed there: the same as the local leg
                print(f"=== mail_domain = {domain}, {leg} recipients")
                relay_up(domain)
                cpu[f"{domain}, {leg}"] = bench_relay(args, read_config(), leg == "remote")
                CHATMAIL_INI.write_bytes(saved)
    finally:
        CHATMAIL_INI.write_bytes(saved)
        relay_up()
    print("milter CPU per 10 kB message:")
    for leg, seconds in cpu.items():
        print(f"  {leg:30} {seconds * 1000:6.2f} ms")
    time.sleep(5)  # the relay's restart settles first
    ssl = openssl_sign_ms()
    signed = [leg for leg in cpu if leg.endswith(", remote")]
    for leg in signed:
        local = leg.removesuffix(", remote") + ", local"
        if local in cpu:
            print(f"  difference (DKIM signing on the real stack): "
                  f"{(cpu[leg] - cpu[local]) * 1000:.2f} ms")
    if ssl is not None:
        print(f"  openssl speed rsa2048, one signature: {ssl:.2f} ms")


if __name__ == "__main__":
    main()
