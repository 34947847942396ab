"""chatmail-milter inside the real Postfix: only encrypted mail in and out.

Submissions (587/465) go through the milter's outbound listener, port 25 through the inbound
one. The encrypted payloads here are structurally valid OpenPGP (SKESK + SEIPD packets in
ASCII armor around random bytes): the milter checks structure, not cryptography; real
clients are covered by test_deltachat.py.
"""

from __future__ import annotations

import base64
import imaplib
import os
import re
import smtplib
import subprocess
import time
from pathlib import Path

import pytest
from relaytest import (
    LOG_DIR,
    SMTP_PORT,
    SMTPS_PORT,
    SUBMISSION_PORT,
    imap_connect,
    smtp_connect,
    wait_for,
    take_queued_message,
)

REPO = Path(__file__).resolve().parents[2]
MILTER_LOG = LOG_DIR / "milter.log"
MILTER_PID = Path("/run/chatmail-relay/milter.pid")
ENCRYPTION_NEEDED = b"Encryption Needed: Invalid Unencrypted Mail"
REMOTE = "friend@example.net"


# ---------------------------------------------------------------- messages


def pgp_armor(size: int = 300) -> str:
    skesk = bytes([0xC3, 13, 4, 9, 3, 8]) + os.urandom(8) + bytes([96])
    body = bytes([1]) + os.urandom(size)
    seipd = bytes([0xD2, 255]) + len(body).to_bytes(4, "big") + body
    b64 = base64.b64encode(skesk + seipd).decode()
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return "-----BEGIN PGP MESSAGE-----\r\n\r\n" + "\r\n".join(lines) + "\r\n-----END PGP MESSAGE-----\r\n"


def headers(sender: str, to: str, subject: str, extra: dict[str, str] | None = None) -> str:
    h = (
        f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
        f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
        f"Message-ID: <{os.urandom(8).hex()}@test>\r\nMIME-Version: 1.0\r\n"
    )
    for name, value in (extra or {}).items():
        h += f"{name}: {value}\r\n"
    return h


def encrypted_message(sender: str, to: str, subject: str = "[...]", extra=None, size=300) -> str:
    return (
        headers(sender, to, subject, extra)
        + 'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="b1"\r\n'
        "\r\n--b1\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n"
        '\r\n--b1\r\nContent-Type: application/octet-stream; name="encrypted.asc"\r\n\r\n'
        + pgp_armor(size)
        + "\r\n--b1--\r\n"
    )


def plain_message(sender: str, to: str, text: str = "hello in cleartext") -> str:
    return headers(sender, to, "Hello") + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text + "\r\n"


def mixed(sender: str, to: str, subject: str, extra: dict[str, str], parts: list[tuple[str, str]]) -> str:
    m = headers(sender, to, subject, extra) + 'Content-Type: multipart/mixed; boundary="m1"\r\n\r\n'
    for ctype, body in parts:
        m += f"--m1\r\nContent-Type: {ctype}\r\n\r\n{body}\r\n"
    return m + "--m1--\r\n"


def autocrypt_setup_message(addr: str, with_header: bool) -> str:
    return mixed(
        addr,
        addr,
        "Autocrypt Setup Message",
        {"Autocrypt-Setup-Message": "v1"} if with_header else {},
        [
            ("text/plain; charset=utf-8", "This is the Autocrypt Setup Message."),
            ("application/autocrypt-setup", "-----BEGIN PGP MESSAGE-----\r\nPassphrase-Format: numeric9x4\r\n\r\nwy4ECQMI\r\n-----END PGP MESSAGE-----"),
        ],
    )


def securejoin_request(sender: str, to: str) -> str:
    return mixed(sender, to, "Message from someone", {"Secure-Join": "vc-request"}, [("text/plain", "Secure-Join: vc-request")])


# ---------------------------------------------------------------- SMTP and IMAP


def login(acc) -> None:
    imap = imap_connect()
    imap.login(acc.addr, acc.password)
    imap.logout()


def submit(acc, rcpts: list[str], msg: str, port: int = SUBMISSION_PORT) -> dict:
    smtp = smtp_connect(port)
    try:
        smtp.login(acc.addr, acc.password)
        return smtp.sendmail(acc.addr, rcpts, msg.encode())
    finally:
        quit_quietly(smtp)


def deliver_port25(sender: str, rcpts: list[str], msg: str) -> dict:
    smtp = smtp_connect(SMTP_PORT)
    try:
        return smtp.sendmail(sender, rcpts, msg.encode())
    finally:
        quit_quietly(smtp)


