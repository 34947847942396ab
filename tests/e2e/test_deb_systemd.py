"""The Debian package under a real systemd, as an operator installs it on a server.

A Debian 12 root file system (debootstrap, with Postfix and Dovecot installed) is booted with
`systemd-nspawn --boot --volatile=overlay` (the cached root stays untouched; the container
writes into a tmpfs), with a chatmail.ini of a relay with a domain, its mailboxes outside
/home (`mailboxes_dir = /srv/mail/chat.test`) and `max_smtp_connections = 2000`, and a DKIM key
of group vmail as earlier versions had it. Then `dpkg -i` of the package: its postinst starts
the sockets, daemons and timers under systemd, and the checks look at what systemd made of the
units, the generator's drop-ins and the sandboxes.

Needs root, `systemd-nspawn` (package systemd-container, of the same version as systemd) and
`debootstrap`; skips itself without them. The root file system is cached in
/var/cache/chatmail-relay-test/ (about 270 MB; delete it to rebuild): building it takes about
a minute, a run with it about 20 s (most of it building the package). It works on a machine
whose PID 1 is not systemd and that has no D-Bus: nspawn runs with `--register=no --keep-unit`
in cgroups of its own, and commands enter the container with `nsenter`.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from test_deb import deb  # noqa: F401 - a fixture: the package built from target/release

CACHE = Path("/var/cache/chatmail-relay-test")
# Bump the suffix when the recipe in build_rootfs() changes.
ROOTFS = CACHE / "bookworm-4"
MACHINE = "chatmail-deb-test"
PACKAGES = ["postfix", "dovecot-core", "dovecot-imapd", "dovecot-lmtpd", "adduser",
            "ca-certificates", "nginx", "libnginx-mod-stream", "coturn"]
# Debian 13 (Dovecot 2.4): the root file system with the packages the relay's need there too
# (Lua passdb and luasocket, as the package's dependencies have them).
TRIXIE_ROOTFS = CACHE / "trixie-3"
TRIXIE_PACKAGES = PACKAGES + ["dovecot-auth-lua", "lua-socket"]
# The timers that would take the dpkg lock during a test, and a getty nobody uses.
MASKED = ["apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "fstrim.timer",
          "dpkg-db-backup.timer", "console-getty.service"]
DOMAIN = "chat.test"
MAILBOXES = f"/srv/mail/{DOMAIN}"
MAX_SMTP = 2000
DKIM_KEY = "/etc/dkimkeys/opendkim.private"
DAEMONS = ["chatmail-doveauth.service", "chatmail-pushnotify.service", "chatmail-milter.service",
           "chatmail-web.service"]
SOCKETS = ["chatmail-doveauth.socket", "chatmail-pushnotify.socket", "chatmail-web.socket",
           "chatmail-milter-outbound.socket", "chatmail-milter-inbound.socket",
           "chatmail-milter-internal.socket"]
TIMERS = ["chatmail-expire.timer", "chatmail-fsreport.timer"]

pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not (shutil.which("systemd-nspawn") and shutil.which("debootstrap")),
                       reason="needs systemd-nspawn (systemd-container) and debootstrap"),
]


def mirror() -> str:
    """The Debian mirror apt uses on this machine."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists() and (m := re.search(r"^URIs:\s*(\S+)", sources.read_text(), re.M)):
        return m[1]
    return "http://deb.debian.org/debian"


