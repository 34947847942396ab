#!/usr/bin/env python3
"""Where a Delta Chat message's time goes, core to core through the local relay.

Run as root with the local relay up (`packaging/relay up`) and the e2e venv:

    .venv/bin/python tests/bench/dc_legs.py [--legs 40] [--pause 0.2]

Two real Delta Chat cores (deltachat-rpc-server) on the relay, configured from dclogin:
links, send each other messages one at a time, taking turns (the reference suite's
dc_ping_pong is two such legs). For each message, from the sender's `send_text`:
1. the sender's core reports it sent (`MsgDelivered`: the relay accepted it over SMTP);
2. it is in the recipient's maildir (Dovecot's file name carries the delivery time; same
   machine, same clock);
3. the recipient's core reports it (`IncomingMsg`), which it learns from its IMAP IDLE
   connection.
Prints p50 and p90 of each over `--legs` messages. `--pause` is the time between messages:
with more than Dovecot's `imap_hibernate_timeout` (30 s), the recipient's IDLE connection has
been handed to imap-hibernate, which wakes it another way (see README).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from conftest import rpc_server_path  # noqa: E402
from deltachat_rpc_client import DeltaChat, EventType, Rpc  # noqa: E402
from relaytest import Account, random_localpart, random_password, read_config  # noqa: E402

DELIVERED_AT = re.compile(r"^(\d+)\.M(\d+)P")


def delivered(maildir: Path) -> dict[str, float]:
    """File name → the time Dovecot delivered it."""
    times = {}
    for sub in ("new", "cur"):
        if (maildir / sub).is_dir():
            for f in (maildir / sub).iterdir():
                if m := DELIVERED_AT.match(f.name):
                    times[f.name] = int(m[1]) + int(m[2]) / 1e6
    return times


def percentiles(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    return f"p50 {statistics.median(ms):7.1f} ms  p90 {ms[int(len(ms) * 0.9)]:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--legs", type=int, default=40, help="messages, alternating direction")
    parser.add_argument("--pause", type=float, default=0.2, help="seconds between messages")
    args = parser.parse_args()
    relay = read_config()
    with tempfile.TemporaryDirectory() as tmp, \
            Rpc(accounts_dir=f"{tmp}/accounts", rpc_server_path=rpc_server_path()) as rpc:
        cores = []
        for _ in range(2):
            account = Account(f"{random_localpart(relay.username_max_length)}@{relay.mail_domain}",
                              random_password(relay.password_min_length + 3))
            core = DeltaChat(rpc).add_account()
            core.add_transport_from_qr(account.dclogin())
            core.maildir = Path(relay.mailboxes_dir) / account.addr
            cores.append(core)
        for core in cores:
            core.bring_online()
        a, b = cores
        chats = {id(a): a.create_chat(b), id(b): b.create_chat(a)}
        sent, stored, received = [], [], []
        for leg in range(args.legs):
            sender, recipient = (a, b) if leg % 2 == 0 else (b, a)
            before = delivered(recipient.maildir)
            start = time.time()
            chats[id(sender)].send_text(f"leg {leg}")
            sender.wait_for_event(EventType.MSG_DELIVERED)
            sent.append(time.time() - start)
            recipient.wait_for_incoming_msg_event()
            received.append(time.time() - start)
            new = [t for name, t in delivered(recipient.maildir).items() if name not in before]
            # the core may have moved or deleted it already: then no maildir time this leg
            if new:
                stored.append(min(new) - start)
            time.sleep(args.pause)
        print(f"{args.legs} messages, {args.pause} s apart, core to core through the relay on"
              f" {relay.mail_domain}:")
        print(f"  sender's core: sent (MsgDelivered)      {percentiles(sent)}")
        print(f"  in the recipient's maildir              {percentiles(stored)}"
              f"  ({len(stored)} of {args.legs} seen)")
        print(f"  recipient's core: IncomingMsg           {percentiles(received)}")


if __name__ == "__main__":
    main()