def smtp_code(exc: smtplib.SMTPException) -> int:
    """The reply code of a refusal at MAIL, RCPT or DATA."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return max(code for code, _ in exc.recipients.values())
    return exc.smtp_code


def quit_quietly(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        pass


def inbox(acc) -> list[bytes]:
    imap = imap_connect()
    try:
        imap.login(acc.addr, acc.password)
        imap.select("INBOX", readonly=True)
        _, data = imap.search(None, "ALL")
        out = []
        for num in data[0].split():
            _, msg = imap.fetch(num, "(RFC822)")
            out.append(msg[0][1])
        return out
    finally:
        try:
            imap.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def wait_for_mail(acc, n: int = 1, timeout: float = 20) -> list[bytes]:
    return wait_for(lambda: (m := inbox(acc)) and len(m) >= n and m, timeout=timeout, what=f"{n} message(s) for {acc.addr}")


def milter_log_since(offset: int) -> str:
    with MILTER_LOG.open("rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", "replace")


def log_offset() -> int:
    return MILTER_LOG.stat().st_size


def header_block(raw: bytes) -> str:
    return raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")


@pytest.fixture
def alice(new_account):
    acc = new_account()
    login(acc)
    return acc


@pytest.fixture
def bob(new_account):
    acc = new_account()
    login(acc)
    return acc


# ---------------------------------------------------------------- outbound


@pytest.mark.parametrize("port", [SUBMISSION_PORT, SMTPS_PORT])
def test_cleartext_submission_gets_523(alice, bob, port):
    with pytest.raises(smtplib.SMTPDataError) as e:
        submit(alice, [bob.addr], plain_message(alice.addr, bob.addr), port)
    assert e.value.smtp_code == 523
    assert e.value.smtp_error == b"5.7.1 " + ENCRYPTION_NEEDED
    time.sleep(1)
    assert inbox(bob) == []


@pytest.mark.parametrize("port", [SUBMISSION_PORT, SMTPS_PORT])
def test_encrypted_submission_is_delivered(alice, bob, port):
    offset = log_offset()
    assert submit(alice, [bob.addr], encrypted_message(alice.addr, bob.addr), port) == {}
    [raw] = wait_for_mail(bob)
    assert b"multipart/encrypted" in raw
    assert "Outgoing: Filtering encrypted mail." in milter_log_since(offset)


def test_forged_from_is_refused(alice, bob):
    msg = encrypted_message(bob.addr, alice.addr)
    with pytest.raises(smtplib.SMTPDataError) as e:
        submit(alice, [bob.addr], msg)
    assert e.value.smtp_code == 550
    assert b"Invalid FROM" in e.value.smtp_error


def test_burst_over_rate_limit_gets_450(relay, alice, bob):
    """The first `burst` messages pass; then 450 at RCPT, as the reference answers (its
    before-queue filter is asked at the first RCPT). The bucket refills at per_minute/60
    messages a second, so on a slow machine a few more may pass first."""
    burst = relay.int_param("max_user_send_burst_size", 10)
    per_second = relay.int_param("max_user_send_per_minute", 60) / 60
    smtp = smtp_connect(SUBMISSION_PORT)
    sent = 0
    start = time.monotonic()
    try:
        smtp.login(alice.addr, alice.password)
        with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
            for _ in range(burst + 100):
                smtp.sendmail(alice.addr, [bob.addr], encrypted_message(alice.addr, bob.addr).encode())
                sent += 1
    finally:
        quit_quietly(smtp)
    elapsed = time.monotonic() - start
    code, text = e.value.recipients[bob.addr]
    assert code == 450
    assert re.fullmatch(rb"4\.7\.1 Too much mail from <%s>, rate limited for [12] s"
                        % re.escape(alice.addr.encode()), text), text
    assert burst <= sent <= burst + int(elapsed * per_second) + 1, (sent, elapsed)


def test_securejoin_request_passes_submission(alice, bob):
    assert submit(alice, [bob.addr], securejoin_request(alice.addr, bob.addr)) == {}
    wait_for_mail(bob)


def test_autocrypt_setup_message_on_the_real_stack(alice, bob):
    """Postfix rewrites the Subject (header_checks) before the milter sees the message: the
    Autocrypt-Setup-Message header is what lets the message through."""
    offset = log_offset()
    assert submit(alice, [alice.addr], autocrypt_setup_message(alice.addr, with_header=True)) == {}
    assert "Accepted Autocrypt Setup Message" in milter_log_since(offset)
    [raw] = wait_for_mail(alice)
    assert "Subject: [...]" in header_block(raw)
    # Same message marked only by its Subject: refused, because the milter sees "[...]".
    with pytest.raises(smtplib.SMTPDataError) as e:
        submit(alice, [alice.addr], autocrypt_setup_message(alice.addr, with_header=False))
    assert e.value.smtp_code == 523
    # Not to someone else.
    with pytest.raises(smtplib.SMTPDataError) as e:
        submit(alice, [bob.addr], autocrypt_setup_message(alice.addr, with_header=True).replace(f"To: <{alice.addr}>", f"To: <{bob.addr}>"))
    assert e.value.smtp_code == 523


def test_headers_cleaned_on_the_way_out(relay, alice):
    """Submitted mail leaves without Received (also Postfix's own, with the client's IP),
    X-Originating-IP, X-Mailer, User-Agent, and with Subject [...]. Checked on the queue file
    of a message to an unreachable loopback host (127.0.0.2 has no SMTP server), which stays
    deferred in the queue until the test deletes it."""
    rcpt = "nobody@[127.0.0.2]"
    extra = {
        "Received": "from secret.example (secret.example [192.0.2.7]) by x",
        "X-Originating-IP": "[192.0.2.7]",
        "X-Mailer": "SecretMailer 1.0",
        "User-Agent": "SecretAgent/2.0",
    }
    msg = encrypted_message(alice.addr, rcpt, subject="A secret subject", extra=extra)
    assert submit(alice, [rcpt], msg) == {}

    content = take_queued_message(alice.addr, "-hq").decode(errors="replace")
    head = content.split("\n\n", 1)[0]
    for name in ("Received:", "X-Originating-IP:", "X-Mailer:", "User-Agent:"):
        assert name.lower() not in head.lower(), f"{name} left in:\n{head}"
    assert "Subject: [...]" in head
    assert "A secret subject" not in content
    # Postfix's own Received line ("from localhost [127.0.0.1] ... with ESMTPSA") went too.
    assert "ESMTPSA" not in head


# ---------------------------------------------------------------- inbound (port 25)


def test_port25_cleartext_to_enforcing_user_gets_523(relay, alice):
    assert (relay.mailbox_dir(alice.addr) / "enforceE2EEincoming").exists()
    with pytest.raises(smtplib.SMTPDataError) as e:
        deliver_port25(REMOTE, [alice.addr], plain_message(REMOTE, alice.addr))
    assert e.value.smtp_code == 523
    assert e.value.smtp_error == b"5.7.1 " + ENCRYPTION_NEEDED
    # user+tag@ is the same mailbox.
    tagged = alice.addr.replace("@", "+news@")
    with pytest.raises(smtplib.SMTPDataError) as e:
        deliver_port25(REMOTE, [tagged], plain_message(REMOTE, tagged))
    assert e.value.smtp_code == 523
    time.sleep(1)
    assert inbox(alice) == []


def test_port25_cleartext_to_non_enforcing_user_is_delivered(relay, alice):
    (relay.mailbox_dir(alice.addr) / "enforceE2EEincoming").unlink()
    assert deliver_port25(REMOTE, [alice.addr], plain_message(REMOTE, alice.addr, "cleartext ok")) == {}
    [raw] = wait_for_mail(alice)
    assert b"cleartext ok" in raw


def test_port25_encrypted_and_securejoin_and_bounce_pass(alice):
    assert deliver_port25(REMOTE, [alice.addr], encrypted_message("forwarded@example.org", alice.addr)) == {}
    assert deliver_port25(REMOTE, [alice.addr], securejoin_request(REMOTE, alice.addr)) == {}
    bounce = headers("MAILER-DAEMON@mx.example.net", alice.addr, "Undelivered Mail", {"Auto-Submitted": "auto-replied"})
    bounce += (
        'Content-Type: multipart/report; report-type=delivery-status; boundary="r1"\r\n\r\n'
        "--r1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--r1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
        "Final-Recipient: rfc822; x@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n--r1--\r\n"
    )
    assert deliver_port25("", [alice.addr], bounce) == {}
    wait_for_mail(alice, 3)


# ---------------------------------------------------------------- failure mode


def test_dead_milter_means_tempfail_and_nothing_delivered(alice, bob):
    pid = int(MILTER_PID.read_text().strip())
    os.kill(pid, 9)
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), timeout=10, what="the milter to die")
    try:
        for send in (
            lambda: submit(alice, [bob.addr], encrypted_message(alice.addr, bob.addr)),
            lambda: submit(alice, [bob.addr], plain_message(alice.addr, bob.addr)),
            lambda: deliver_port25(REMOTE, [bob.addr], plain_message(REMOTE, bob.addr)),
        ):
            with pytest.raises(smtplib.SMTPException) as e:
                send()
            assert 400 <= smtp_code(e.value) < 500, e.value
        time.sleep(2)
        assert inbox(bob) == []
    finally:
        subprocess.run([str(REPO / "packaging/relay"), "restart", "milter"], check=True, capture_output=True)
    # And back in service.
    assert submit(alice, [bob.addr], encrypted_message(alice.addr, bob.addr)) == {}
    wait_for_mail(bob)
