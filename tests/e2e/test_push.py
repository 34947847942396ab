"""Push notifications end to end: IMAP METADATA through the real Dovecot, delivery through the
real Postfix and Dovecot LMTP (with the Lua push hook), chatmail-pushnotify, and a push gateway
stand-in started by these tests.

The module points the relay's `notification_url` at the stand-in (chatmail.ini, restored
afterwards) and restarts chatmail-pushnotify with `packaging/relay restart pushnotify`.
"""

from __future__ import annotations

import base64
import email.utils
import http.server
import json
import os
import re
import secrets
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from relaytest import (
    CHATMAIL_INI,
    SERVER_METADATA,
    get_metadata,
    imap_connect,
    read_config,
    set_metadata,
    smtp_connect,
    wait_for,
)

REPO = Path(__file__).resolve().parents[2]
RELAY = REPO / "packaging" / "relay"
PID_FILE = Path("/run/chatmail-relay/pushnotify.pid")


# ---------------------------------------------------------------- gateway stand-in


class Gateway:
    """An HTTP push gateway stand-in on `host` (127.0.0.1): records every POST body (the device
    token) and answers with what `respond(token, nth)` returns: a status code, or "hang" (no
    answer until the test ends)."""

    def __init__(self, host: str = "127.0.0.1"):
        self.hits: list[tuple[str, float]] = []
        self.lock = threading.Lock()
        self.respond = lambda token, nth: 200
        self.release = threading.Event()
        gateway = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                token = self.rfile.read(length).decode("utf-8", "replace")
                with gateway.lock:
                    nth = sum(1 for t, _ in gateway.hits if t == token)
                    gateway.hits.append((token, time.monotonic()))
                status = gateway.respond(token, nth)
                if status == "hang":
                    gateway.release.wait(120)
                    return
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}/notify"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def times(self, token: str) -> list[float]:
        with self.lock:
            return [t for tok, t in self.hits if tok == token]

    def count(self, token: str) -> int:
        return len(self.times(token))

    def wait_posts(self, token: str, n: int, timeout: float = 30.0) -> list[float]:
        return wait_for(
            lambda: self.times(token) if self.count(token) >= n else None,
            timeout=timeout,
            interval=0.05,
            what=f"{n} POST(s) of token {token}",
        )

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def set_notification_url(text: str, url: str) -> str:
    """chatmail.ini text with notification_url set to url."""
    lines = [line for line in text.splitlines() if not re.match(r"\s*notification_url\s*=", line)]
    out, done = [], False
    for line in lines:
        out.append(line)
        if not done and line.strip() == "[params]":
            out.append(f"notification_url = {url}")
            done = True
    return "\n".join(out) + "\n"


def restart_pushnotify():
    subprocess.run([str(RELAY), "restart", "pushnotify"], check=True, timeout=60)


@pytest.fixture(scope="module")
def gateway(relay):
    gw = Gateway()
    original = CHATMAIL_INI.read_text()
    CHATMAIL_INI.write_text(set_notification_url(original, gw.url))
    try:
        restart_pushnotify()
        yield gw
    finally:
        CHATMAIL_INI.write_text(original)
        gw.close()
        restart_pushnotify()


# ---------------------------------------------------------------- IMAP METADATA


def login(account):
    imap = imap_connect()
    imap.login(account.addr, account.password)
    return imap


def add_tokens(account, *tokens: str):
    imap = login(account)
    try:
        for token in tokens:
            set_metadata(imap, "INBOX", "/private/devicetoken", token)
    finally:
        imap.logout()


def token(prefix: str = "tok") -> str:
    return f"{prefix}-{secrets.token_hex(8)}"


# ---------------------------------------------------------------- mail


