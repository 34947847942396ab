#!/usr/bin/env python3
"""The reference suite on a server as the reference runs it: inside a relay of our two-relay
network, under systemd, with the second relay as CHATMAIL_DOMAIN2.

    containers.py [--trixie] CHECKOUT REPORT.xml [pytest args]

Called by `tests/reference/run --containers [--trixie] CHECKOUT [pytest args]` (see there). It
brings up tests/e2e/fednet.py's network: `alpha.test` and `beta.test`, each a Debian 12 (with
--trixie: 13) container under systemd with our .deb (from target/release) installed and set
up, nsd serving their zones, certificates from pebble, which each relay's trust store holds. In alpha, the suite's
dependencies are installed the way an operator's machine has them (Debian's python3 and
dnsutils, a venv with the checkout's chatmaild and cmdeploy); then the suite runs there as
root in its local mode (CHATMAIL_SSH=@local), as after `ssh root@alpha.test`: the environment
of /etc/environment, as pam_env gives a login. So `systemctl`, `journalctl -f` and `doveadm`
ask the relay's real systemd, journal and Dovecot, and the two-relay tests send between alpha
and beta over SMTP with DKIM and verified TLS. Writes the JUnit report to REPORT.xml; exits
with pytest's status. The network is torn down at the end.
"""

from __future__ import annotations

import http.server
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from fednet import HOST_IP, Federation, User, zone  # noqa: E402
from relaytest import wait_for  # noqa: E402
from test_deb import build_deb  # noqa: E402
from test_milter import encrypted_message  # noqa: E402

# Inside alpha.
CHECKOUT = "/root/chatmail-relay"
VENV = "/root/reference-venv"
PLUGINS = "/root/reference-shim"
REPORT = "/root/reference-report.xml"
SUITE = f"{CHECKOUT}/cmdeploy/src/cmdeploy/tests/online"
# python3-venv for the suite's venv, dnsutils for its DNS checks (`dig`), git for its
# test_deployed_state (compares the checkout's commit with the relay's).
PACKAGES = "python3 python3-venv dnsutils git"
# Debian 13's Python 3.13 has no `crypt` module: chatmaild then needs crypt-r, which pip
# builds from source.
BUILD_PACKAGES = {"bookworm": "", "trixie": "gcc libc6-dev python3-dev"}


