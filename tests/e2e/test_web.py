"""The relay's web face through the real nginx: the invite page in a real browser, `/new`,
autoconfig, MTA-STS, port 443 by ALPN (IMAP and SMTP beside HTTPS), `/mxdeliv`, hostile
requests.

Runs against the local relay (IP-only 127.0.0.1, self-signed certificate): its invite link is
a `dclogin:` link with fresh credentials on every visit. The `/mxdeliv` refusal of unsigned
mail from a named domain runs on the `_chat.localhost` relay of test_dkim.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest
from relaytest import (
    HOST,
    LOG_DIR,
    Account,
    imap_login_ok,
    tls_context,
    wait_for,
)
from test_dkim import DOMAIN as NAMED_DOMAIN
from test_dkim import dkim_key, named_relay, sign  # noqa: F401 - named_relay is a fixture
from test_milter import ENCRYPTION_NEEDED, encrypted_message, inbox, login, plain_message, wait_for_mail

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", REPO / "target" / "test-artifacts"))
HTTPS_PORT = 443
CHROMIUM = shutil.which("chromium")
ZBARIMG = shutil.which("zbarimg")

pytestmark = pytest.mark.timeout(300)


# ---------------------------------------------------------------- clients


def tls_socket(alpn: list[str], source: str | None = None, port: int = HTTPS_PORT) -> ssl.SSLSocket:
    """A TLS connection to port 443 offering `alpn`, from `source` (a loopback address)."""
    ctx = tls_context()
    ctx.set_alpn_protocols(alpn)
    raw = socket.create_connection((HOST, port), timeout=30, source_address=(source, 0) if source else None)
    return ctx.wrap_socket(raw, server_hostname=None)


def https(method: str, path: str, body: bytes | None = None, headers: dict | None = None,
          source: str | None = None) -> tuple[int, dict, bytes]:
    ctx = tls_context()
    ctx.set_alpn_protocols(["http/1.1"])
    conn = http.client.HTTPSConnection(HOST, HTTPS_PORT, context=ctx, timeout=60,
                                       source_address=(source, 0) if source else None)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def raw_https(request: bytes, source: str | None = None, timeout: float = 30) -> bytes:
    """Sends bytes as they are (no client library to tidy them up), returns the whole answer."""
    s = tls_socket(["http/1.1"], source)
    s.settimeout(timeout)
    out = b""
    try:
        try:
            s.sendall(request)
        except (ConnectionError, ssl.SSLError):
            pass  # refused before it was all sent: the answer may be there all the same
        while chunk := s.recv(65536):
            out += chunk
        return out
    except (ConnectionError, ssl.SSLError):
        return out
    finally:
        s.close()


def status_of(answer: bytes) -> int:
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
    assert m, answer[:200]
    return int(m[1])


def mxdeliv(sender: str, rcpts: list[str], msg: bytes | str, source: str | None = None) -> tuple[int, str]:
    body = msg.encode() if isinstance(msg, str) else msg
    headers = [("X-Mail-From", sender)] + [("X-Mail-To", r) for r in rcpts]
    ctx = tls_context()
    conn = http.client.HTTPSConnection(HOST, HTTPS_PORT, context=ctx, timeout=120,
                                       source_address=(source, 0) if source else None)
    try:
        conn.putrequest("POST", "/mxdeliv")
        for name, value in headers:
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        conn.send(body)
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        conn.close()


def parse_dclogin(link: str) -> tuple[Account, dict]:
    assert link.startswith("dclogin:"), link
    addr, query = link.removeprefix("dclogin:").split("?", 1)
    params = dict(urllib.parse.parse_qsl(query))
    return Account(urllib.parse.unquote(addr), params["p"]), params


# ---------------------------------------------------------------- the invite page


def chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--ignore-certificate-errors",
         "--hide-scrollbars", "--window-size=600,900", "--user-data-dir=/tmp/chatmail-test-chromium",
         *args],
        capture_output=True, text=True, timeout=120,
    )


def decode_qr(png: Path) -> str:
    done = subprocess.run([ZBARIMG, "--raw", "-q", str(png)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"no QR code found in {png}: {done.stderr}"
    return done.stdout.strip()


@pytest.mark.skipif(not (CHROMIUM and ZBARIMG), reason="needs chromium and zbarimg (tests/run installs them)")
def test_invite_page_in_a_real_browser(relay):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # The page as the browser gets it from nginx: its QR code is a login link that works.
    shot = ARTIFACTS / "invite-page.png"
    shot.unlink(missing_ok=True)
    done = chromium(f"--screenshot={shot}", f"https://{HOST}/")
    assert shot.exists(), done.stderr[-2000:]
    account, params = parse_dclogin(decode_qr(shot))
    assert account.addr.endswith(f"@{relay.mail_domain}")
    assert params["ih"] == params["sh"] == relay.mail_domain.strip("[]") and params["ic"] == "3"
    assert imap_login_ok(account.addr, account.password), "the QR code's credentials do not log in"
    # One visit's page rendered by the browser: the QR code says exactly the link shown.
    status, headers, html = https("GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert headers["cache-control"] == "no-store" and b"<svg" in html and b"<script" not in html
    links = set(re.findall(r'href="(dclogin:[^"]+)"', html.decode()))
    assert len(links) == 1, links
    [link] = links
    page = ARTIFACTS / "invite-page.html"
    page.write_bytes(html)
    shot2 = ARTIFACTS / "invite-page-file.png"
    shot2.unlink(missing_ok=True)
    chromium(f"--screenshot={shot2}", page.as_uri())
    assert decode_qr(shot2) == link.replace("&amp;", "&")
    # The info and privacy pages are linked and served.
    for name in ("info.html", "privacy.html"):
        assert f'href="{name}"'.encode() in html or f'href="/{name}"'.encode() in html
        status, _, body = https("GET", f"/{name}")
        assert status == 200 and b"<html" in body.lower(), name


def test_pages_from_the_operators_web_folder_win(relay):
    www = Path("/etc/chatmail/www")
    www.mkdir(parents=True, exist_ok=True)
    try:
        (www / "privacy.html").write_text("<html>our own privacy page</html>\n")
        status, _, body = https("GET", "/privacy.html")
        assert status == 200 and body == b"<html>our own privacy page</html>\n"
        status, _, body = https("GET", "/info.html")
        assert status == 200 and b"our own" not in body
    finally:
        shutil.rmtree(www)


# ---------------------------------------------------------------- /new


def test_new_returns_credentials_that_log_in(relay):
    status, headers, body = https("POST", "/new", b"")
    assert status == 200 and headers["content-type"].startswith("application/json"), body
    answer = json.loads(body)
    local, domain = answer["email"].rsplit("@", 1)
    assert domain == relay.mail_domain
    assert re.fullmatch(r"[a-z0-9]+", local) and len(local) == relay.username_max_length
    assert len(answer["password"]) == relay.password_min_length + 3
    # A self-signed relay also gives the login link for the same credentials.
    account, params = parse_dclogin(answer["dclogin_url"])
    assert (account.addr, account.password) == (answer["email"], answer["password"])
    assert params["ic"] == "3"
    assert imap_login_ok(answer["email"], answer["password"])
    # Another request, other credentials.
    assert json.loads(https("POST", "/new", b"")[2])["email"] != answer["email"]


def test_browser_get_of_new_is_sent_to_delta_chat(relay):
    status, headers, _ = https("GET", "/new")
    assert status in (301, 302) and headers["location"].startswith("dclogin:"), headers


def test_new_account_through_delta_chat_core(relay, dc_factory):
    """The core configures from the `dclogin_url` of `/new` and messages another account."""
    from deltachat_rpc_client import DeltaChat

    answer = json.loads(https("POST", "/new", b"")[2])
    ac = DeltaChat(dc_factory.rpc).add_account()
    dc_factory.created.append(ac)
    ac.add_transport_from_qr(answer["dclogin_url"])
    ac.bring_online()
    assert ac.get_config("configured_addr") == answer["email"]
    other = dc_factory.online_account()
    chat = ac.create_chat(other)
    chat.send_text("made by /new")
    msg = other.wait_for_incoming_msg().get_snapshot()
    assert msg.text == "made by /new"


def test_nocreate_refuses_with_a_reason(relay):
    nocreate = Path(relay.params.get("nocreate_file", "/etc/chatmail-nocreate"))
    nocreate.touch()
    try:
        status, headers, body = https("POST", "/new", b"")
        assert status == 403 and "reason" in json.loads(body), body
        assert https("GET", "/")[2].find(b"dclogin:") == -1
    finally:
        nocreate.unlink()
    assert https("POST", "/new", b"")[0] == 200


def test_new_is_rate_limited_per_client_address(relay):
    # 2 a second with bursts of 5: a burst of 20 from one address gets refusals...
    statuses = [https("POST", "/new", b"", source="127.0.0.3")[0] for _ in range(20)]
    assert statuses.count(429) >= 10 and 200 in statuses, statuses
    assert set(statuses) <= {200, 429}, statuses
    # ...while another address still gets answers (the limit is per client, nginx sees the
    # client's address through the PROXY protocol from port 443).
    assert https("POST", "/new", b"", source="127.0.0.4")[0] == 200


# ---------------------------------------------------------------- autoconfig, MTA-STS


def test_autoconfig_describes_the_relay(relay):
    host = relay.mail_domain.strip("[]")
    for path in ("/.well-known/autoconfig/mail/config-v1.1.xml", "/mail/config-v1.1.xml"):
        status, headers, body = https("GET", path + "?emailaddress=x%40" + host)
        assert status == 200 and "xml" in headers["content-type"], (path, status)
        text = body.decode()
        for port, kind in (("993", "SSL"), ("465", "SSL"), ("587", "STARTTLS"), ("443", "SSL")):
            assert f"<port>{port}</port>" in text and f"<socketType>{kind}</socketType>" in text
        assert f"<hostname>{host}</hostname>" in text


def test_mta_sts_policy_matches_the_dns_record(relay):
    status, headers, body = https("GET", "/.well-known/mta-sts.txt")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    host = relay.mail_domain.strip("[]")
    assert body.decode() == f"version: STSv1\nmode: enforce\nmx: {host}\nmax_age: 2419200\n"


def test_port_80_redirects_and_serves_acme_answers(relay):
    webroot = Path("/var/lib/chatmail-relay/acme-challenge")
    webroot.mkdir(parents=True, exist_ok=True)
    token = "tok_" + os.urandom(8).hex()
    (webroot / token).write_text(token + ".thumbprint")
    try:
        conn = http.client.HTTPConnection(HOST, 80, timeout=10)
        conn.request("GET", f"/.well-known/acme-challenge/{token}")
        r = conn.getresponse()
        assert (r.status, r.read()) == (200, token.encode() + b".thumbprint")
        conn.request("GET", "/new?x=1")
        r = conn.getresponse()
        r.read()
        assert r.status == 301 and r.getheader("location") == f"https://{HOST}/new?x=1"
        conn.close()
    finally:
        (webroot / token).unlink()


# ---------------------------------------------------------------- port 443 by ALPN


def test_imap_on_443_reaches_dovecot_with_the_clients_address(account):
    s = tls_socket(["imap"], source="127.0.0.5")
    assert s.selected_alpn_protocol() in (None, "imap")
    f = s.makefile("rwb")
    assert f.readline().startswith(b"* OK"), "no IMAP greeting"
    password = account.password.replace("\\", "\\\\").replace('"', '\\"')
    f.write(f'a LOGIN "{account.addr}" "{password}"\r\n'.encode())
    f.flush()
    while not (line := f.readline()).startswith(b"a "):
        pass
    assert line.startswith(b"a OK"), line
    f.write(b"b LOGOUT\r\n")
    f.flush()
    s.close()
    wait_for(lambda: re.search(rf"Login: user=<{re.escape(account.addr)}>.*rip=127\.0\.0\.5,",
                               (LOG_DIR / "dovecot.log").read_text(errors="replace")),
             what="Dovecot's log of the login with the client's address")


def test_smtp_on_443_reaches_postfix_submission(relay, account, new_account):
    bob = new_account()
    login(bob)
    ctx = tls_context()
    ctx.set_alpn_protocols(["smtp"])
    smtp = smtplib.SMTP_SSL(HOST, HTTPS_PORT, context=ctx, timeout=30, source_address=("127.0.0.6", 0))
    try:
        smtp.login(account.addr, account.password)
        assert smtp.sendmail(account.addr, [bob.addr], encrypted_message(account.addr, bob.addr)) == {}
        # Cleartext meets the same milter as on port 465.
        with pytest.raises(smtplib.SMTPDataError) as e:
            smtp.sendmail(account.addr, [bob.addr], plain_message(account.addr, bob.addr))
        assert e.value.smtp_code == 523
    finally:
        smtp.quit()
    wait_for_mail(bob)
    log = (LOG_DIR / "postfix.log").read_text(errors="replace")
    assert re.search(r"postfix/smtps-443/smtpd\[\d+\]: connect from \S*\[127\.0\.0\.6\]", log)


def test_smtp_on_443_without_login_relays_nothing(new_account):
    bob = new_account()
    ctx = tls_context()
    ctx.set_alpn_protocols(["smtp"])
    smtp = smtplib.SMTP_SSL(HOST, HTTPS_PORT, context=ctx, timeout=30)
    try:
        with pytest.raises(smtplib.SMTPException):
            smtp.sendmail("x@example.org", ["someone@example.com"], encrypted_message("x@example.org", bob.addr))
    finally:
        smtp.close()


def test_delta_chat_core_on_port_443_only(relay, dc_factory, new_account):
    """A core told to use port 443 for both IMAP and SMTP sends and receives."""
    from deltachat_rpc_client import DeltaChat

    creds = new_account()
    host = HOST
    link = (f"dclogin:{creds.addr}?p={urllib.parse.quote(creds.password, safe='')}&v=1"
            f"&ih={host}&ip=443&is=ssl&sh={host}&sp=443&ss=ssl&ic=3&sc=3")
    ac = DeltaChat(dc_factory.rpc).add_account()
    dc_factory.created.append(ac)
    ac.add_transport_from_qr(link)
    ac.bring_online()
    other = dc_factory.online_account()
    ac.create_chat(other).send_text("over 443")
    assert other.wait_for_incoming_msg().get_snapshot().text == "over 443"
    other.create_chat(ac).send_text("back to 443")
    assert ac.wait_for_incoming_msg().get_snapshot().text == "back to 443"


# ---------------------------------------------------------------- /mxdeliv


REMOTE = "friend@example.net"


@pytest.fixture
def alice(account):
    return account


def test_mxdeliv_delivers_encrypted_mail(alice):
    status, text = mxdeliv(REMOTE, [alice.addr], encrypted_message(REMOTE, alice.addr), source="127.0.0.7")
    assert status == 200 and text.startswith("250 "), text
    [raw] = wait_for_mail(alice)
    assert b"BEGIN PGP MESSAGE" in raw
    log = (LOG_DIR / "postfix.log").read_text(errors="replace")
    # Postfix sees the sending relay's address (XCLIENT), not chatmail-web's.
    assert re.search(r"postfix/mxdeliv/smtpd\[\d+\]: \w+: client=\S*\[127\.0\.0\.7\]", log)


def test_mxdeliv_refuses_cleartext_with_port_25s_text(alice):
    status, text = mxdeliv(REMOTE, [alice.addr], plain_message(REMOTE, alice.addr))
    assert status == 400 and text.startswith("523 ") and ENCRYPTION_NEEDED.decode() in text, text
    time.sleep(1)
    assert inbox(alice) == []


def test_mxdeliv_refuses_unknown_and_foreign_recipients(relay, alice):
    unknown = f"nobody{os.urandom(3).hex()}@{relay.mail_domain}"
    status, text = mxdeliv(REMOTE, [unknown], encrypted_message(REMOTE, unknown))
    assert status == 400 and text.startswith("550 5.1.1"), text
    for foreign in ("victim@example.com", f"{alice.localpart}@example.com",
                    f"victim@example.com@{relay.mail_domain}", f'"victim@example.com"@{relay.mail_domain}'):
        status, text = mxdeliv(REMOTE, [foreign], encrypted_message(REMOTE, foreign))
        assert status in (400, 413) or status >= 500 and status != 200, (foreign, status, text)
        assert status != 200, (foreign, text)
    # one bad recipient among good ones: nothing is delivered
    status, text = mxdeliv(REMOTE, [alice.addr, unknown], encrypted_message(REMOTE, alice.addr))
    assert status == 400, text
    time.sleep(1)
    assert inbox(alice) == []


def test_mxdeliv_refuses_oversized_mail_without_reading_it(relay, alice):
    big = encrypted_message(REMOTE, alice.addr, size=40 * 1024 * 1024)
    status, text = mxdeliv(REMOTE, [alice.addr], big)
    assert status == 413 and "552" in text, (status, text[:200])
    time.sleep(1)
    assert inbox(alice) == []


def test_mxdeliv_refuses_bad_requests(relay, alice):
    msg = encrypted_message(REMOTE, alice.addr).encode()
    assert https("GET", "/mxdeliv")[0] == 405
    # no recipient; no sender; two senders
    assert mxdeliv(REMOTE, [], msg)[0] == 400
    head = f"POST /mxdeliv HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {len(msg)}\r\nConnection: close\r\n"
    assert status_of(raw_https((head + f"X-Mail-To: {alice.addr}\r\n\r\n").encode() + msg)) == 400
    two = head + f"X-Mail-From: a@example.net\r\nX-Mail-From: b@example.net\r\nX-Mail-To: {alice.addr}\r\n\r\n"
    assert status_of(raw_https(two.encode() + msg)) == 400
    # SMTP commands smuggled into an address
    for bad in (f"{alice.addr}>\r\nRCPT TO:<victim@example.com", f"{alice.addr}> NOTIFY=NEVER",
                f"<{alice.addr}>", "a b@example.net", "x" * 400 + "@example.net"):
        status = status_of(raw_https(
            (head + f"X-Mail-From: {REMOTE}\r\nX-Mail-To: {bad}\r\n\r\n").encode() + msg))
        assert status == 400, (bad, status)
        status = status_of(raw_https(
            (head + f"X-Mail-From: {bad}\r\nX-Mail-To: {alice.addr}\r\n\r\n").encode() + msg))
        assert status == 400, (bad, status)
    # thousands of recipients
    many = head + f"X-Mail-From: {REMOTE}\r\n" + "".join(f"X-Mail-To: r{i}@x.org\r\n" for i in range(3000))
    assert 400 <= status_of(raw_https(many.encode() + b"\r\n" + msg)) < 500
    time.sleep(1)
    assert inbox(alice) == []


# ---------------------------------------------------------------- hostile requests


def test_hostile_requests_get_clean_refusals(relay):
    for path in ("/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2fetc%2fpasswd",
                 "/.well-known/../../../etc/passwd", "/.well-known/acme-challenge/../../../../etc/shadow"):
        answer = raw_https(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        assert status_of(answer) in (400, 404), (path, answer[:100])
        assert b"root:" not in answer
    assert https("DELETE", "/new")[0] == 405
    assert https("PUT", "/mxdeliv", b"x")[0] == 405
    assert https("POST", "/new", b"x" * 100_000)[0] == 413
    # a header far beyond the buffers
    answer = raw_https(f"GET / HTTP/1.1\r\nHost: {HOST}\r\nX-Big: {'a' * 100_000}\r\n\r\n".encode())
    assert status_of(answer) in (400, 431, 494)
    # a request head that never ends is cut off, and others are served meanwhile
    s = tls_socket(["http/1.1"])
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    assert https("GET", "/info.html")[0] == 200
    s.settimeout(30)
    started = time.monotonic()
    try:
        while s.recv(4096):
            pass
    except (ConnectionError, ssl.SSLError, socket.timeout):
        pass
    assert time.monotonic() - started < 25, "a slow request head was not cut off"
    s.close()
    # everything still answers
    assert https("POST", "/new", b"", source="127.0.0.8")[0] == 200


# ---------------------------------------------------------------- last: on the named relay


def test_mxdeliv_refuses_unsigned_mail_from_a_named_domain(named_relay):  # noqa: F811
    from relaytest import create_account

    alice, bob = create_account(named_relay), create_account(named_relay)
    status, text = mxdeliv(bob.addr, [alice.addr], encrypted_message(bob.addr, alice.addr))
    assert status == 400 and "554 5.7.1 No DKIM signature found" in text, text
    selector, key = dkim_key(named_relay)
    signed = sign(encrypted_message(bob.addr, alice.addr), NAMED_DOMAIN, selector, key)
    status, text = mxdeliv(bob.addr, [alice.addr], signed)
    assert status == 200, text
    [raw] = wait_for_mail(alice)
    assert b"DKIM-Signature" not in raw