def _crc24(data: bytes) -> int:
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def encrypted_message(sender: str, recipients: list[str]) -> bytes:
    """A PGP/MIME message whose payload has the packet structure of an encrypted message (a
    PKESK, then a SEIPD v1 packet) with random content: what the milter lets through."""
    pkesk = bytes([0xC0 | 1, 100, 3]) + secrets.token_bytes(99)
    seipd = bytes([0xC0 | 18, 150, 1]) + secrets.token_bytes(149)
    data = pkesk + seipd
    b64 = base64.b64encode(data).decode()
    crc = base64.b64encode(_crc24(data).to_bytes(3, "big")).decode()
    armor = "\r\n".join(
        ["-----BEGIN PGP MESSAGE-----", ""]
        + [b64[i : i + 64] for i in range(0, len(b64), 64)]
        + [f"={crc}", "-----END PGP MESSAGE-----"]
    )
    boundary = secrets.token_hex(12)
    lines = [
        f"From: <{sender}>",
        f"To: {', '.join(f'<{r}>' for r in recipients)}",
        "Subject: [...]",
        f"Date: {email.utils.formatdate()}",
        f"Message-ID: <{secrets.token_hex(12)}@push.test>",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="{boundary}"',
        "",
        f"--{boundary}",
        "Content-Type: application/pgp-encrypted",
        "",
        "Version: 1",
        "",
        f"--{boundary}",
        'Content-Type: application/octet-stream; name="encrypted.asc"',
        "",
        armor,
        "",
        f"--{boundary}--",
        "",
    ]
    return "\r\n".join(lines).encode()


def send(sender, recipients: list[str]) -> float:
    """Submits an encrypted message; returns the time the server accepted the DATA."""
    smtp = smtp_connect()
    try:
        smtp.login(sender.addr, sender.password)
        smtp.sendmail(sender.addr, recipients, encrypted_message(sender.addr, recipients))
        accepted = time.monotonic()
    finally:
        smtp.quit()
    return accepted


def delivered_count(relay, addr: str) -> int:
    maildir = relay.mailbox_dir(addr)
    return sum(len(list((maildir / sub).glob("*"))) for sub in ("new", "cur") if (maildir / sub).exists())


def pending_tokens(relay) -> list[str]:
    queue = relay.mailboxes_dir / "pending_notifications"
    out = []
    for f in queue.glob("*"):
        try:
            out.append(f.read_text().split("\n")[2])
        except (OSError, IndexError):
            pass
    return out


@pytest.fixture
def two_accounts(account, new_account):
    other = new_account()
    imap = imap_connect()
    imap.login(other.addr, other.password)
    imap.logout()
    return account, other


# ---------------------------------------------------------------- tests


def test_metadata_capability_and_tokens_accumulate(account, gateway):
    imap = login(account)
    try:
        typ, caps = imap.capability()
        caps = caps[0].decode().split()
        assert "METADATA" in caps and "XDELTAPUSH" in caps, caps
        assert get_metadata(imap, "INBOX", "/private/devicetoken") in (None, "")
        set_metadata(imap, "INBOX", "/private/devicetoken", "1111")
        assert get_metadata(imap, "INBOX", "/private/devicetoken") == "1111"
        set_metadata(imap, "INBOX", "/private/devicetoken", "2222")
        assert get_metadata(imap, "INBOX", "/private/devicetoken") == "1111 2222"
    finally:
        imap.logout()
    # another session sees the same, in the same order
    imap = login(account)
    try:
        assert get_metadata(imap, "INBOX", "/private/devicetoken") == "1111 2222"
        # other private keys cannot be stored
        typ, data = imap._simple_command("SETMETADATA", "INBOX", '(/private/other "x")')
        assert typ == "NO", data
    finally:
        imap.logout()
    stored = json.loads((read_config().mailbox_dir(account.addr) / "metadata.json").read_text())
    assert list(stored["devicetoken"]) == ["1111", "2222"]


