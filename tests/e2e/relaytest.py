"""Helpers of the end-to-end suite: the relay's config, credentials, IMAP/SMTP clients.

Import them in test files with `from relaytest import ...` (tests/e2e is on sys.path).
"""

from __future__ import annotations

import configparser
import contextlib
import imaplib
import os
import pwd
import re
import secrets
import smtplib
import socket
import ssl
import string
import subprocess
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

CHATMAIL_INI = Path(os.environ.get("CHATMAIL_INI", "/etc/chatmail/chatmail.ini"))
LOG_DIR = Path(os.environ.get("RELAY_LOG_DIR", "/var/log/chatmail-relay"))
HOST = "127.0.0.1"
IMAP_PORT = 993
IMAP_STARTTLS_PORT = 143
SMTPS_PORT = 465
SUBMISSION_PORT = 587
SMTP_PORT = 25
TIMEOUT = 30
# Where Delta Chat reads the relay's own metadata (GETMETADATA "" <prefix><name>).
SERVER_METADATA = "/shared/vendor/deltachat/"

imaplib.Commands.setdefault("GETMETADATA", ("AUTH", "SELECTED"))
imaplib.Commands.setdefault("SETMETADATA", ("AUTH", "SELECTED"))


# ---------------------------------------------------------------- configuration


@dataclass
class RelayConfig:
    path: Path
    params: dict[str, str]
    mail_domain: str  # "[127.0.0.1]" for an IP-only relay
    mail_domain_bare: str
    mailboxes_dir: Path
    username_min_length: int
    username_max_length: int
    password_min_length: int
    max_message_size: int

    def int_param(self, key: str, default: int) -> int:
        return int(self.params.get(key, default))

    def mailbox_dir(self, addr: str) -> Path:
        return self.mailboxes_dir / addr

    def password_file(self, addr: str) -> Path:
        return self.mailbox_dir(addr) / "password"


def read_config(path: Path = CHATMAIL_INI) -> RelayConfig:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path)
    params = {k: v.strip() for k, v in parser["params"].items()}
    bare = params["mail_domain"]
    try:
        socket.inet_aton(bare)
        is_ip = bare.count(".") == 3
    except OSError:
        is_ip = False
    return RelayConfig(
        path=path,
        params=params,
        mail_domain=f"[{bare}]" if is_ip else bare,
        mail_domain_bare=bare,
        mailboxes_dir=Path(params.get("mailboxes_dir", f"/home/vmail/mail/{bare}")),
        username_min_length=int(params.get("username_min_length", 9)),
        username_max_length=int(params.get("username_max_length", 9)),
        password_min_length=int(params.get("password_min_length", 9)),
        max_message_size=int(params.get("max_message_size", 31457280)),
    )


def port_open(port: int, host: str = HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------- accounts


@dataclass
class Account:
    addr: str
    password: str

    @property
    def localpart(self) -> str:
        return self.addr.rsplit("@", 1)[0]

    def dclogin(self) -> str:
        """The link `packaging/relay` prints, for this account."""
        return (
            f"dclogin:{self.addr}?p={urllib.parse.quote(self.password, safe='')}&v=1"
            f"&ih={HOST}&ip={IMAP_PORT}&is=ssl&sh={HOST}&sp={SMTPS_PORT}&ss=ssl&ic=3&sc=3"
        )


def random_localpart(length: int) -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(length))


def random_password(length: int) -> str:
    alphabet = string.ascii_letters + string.digits + "!#%&()*+,-.:;<=>?@[]^_{|}~"
    return "".join(secrets.choice(alphabet) for _ in range(length))


# ---------------------------------------------------------------- protocol clients


def create_account(relay: RelayConfig) -> Account:
    """An account with fresh random credentials that exists: it has logged in once over IMAP."""
    acc = Account(
        f"{random_localpart(relay.username_max_length)}@{relay.mail_domain}",
        random_password(relay.password_min_length + 3),
    )
    imap = imap_connect()
    imap.login(acc.addr, acc.password)
    imap.logout()
    return acc


