"""chatmail-expire on the running relay.

- Dovecot's quota warning (75 % of max_mailbox_size) runs `chatmail-expire quota` with 70 % as
  the target: the oldest messages go, the last 24 hours stay, and Dovecot's own quota count
  (`doveadm quota get`) ends under the target.
- The daily run as vmail: the dry run changes nothing, `--remove` deletes old mail, and Dovecot
  keeps serving the mailbox afterwards.

Messages are placed into the Maildir with Dovecot-style names whose `S=` sizes (what Dovecot's
maildir quota counts) are large while the files are tiny, so the default 500M quota can be
crossed without writing hundreds of megabytes.
"""

from __future__ import annotations

import os
import pwd
import re
import smtplib
import subprocess
import time
from pathlib import Path

import pytest

from relaytest import LOG_DIR, TIMEOUT, doveadm, imap_connect, wait_for

DAY = 86400
LMTP_SOCKET = "/var/spool/postfix/private/dovecot-lmtp"
EXPIRE = "/usr/local/bin/chatmail-expire"
SUMMARY = re.compile(
    r"^Removed (\d+) out of (\d+) mailboxes and (\d+) out of (\d+) files "
    r"in existing mailboxes in \d+\.\d\d seconds$"
)


def max_mailbox_bytes(relay) -> int:
    value = relay.params.get("max_mailbox_size", "500M").strip().upper().removesuffix("B")
    unit = {"M": 1 << 20, "G": 1 << 30}.get(value[-1:], None)
    return int(value[:-1]) * unit if unit else int(value) << 20


@pytest.fixture
def vmail():
    return pwd.getpwnam("vmail")


@pytest.fixture
def maildir(relay, account, vmail) -> Path:
    """The account's Maildir (created as Dovecot would, owned by vmail)."""
    mbox = relay.mailbox_dir(account.addr)
    for sub in ("cur", "new", "tmp"):
        (mbox / sub).mkdir(mode=0o700, exist_ok=True)
        os.chown(mbox / sub, vmail.pw_uid, vmail.pw_gid)
    return mbox


_counter = iter(range(1, 1_000_000))


def place(mbox: Path, folder: str, when: int, quota_size: int, vmail) -> Path:
    """A message file delivered at `when` (name time and mtime) with `S=quota_size`."""
    n = next(_counter)
    info = ":2,S" if folder.endswith("cur") else ""
    path = mbox / folder / f"{when}.M{n}P{os.getpid()}.e2e,S={quota_size},W={quota_size + 40}{info}"
    path.write_bytes(f"Subject: placed {n}\r\n\r\nplaced by test_expire\r\n".encode())
    os.utime(path, (when, when))
    os.chown(path, vmail.pw_uid, vmail.pw_gid)
    return path


def storage_bytes(addr: str) -> int:
    """Dovecot's STORAGE value for the user (doveadm prints KiB)."""
    for line in doveadm("quota", "get", "-u", addr).splitlines():
        fields = line.split()
        if "STORAGE" in fields:
            return int(fields[fields.index("STORAGE") + 1]) * 1024
    raise AssertionError("no STORAGE line in doveadm quota get")


