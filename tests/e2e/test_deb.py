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
BINARIES = [
    "chatmail-doveauth", "chatmail-milter", "chatmail-pushnotify", "chatmail-expire", "chatmail-web",
    "chatmail-relay", "chatmail-iroh-relay",
]
UNIT_DIR = Path("/lib/systemd/system")
UNITS = sorted(p.name for p in (REPO / "deb" / "systemd").iterdir() if p.is_file())
SERVICES = [u for u in UNITS if u.endswith(".service")]
GENERATOR = REPO / "deb/lib/chatmail-relay-generator"
# The services that write into the mailboxes, and those that only read them.
WRITERS = {"chatmail-doveauth.service", "chatmail-pushnotify.service", "chatmail-expire.service"}
READERS = {"chatmail-milter.service", "chatmail-fsreport.service"}
# What every service has: a sandbox like a careful maintainer's.
SANDBOX = {
    "User": "vmail", "UMask": "0077", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
    "ProtectHome": "tmpfs", "PrivateTmp": "yes", "PrivateDevices": "yes", "PrivateIPC": "yes",
    "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes", "ProtectClock": "yes", "ProtectHostname": "yes",
    "ProtectProc": "invisible", "RestrictNamespaces": "yes", "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes", "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes",
    "SystemCallArchitectures": "native", "SystemCallErrorNumber": "EPERM",
    "CapabilityBoundingSet": "",
}
# The certificate's renewal: root (the key is root's alone) with no capability but binding
# port 80 (HTTP-01), a network, and its state directories instead of the mailboxes.
CERTS = "chatmail-relay-certs.service"
CERTS_SANDBOX = {**SANDBOX, "User": "root", "CapabilityBoundingSet": "CAP_NET_BIND_SERVICE",
                 "PrivateMounts": "yes", "StateDirectory": "chatmail-relay acme",
                 "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6"}
# The web backend needs no files: a user of its own made at start, no home directory at all,
# IP traffic only to loopback (Postfix, for /mxdeliv).
WEB = "chatmail-web.service"
WEB_SANDBOX = {k: v for k, v in SANDBOX.items() if k not in ("User", "ProtectHome")} | {
    "DynamicUser": "yes", "ProtectHome": "yes", "IPAddressDeny": "any",
    "IPAddressAllow": "localhost",
}
# The iroh relay likewise: no files, answering only nginx on loopback.
IROH = "chatmail-iroh-relay.service"


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
    return build_deb(tmp_path_factory.mktemp("deb"))


def build_deb(out: Path) -> Path:
    """The package built from target/release by deb/build into `out`."""
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
    # ca-certificates: Postfix verifies the certificates of other relays against it; coturn:
    # TURN for calls.
    for needed in ["libc6", "adduser", "postfix", "dovecot-core", "dovecot-imapd", "dovecot-lmtpd",
                   "ca-certificates", "coturn"]:
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
    # The configuration templates are inside chatmail-relay, not beside it.
    assert not any(e.startswith("/usr/share/chatmail-relay/") for e in entries)
    assert entries["/usr/lib/chatmail-relay/ini-get"][0] == "-rwxr-xr-x"
    # appversions_file's default: what pushnotify serves as `appversions`
    assert entries["/usr/share/chatmail/appversions.json"][0] == "-rw-r--r--"
    assert entries[f"/lib/systemd/system-generators/{GENERATOR.name}"][0] == "-rwxr-xr-x"
    assert entries["/lib/systemd/system/coturn.service.d/chatmail-relay.conf"][0] == "-rw-r--r--"
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


def settings(unit: str, text: str | None = None) -> dict[str, list[str]]:
    """The `Key=value` lines of a unit (or of `text`), every value of each key in order."""
    text = text if text is not None else (REPO / "deb" / "systemd" / unit).read_text()
    out: dict[str, list[str]] = {}
    for key, value in re.findall(r"^(\w+)=(.*)$", text, re.M):
        out.setdefault(key, []).append(value)
    return out


@pytest.mark.parametrize("unit", SERVICES)
def test_services_are_sandboxed(unit):
    found = settings(unit)
    expected = {CERTS: CERTS_SANDBOX, WEB: WEB_SANDBOX, IROH: WEB_SANDBOX}.get(unit, SANDBOX)
    for key, value in expected.items():
        assert found.get(key) == [value], f"{unit}: {key}={found.get(key)}"
    assert found["SystemCallFilter"] == ["@system-service", "~@privileged @resources"], unit
    if unit in (WEB, IROH):
        assert not any("/home" in v for vs in found.values() for v in vs), unit
        return
    if unit == CERTS:
        assert not any("/home" in v for vs in found.values() for v in vs), unit
        # the reload runs outside the sandbox ("+"), and only that
        assert found["ExecStartPost"] == ["+/usr/bin/chatmail-relay cert --reload"], unit
        return
    # The mailboxes are the only home directory it sees, read-write only where it writes.
    bind = "BindPaths" if unit in WRITERS else "BindReadOnlyPaths"
    assert found.get(bind) == ["/home/vmail/mail"], unit
    assert not any("/home" in v for k, vs in found.items() if k != bind for v in vs), unit
    if unit.startswith(("chatmail-expire", "chatmail-fsreport", "chatmail-doveauth")):
        assert found.get("PrivateNetwork") == ["yes"], unit
        assert found.get("RestrictAddressFamilies") == ["AF_UNIX"], unit


