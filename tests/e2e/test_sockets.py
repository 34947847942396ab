"""The unix sockets of our daemons: who may connect.

No socket of ours gives other users any access: each is mode 0660, and its owner and group
say who connects.

- the milter's sockets (bound by the milter, user vmail) belong to group postfix through
  their setgid directory: Postfix's smtpd and cleanup (user postfix) connect, nobody else;
- the dict sockets of doveauth and pushnotify are vmail:vmail: Dovecot's processes that use
  them run as vmail;
- every listening unix socket that a running sidecar daemon holds is checked, so a socket
  added later is covered too; and so are the socket units of the Debian package.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import stat
import subprocess
from pathlib import Path

import pytest
from relaytest import read_config

REPO = Path(__file__).resolve().parents[2]
RUN_DIR = Path("/run/chatmail-relay")
DOVEAUTH_SOCKET = Path("/run/doveauth/doveauth.socket")
METADATA_SOCKET = Path("/run/chatmail-metadata/metadata.socket")
MILTER_KEYS = {
    "milter_outbound": "unix:/var/spool/postfix/chatmail/outbound.sock",
    "milter_inbound": "unix:/var/spool/postfix/chatmail/inbound.sock",
    "milter_internal": "unix:/var/spool/postfix/chatmail/internal.sock",
}
SIDECARS = ["doveauth", "pushnotify", "milter", "web"]
# A user that is neither vmail nor postfix nor in their groups.
STRANGER = "nobody"


def milter_sockets() -> list[Path]:
    params = read_config().params
    addrs = [params.get(key, default) for key, default in MILTER_KEYS.items()]
    return [Path(a.removeprefix("unix:")) for a in addrs if a.startswith("unix:")]


def owner(path: Path) -> tuple[str, str, int]:
    st = path.stat()
    return pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name, stat.S_IMODE(st.st_mode)


def listening_sockets(pid: int) -> list[Path]:
    """Paths of the listening unix sockets that process `pid` holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if m := re.fullmatch(r"socket:\[(\d+)\]", target):
            inodes.add(m[1])
    paths = []
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        # Flags 00010000: __SO_ACCEPTCON, a listening socket; a path, not an abstract name
        if len(fields) == 8 and fields[6] in inodes and fields[3] == "00010000" and fields[7].startswith("/"):
            paths.append(Path(fields[7]))
    return paths


def connects_as(user: str, path: Path) -> bool:
    """Whether `user` (with its own groups) may connect to the unix socket at `path`."""
    probe = "import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])"
    done = subprocess.run(
        ["setpriv", f"--reuid={user}", f"--regid={pwd.getpwnam(user).pw_gid}", "--init-groups",
         "/usr/bin/python3", "-c", probe, str(path)],
        capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 0 or "PermissionError" in done.stderr, done.stderr
    return done.returncode == 0


def test_milter_sockets_are_postfix_group_only(relay):
    sockets = milter_sockets()
    assert sockets, "no unix milter socket configured"
    for sock in sockets:
        assert sock.is_socket(), sock
        assert owner(sock) == ("vmail", "postfix", 0o660), sock
        directory = owner(sock.parent)
        assert directory[:2] == ("vmail", "postfix"), sock.parent
        assert directory[2] & stat.S_ISGID, f"{sock.parent}: new sockets must get group postfix"
        assert directory[2] & 0o007 == 0, f"{sock.parent}: {directory[2]:o}"
        assert connects_as("postfix", sock), f"Postfix cannot connect to {sock}"
        assert not connects_as(STRANGER, sock), f"{STRANGER} connects to {sock}"


def test_dict_sockets_are_vmail_only(relay):
    for sock in [DOVEAUTH_SOCKET, METADATA_SOCKET]:
        assert sock.is_socket(), sock
        assert owner(sock) == ("vmail", "vmail", 0o660), sock
        assert connects_as("vmail", sock), sock
        assert not connects_as(STRANGER, sock), f"{STRANGER} connects to {sock}"
        assert not connects_as("postfix", sock), f"postfix connects to {sock}"


def test_web_socket_admits_nginx_only(relay):
    sock = Path("/run/chatmail-web/web.sock")
    assert owner(sock) == ("www-data", "www-data", 0o660), sock
    assert connects_as("www-data", sock), "nginx's workers cannot connect"
    for other in (STRANGER, "vmail"):
        assert not connects_as(other, sock), f"{other} connects to {sock}"


def test_no_socket_of_a_running_daemon_lets_other_users_in(relay):
    seen = []
    for name in SIDECARS:
        pid = int((RUN_DIR / f"{name}.pid").read_text())
        for sock in listening_sockets(pid):
            mode = stat.S_IMODE(sock.stat().st_mode)
            assert mode & 0o007 == 0, f"{name}: {sock} is mode {mode:o}"
            seen.append(sock)
    expected = {DOVEAUTH_SOCKET, METADATA_SOCKET, *milter_sockets()}
    assert expected <= set(seen), seen


@pytest.mark.parametrize("unit", sorted(p.name for p in (REPO / "deb/systemd").glob("*.socket")))
def test_socket_units_let_no_other_users_in(unit):
    text = (REPO / "deb/systemd" / unit).read_text()
    mode = int(re.search(r"^SocketMode=(\d+)$", text, re.M)[1], 8)
    assert mode & 0o007 == 0, f"{unit}: SocketMode={mode:o}"
    group = re.search(r"^SocketGroup=(\S+)$", text, re.M)[1]
    # Postfix connects to the milter, Dovecot's vmail processes to the dicts, nginx's workers
    # to the web backend.
    expected = {"chatmail-web.socket": "www-data"}.get(
        unit, "postfix" if unit.startswith("chatmail-milter-") else "vmail")
    assert group == expected, unit
