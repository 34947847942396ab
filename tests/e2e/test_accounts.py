"""Accounts through the real Dovecot and Postfix: created at first login by chatmail-doveauth."""

import imaplib
import os
import smtplib
import ssl
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from relaytest import (
    IMAP_PORT,
    IMAP_STARTTLS_PORT,
    SMTP_PORT,
    SMTPS_PORT,
    SUBMISSION_PORT,
    doveadm,
    imap_connect,
    imap_login_ok,
    smtp_connect,
    smtp_login_ok,
    tls_context,
    wait_for,
)

DAY = 86400


def utc_midnight(ts: float) -> int:
    return int(ts) // DAY * DAY


def assert_account_exists(relay, addr):
    password_file = relay.password_file(addr)
    assert password_file.read_text().startswith("{SHA512-CRYPT}$6$")
    assert (relay.mailbox_dir(addr) / "enforceE2EEincoming").exists()


def test_capabilities(relay):
    imap = imap_connect()
    try:
        caps = imap.capabilities
    finally:
        imap.logout()
    assert "XCHATMAIL" in caps
    assert "XDELTAPUSH" in caps


@pytest.mark.parametrize("port", [IMAP_PORT, IMAP_STARTTLS_PORT])
def test_imap_login_creates_account(relay, new_account, port):
    acc = new_account()
    assert not relay.password_file(acc.addr).exists()
    assert imap_login_ok(acc.addr, acc.password, port)
    assert_account_exists(relay, acc.addr)
    # a second login with the same password works, a different password is refused
    assert imap_login_ok(acc.addr, acc.password, port)
    assert not imap_login_ok(acc.addr, acc.password + "x", port)


@pytest.mark.parametrize("port", [SMTPS_PORT, SUBMISSION_PORT])
def test_smtp_login_creates_account(relay, new_account, port):
    acc = new_account()
    assert not relay.password_file(acc.addr).exists()
    assert smtp_login_ok(acc.addr, acc.password, port)
    assert_account_exists(relay, acc.addr)
    assert smtp_login_ok(acc.addr, acc.password, port)
    assert imap_login_ok(acc.addr, acc.password)


def test_wrong_password_refused(relay, account):
    before = relay.password_file(account.addr).read_text()
    wrong = "wrong-" + account.password
    assert not imap_login_ok(account.addr, wrong)
    assert not imap_login_ok(account.addr, wrong, IMAP_STARTTLS_PORT)
    assert not smtp_login_ok(account.addr, wrong, SMTPS_PORT)
    assert not smtp_login_ok(account.addr, wrong, SUBMISSION_PORT)
    # the refused logins did not touch the account
    assert relay.password_file(account.addr).read_text() == before
    assert imap_login_ok(account.addr, account.password)


def test_short_password_refused(relay, new_account):
    acc = new_account(password="p" * (relay.password_min_length - 1))
    assert not imap_login_ok(acc.addr, acc.password)
    assert not smtp_login_ok(acc.addr, acc.password)
    assert not relay.password_file(acc.addr).exists()
    # the shortest allowed password works
    acc = new_account(password="p" * relay.password_min_length)
    assert imap_login_ok(acc.addr, acc.password)


def test_two_users_same_password(relay, new_account):
    a = new_account()
    b = new_account(password=a.password)
    assert imap_login_ok(a.addr, a.password)
    assert imap_login_ok(b.addr, b.password)
    assert imap_login_ok(a.addr, a.password)


@pytest.mark.parametrize(
    "localpart",
    ["short", "waytoolongforthisrelay", "a/b123456", "abc~12345"],
)
def test_invalid_localpart_not_created(relay, new_account, localpart):
    acc = new_account(localpart=localpart)
    assert not imap_login_ok(acc.addr, acc.password)
    assert not relay.password_file(acc.addr.lower()).exists()


def test_other_domain_refused(relay, new_account):
    acc = new_account()
    other = acc.localpart + "@example.org"
    assert not imap_login_ok(other, acc.password)
    assert not smtp_login_ok(other, acc.password)


def test_parallel_first_logins(relay, new_account):
    acc = new_account()
    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(lambda _: imap_login_ok(acc.addr, acc.password), range(10)))
    assert results == [True] * 10
    assert_account_exists(relay, acc.addr)
    # exactly one mailbox for the address
    names = [p.name for p in relay.mailboxes_dir.iterdir() if p.name.lower() == acc.addr]
    assert names == [acc.addr]


def test_doveadm_lists_accounts(relay, new_account):
    accounts = [new_account() for _ in range(2)]
    for acc in accounts:
        assert imap_login_ok(acc.addr, acc.password)
    users = doveadm("user", "*").split()
    for acc in accounts:
        assert acc.addr in users
    # and userdb lookups work for Dovecot tools
    info = doveadm("user", accounts[0].addr)
    assert str(relay.mailbox_dir(accounts[0].addr)) in info


def test_login_sets_last_login_day(relay, account):
    password_file = relay.password_file(account.addr)
    old = utc_midnight(time.time()) - 5 * DAY
    os.utime(password_file, (old, old))
    imap = imap_connect()
    imap.login(account.addr, account.password)
    imap.select("INBOX")
    imap.logout()
    today = utc_midnight(time.time())
    wait_for(
        lambda: int(password_file.stat().st_mtime) == today,
        what=f"mtime of {password_file} to become {today}",
    )


def test_sender_must_be_login(relay, account, new_account):
    other = new_account()
    smtp = smtp_connect(SUBMISSION_PORT)
    try:
        smtp.login(account.addr, account.password)
        smtp.mail(other.addr)
        code, reply = smtp.rcpt(account.addr)
    finally:
        smtp.close()
    assert code == 553, reply
    assert b"not owned by user" in reply


def test_submission_requires_auth(relay, new_account):
    acc = new_account()
    for port in (SMTPS_PORT, SUBMISSION_PORT):
        smtp = smtp_connect(port)
        try:
            smtp.ehlo()
            code, _ = smtp.mail(acc.addr)
            if code < 400:
                code, _ = smtp.rcpt(acc.addr)
        finally:
            smtp.close()
        assert code >= 500, f"port {port} accepted mail without AUTH"


def test_port25_requires_starttls_and_refuses_relaying(relay, account):
    smtp = smtplib.SMTP("127.0.0.1", SMTP_PORT, timeout=30)
    try:
        smtp.ehlo()
        code, _ = smtp.mail("someone@example.org")
        assert code == 530  # must issue a STARTTLS command first
    finally:
        smtp.close()
    smtp = smtp_connect(SMTP_PORT)
    try:
        smtp.ehlo()
        assert smtp.mail("someone@example.org")[0] == 250
        code, reply = smtp.rcpt("victim@example.net")
        assert code == 454 or code >= 500, reply  # relay access denied
        assert smtp.rcpt(account.addr)[0] == 250
    finally:
        smtp.close()


@pytest.mark.parametrize(
    "connect", [lambda ctx: imap_connect(IMAP_PORT, ctx), lambda ctx: smtp_connect(SMTPS_PORT, ctx)]
)
def test_tls_below_1_3_refused(relay, connect):
    ctx = tls_context(maximum=ssl.TLSVersion.TLSv1_2)
    with pytest.raises((ssl.SSLError, OSError, imaplib.IMAP4.error, smtplib.SMTPException)):
        connect(ctx)