def cgroup_dirs(name: str) -> list[Path]:
    """A cgroup `name` in each hierarchy systemd-nspawn uses (see the notes)."""
    roots = [Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified")]
    roots = [r for r in roots if r.is_dir()] or [Path("/sys/fs/cgroup")]
    return [r / name for r in roots]


def nspawn(name: str, *args: str, **popen) -> subprocess.Popen:
    """systemd-nspawn started inside cgroups of its own (it needs them with --keep-unit)."""
    dirs = cgroup_dirs(name)
    for d in dirs:
        d.mkdir(exist_ok=True)
    enter = "; ".join(f"echo $$ > {d}/cgroup.procs" for d in dirs)
    return subprocess.Popen(
        ["sh", "-c", f'{enter}; exec "$@"', "sh", "systemd-nspawn", "--quiet", "-M", name,
         "--register=no", "--keep-unit", *args],
        stdin=subprocess.DEVNULL, **popen,
    )


def remove_cgroups(name: str) -> None:
    for d in cgroup_dirs(name):
        for sub in sorted(d.glob("**/"), key=lambda p: len(p.parts), reverse=True):
            sub.rmdir()
    shutil.rmtree(f"/run/systemd/nspawn/propagate/{name}", ignore_errors=True)


def build_rootfs(suite: str = "bookworm") -> Path:
    """Debian 12 (or `suite` trixie, Debian 13) with systemd, Postfix, Dovecot and nginx, made
    once (under a lock) into ROOTFS (TRIXIE_ROOTFS); returns its path."""
    rootfs, packages = {"bookworm": (ROOTFS, PACKAGES),
                        "trixie": (TRIXIE_ROOTFS, TRIXIE_PACKAGES)}[suite]
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if rootfs.is_dir():
            return rootfs
        tmp = rootfs.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(["debootstrap", "--variant=minbase", "--include=systemd,systemd-sysv,dbus",
                        suite, str(tmp), mirror()], check=True, capture_output=True,
                       timeout=600)
        (tmp / "etc/hostname").write_text("chatmail-test\n")
        for unit in MASKED:
            link = tmp / "etc/systemd/system" / unit
            link.unlink(missing_ok=True)
            link.symlink_to("/dev/null")
        install = (
            "echo 'postfix postfix/main_mailer_type select Internet Site' | debconf-set-selections"
            f" && echo 'postfix postfix/mailname string {DOMAIN}' | debconf-set-selections"
            " && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "
            + " ".join(packages) + " && apt-get clean"
        )
        name = f"{MACHINE}-build"
        proc = nspawn(name, "-D", str(tmp), "--pipe", "sh", "-c", install,
                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out, _ = proc.communicate(timeout=600)
        remove_cgroups(name)
        assert proc.returncode == 0, out.decode(errors="replace")
        tmp.rename(rootfs)
        return rootfs


class Container:
    """A booted container: `sh` runs a shell command inside it (all its namespaces)."""

    def __init__(self, deb_dir: Path):
        self.proc = nspawn(MACHINE, "-D", str(ROOTFS), "--boot", "--volatile=overlay",
                           "--private-network", "--console=passive", "--resolv-conf=copy-host",
                           f"--bind-ro={deb_dir}:/mnt/deb",
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.leader = None
        deadline = time.monotonic() + 30
        while self.leader is None:
            assert self.proc.poll() is None, self.proc.stderr.read().decode(errors="replace")
            assert time.monotonic() < deadline, "the container's systemd did not start"
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
            self.leader = int(children.split()[0]) if children.strip() else None
            time.sleep(0.1)
        self.sh("systemctl is-system-running --wait", check=False, timeout=60)

    def sh(self, command: str, check: bool = True, timeout: float = 120) -> str:
        done = subprocess.run(["nsenter", "-t", str(self.leader), "-a", "sh", "-c", command],
                              capture_output=True, text=True, timeout=timeout)
        if check:
            assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
        return done.stdout

    def show(self, unit: str, prop: str) -> str:
        return self.sh(f"systemctl show -p {prop} --value {unit}").strip()

    def stop(self) -> None:
        self.sh("systemctl poweroff", check=False)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.terminate()  # nspawn halts the container in order
            self.proc.wait(timeout=30)
        remove_cgroups(MACHINE)


@pytest.fixture(scope="module")
def container(deb):  # noqa: F811
    started = time.monotonic()
    build_rootfs()
    built = time.monotonic()
    box = Container(deb.parent)
    try:
        box.sh(f"""set -e
            mkdir -p /etc/chatmail
            printf '[params]\\nmail_domain = {DOMAIN}\\nmailboxes_dir = {MAILBOXES}\\n' \
                >/etc/chatmail/chatmail.ini
            printf 'max_smtp_connections = {MAX_SMTP}\\nmax_load_1m = 1000\\n' \
                >>/etc/chatmail/chatmail.ini
            addgroup --system --quiet vmail
            install -d -g vmail -m 0750 {os.path.dirname(DKIM_KEY)}
            openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out {DKIM_KEY}
            chgrp vmail {DKIM_KEY} && chmod 0640 {DKIM_KEY}
        """)
        box.sh(f"dpkg -i /mnt/deb/{deb.name}")
        yield box
    finally:
        box.stop()
        print(f"\nsystemd container: root file system {built - started:.0f} s, "
              f"boot, install and tests {time.monotonic() - built:.0f} s")


def test_sockets_daemons_and_timers_run_after_install(container):
    for unit in SOCKETS + DAEMONS + TIMERS:
        assert container.show(unit, "ActiveState") == "active", unit
    assert "chatmail" not in container.sh("systemctl --failed --no-legend")
    for timer in TIMERS:
        assert container.show(timer, "Persistent") == "yes", timer


def test_generator_dropins_follow_chatmail_ini(container):
    for unit, prop in [("chatmail-doveauth.service", "BindPaths"),
                       ("chatmail-pushnotify.service", "BindPaths"),
                       ("chatmail-expire.service", "BindPaths"),
                       ("chatmail-milter.service", "BindReadOnlyPaths"),
                       ("chatmail-fsreport.service", "BindReadOnlyPaths")]:
        assert container.show(unit, prop).split(":")[0] == MAILBOXES, unit
        dropin = f"/run/systemd/generator/{unit}.d/chatmail-ini.conf"
        assert container.show(unit, "DropInPaths") == dropin, unit
    assert container.show("chatmail-milter.service", "LimitNOFILE") == str(3 * MAX_SMTP + 1024)
    assert container.show("chatmail-doveauth.service", "LimitNOFILE") == "17408"


def test_milter_sees_mailboxes_read_only_and_reads_the_key(container):
    pid = container.show("chatmail-milter.service", "MainPID")
    groups = container.sh(f"grep ^Groups: /proc/{pid}/status").split()[1:]
    assert container.sh("getent group chatmail-dkim").split(":")[2] in groups
    inside = f"nsenter -t {pid} -m"
    assert container.sh(f"{inside} ls -A /home").split() == [], "other homes are hidden"
    denied = container.sh(f"{inside} touch {MAILBOXES}/x 2>&1", check=False)
    assert "Read-only file system" in denied, denied
    # the key moved from group vmail; plain vmail (Dovecot's mail processes) cannot read it
    assert container.sh(f"stat -c '%U:%G %a' {DKIM_KEY} $(dirname {DKIM_KEY})").split() == [
        "root:chatmail-dkim", "640", "root:chatmail-dkim", "750"]
    plain = container.sh(f"setpriv --reuid=vmail --regid=vmail --init-groups cat {DKIM_KEY} 2>&1",
                         check=False)
    assert "Permission denied" in plain, plain
    assert "DKIM: signing" in container.sh("journalctl -u chatmail-milter --no-pager")


def test_doveauth_creates_accounts_in_the_mailboxes_dir(container):
    addr = f"abcdefghi@{DOMAIN}"
    record = container.sh("doveadm dict get proxy:/run/doveauth/doveauth.socket:auth "
                          f"'shared/passdb/secret-password-1\"{addr}'")
    assert f'"home":"{MAILBOXES}/{addr}"' in record, record
    container.sh(f"test -s {MAILBOXES}/{addr}/password")
    pid = container.show("chatmail-doveauth.service", "MainPID")
    assert container.sh(f"nsenter -t {pid} -m ls -A /home").split() == []


def test_pushnotify_answers(container):
    key = ("shared/0123456789abcdef0123456789abcdef/vendor/vendor.dovecot/pvt/server/vendor/"
           "deltachat/maxsmtprecipients")
    out = container.sh(f"doveadm dict get proxy:/run/chatmail-metadata/metadata.socket:metadata "
                       f"'{key}'")
    assert out.strip() == "1000"


def test_expire_deletes_inside_its_sandbox_and_fsreport_runs(container):
    old = f"{MAILBOXES}/oldoldold@{DOMAIN}"
    container.sh(f"""set -e
        mkdir -p {old}/cur && echo x > {old}/password && touch -d '200 days ago' {old}/password
        chown -R vmail:vmail {old} && chmod 0700 {old}""")
    for unit in ["chatmail-expire.service", "chatmail-fsreport.service"]:
        container.sh(f"systemctl start {unit}")
        assert container.show(unit, "Result") == "success", unit
    container.sh(f"test ! -e {old}")
    assert "Removed 1 out of" in container.sh("journalctl -u chatmail-expire --no-pager")


def test_security_exposure(container):
    """`systemd-analyze security` with the drop-ins, 0 (confined) to 10 (exposed)."""
    scores = {}
    for unit in DAEMONS + ["chatmail-expire.service", "chatmail-fsreport.service"]:
        out = container.sh(f"systemd-analyze security --no-pager {unit} | tail -n 1")
        scores[unit] = float(re.search(r"(\d+\.\d+)", out)[1])
    print(scores)
    assert all(score <= 1.5 for score in scores.values()), scores
    assert scores["chatmail-expire.service"] <= min(scores.values()), scores


def test_upgrade_restarts_the_daemons(container, deb):  # noqa: F811
    before = {unit: container.show(unit, "MainPID") for unit in DAEMONS}
    container.sh(f"dpkg -i /mnt/deb/{deb.name}")
    for unit in DAEMONS:
        assert container.show(unit, "ActiveState") == "active", unit
        assert container.show(unit, "MainPID") != before[unit], unit
