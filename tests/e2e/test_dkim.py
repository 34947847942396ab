"""DKIM through the real Postfix, on a relay with a domain name (`_chat.localhost`).

The module switches the local relay to `packaging/relay up --domain _chat.localhost` (the
milter sidecar creates the DKIM key), points the milter's `dns_resolver` at a UDP socket that
never answers, and always switches back to the relay's previous configuration afterwards.

- outbound: a submitted message is signed (log line `DKIM-Signature field added`), and the
  queued copy carries a signature over `Subject: [...]` that verifies with the relay's key;
- bounces: Postfix's bounce of a message to an unknown local user, queued for the remote
  sender, carries a signature that verifies with the relay's key (non_smtpd_milters);
- inbound (port 25): mail From our own domain signed with our key is delivered; unsigned
  mail gets `554 5.7.1 No DKIM signature found` (the reference's reply), mail whose signature
  does not verify `550 5.7.1 No valid DKIM signature found`; mail signed for a domain whose
  key cannot be looked up (dead DNS) gets `451 4.7.5`.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import smtplib
import socket
import subprocess
import time
from pathlib import Path

import dkim
import pytest
from relaytest import (
    CHATMAIL_INI,
    account_on_disk,
    create_account,
    local_delivery_deferred,
    queued_for,
    random_localpart,
    read_config,
    wait_for,
    take_queued_message,
)
from test_milter import (
    deliver_port25,
    encrypted_message,
    inbox,
    log_offset,
    milter_log_since,
    submit,
)

REPO = Path(__file__).resolve().parents[2]
RELAY = REPO / "packaging" / "relay"
DOMAIN = "_chat.localhost"
DKIM_REJECTED = b"5.7.1 No valid DKIM signature found"
DKIM_MISSING = b"5.7.1 No DKIM signature found"

pytestmark = pytest.mark.timeout(300)


def autocrypt(addr: str) -> str:
    """A long folded Autocrypt header value, as Delta Chat sends it."""
    keydata = base64.b64encode(os.urandom(600)).decode()
    lines = [keydata[i : i + 76] for i in range(0, len(keydata), 76)]
    return f"addr={addr}; prefer-encrypt=mutual; keydata=\r\n " + "\r\n ".join(lines)


def relay_cmd(*args: str) -> None:
    """packaging/relay with what tests/run has just built."""
    subprocess.run([str(RELAY), *args], check=True, env={**os.environ, "RELAY_BUILD": "0"})


@pytest.fixture(scope="module")
def named_relay(relay):
    saved = CHATMAIL_INI.read_bytes()
    dead_dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead_dns.bind(("127.0.0.1", 0))
    try:
        relay_cmd("up", "--domain", DOMAIN)
        with CHATMAIL_INI.open("a") as f:
            f.write(f"dns_resolver = 127.0.0.1:{dead_dns.getsockname()[1]}\n")
        relay_cmd("restart", "milter")
        yield read_config()
    finally:
        dead_dns.close()
        CHATMAIL_INI.write_bytes(saved)
        relay_cmd("up")


@pytest.fixture
def named_account(named_relay):
    return lambda: create_account(named_relay)


def dkim_key(config) -> tuple[bytes, bytes]:
    """(selector, private key PEM) of the relay."""
    path = Path(config.params.get("dkim_key", "/etc/dkimkeys/opendkim.private"))
    selector = config.params.get("dkim_selector", "opendkim")
    return selector.encode(), path.read_bytes()


def sign(msg: str, domain: str, selector: bytes, key: bytes) -> str:
    sig = dkim.sign(
        msg.encode(),
        selector,
        domain.encode(),
        key,
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id", b"content-type", b"autocrypt"],
    )
    return sig.decode() + msg


def public_record(key: bytes) -> bytes:
    public = subprocess.run(
        ["openssl", "pkey", "-pubout", "-outform", "DER"], input=key, capture_output=True, check=True
    ).stdout
    return b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def test_dkim_key_and_record_exist(named_relay):
    selector, key = dkim_key(named_relay)
    txt = (CHATMAIL_INI.parent / "dkim.txt").read_text()
    assert txt.startswith(f"{selector.decode()}._domainkey.{DOMAIN}. TXT \"v=DKIM1; k=rsa; p=")
    assert b"PRIVATE KEY" in key


def test_outbound_is_signed_over_the_cleaned_headers(named_relay, named_account):
    alice = named_account()
    selector, key = dkim_key(named_relay)
    rcpt = "nobody@[127.0.0.2]"  # no SMTP server there: the message stays in the queue
    offset = log_offset()
    msg = encrypted_message(
        alice.addr, rcpt, subject="A secret subject", extra={"Autocrypt": autocrypt(alice.addr)}
    )
    assert submit(alice, [rcpt], msg) == {}

    content = take_queued_message(alice.addr, "-bhq")
    assert "DKIM-Signature field added" in milter_log_since(offset)
    raw = content.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    assert head.startswith("DKIM-Signature:"), head
    assert "Subject: [...]" in head and "secret" not in head
    signed_headers = re.search(r"[;\s]h=([^;]*)", head).group(1).lower()
    assert "autocrypt" in signed_headers and "subject" in signed_headers, signed_headers
    dns = lambda name, timeout=5: public_record(key)  # noqa: E731
    assert dkim.verify(raw, dnsfunc=dns), head
    # From is oversigned (named twice in h=): a From added after signing, above or below
    # ours, breaks the signature for any verifier.
    assert re.sub(r"\s", "", signed_headers).split(":").count("from") == 2, signed_headers
    for added in (
        raw.replace(b"\r\nFrom: ", b"\r\nFrom: <mallory@evil.example>\r\nFrom: ", 1),
        raw.replace(b"\r\n\r\n", b"\r\nFrom: <mallory@evil.example>\r\n\r\n", 1),
    ):
        assert added != raw
        assert not dkim.verify(added, dnsfunc=dns)


def test_bounces_are_signed(named_relay):
    """Other relays refuse unsigned mail, bounces included: Postfix passes its bounces to the
    milter's internal listener, which signs them."""
    _, key = dkim_key(named_relay)
    # A domain-literal sender needs no DKIM on port 25; nothing listens on 127.0.0.2, so the
    # bounce to it stays in the queue. Unknown recipients are refused at RCPT, so the bounce
    # comes from a mailbox that vanished while the message waited for delivery.
    sender = f"{random_localpart(9)}@[127.0.0.2]"
    gone = account_on_disk(named_relay)
    offset = log_offset()
    with local_delivery_deferred():
        assert deliver_port25(sender, [gone.addr], encrypted_message(sender, gone.addr)) == {}
        wait_for(lambda: queued_for(gone.addr), timeout=20, what="the message in the queue")
        shutil.rmtree(named_relay.mailbox_dir(gone.addr))

    content = take_queued_message("MAILER-DAEMON", "-bhq", timeout=60, recipient=sender)
    raw = content.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    head = raw.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
    assert head.startswith("DKIM-Signature:"), head
    assert f"d={DOMAIN}" in head and f"MAILER-DAEMON@{DOMAIN}" in head, head
    assert dkim.verify(raw, dnsfunc=lambda name, timeout=5: public_record(key)), head
    assert "Internal: Filtering mailer-daemon message" in milter_log_since(offset)