def tls_context(minimum: ssl.TLSVersion | None = None, maximum: ssl.TLSVersion | None = None):
    """A client context that accepts the relay's self-signed certificate."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if minimum:
        ctx.minimum_version = minimum
    if maximum:
        ctx.maximum_version = maximum
    return ctx


def imap_connect(port: int = IMAP_PORT, ctx: ssl.SSLContext | None = None,
                 host: str = HOST) -> imaplib.IMAP4:
    """IMAP over implicit TLS (993) or STARTTLS (143)."""
    ctx = ctx or tls_context()
    if port == IMAP_STARTTLS_PORT:
        imap = imaplib.IMAP4(host, port, timeout=TIMEOUT)
        imap.starttls(ssl_context=ctx)
        return imap
    return imaplib.IMAP4_SSL(host, port, ssl_context=ctx, timeout=TIMEOUT)


def smtp_connect(port: int = SMTPS_PORT, ctx: ssl.SSLContext | None = None) -> smtplib.SMTP:
    """SMTP over implicit TLS (465) or with STARTTLS (587, 25)."""
    ctx = ctx or tls_context()
    if port == SMTPS_PORT:
        return smtplib.SMTP_SSL(HOST, port, context=ctx, timeout=TIMEOUT)
    smtp = smtplib.SMTP(HOST, port, timeout=TIMEOUT)
    smtp.starttls(context=ctx)
    return smtp


def imap_login_ok(addr: str, password: str, port: int = IMAP_PORT, host: str = HOST) -> bool:
    imap = imap_connect(port, host=host)
    try:
        imap.login(addr, password)
    except imaplib.IMAP4.error:
        return False
    finally:
        try:
            imap.logout()
        except (imaplib.IMAP4.error, OSError):
            pass
    return True


def smtp_login_ok(addr: str, password: str, port: int = SMTPS_PORT) -> bool:
    smtp = smtp_connect(port)
    try:
        smtp.login(addr, password)
    except smtplib.SMTPAuthenticationError:
        return False
    finally:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            pass
    return True


def _quoted(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def set_metadata(imap, mailbox: str, entry: str, value: str):
    typ, data = imap._simple_command("SETMETADATA", mailbox, f"({entry} {_quoted(value)})")
    assert typ == "OK", data


def get_metadata(imap, mailbox: str, entry: str) -> str | None:
    typ, data = imap._simple_command("GETMETADATA", mailbox, entry)
    assert typ == "OK", data
    _, data = imap._untagged_response(typ, data, "METADATA")
    for item in data:
        if isinstance(item, tuple):  # the value came as a literal
            return item[1].decode()
        if item:
            m = re.search(rb'\(\S+ (NIL|"((?:[^"\\]|\\.)*)")\)', item)
            if m:
                if m.group(1) == b"NIL":
                    return None
                return re.sub(rb"\\(.)", rb"\1", m.group(2)).decode()
    return None


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.1, what: str = "condition"):
    """Polls predicate() until it returns a true value, which is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def doveadm(*args: str) -> str:
    return subprocess.run(
        ["doveadm", *args], check=True, capture_output=True, text=True, timeout=TIMEOUT
    ).stdout


def take_queued_message(
    sender: str, postcat_flags: str = "-hq", timeout: float = 20.0, recipient: str | None = None
) -> bytes:
    """Waits for a message of `sender` (`MAILER-DAEMON`: a bounce), and to `recipient` if given, in
    Postfix's queue, returns `postcat <flags>` of it and deletes it from the queue."""
    import json

    def queued():
        out = subprocess.run(["postqueue", "-j"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            entry = json.loads(line)
            rcpts = [r.get("address") for r in entry.get("recipients", [])]
            if entry.get("sender") == sender and (recipient is None or recipient in rcpts):
                return entry["queue_id"]
        return None

    queue_id = wait_for(queued, timeout=timeout, what="the message in the queue")
    try:
        return subprocess.run(["postcat", postcat_flags, queue_id], capture_output=True, check=True).stdout
    finally:
        subprocess.run(["postsuper", "-d", queue_id], capture_output=True, check=False)


def postfix_cmd(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=TIMEOUT)


@contextlib.contextmanager
def local_delivery_deferred():
    """Postfix keeps mail for local mailboxes queued (defer_transports = lmtp) until the end
    of the block, then delivers it."""
    postfix_cmd("postconf", "-e", "defer_transports = lmtp")
    postfix_cmd("postfix", "reload")
    try:
        yield
    finally:
        postfix_cmd("postconf", "-X", "defer_transports")
        postfix_cmd("postfix", "reload")
        postfix_cmd("postqueue", "-f")


def queued_for(rcpt: str) -> bool:
    out = subprocess.run(["postqueue", "-p"], capture_output=True, text=True, check=True).stdout
    return rcpt in out


def account_on_disk(relay: RelayConfig) -> Account:
    """An account made as doveauth makes it, but on disk: no lookup of it is cached yet (the
    first login would have put it in doveauth's cache for a minute), so removing its
    directory makes Dovecot's LMTP refuse mail for it at once."""
    acc = Account(f"{random_localpart(relay.username_max_length)}@{relay.mail_domain}",
                  random_password(relay.password_min_length + 3))
    hashed = subprocess.run(["doveadm", "pw", "-s", "SHA512-CRYPT", "-p", acc.password],
                            capture_output=True, text=True, check=True).stdout.strip()
    home = relay.mailbox_dir(acc.addr)
    home.mkdir(mode=0o700)
    (home / "password").write_text(hashed)
    (home / "enforceE2EEincoming").touch()
    vmail = pwd.getpwnam("vmail")
    for path in [home, home / "password", home / "enforceE2EEincoming"]:
        os.chown(path, vmail.pw_uid, vmail.pw_gid)
    return acc
