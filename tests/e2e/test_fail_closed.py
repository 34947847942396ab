"""No cleartext reaches an enforcing mailbox by any route, and no backscatter: through the real
Postfix on a relay with a domain name (`_chat.localhost`, the `named_relay` fixture of
test_dkim.py), from a domain-literal sender on port 25 (so DKIM does not apply).

- every spelling of an enforcing account's address that RFC 5321 and Postfix accept (quoted
  local parts, a trailing dot, `%` and `!` routing, source routes, case, `+detail`, ...) is
  refused, at RCPT or with 523, and nothing reaches the mailbox; the same spellings of an
  account without `enforceE2EEincoming` deliver there, so they really name that mailbox;
- cleartext to a local address without an account gets `550 5.1.1` at RCPT, and Postfix
  queues no bounce;
- a report that is not exactly a bounce (a sender that is not null, an extra part) is refused;
- a Secure-Join request whose structure has two readings is refused both ways.
"""

from __future__ import annotations

import json
import secrets
import smtplib
import subprocess
import time

import pytest
from relaytest import SMTP_PORT, random_localpart, smtp_connect, wait_for
from test_dkim import DOMAIN, named_account, named_relay  # noqa: F401 - fixtures
from test_milter import (
    ENCRYPTION_NEEDED,
    deliver_port25,
    headers,
    inbox,
    plain_message,
    quit_quietly,
    securejoin_request,
    smtp_code,
    submit,
)

pytestmark = pytest.mark.timeout(300)

SENDER = "stranger@[127.0.0.2]"


def spellings(local: str) -> list[str]:
    """RCPT TO spellings that Postfix resolves to `local@DOMAIN` (or, for the last ones, that
    it accepts at all): RFC 5321 quoted strings and source routes, Postfix's routing
    operators (allow_percent_hack, swap_bangpath, resolve_dequoted_address), case, the
    recipient delimiter."""
    d = DOMAIN
    return [
        f"{local}@{d}",
        f"{local.upper()}@{d.upper()}",
        f"{local}+tag@{d}",
        f'"{local}"@{d}',
        f'"{local.upper()}"@{d}',
        f'"{local}+tag"@{d}',
        f'"\\{local[0]}{local[1:]}"@{d}',
        f"{local}@{d}.",
        f"{local}%{d}@{d}",
        f"{local}%{d}%{d}@{d}",
        f"{d}!{local}@{d}",
        f'"{local}%{d}"@{d}',
        f'"{local}@{d}"@{d}',
        f'"{d}!{local}"@{d}',
        f"{local}@{d}@{d}",
        f"@relay.example:{local}@{d}",
        f"@a.example,@b.example:{local}@{d}",
        f"{local}@[127.0.0.1]",
        local,
    ]


def rcpt_then_data(rcpt: str, msg: str) -> tuple[int, bytes]:
    """One port-25 transaction: the RCPT reply if it refused, else the DATA reply."""
    smtp = smtp_connect(SMTP_PORT)
    try:
        smtp.ehlo("stranger.example")
        code, reply = smtp.mail(SENDER)
        assert code == 250, reply
        code, reply = smtp.rcpt(f"<{rcpt}>")
        if code >= 400:
            return code, reply
        return smtp.data(msg.encode())
    finally:
        quit_quietly(smtp)


def cleartext(to: str) -> str:
    return plain_message(SENDER, to, f"cleartext {secrets.token_hex(4)}")


def bounces_queued() -> list[str]:
    out = subprocess.run(["postqueue", "-j"], capture_output=True, text=True, check=True).stdout
    return [e["queue_id"] for e in map(json.loads, out.splitlines()) if e.get("sender") == ""]


def test_no_spelling_brings_cleartext_to_an_enforcing_mailbox(named_relay, named_account):  # noqa: F811
    alice = named_account()
    local = alice.addr.split("@")[0]
    outcomes = {}
    for rcpt in spellings(local):
        code, reply = rcpt_then_data(rcpt, cleartext(alice.addr))
        outcomes[rcpt] = (code, reply)
        assert code in (523, 550, 501, 553), f"{rcpt}: {code} {reply!r}"
    time.sleep(2)
    assert inbox(alice) == [], outcomes
    # The plain spelling is refused for its content, not its address.
    assert outcomes[alice.addr] == (523, b"5.7.1 " + ENCRYPTION_NEEDED)


