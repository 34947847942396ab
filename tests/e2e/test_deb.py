"""The Debian package (`deb/build`): what it holds, and installing, upgrading and purging it.

Built from the release binaries `packaging/relay up` made; installed with dpkg on this
machine, whose Postfix and Dovecot satisfy its dependencies, then purged again.
"""

import grp
import os
import pwd
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from relaytest import CHATMAIL_INI, read_config

REPO = Path(__file__).resolve().parents[2]
BINARIES = ["chatmail-doveauth", "chatmail-milter", "chatmail-pushnotify", "chatmail-expire"]
UNIT_DIR = Path("/lib/systemd/system")
UNITS = sorted(p.name for p in (REPO / "deb" / "systemd").iterdir())


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=300)


def enable_links(unit: str) -> list[Path]:
    """The symlinks enabling `unit` creates: one per WantedBy= of its [Install] section."""
    text = (REPO / "deb" / "systemd" / unit).read_text()
    targets = re.findall(r"^WantedBy=(.+)$", text, re.M)
    return [Path("/etc/systemd/system") / f"{t}.wants" / unit for w in targets for t in w.split()]


def workspace_version() -> str:
    text = (REPO / "Cargo.toml").read_text()
    return re.search(r'^\[workspace\.package\][^\[]*?^version = "([^"]+)"', text, re.M | re.S)[1]


@pytest.fixture(scope="module")
def deb(tmp_path_factory) -> Path:
    if not all((REPO / "target/release" / b).exists() for b in BINARIES):
        pytest.skip("no release build in target/release (RELAY_PROFILE=debug?)")
    out = tmp_path_factory.mktemp("deb")
    built = subprocess.run([str(REPO / "deb/build"), str(out)], capture_output=True, text=True,
                           env={**os.environ, "DEB_BUILD": "0"}, timeout=300)
    assert built.returncode == 0, built.stderr
    path = Path(built.stdout.strip())
    assert path.parent == out and path.is_file()
    return path


def test_metadata(deb):
    fields = dict(
        line.split(": ", 1)
        for line in run("dpkg-deb", "-f", str(deb)).stdout.splitlines()
        if ": " in line and not line.startswith(" ")
    )
    assert fields["Package"] == "chatmail-relay"
    assert fields["Version"] == f"{workspace_version()}-1"
    assert fields["Architecture"] == run("dpkg", "--print-architecture").stdout.strip()
    depends = [d.strip().split()[0] for d in fields["Depends"].split(",")]
    for needed in ["libc6", "adduser", "postfix", "dovecot-core", "dovecot-imapd", "dovecot-lmtpd"]:
        assert needed in depends, fields["Depends"]
    assert deb.name == f"chatmail-relay_{fields['Version']}_{fields['Architecture']}.deb"


def test_contents(deb):
    listing = run("dpkg-deb", "-c", str(deb)).stdout.splitlines()
    entries = {line.split()[-1].removeprefix("."): line.split() for line in listing}
    for name in BINARIES:
        assert entries[f"/usr/bin/{name}"][0] == "-rwxr-xr-x"
        assert f"/usr/share/man/man8/{name}.8.gz" in entries
    for unit in UNITS:
        assert entries[f"/lib/systemd/system/{unit}"][0] == "-rw-r--r--"
    assert "/usr/share/doc/chatmail-relay/copyright" in entries
    assert "/usr/share/doc/chatmail-relay/examples/chatmail.ini" in entries
    assert "/usr/share/chatmail-relay/templates/postfix/master.cf" in entries
    assert entries["/usr/lib/chatmail-relay/ini-get"][0] == "-rwxr-xr-x"
    assert all(fields[1] == "root/root" for fields in entries.values())