def test_inbound_signed_by_our_key_is_delivered(named_relay, named_account):
    alice, bob = named_account(), named_account()
    selector, key = dkim_key(named_relay)
    msg = encrypted_message(bob.addr, alice.addr, extra={"Autocrypt": autocrypt(bob.addr)})
    msg = sign(msg, DOMAIN, selector, key)
    assert deliver_port25(bob.addr, [alice.addr], msg) == {}
    wait_for(lambda: inbox(alice), timeout=20, what="delivery")


def test_inbound_unsigned_is_rejected(named_relay, named_account):
    alice, bob = named_account(), named_account()
    with pytest.raises(smtplib.SMTPDataError) as e:
        deliver_port25(bob.addr, [alice.addr], encrypted_message(bob.addr, alice.addr))
    assert e.value.smtp_code == 554
    assert e.value.smtp_error == DKIM_MISSING
    time.sleep(1)
    assert inbox(alice) == []


def test_inbound_with_a_broken_signature_is_rejected(named_relay, named_account):
    alice, bob = named_account(), named_account()
    selector, key = dkim_key(named_relay)
    msg = sign(encrypted_message(bob.addr, alice.addr), DOMAIN, selector, key)
    tampered = msg.replace("Subject:", "Subject: re:", 1)
    assert tampered != msg
    with pytest.raises(smtplib.SMTPDataError) as e:
        deliver_port25(bob.addr, [alice.addr], tampered)
    assert e.value.smtp_code == 550
    assert e.value.smtp_error == DKIM_REJECTED
    time.sleep(1)
    assert inbox(alice) == []


def test_inbound_with_dead_dns_is_tempfailed(named_relay, named_account):
    alice = named_account()
    selector, key = dkim_key(named_relay)
    sender = "friend@foreign.test"
    msg = sign(encrypted_message(sender, alice.addr), "foreign.test", selector, key)
    with pytest.raises(smtplib.SMTPDataError) as e:
        deliver_port25(sender, [alice.addr], msg)
    assert e.value.smtp_code == 451, e.value
    assert e.value.smtp_error.startswith(b"4.7.5 DKIM signature cannot be checked now")
    assert inbox(alice) == []
