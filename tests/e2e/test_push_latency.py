"""Benchmark (not a timed test): latency from the end of SMTP DATA to the gateway's POST.

Sends N encrypted messages one after another (from a few senders, to stay within the milter's
rate limit) to an account that has a device token, and measures for each message, from the moment the submission server accepted DATA:
* delivery: the message file appears in the recipient's Maildir (the floor: no push involved);
* push: the gateway stand-in receives the POST for the recipient's token.
Prints p50/p99 of both, measured in the same run.

Run: `flock /work/relay.lock env PUSH_BENCH=1 .venv/bin/pytest -s tests/e2e/test_push_latency.py`
(PUSH_BENCH_N sets the number of messages, default 100). Skipped without PUSH_BENCH.
"""

from __future__ import annotations

import os
import statistics
import time

import pytest

from relaytest import imap_connect, wait_for
from test_push import add_tokens, delivered_count, gateway, send, token  # noqa: F401

pytestmark = pytest.mark.skipif(not os.environ.get("PUSH_BENCH"), reason="benchmark: set PUSH_BENCH=1")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


# Messages per sender: stays within the milter's rate limit burst (max_user_send_burst_size).
PER_SENDER = 8


def existing(account):
    imap = imap_connect()
    imap.login(account.addr, account.password)
    imap.logout()
    return account


def test_push_latency(account, new_account, gateway, relay):  # noqa: F811
    n = int(os.environ.get("PUSH_BENCH_N", "100"))
    rcpt = account
    senders = [existing(new_account()) for _ in range((n + PER_SENDER - 1) // PER_SENDER)]
    tok = token("bench")
    add_tokens(rcpt, tok)
    delivery, push = [], []
    for i in range(n):
        before = delivered_count(relay, rcpt.addr)
        accepted = send(senders[i // PER_SENDER], [rcpt.addr])
        wait_for(lambda: delivered_count(relay, rcpt.addr) > before, timeout=30, interval=0.001, what="delivery")
        delivered = time.monotonic()
        posted = gateway.wait_posts(tok, i + 1, timeout=30)[i]
        delivery.append(delivered - accepted)
        push.append(posted - accepted)
    ms = lambda v: f"{v * 1000:7.1f} ms"  # noqa: E731
    print(f"\npush latency over {n} messages, from SMTP DATA accepted (submission, port 465):")
    print(f"  Maildir arrival (floor)  p50 {ms(percentile(delivery, 0.5))}  p99 {ms(percentile(delivery, 0.99))}")
    print(f"  gateway POST             p50 {ms(percentile(push, 0.5))}  p99 {ms(percentile(push, 0.99))}")
    print(f"  POST after arrival       mean {ms(statistics.mean(p - d for p, d in zip(push, delivery)))}")