def test_socket_directories_reachable():
    """systemd makes a socket's missing parent directories as root with DirectoryMode, and the
    connecting side (Postfix's smtpd and cleanup, Dovecot) is another user: it must be able to
    traverse them; the socket's own mode and owner are what restrict access."""
    for unit in UNITS:
        if not unit.endswith(".socket"):
            continue
        text = (REPO / "deb" / "systemd" / unit).read_text()
        mode = int(re.search(r"^DirectoryMode=(\d+)$", text, re.M)[1], 8)
        assert mode & 0o001, f"{unit}: DirectoryMode={mode:o} locks other users out"
        assert re.search(r"^SocketMode=0660$", text, re.M), unit


def test_install_upgrade_purge(deb, tmp_path):
    if run("dpkg-query", "-W", "chatmail-relay", check=False).returncode == 0:
        pytest.skip("chatmail-relay is installed on this machine already; not touching it")
    vmail_home = os.stat("/home/vmail") if Path("/home/vmail").exists() else None
    # A DKIM key of the local relay, if there is one, as earlier versions had it: group vmail.
    params = read_config().params if CHATMAIL_INI.exists() else {}
    dkim_key = Path(params.get("dkim_key", "/etc/dkimkeys/opendkim.private"))
    if dkim_key.exists():
        for path in [dkim_key.parent, dkim_key]:
            os.chown(path, -1, grp.getgrnam("vmail").gr_gid)
    try:
        installed = run("dpkg", "-i", str(deb), check=False)
        assert installed.returncode == 0, installed.stdout + installed.stderr
        status = run("dpkg-query", "-W", "-f=${Status}", "chatmail-relay").stdout
        assert status == "install ok installed"
        run("getent", "passwd", "vmail")
        spool = os.stat("/var/spool/postfix/chatmail")
        assert (spool.st_uid, spool.st_gid) == (pwd.getpwnam("vmail").pw_uid,
                                                grp.getgrnam("postfix").gr_gid)
        assert stat.S_IMODE(spool.st_mode) == 0o2750, oct(spool.st_mode)
        assert "vmail" not in grp.getgrnam("chatmail-dkim").gr_mem
        if dkim_key.exists():
            for path, mode in [(dkim_key.parent, 0o750), (dkim_key, 0o640)]:
                st = path.stat()
                assert grp.getgrgid(st.st_gid).gr_name == "chatmail-dkim", path
                assert stat.S_IMODE(st.st_mode) == mode, path
        for name in BINARIES:
            out = run(f"/usr/bin/{name}", "--version").stdout
            assert workspace_version() in out, out
        # bad configuration: non-zero exit, one line naming the problem
        bad = run("/usr/bin/chatmail-milter", "--config", str(tmp_path / "missing.ini"), check=False)
        assert bad.returncode != 0
        assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
        for unit in UNITS:
            assert (UNIT_DIR / unit).is_file()
            for link in enable_links(unit):
                assert link.is_symlink() and os.readlink(link) == str(UNIT_DIR / unit), link
        if shutil.which("systemd-analyze"):
            verify = run("systemd-analyze", "verify", *(str(UNIT_DIR / u) for u in UNITS),
                         check=False)
            assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr

        # the same version again: the upgrade path of the maintainer scripts
        again = run("dpkg", "-i", str(deb), check=False)
        assert again.returncode == 0, again.stdout + again.stderr
        if vmail_home is not None:
            after = os.stat("/home/vmail")
            assert (after.st_mode, after.st_uid) == (vmail_home.st_mode, vmail_home.st_uid)
    finally:
        purged = run("dpkg", "--purge", "chatmail-relay", check=False)
    assert purged.returncode == 0, purged.stdout + purged.stderr
    for name in BINARIES:
        assert not Path(f"/usr/bin/{name}").exists()
    for unit in UNITS:
        assert not (UNIT_DIR / unit).exists()
        assert not any(link.is_symlink() for link in enable_links(unit))
    # accounts and configuration stay
    assert Path("/home/vmail/mail").is_dir()
    assert Path("/etc/chatmail/chatmail.ini").is_file()