def with_host_network(relay, command: str) -> None:
    """A command in the container's file system and processes but this machine's network,
    resolver and trust store: downloads (the container's own network reaches only the test
    bridge, its resolv.conf only the test's nsd, and this machine may reach the Internet
    through a proxy whose CA only its own store holds). Both files are bound over the
    container's in a mount namespace of the command's own, so the relay never sees them."""
    files = {"/etc/resolv.conf": "host-resolv.conf",
             "/etc/ssl/certs/ca-certificates.crt": "host-ca-certificates.crt"}
    binds = []
    for path, copy in files.items():
        shutil.copy(path, relay.server.root / "root" / copy)
        binds.append(f"mount --bind /root/{copy} {path}")
    inner = " && ".join([*binds, command])
    # (pip: this machine's own wheel directory is not there)
    env = {k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"}
    subprocess.run(["nsenter", "-t", str(relay.server.leader), "-m", "-u", "-i", "-p", "-C",
                    "--root", "--wd", "unshare", "-m", "sh", "-c", inner], check=True,
                   timeout=900, env=env)


def prepare(relay, checkout: Path, suite: str) -> None:
    """The suite's dependencies in the relay's container."""
    root = relay.server.root
    packages = f"{PACKAGES} {BUILD_PACKAGES[suite]}"
    with_host_network(relay, "apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive"
                      f" apt-get install -q -y --download-only {packages} >/dev/null")
    relay.sh(f"DEBIAN_FRONTEND=noninteractive apt-get install -q -y {packages} >/dev/null",
             timeout=600)
    shutil.copytree(checkout, root / CHECKOUT.lstrip("/"), symlinks=True)
    plugins = root / PLUGINS.lstrip("/")
    plugins.mkdir()
    shutil.copy(REPO / "tests/reference/shim.py", plugins)
    # editable, as the reference's own development setup (cmdeploy reads data files from
    # the work tree); pip downloads with this machine's network
    with_host_network(relay, f"python3 -m venv {VENV} && {VENV}/bin/pip install -q"
                      f" --disable-pip-version-check -e {CHECKOUT}/chatmaild"
                      f" -e {CHECKOUT}/cmdeploy")


class WhatIsMyAddress(http.server.BaseHTTPRequestHandler):
    """icanhazip.com's protocol: the client's address, as text."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = f"{self.client_address[0]}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def serve_icanhazip(net) -> http.server.HTTPServer:
    """icanhazip.com in the test network (the suite's test_hide_senders_ip_address asks it
    for the address its mail comes from, then looks for it in the delivered message): nsd
    answers this machine's end of the bridge for the name, and a server there answers the
    address a request comes from, as the public one does."""
    server = http.server.HTTPServer((HOST_IP, 80), WhatIsMyAddress)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    net.dns.serve({"icanhazip.com": zone("icanhazip.com", f"@ IN A {HOST_IP}\n")})
    return server


def warm_up(net) -> None:
    """One message from beta to alpha, as on a relay in use. The suite's test_remote[smtp]
    follows Postfix's log from the last lines on (`journalctl -f -t postfix/smtpd -t
    postfix/smtp -t postfix/lmtp`) and waits for its first line; a relay that never received
    mail on port 25 nor delivered any has none, and the test would wait forever."""
    sender, recipient = User(net.beta), User(net.alpha)
    sender.send(recipient.addr, encrypted_message(sender.addr, recipient.addr))
    wait_for(recipient.files, timeout=60, what="the warm-up message in alpha's maildir")


def run_suite(relay, domain2: str, args: list[str]) -> int:
    env = {"HOME": "/root", "USER": "root", "LOGNAME": "root", "SHELL": "/bin/sh",
           "LANG": "C.UTF-8", "TERM": os.environ.get("TERM", "dumb"),
           "PATH": f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "CHATMAIL_INI": "/etc/chatmail/chatmail.ini", "CHATMAIL_SSH": "@local",
           "CHATMAIL_DOMAIN2": domain2, "PYTHONPATH": PLUGINS,
           # shim.py: the relays' certificates come from pebble, which Delta Chat core
           # cannot be told to trust
           "CHATMAIL_PRIVATE_CA": "/usr/local/share/ca-certificates/pebble-root.crt"}
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    pytest = shlex.join([f"{VENV}/bin/python", "-m", "pytest", "-p", "no:cacheprovider",
                         "-p", "shim", f"--junitxml={REPORT}", "-o", "junit_logging=no", *args])
    # a login's environment: /etc/environment (pam_env), then the suite's variables
    script = (f"set -a; [ -r /etc/environment ] && . /etc/environment; set +a; "
              f"export {exports}; cd {SUITE} && exec {pytest}")
    done = subprocess.run(["nsenter", "-t", str(relay.server.leader), "-a", "env", "-i",
                           "sh", "-c", script])
    return done.returncode


def main() -> int:
    argv = sys.argv[1:]
    suite = "bookworm"
    if argv[:1] == ["--trixie"]:
        suite, argv = "trixie", argv[1:]
    checkout, report, args = Path(argv[0]).resolve(), Path(argv[1]), argv[2:]
    with tempfile.TemporaryDirectory() as tmp:
        net = Federation(build_deb(Path(tmp)), suite=suite)
        try:
            prepare(net.alpha, checkout, suite)
            warm_up(net)
            icanhazip = serve_icanhazip(net)
            try:
                status = run_suite(net.alpha, net.beta.domain, args)
            finally:
                icanhazip.shutdown()
                icanhazip.server_close()
            produced = net.alpha.server.root / REPORT.lstrip("/")
            if produced.exists():
                shutil.copy(produced, report)
            return status
        finally:
            net.close()


if __name__ == "__main__":
    sys.exit(main())