def exposure(unit_path: Path, env: dict | None = None) -> float:
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit_path)],
        capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
    )
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    assert m, done.stdout + done.stderr
    return float(m[1])


def test_the_unit_that_deletes_files_is_not_the_least_confined():
    """`systemd-analyze security` scores from 0 (confined) to 10 (exposed)."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("no systemd-analyze")
    scores = {u: exposure(REPO / "deb/systemd" / u) for u in SERVICES}
    print(scores)
    assert scores["chatmail-expire.service"] <= min(scores.values()), scores
    assert all(score <= 1.5 for unit, score in scores.items() if unit != CERTS), scores
    # root with a network and port 80: still "OK" in systemd's words
    assert scores[CERTS] <= 2.0, scores


def test_timers_catch_up_on_missed_runs():
    for unit in UNITS:
        if unit.endswith(".timer"):
            assert settings(unit).get("Persistent") == ["true"], unit


def test_descriptor_limits_fit_the_connection_limits():
    """LimitNOFILE= of each daemon: one descriptor per connection it may hold, plus 1024."""
    server = (REPO / "common/src/dict/server.rs").read_text()
    dict_connections = int(re.search(r"const MAX_CONNECTIONS: usize = ([\d_]+);", server)[1])
    for unit in ["chatmail-doveauth.service", "chatmail-pushnotify.service"]:
        assert settings(unit)["LimitNOFILE"] == [str(dict_connections + 1024)], unit
    # three listeners of max_smtp_connections (default 1000) connections each
    assert settings("chatmail-milter.service")["LimitNOFILE"] == [str(3 * 1000 + 1024)]


def generate(tmp_path: Path, ini: str | None) -> dict[str, dict[str, list[str]]]:
    """Runs the generator on a chatmail.ini with `ini` as [params]; its drop-ins by unit."""
    config = tmp_path / "chatmail.ini"
    if ini is not None:
        config.write_text(f"[params]\n{ini}")
    out = tmp_path / "generator"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    env = {**os.environ, "CHATMAIL_INI": str(config), "CHATMAIL_RELAY_LIB": str(GENERATOR.parent)}
    run_ = subprocess.run(["sh", str(GENERATOR), str(out), str(tmp_path), str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=30)
    assert run_.returncode == 0 and not run_.stderr, run_.stderr
    dropins = {}
    for path in out.glob("*.d/*"):
        assert path.name == "chatmail-ini.conf", path
        dropins[path.parent.name.removesuffix(".d")] = settings("", path.read_text())
    return dropins


def test_generator_follows_chatmail_ini(tmp_path):
    found = generate(tmp_path, "mail_domain = chat.example.org\n")
    mailboxes = "/home/vmail/mail/chat.example.org"
    for unit in WRITERS:
        assert found[unit] == {"BindPaths": ["", mailboxes]}, unit
    assert found["chatmail-fsreport.service"] == {"BindReadOnlyPaths": ["", mailboxes]}
    assert found["chatmail-milter.service"] == {
        "BindReadOnlyPaths": ["", mailboxes], "LimitNOFILE": [str(3 * 1000 + 1024)]}

    found = generate(tmp_path, "mail_domain = 1.2.3.4\nmailboxes_dir = /srv/mail\n"
                               "max_smtp_connections = 5000\n")
    assert found["chatmail-expire.service"]["BindPaths"] == ["", "/srv/mail"]
    assert found["chatmail-milter.service"]["LimitNOFILE"] == [str(3 * 5000 + 1024)]
    # the milter serves at least 100 connections per listener
    found = generate(tmp_path, "mail_domain = 1.2.3.4\nmax_smtp_connections = 10\n")
    assert found["chatmail-milter.service"]["LimitNOFILE"] == [str(3 * 100 + 1024)]


def test_generator_writes_nothing_it_cannot_vouch_for(tmp_path):
    assert generate(tmp_path, None) == {}, "no chatmail.ini"
    for bad in ["relative/mail", "/srv/my mail", "/srv/../etc", "/srv/mail\n  /etc"]:
        found = generate(tmp_path, f"mail_domain = x.org\nmailboxes_dir = {bad}\n")
        assert set(found) == {"chatmail-milter.service"}, bad
        assert "BindReadOnlyPaths" not in found["chatmail-milter.service"], bad
    found = generate(tmp_path, "mail_domain = x.org\nmax_smtp_connections = lots\n")
    assert "LimitNOFILE" not in found["chatmail-milter.service"]


def test_units_with_generated_dropins_verify(tmp_path):
    """The units with the generator's drop-ins, as systemd loads them: valid, and as
    confined as without."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("no systemd-analyze")
    generate(tmp_path, "mail_domain = chat.example.org\nmailboxes_dir = /srv/mail\n")
    unit_dir = tmp_path / "generator"
    for unit in UNITS:
        shutil.copy(REPO / "deb/systemd" / unit, unit_dir)
    env = {"SYSTEMD_UNIT_PATH": f"{unit_dir}:"}
    verify = subprocess.run(["systemd-analyze", "verify", *(str(unit_dir / u) for u in UNITS)],
                            capture_output=True, text=True, timeout=120, env={**os.environ, **env})
    problems = [line for line in verify.stderr.splitlines() if "is not executable" not in line]
    assert problems == [], verify.stderr
    for unit in SERVICES:
        assert exposure(unit_dir / unit, env) == exposure(REPO / "deb/systemd" / unit), unit


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