def test_the_same_spellings_reach_a_mailbox_that_takes_cleartext(named_relay, named_account):  # noqa: F811
    carol = named_account()
    (named_relay.mailbox_dir(carol.addr) / "enforceE2EEincoming").unlink()
    local = carol.addr.split("@")[0]
    delivered = 0
    for rcpt in spellings(local):
        code, reply = rcpt_then_data(rcpt, cleartext(carol.addr))
        if code == 250:
            delivered += 1
        else:
            # What is not delivered is refused as no mailbox of ours, never for its content.
            assert code in (550, 501, 553) and b"Encryption" not in reply, f"{rcpt}: {code} {reply!r}"
    wait_for(lambda: len(inbox(carol)) == delivered, timeout=20, what=f"{delivered} deliveries")
    assert delivered >= 12, delivered


def test_unknown_local_recipient_is_refused_at_rcpt_without_bounce(named_relay):  # noqa: F811
    before = set(bounces_queued())
    for rcpt in [f"{random_localpart(9)}@{DOMAIN}", f"postmaster@{DOMAIN}", f"{random_localpart(9)}@{DOMAIN}."]:
        code, reply = rcpt_then_data(rcpt, cleartext(rcpt))
        assert (code, reply[:6]) == (550, b"5.1.1 "), f"{rcpt}: {code} {reply!r}"
        assert b"User unknown" in reply
    time.sleep(2)
    assert set(bounces_queued()) - before == set()


def dsn_body(extra_part: str = "") -> str:
    return (
        'Content-Type: multipart/report; report-type=delivery-status; boundary="r1"\r\n\r\n'
        "--r1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--r1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
        "Final-Recipient: rfc822; x@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        f"{extra_part}--r1--\r\n"
    )


def test_fake_bounces_are_refused(named_relay, named_account):  # noqa: F811
    alice = named_account()
    md = "MAILER-DAEMON@[127.0.0.2]"
    head = headers(md, alice.addr, "Undelivered Mail", {"Auto-Submitted": "auto-replied"})
    advert = "--r1\r\nContent-Type: text/html\r\n\r\n<p>Buy now</p>\r\n"
    for sender, msg in [
        (md, head + dsn_body()),  # the sender is not null
        ("", head + dsn_body(advert)),  # an extra part
    ]:
        with pytest.raises(smtplib.SMTPDataError) as e:
            deliver_port25(sender, [alice.addr], msg)
        assert e.value.smtp_code == 523, e.value
    # A real one passes.
    assert deliver_port25("", [alice.addr], head + dsn_body()) == {}
    wait_for(lambda: len(inbox(alice)) == 1, timeout=20, what="the bounce")


def test_ambiguous_securejoin_is_refused_both_ways(named_relay, named_account):  # noqa: F811
    alice, bob = named_account(), named_account()
    twice = lambda m: m.replace(  # noqa: E731
        "Content-Type: multipart/mixed;", "Content-Type: text/plain\r\nContent-Type: multipart/mixed;", 1
    )
    inbound = twice(securejoin_request(SENDER, alice.addr))
    with pytest.raises(smtplib.SMTPDataError) as e:
        deliver_port25(SENDER, [alice.addr], inbound)
    assert e.value.smtp_code == 523
    outbound = twice(securejoin_request(bob.addr, alice.addr))
    with pytest.raises(smtplib.SMTPException) as e:
        submit(bob, [alice.addr], outbound)
    assert smtp_code(e.value) == 523
    # The unambiguous request passes both ways.
    assert deliver_port25(SENDER, [alice.addr], securejoin_request(SENDER, alice.addr)) == {}
    assert submit(bob, [alice.addr], securejoin_request(bob.addr, alice.addr)) == {}
    wait_for(lambda: len(inbox(alice)) == 2, timeout=20, what="two Secure-Join requests")
