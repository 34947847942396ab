"""Who may read the DKIM private key, on a relay with a domain name (the `named_relay` fixture
of test_dkim.py switches the local relay to `_chat.localhost` and back).

The milter and Dovecot's mail processes both run as vmail; only the milter gets the
supplementary group chatmail-dkim, which the key (root:chatmail-dkim 0640, in a directory
root:chatmail-dkim 0750) is readable by. A key of an older version (group vmail) is moved to
that group by `chatmail-relay setup` (which `packaging/relay up` runs). That the milter still signs is test_dkim.py's part.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
import subprocess
from pathlib import Path

from test_dkim import named_relay, relay_cmd  # noqa: F401 - named_relay is a fixture

MILTER_PID = Path("/run/chatmail-relay/milter.pid")


def key_path(config) -> Path:
    return Path(config.params.get("dkim_key", "/etc/dkimkeys/opendkim.private"))


def owner(path: Path) -> tuple[str, str, int]:
    st = path.stat()
    return pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name, stat.S_IMODE(st.st_mode)


def read_as_vmail(path: Path, groups: str) -> subprocess.CompletedProcess:
    """`cat path` as user vmail with `groups`: --clear-groups or --init-groups."""
    return subprocess.run(
        ["setpriv", "--reuid=vmail", "--regid=vmail", groups, "cat", str(path)],
        capture_output=True, timeout=30,
    )


def test_key_belongs_to_group_chatmail_dkim(named_relay):  # noqa: F811
    key = key_path(named_relay)
    assert owner(key) == ("root", "chatmail-dkim", 0o640)
    assert owner(key.parent) == ("root", "chatmail-dkim", 0o750)
    assert "vmail" not in grp.getgrnam("chatmail-dkim").gr_mem


def test_plain_vmail_cannot_read_the_key(named_relay):  # noqa: F811
    key = key_path(named_relay)
    for groups in ["--clear-groups", "--init-groups"]:
        done = read_as_vmail(key, groups)
        assert done.returncode != 0 and b"PRIVATE KEY" not in done.stdout, groups
        assert b"Permission denied" in done.stderr, done.stderr


def test_the_milter_runs_as_vmail_with_group_chatmail_dkim(named_relay):  # noqa: F811
    status = Path(f"/proc/{int(MILTER_PID.read_text())}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines())
    vmail = pwd.getpwnam("vmail")
    assert fields["Uid"].split() == [str(vmail.pw_uid)] * 4
    assert fields["Gid"].split() == [str(vmail.pw_gid)] * 4
    assert str(grp.getgrnam("chatmail-dkim").gr_gid) in fields["Groups"].split()


def test_a_key_of_group_vmail_is_moved_to_chatmail_dkim(named_relay):  # noqa: F811
    key = key_path(named_relay)
    vmail = grp.getgrnam("vmail").gr_gid
    os.chown(key.parent, -1, vmail)
    os.chown(key, -1, vmail)
    relay_cmd("up", "--domain", "_chat.localhost")
    assert owner(key) == ("root", "chatmail-dkim", 0o640)
    assert owner(key.parent) == ("root", "chatmail-dkim", 0o750)