def deliver_lmtp(addr: str, body_bytes: int = 4000) -> None:
    msg = (
        f"From: sender@example.org\r\nTo: {addr}\r\nSubject: fills the quota\r\n"
        f"Message-ID: <{time.time_ns()}@e2e>\r\n\r\n"
    ) + ("y" * 78 + "\r\n") * (body_bytes // 80)
    lmtp = smtplib.LMTP(LMTP_SOCKET, timeout=TIMEOUT)
    try:
        refused = lmtp.sendmail("sender@example.org", [addr], msg)
        assert not refused, refused
    finally:
        lmtp.quit()


def dovecot_log_since(offset: int) -> str:
    path = LOG_DIR / "dovecot.log"
    with path.open("rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", "replace")


def log_size() -> int:
    try:
        return (LOG_DIR / "dovecot.log").stat().st_size
    except OSError:
        return 0


def test_quota_warning_trims_oldest_first_and_keeps_the_last_24_hours(
    relay, account, maildir, vmail
):
    addr = account.addr
    limit = max_mailbox_bytes(relay)
    warn = limit * 75 // 100
    target = limit * 70 // 100
    now = int(time.time())
    # Six old messages of 3.5 % each (2 to 7 days old) and one fresh one, together just
    # below the 75 % warning; one delivered message crosses it. Going back under 70 %
    # takes exactly the two oldest.
    old_size = limit * 35 // 1000
    olds = [place(maildir, "cur", now - (k + 2) * DAY, old_size, vmail) for k in range(6)]
    fresh = place(maildir, "cur", now - 3600, warn - 1000 - 6 * old_size, vmail)
    (maildir / "maildirsize").unlink(missing_ok=True)
    doveadm("quota", "recalc", "-u", addr)
    before = storage_bytes(addr)
    assert warn - 4096 < before <= warn, (before, warn)

    offset = log_size()
    deliver_lmtp(addr)
    wait_for(
        lambda: storage_bytes(addr) <= target,
        timeout=20,
        interval=0.5,
        what=f"doveadm quota get to drop under {target} bytes",
    )
    assert not olds[5].exists() and not olds[4].exists(), "the two oldest should be gone"
    assert all(p.exists() for p in olds[:4]), "only what was needed should go"
    assert fresh.exists(), "a message from the last 24 hours was removed"
    delivered = [p for p in (maildir / "new").iterdir()] + [
        p for p in (maildir / "cur").iterdir() if ".e2e," not in p.name
    ]
    assert len(delivered) == 1, delivered
    after = storage_bytes(addr)
    assert target - old_size < after <= target, (after, target)
    wait_for(
        lambda: f"quota-expire: removed 2 message(s) from {addr}" in dovecot_log_since(offset),
        timeout=5,
        what="the quota-expire line in dovecot.log",
    )

    # IMAP sees what is left: 4 old + 1 fresh + 1 delivered
    imap = imap_connect()
    try:
        imap.login(addr, account.password)
        typ, data = imap.select("INBOX")
        assert typ == "OK" and int(data[0]) == 6, data
    finally:
        imap.logout()


def run_as_vmail(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["setpriv", "--reuid=vmail", "--regid=vmail", "--clear-groups", EXPIRE, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def snapshot(path: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            p = Path(root) / name
            st = p.lstat()
            out[str(p.relative_to(path))] = (st.st_size, st.st_mtime_ns)
    return out


def test_daily_run_as_vmail(relay, account, maildir, vmail):
    addr = account.addr
    now = int(time.time())
    old = place(maildir, "cur", now - 30 * DAY, 5000, vmail)
    large = place(maildir, "cur", now - 8 * DAY, 300_000, vmail)
    with large.open("ab") as f:  # the large rule uses the size on disk
        f.write(b"z" * 300_000)
    os.utime(large, (now - 8 * DAY, now - 8 * DAY))
    keep = place(maildir, "cur", now - DAY, 5000, vmail)
    before = snapshot(maildir)

    dry = run_as_vmail("--config", str(relay.path), "-v")
    assert dry.returncode == 0, dry.stderr
    m = SUMMARY.match(dry.stdout.strip())
    assert m, dry.stdout
    assert int(m.group(3)) >= 2
    assert "removing old " in dry.stderr and str(old) in dry.stderr, dry.stderr
    assert str(large) in dry.stderr, dry.stderr
    assert snapshot(maildir) == before, "the dry run changed the mailbox"

    real = run_as_vmail("--config", str(relay.path), "--remove")
    assert real.returncode == 0, real.stderr
    assert SUMMARY.match(real.stdout.strip()), real.stdout
    assert not old.exists() and not large.exists()
    assert keep.exists()
    assert not (maildir / "maildirsize").exists()

    imap = imap_connect()
    try:
        imap.login(addr, account.password)
        typ, data = imap.select("INBOX")
        assert typ == "OK" and int(data[0]) == 1, data
    finally:
        imap.logout()
    assert storage_bytes(addr) <= 8192  # only `keep` (S=5000) is left

    report = run_as_vmail("--config", str(relay.path), "report")
    assert report.returncode == 0, report.stderr
    assert "mailboxes:" in report.stdout and "accounts:" in report.stdout