def test_delivered_message_gives_one_post_per_token(two_accounts, gateway, relay):
    rcpt, sender = two_accounts
    t1, t2 = token("a"), token("b")
    add_tokens(rcpt, t1, t2)
    send(sender, [rcpt.addr])
    gateway.wait_posts(t1, 1)
    gateway.wait_posts(t2, 1)
    wait_for(lambda: not pending_tokens(relay) or t1 not in pending_tokens(relay), what="queue drained")
    time.sleep(1)
    assert (gateway.count(t1), gateway.count(t2)) == (1, 1)


def test_own_sent_mail_triggers_nothing(two_accounts, gateway, relay):
    me, other = two_accounts
    mine = token("self")
    add_tokens(me, mine)
    before = delivered_count(relay, me.addr)
    send(me, [me.addr])
    wait_for(lambda: delivered_count(relay, me.addr) > before, what="self-sent message delivered")
    # a message from someone else afterwards is notified; the self-sent one was not
    send(other, [me.addr])
    gateway.wait_posts(mine, 1)
    time.sleep(1)
    assert gateway.count(mine) == 1


def test_gone_410_removes_the_token(two_accounts, gateway, relay):
    rcpt, sender = two_accounts
    dead, alive = token("gone"), token("alive")
    gateway.respond = lambda tok, nth: 410 if tok == dead else 200
    try:
        add_tokens(rcpt, dead, alive)
        send(sender, [rcpt.addr])
        gateway.wait_posts(dead, 1)
        gateway.wait_posts(alive, 1)
        imap = login(rcpt)
        try:
            wait_for(
                lambda: get_metadata(imap, "INBOX", "/private/devicetoken") == alive,
                what="the gone token removed",
            )
        finally:
            imap.logout()
    finally:
        gateway.respond = lambda tok, nth: 200


def test_server_error_is_retried(two_accounts, gateway):
    rcpt, sender = two_accounts
    flaky = token("flaky")
    gateway.respond = lambda tok, nth: 500 if tok == flaky and nth == 0 else 200
    try:
        add_tokens(rcpt, flaky)
        send(sender, [rcpt.addr])
        first, second = gateway.wait_posts(flaky, 2, timeout=40)[:2]
        # the first retry comes 8 s after the failure
        assert second - first >= 7, second - first
    finally:
        gateway.respond = lambda tok, nth: 200


def test_kill_9_with_pending_notifications_loses_none(two_accounts, gateway, relay):
    rcpt, sender = two_accounts
    stuck = token("stuck")
    gateway.respond = lambda tok, nth: "hang" if tok == stuck and nth == 0 else 200
    try:
        add_tokens(rcpt, stuck)
        send(sender, [rcpt.addr])
        gateway.wait_posts(stuck, 1)
        assert stuck in pending_tokens(relay)
        pid = int(PID_FILE.read_text())
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), what="pushnotify killed")
        assert stuck in pending_tokens(relay)
        restart_pushnotify()
        gateway.wait_posts(stuck, 2)
        wait_for(lambda: stuck not in pending_tokens(relay), what="the notification done")
    finally:
        gateway.respond = lambda tok, nth: 200


def test_server_info_over_imap(account, gateway, relay):
    imap = login(account)
    try:
        info = lambda name: get_metadata(imap, '""', SERVER_METADATA + name)  # noqa: E731
        expected_iroh = relay.params.get("iroh_relay", f"https://{relay.mail_domain_bare}")
        assert info("irohrelay") == expected_iroh
        assert info("maxsmtprecipients") == "1000"
        shipped = json.loads((REPO / "pushnotify" / "appversions.json").read_text())
        served = info("appversions")
        assert "\n" not in served and json.loads(served) == shipped
        # TURN credentials from coturn's secret (test_turn.py allocates with them).
        assert re.fullmatch(rf"{re.escape(relay.mail_domain_bare)}:3478:\d{{10}}:[A-Za-z0-9+/]{{27}}=",
                            info("turn")), info("turn")
        assert info("unknown") is None
    finally:
        imap.logout()
