"""The operator's path on a server: `apt install ./chatmail-relay_*.deb`, `chatmail-relay init`,
`chatmail-relay setup`, on a Debian 12 or 13 machine under a real systemd.

The machine is a `systemd-nspawn --boot` container of a cached Debian root file system of
test_deb_systemd.py (Postfix, Dovecot and nginx installed, as Debian configures them), with a writable
overlay of its own (so that it survives a reboot) and a network of its own: a veth pair whose
two ends get BOX_IP (the relay) and HOST_IP (this machine), reachable from nowhere else. From
this machine, outside the container, real Delta Chat cores log in with `chatmail-relay invite`
links and exchange messages both ways; cleartext submission is refused; first logins follow
the creation rules; a device token set over IMAP METADATA gets a push POST; Dovecot's quota
warning runs chatmail-expire; the web face answers. Then each daemon is
restarted and the container rebooted: accounts and mail are still there. A second `setup`
changes nothing. `dpkg --purge` leaves mailboxes and configuration.

Three times: on Debian 12, an IP-only relay (`mail_domain` = BOX_IP, self-signed certificate)
and a relay with a domain (`chat.test`: DKIM key made by setup, certificate by ACME from
Debian's `pebble`, which runs with `pebble-challtestsrv` as its DNS inside the container's
network namespace, every name resolving to the container itself, so that `setup` answers the
HTTP-01 challenges on its port 80); on Debian 13 (Dovecot 2.4, Postfix 3.10, nginx 1.26), an
IP-only relay. Needs what test_deb_systemd.py needs, and pebble; skips without them.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import imaplib
import json
import os
import re
import secrets
import shutil
import socket
import smtplib
import ssl
import string
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from relaytest import SERVER_METADATA, get_metadata, imap_login_ok, set_metadata, tls_context, wait_for
from test_deb import REPO, deb  # noqa: F401 - a fixture: the package built from target/release
from test_deb_systemd import (  # noqa: F401 - pytestmark: the same skips and timeout
    ROOTFS, Container, build_rootfs, nspawn, pytestmark, remove_cgroups,
)
from test_milter import encrypted_message, plain_message
from test_push import Gateway, set_notification_url
from turnclient import Turn, allocate

MACHINE = "cm-deploy"
HOST_IP = "10.213.77.1"
BOX_IP = "10.213.77.2"
WORK = Path("/var/tmp/chatmail-deploy-test")
DOMAIN = "chat.test"
PEBBLE_CA = "/etc/chatmail/pebble-ca.pem"
DAEMONS = ["chatmail-doveauth.service", "chatmail-pushnotify.service", "chatmail-milter.service",
           "chatmail-web.service"]
UNITS = DAEMONS + [
    "chatmail-doveauth.socket", "chatmail-pushnotify.socket", "chatmail-milter-outbound.socket",
    "chatmail-milter-inbound.socket", "chatmail-milter-internal.socket", "chatmail-web.socket",
    "chatmail-expire.timer", "chatmail-fsreport.timer", "postfix.service", "dovecot.service",
    "nginx.service", "coturn.service", "chatmail-iroh-relay.service",
]


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if check:
        assert done.returncode == 0, f"{cmd}: {done.stdout}{done.stderr}"
    return done


class Server(Container):
    """A Debian server in a container, its root an overlay of a cached root file system
    (`sh` and `show` as test_deb_systemd's container; booted and powered off its own way).

    Its network: a veth pair whose two ends get `address` (the server) and HOST_IP (this
    machine), or with `bridge`, a veth into that bridge (the test's network of several hosts;
    the container's resolv.conf is then its own, written by the test), and `address6` beside
    `address` if given."""

    def __init__(self, deb_dir: Path, machine: str = MACHINE, work: Path = WORK,
                 address: str = BOX_IP, bridge: str | None = None,
                 address6: str | None = None, rootfs: Path = ROOTFS):
        self.deb_dir = deb_dir
        self.machine = machine
        self.work = work
        self.address = address
        self.address6 = address6
        self.bridge = bridge
        self.root = work / "root"
        self.proc = None
        self.leader = None
        self.unmount()
        shutil.rmtree(work, ignore_errors=True)
        for d in ["upper", "work", "root"]:
            (work / d).mkdir(parents=True)
        run("mount", "-t", "overlay", "overlay", "-o",
            f"lowerdir={rootfs},upperdir={work}/upper,workdir={work}/work", str(self.root))

    def boot(self) -> None:
        network = ([f"--network-bridge={self.bridge}", "--resolv-conf=off"] if self.bridge
                   else ["--network-veth", "--resolv-conf=copy-host"])
        self.proc = nspawn(self.machine, "-D", str(self.root), "--boot", *network,
                           "--console=passive", f"--bind-ro={self.deb_dir}:/mnt/deb",
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.leader = None
        deadline = time.monotonic() + 30
        while self.leader is None:
            assert self.proc.poll() is None, self.proc.stderr.read().decode(errors="replace")
            assert time.monotonic() < deadline, "the container's systemd did not start"
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
            self.leader = int(children.split()[0]) if children.strip() else None
            time.sleep(0.1)
        if not self.bridge:
            # The two ends of the veth pair; nothing routes beyond them.
            veth = f"ve-{self.machine}"
            wait_for(lambda: Path(f"/sys/class/net/{veth}").exists(), timeout=10,
                     what="the veth")
            run("ip", "addr", "replace", f"{HOST_IP}/24", "dev", veth)
            run("ip", "link", "set", veth, "up")
        inside = ["nsenter", "-t", str(self.leader), "-n", "ip"]
        run(*inside, "link", "set", "lo", "up")
        run(*inside, "addr", "replace", f"{self.address}/24", "dev", "host0")
        if self.address6:
            run(*inside, "-6", "addr", "replace", f"{self.address6}/64", "dev", "host0",
                "nodad")
        run(*inside, "link", "set", "host0", "up")
        # Until the container's D-Bus is up, systemctl cannot even ask.
        wait_for(lambda: self.sh("systemctl is-system-running --wait", check=False,
                                 timeout=90).strip() in ("running", "degraded"),
                 timeout=90, what="the container's boot")

    def poweroff(self) -> None:
        if self.proc is None:
            return
        self.sh("systemctl poweroff", check=False)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.terminate()  # nspawn halts the container in order
            self.proc.wait(timeout=30)
        remove_cgroups(self.machine)
        self.proc = None

    def unmount(self) -> None:
        if (self.work / "root").is_mount():
            run("umount", str(self.work / "root"), check=False)

    def destroy(self) -> None:
        self.poweroff()
        self.unmount()
        shutil.rmtree(self.work, ignore_errors=True)


def pebble_tls(out: Path, ip: str) -> None:
    """A CA (ca.pem) and a certificate of `ip` it signed for pebble's own HTTPS."""
    def ssl(*args: str) -> None:
        run("openssl", *args)

    ssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-days", "2", "-subj", "/CN=chatmail-relay test CA", "-keyout", f"{out}/ca.key",
        "-out", f"{out}/ca.pem", "-addext", "basicConstraints=critical,CA:TRUE")
    ssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-subj", f"/CN={ip}", "-keyout", f"{out}/key.pem", "-out", f"{out}/req.pem")
    (out / "san.ext").write_text(f"subjectAltName=IP:{ip}\n")
    ssl("x509", "-req", "-in", f"{out}/req.pem", "-CA", f"{out}/ca.pem", "-CAkey",
        f"{out}/ca.key", "-CAcreateserial", "-days", "2", "-extfile", f"{out}/san.ext",
        "-out", f"{out}/cert.pem")


class Pebble:
    """pebble (this machine's binary) on `ip`:14000, in the network namespace that `netns`
    enters (a command prefix; none: this machine's), validating challenges with the names
    that `dnsserver` resolves; without one, pebble-challtestsrv runs beside it and every name
    resolves to 127.0.0.1 (the container's own, when pebble runs in its namespace)."""

    def __init__(self, work: Path, netns: list[str], ip: str = "127.0.0.1",
                 dnsserver: str | None = None):
        self.dir = work / "pebble"
        self.dir.mkdir()
        self.ip = ip
        self.directory = f"https://{ip}:14000/dir"
        pebble_tls(self.dir, ip)
        (self.dir / "pebble.json").write_text(
            f'{{"pebble": {{"listenAddress": "{ip}:14000", '
            f'"managementListenAddress": "{ip}:15000", '
            f'"certificate": "{self.dir}/cert.pem", "privateKey": "{self.dir}/key.pem", '
            '"httpPort": 80, "tlsPort": 443, "ocspResponderURL": "", '
            '"externalAccountBindingRequired": false}}')
        self.procs = []
        if dnsserver is None:
            dnsserver = "127.0.0.1:8053"
            self.spawn([*netns, "pebble-challtestsrv", "-defaultIPv4", "127.0.0.1",
                        "-defaultIPv6", "", "-dns01", dnsserver, "-management",
                        "127.0.0.1:8055", "-http01", "", "-https01", "", "-tlsalpn01", ""],
                       "challtestsrv.log", "Starting management server")
        self.spawn([*netns, "pebble", "-config", str(self.dir / "pebble.json"), "-dnsserver",
                    dnsserver], "pebble.log", "ACME directory available at",
                   env={**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"})

    @property
    def ca(self) -> Path:
        """The CA of pebble's own HTTPS (the ACME client's `acme_ca_file`)."""
        return self.dir / "ca.pem"

    def spawn(self, cmd: list[str], log: str, ready: str, env=None) -> None:
        path = self.dir / log
        with path.open("w") as out:
            self.procs.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                               stderr=subprocess.STDOUT, env=env))
        wait_for(lambda: ready in path.read_text(), timeout=20, what=f"{log} to start")

    def root_ca(self) -> str:
        """The root that signs the certificates pebble issues (new at every start of pebble),
        from its management interface."""
        ctx = ssl.create_default_context(cafile=str(self.ca))
        with urllib.request.urlopen(f"https://{self.ip}:15000/roots/0", context=ctx,
                                    timeout=10) as answer:
            return answer.read().decode()

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
            proc.wait(timeout=10)


def link_credentials(link: str) -> tuple[str, str]:
    m = re.match(r"^dclogin:([^?]+)\?p=([^&]+)&", link)
    assert m, link
    return m[1], urllib.parse.unquote(m[2])


def smtp(port: int = 587) -> smtplib.SMTP:
    s = smtplib.SMTP(BOX_IP, port, timeout=30)
    s.starttls(context=tls_context())
    return s


@pytest.fixture(scope="module", params=[("bookworm", BOX_IP), ("bookworm", DOMAIN),
                                        ("trixie", BOX_IP)],
                ids=["ip-only", "acme", "trixie-ip-only"])
def server(request, deb):  # noqa: F811
    suite, domain = request.param
    acme = domain == DOMAIN
    if acme and not shutil.which("pebble"):
        pytest.skip("needs pebble (apt-get install pebble)")
    started = time.monotonic()
    box = Server(deb.parent, rootfs=build_rootfs(suite))
    box.suite = suite
    pebble = None
    try:
        box.boot()
        box.sh(f"DEBIAN_FRONTEND=noninteractive dpkg -i /mnt/deb/{deb.name}")
        box.domain = domain
        settings = ""
        if acme:
            pebble = Pebble(WORK, ["nsenter", "-t", str(box.leader), "-n"])
            shutil.copy(pebble.ca, box.root / PEBBLE_CA.lstrip("/"))
            settings = (f" --set acme_email=ops@{DOMAIN} --set acme_directory={pebble.directory}"
                        f" --set acme_ca_file={PEBBLE_CA} --set dns_resolver=127.0.0.1:8053")
        # max_load_1m: the test shares a small machine; first logins must not be refused.
        box.pebble = pebble
        box.init = box.sh(f"chatmail-relay init {domain} --set max_load_1m=1000{settings}")
        box.setup = box.sh("chatmail-relay setup 2>&1")
        yield box
    finally:
        if pebble is not None:
            pebble.stop()
        box.destroy()
        print(f"\ndeploy ({suite}, {domain}): {time.monotonic() - started:.0f} s")


@pytest.fixture(scope="module")
def invite(server):
    return lambda: server.sh("chatmail-relay invite --no-qr").strip()


def test_setup_starts_every_unit(server):
    assert "relay for" in server.setup and "is running" in server.setup, server.setup
    for unit in UNITS:
        assert server.show(unit, "ActiveState") == "active", unit
    assert server.sh("systemctl --failed --no-legend").strip() == ""
    listening = server.sh("cat /proc/net/tcp /proc/net/tcp6")
    for port in [25, 80, 143, 443, 465, 587, 993, 3478]:
        assert re.search(rf":{port:04X} [0-9A-F:]+ 0A ", listening), port
    # coturn: with setup's configuration, in its sandbox, on UDP 3478 too.
    assert server.sh("systemctl show -p ExecStart --value coturn.service").count(
        "/etc/chatmail/turnserver.conf") == 1
    assert server.show("coturn.service", "ProtectSystem") == "strict"
    assert re.search(r":0D96 ", server.sh("cat /proc/net/udp /proc/net/udp6")), "UDP 3478"
    if server.domain == DOMAIN:
        assert "DKIM record" in server.setup, server.setup
        record = server.sh("cat /etc/chatmail/dkim.txt")
        assert record.startswith(f"opendkim._domainkey.{server.domain}. TXT "), record
        # The certificate from pebble, for the domain and its MTA-STS host; renewed daily.
        cert = server.sh(f"openssl x509 -in /var/lib/acme/live/{DOMAIN}/fullchain -noout -text")
        assert f"DNS:{DOMAIN}" in cert and f"DNS:mta-sts.{DOMAIN}" in cert, cert
        assert "Pebble" in cert, cert
        assert server.show("chatmail-relay-certs.timer", "ActiveState") == "active"
        # DNS is not there (pebble's DNS knows no records): setup warns, does not fail.
        assert "warning: DNS" in server.setup, server.setup
        served = server.sh(f"openssl s_client -connect 127.0.0.1:993 -servername {DOMAIN}"
                           " </dev/null 2>/dev/null | openssl x509 -noout -issuer")
        assert "Pebble" in served, served


def test_status_shows_the_relay_and_fails_when_a_daemon_is_down(server):
    out = server.sh("chatmail-relay status")
    for item in DAEMONS + ["postfix.service", "nginx.service", "coturn.service", "ports",
                           "certificate", "queue", "accounts", "last expiry"]:
        assert item in out, out
    assert "!!" not in out, out
    server.sh("systemctl stop chatmail-milter.service")
    down = server.sh("chatmail-relay status; echo rc=$?", check=False)
    assert "rc=1" in down and "!! chatmail-milter.service" in down, down
    server.sh("systemctl start chatmail-milter.service")


def test_invite_prints_a_link_and_a_qr_code(server):
    out = server.sh("chatmail-relay invite")
    link, qr = out.split("\n", 1)
    assert link.startswith("dclogin:") and f"&ih={server.domain}&" in link, link
    assert "\u2588" in qr or "\u2580" in qr, qr


def https(method: str, path: str, host: str) -> tuple[int, dict, bytes]:
    """A request to the relay's port 443 from this machine (which does not trust its CA)."""
    ctx = tls_context()
    ctx.set_alpn_protocols(["http/1.1"])
    conn = http.client.HTTPSConnection(BOX_IP, 443, context=ctx, timeout=30)
    try:
        conn.request(method, path, body=b"" if method == "POST" else None, headers={"Host": host})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def test_the_web_face_is_served(server):
    """nginx on 80 and 443 in front of chatmail-web: the invite page, /new, MTA-STS, and IMAP
    on port 443 by ALPN with the credentials /new made."""
    host = server.domain
    status, _, page = https("GET", "/", host)
    assert status == 200, page
    if server.domain == DOMAIN:
        assert b'href="dcaccount:https://chat.test/new"' in page, page
        status, headers, _ = https("GET", "/new", host)
        assert status == 301 and headers["location"] == "dcaccount:https://chat.test/new"
        status, _, policy = https("GET", "/.well-known/mta-sts.txt", f"mta-sts.{DOMAIN}")
        assert status == 200 and b"mode: enforce\nmx: chat.test\n" in policy, policy
    else:
        assert b'href="dclogin:' in page, page
    status, _, body = https("POST", "/new", host)
    assert status == 200, body
    answer = json.loads(body)
    assert answer["email"].endswith(f"@{server.domain}" if server.domain == DOMAIN else f"@[{BOX_IP}]")
    ctx = tls_context()
    ctx.set_alpn_protocols(["imap"])
    imap = imaplib.IMAP4_SSL(BOX_IP, 443, ssl_context=ctx, timeout=30)
    imap.login(answer["email"], answer["password"])
    imap.logout()
    # Port 80 sends browsers to HTTPS.
    conn = http.client.HTTPConnection(BOX_IP, 80, timeout=30)
    conn.request("GET", "/", headers={"Host": host})
    r = conn.getresponse()
    assert r.status == 301 and r.getheader("location") == f"https://{host}/"
    conn.close()


def test_the_iroh_relay_answers_through_nginx(server, tmp_path):
    """chatmail-iroh-relay behind nginx's port 443: iroh's probes, and two clients of the
    iroh-relay crate relaying a datagram through /relay (the certificate checked against the
    relay's own, self-signed, or pebble's root)."""
    status, headers, _ = https("GET", "/generate_204", server.domain)
    assert status == 204, headers
    status, _, _ = https("GET", "/ping", server.domain)
    assert status == 200
    # Only nginx reaches it.
    listening = server.sh("cat /proc/net/tcp")
    assert re.search(r"0100007F:0D0C [0-9A-F:]+ 0A ", listening), "127.0.0.1:3340"
    assert not re.search(r"00000000:0D0C [0-9A-F:]+ 0A ", listening), "0.0.0.0:3340"
    if server.domain == DOMAIN:
        return  # the client would look the domain up in DNS, which this machine has not
    ca = tmp_path / "ca.pem"
    ca.write_text(server.sh("cat /etc/chatmail/tls/cert.pem"))
    check = subprocess.run([str(REPO / "target/release/chatmail-iroh-relay"), "check",
                            f"https://{BOX_IP}", "--ca", str(ca)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "relayed a datagram" in check.stdout


def test_the_dcaccount_contract_with_certificate_checks(server):
    """What a Delta Chat core does with `dcaccount:https://chat.test/new` and with
    `dcaccount:chat.test`, with the core's strictness: the certificate verified for the name
    (against pebble's root), no redirects. (The core itself cannot be pointed at a test CA: it
    verifies against the roots compiled into it, see README.)"""
    if server.domain != DOMAIN:
        pytest.skip("a certificate that verifies: ACME only")
    fetch_root = ("import ssl, sys, urllib.request; ctx = ssl.create_default_context(cafile=sys.argv[1]); "
                  "print(urllib.request.urlopen('https://127.0.0.1:15000/roots/0', context=ctx).read().decode())")
    root = run("nsenter", "-t", str(server.leader), "-n", "python3", "-c", fetch_root,
               str(server.pebble.ca)).stdout
    ctx = ssl.create_default_context(cadata=root)

    def verified(method: str, path: str) -> tuple[int, dict, bytes]:
        raw = socket.create_connection((BOX_IP, 443), timeout=30)
        conn = http.client.HTTPSConnection(DOMAIN, 443, context=ctx, timeout=30)
        conn.sock = ctx.wrap_socket(raw, server_hostname=DOMAIN)
        try:
            conn.request(method, path, body=b"" if method == "POST" else None)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    # dcaccount:https://chat.test/new: an empty POST, JSON back, no redirect.
    status, headers, body = verified("POST", "/new")
    assert status == 200 and headers["content-type"].startswith("application/json"), body
    answer = json.loads(body)
    assert "dclogin_url" not in answer
    imap = imaplib.IMAP4_SSL(BOX_IP, 993, ssl_context=tls_context(), timeout=30)
    imap.login(answer["email"], answer["password"])
    imap.logout()
    # dcaccount:chat.test: the core reads autoconfig, makes up a 9-character user name and a
    # 22-character password, and logs in with them where autoconfig says.
    status, _, xml = verified("GET", f"/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=x%40{DOMAIN}")
    assert status == 200 and f"<hostname>{DOMAIN}</hostname>".encode() in xml, xml
    assert b"<port>993</port>" in xml and b"<port>465</port>" in xml
    user = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(9))
    password = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(22))
    imap = imaplib.IMAP4_SSL(BOX_IP, 993, ssl_context=tls_context(), timeout=30)
    imap.login(f"{user}@{DOMAIN}", password)
    imap.logout()


def dc_account(rpc, link: str):
    from deltachat_rpc_client import DeltaChat

    ac = DeltaChat(rpc).add_account()
    ac.add_transport_from_qr(link)
    ac.bring_online()
    return ac


def link_for_host(link: str, address: str = BOX_IP) -> str:
    """The invite link with this machine's way to the relay: its address (chat.test does not
    resolve here, and this machine does not trust pebble's CA)."""
    link = re.sub(r"([?&])(ih|sh)=[^&]+", rf"\g<1>\g<2>={address}", link)
    return link if link.endswith("&ic=3&sc=3") else link + "&ic=3&sc=3"


def exchange(ac1, ac2, text: str) -> None:
    ac1.create_chat(ac2).send_text(text)  # the chats exist already (cores): no contact request
    msg = ac2.wait_for_incoming_msg().get_snapshot()
    assert msg.text == text and msg.show_padlock
    msg.chat.send_text(text + " back")
    reply = ac1.wait_for_incoming_msg().get_snapshot()
    assert reply.text == text + " back" and reply.show_padlock


@pytest.fixture(scope="module")
def cores(server, invite, rpc):
    accounts = [dc_account(rpc, link_for_host(invite())) for _ in range(2)]
    # Each learns the other's key from a chat created with it (a vCard), as in
    # test_deltachat.py.
    accounts[0].create_chat(accounts[1])
    accounts[1].create_chat(accounts[0])
    yield accounts
    remove_cores(accounts)


def remove_cores(accounts) -> None:
    for ac in accounts:
        try:
            ac.stop_io()
            ac.remove()
        except Exception:  # noqa: BLE001 - best effort
            pass


def test_delta_chat_cores_exchange_encrypted_messages(cores):
    exchange(*cores, "hello over the deployed relay")


def test_idle_cores_are_woken_by_new_mail(cores):
    """After 30 s of IDLE, Dovecot hands a connection to imap-hibernate; new mail must still
    wake it up at once (not at the client's next IDLE refresh, minutes later)."""
    time.sleep(40)
    exchange(*cores, "after a while")


def test_cleartext_submission_is_refused(server, invite):
    addr, password = link_credentials(invite())
    s = smtp()
    try:
        s.login(addr, password)
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail(addr, [addr], plain_message(addr, addr).encode())
        assert e.value.smtp_code == 523
    finally:
        s.quit()


def imap_login(addr: str, password: str) -> bool:
    return imap_login_ok(addr, password, host=BOX_IP)


def test_first_login_rules(server):
    """An unknown address with a long enough password is created at its first login (IMAP
    993 from this machine); a wrong password, a short password or /etc/chatmail-nocreate
    creates nothing; ten parallel first logins of one address make one account."""
    domain = server.domain if server.domain == DOMAIN else f"[{BOX_IP}]"
    mailboxes = server.sh("chatmail-relay get mailboxes_dir").strip()

    def fresh() -> str:
        return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(9))

    def exists(addr: str) -> bool:
        return server.sh(f"test -f '{mailboxes}/{addr}/password' && echo yes", check=False).strip() == "yes"

    addr = f"{fresh()}@{domain}"
    assert imap_login(addr, "a long password 1")
    assert exists(addr)
    assert not imap_login(addr, "another long password")
    assert imap_login(addr, "a long password 1")
    short = f"{fresh()}@{domain}"
    assert not imap_login(short, "short")
    assert not exists(short)
    server.sh("touch /etc/chatmail-nocreate")
    try:
        closed = f"{fresh()}@{domain}"
        assert not imap_login(closed, "a long password 2")
        assert not exists(closed)
        assert imap_login(addr, "a long password 1"), "existing accounts still log in"
    finally:
        server.sh("rm -f /etc/chatmail-nocreate")
    racing = f"{fresh()}@{domain}"
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda _: imap_login(racing, "a long password 3"), range(10)))
    assert all(results), results
    assert server.sh(f"ls -A '{mailboxes}/{racing}' | grep -c '^password$'").strip() == "1"


def test_metadata_token_gets_a_push_on_new_mail(server, invite):
    """A device token set with SETMETADATA over IMAP is POSTed to the push gateway (a
    stand-in on this machine) when mail arrives."""
    gateway = Gateway(host=HOST_IP)
    ini = server.sh("cat /etc/chatmail/chatmail.ini")
    try:
        server.sh(f"cat > /etc/chatmail/chatmail.ini <<'EOF'\n{set_notification_url(ini, gateway.url)}EOF")
        server.sh("chatmail-relay setup")
        addr, password = link_credentials(invite())
        sender, sender_password = link_credentials(invite())
        imap = imaplib.IMAP4_SSL(BOX_IP, 993, ssl_context=tls_context(), timeout=30)
        imap.login(addr, password)
        token = "dctest-" + secrets.token_hex(8)
        set_metadata(imap, "INBOX", "/private/devicetoken", token)
        imap.logout()
        s = smtp()
        try:
            s.login(sender, sender_password)
            assert s.sendmail(sender, [addr], encrypted_message(sender, addr).encode()) == {}
        finally:
            s.quit()
        gateway.wait_posts(token, 1, timeout=60)
    finally:
        server.sh(f"cat > /etc/chatmail/chatmail.ini <<'EOF'\n{ini}EOF")
        server.sh("chatmail-relay setup")
        gateway.close()


def server_metadata(link: str, name: str) -> str | None:
    """A server METADATA entry as the account of an invite link reads it over IMAP."""
    addr, password = link_credentials(link)
    imap = imaplib.IMAP4_SSL(BOX_IP, 993, ssl_context=tls_context(), timeout=30)
    try:
        imap.login(addr, password)
        return get_metadata(imap, '""', SERVER_METADATA + name)
    finally:
        imap.logout()


def test_server_metadata_is_served(server, invite):
    """The server's METADATA as a client reads it after login: the appversions JSON that the
    package ships, on one line."""
    appversions = server_metadata(invite(), "appversions")
    assert appversions is not None and "\n" not in appversions
    shipped = json.loads(server.sh("cat /usr/share/chatmail/appversions.json"))
    assert json.loads(appversions) == shipped


def test_logins_get_the_time_zone_file(server):
    """setup adds `TZ=:/etc/localtime` to /etc/environment, as the reference deployment
    does (logins read the zone file once instead of checking it at every conversion)."""
    assert "TZ=:/etc/localtime" in server.sh("cat /etc/environment").splitlines()


def test_turn_allocates_with_the_metadata_credentials(server, invite):
    """coturn on the server, from this machine over UDP 3478: the `turn` credentials of IMAP
    METADATA allocate, forged ones do not; relaying to loopback, a private address or the
    server's own address is refused (a permission sends nothing to the peer)."""
    line = server_metadata(invite(), "turn")
    host, port, user, turn_password = line.split(":")
    assert (host, port) == (server.domain, "3478"), line
    assert f"denied-peer-ip={BOX_IP}\n" in server.sh("cat /etc/chatmail/turnserver.conf")
    client = Turn(user, turn_password, host=BOX_IP)
    try:
        assert client.allocate() == 200
        for peer in ["127.0.0.1", "10.0.0.1", "192.168.1.1", BOX_IP]:
            assert client.permit(peer) == 403, peer
    finally:
        client.close()
    assert allocate(user, turn_password[:-4] + "AAA=", host=BOX_IP) == 401


def test_quota_warning_runs_chatmail_expire(server, invite):
    """Dovecot's quota warning (75 %) runs `chatmail-expire quota` as the package installs it,
    which trims the mailbox under 70 %, oldest first (message files placed with their sizes in
    their names, as test_expire.py does on the local relay)."""
    addr, password = link_credentials(invite())
    sender, sender_password = link_credentials(invite())
    imap = imaplib.IMAP4_SSL(BOX_IP, 993, ssl_context=tls_context(), timeout=30)
    imap.login(addr, password)
    imap.logout()
    limit = 500 << 20  # max_mailbox_size's default
    warn, target = limit * 75 // 100, limit * 70 // 100
    maildir = server.root / server.sh("chatmail-relay get mailboxes_dir").strip().lstrip("/") / addr
    uid, gid = (int(x) for x in server.sh("id -u vmail; id -g vmail").split())
    (maildir / "cur").mkdir(parents=True, exist_ok=True)
    os.chown(maildir / "cur", uid, gid)
    now = int(time.time())

    def place(n: int, when: int, size: int) -> Path:
        path = maildir / "cur" / f"{when}.M{n}P1.deploy,S={size},W={size + 40}:2,S"
        path.write_bytes(f"Subject: placed {n}\r\n\r\nplaced\r\n".encode())
        os.utime(path, (when, when))
        os.chown(path, uid, gid)
        return path

    old_size = limit * 35 // 1000
    olds = [place(k, now - (k + 2) * 86400, old_size) for k in range(6)]
    fresh = place(9, now - 3600, warn - 1000 - 6 * old_size)
    (maildir / "maildirsize").unlink(missing_ok=True)
    server.sh(f"doveadm quota recalc -u '{addr}'")

    def storage() -> int:
        out = server.sh(f"doveadm quota get -u '{addr}'")
        line = next(l for l in out.splitlines() if "STORAGE" in l.split())
        fields = line.split()
        return int(fields[fields.index("STORAGE") + 1]) * 1024

    assert warn - 4096 < storage() <= warn
    s = smtp()
    try:
        s.login(sender, sender_password)
        assert s.sendmail(sender, [addr], encrypted_message(sender, addr, size=3000).encode()) == {}
    finally:
        s.quit()
    wait_for(lambda: storage() <= target, timeout=60, interval=0.5,
             what="the mailbox trimmed under 70 %")
    assert not olds[5].exists() and not olds[4].exists() and all(p.exists() for p in olds[:4])
    assert fresh.exists()


def test_setup_again_changes_nothing(server):
    before = {u: server.show(u, "MainPID") for u in DAEMONS + ["dovecot.service"]}
    assert server.sh("chatmail-relay setup --dry-run") == ""
    out = server.sh("chatmail-relay setup")
    assert "configuration unchanged" in out and "wrote" not in out, out
    assert {u: server.show(u, "MainPID") for u in before} == before


def test_the_certificate_renews(server):
    """The daily unit (a certificate that is not due stays), then a forced renewal: Postfix
    and Dovecot serve the new certificate."""
    if server.domain != DOMAIN:
        pytest.skip("ACME only")
    server.sh("systemctl start chatmail-relay-certs.service")
    assert server.show("chatmail-relay-certs.service", "Result") == "success"

    def serial(port: int) -> str:
        starttls = "-starttls smtp" if port == 587 else ""
        return server.sh(f"openssl s_client -connect 127.0.0.1:{port} {starttls} </dev/null"
                         " 2>/dev/null | openssl x509 -noout -serial", check=False).strip()

    before = serial(993)
    assert before.startswith("serial=") and serial(587) == before
    server.sh("chatmail-relay cert --renew --force")
    wait_for(lambda: serial(993) not in ("", before), timeout=30, what="Dovecot's new certificate")
    wait_for(lambda: serial(587) == serial(993), timeout=30, what="Postfix's new certificate")
    assert "!!" not in server.sh("chatmail-relay status")
    # A renewal that fails (an ACME server that does not answer) shows in status at once, and
    # leaves the certificate in place.
    ini = server.sh("cat /etc/chatmail/chatmail.ini")
    server.sh(f"sed -i 's|^acme_directory = .*|acme_directory = https://127.0.0.1:9/dir|' "
              "/etc/chatmail/chatmail.ini")
    failed = server.sh("chatmail-relay cert --renew --force 2>&1; echo rc=$?", check=False)
    assert "rc=1" in failed, failed
    status = server.sh("chatmail-relay status; echo rc=$?", check=False)
    assert "!! renewal" in status and "rc=1" in status, status
    assert serial(993) not in ("", before)
    server.sh(f"cat > /etc/chatmail/chatmail.ini <<'EOF'\n{ini}EOF")
    server.sh("chatmail-relay cert --renew --force")
    assert "!!" not in server.sh("chatmail-relay status")


def test_the_operators_certificate_is_used_and_watched(server):
    """tls_external_cert_and_key: Postfix and Dovecot serve the operator's files, and reload
    when they change (a path unit that setup writes)."""
    if server.domain == DOMAIN:
        pytest.skip("once, on the IP-only relay")
    new_cert = ("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
                " -days 30 -subj /CN={cn} -keyout /etc/ssl/relay/key.new"
                " -out /etc/ssl/relay/cert.new 2>/dev/null"
                " && mv /etc/ssl/relay/key.new /etc/ssl/relay/key.pem"
                " && mv /etc/ssl/relay/cert.new /etc/ssl/relay/cert.pem")
    server.sh("install -d /etc/ssl/relay && " + new_cert.format(cn="first.example"))
    paths = "/etc/ssl/relay/cert.pem /etc/ssl/relay/key.pem"
    server.sh("sed -i 's|^tls_external_cert_and_key =.*|tls_external_cert_and_key = "
              f"{paths}|' /etc/chatmail/chatmail.ini")
    server.sh("chatmail-relay setup")
    assert server.show("chatmail-relay-tls-reload.path", "ActiveState") == "active"

    def served(port: int) -> str:
        return server.sh(f"openssl s_client -connect 127.0.0.1:{port} {'-starttls smtp' if port == 587 else ''}"
                         " </dev/null 2>/dev/null | openssl x509 -noout -subject", check=False)

    assert "first.example" in served(993) and "first.example" in served(587)
    server.sh(new_cert.format(cn="second.example"))
    wait_for(lambda: "second.example" in served(993), timeout=30, what="Dovecot's reload")
    wait_for(lambda: "second.example" in served(587), timeout=30, what="Postfix's reload")
    # Back to the self-signed certificate: the watch stops.
    server.sh("sed -i 's|^tls_external_cert_and_key =.*|tls_external_cert_and_key =|' "
              "/etc/chatmail/chatmail.ini")
    server.sh("chatmail-relay setup")
    assert server.show("chatmail-relay-tls-reload.path", "ActiveState") == "inactive"


def test_restarts_and_reboot_lose_nothing(server, invite, cores):
    # Mail waiting in a mailbox whose owner is offline, and an account that exists.
    addr, password = link_credentials(invite())
    s = smtp()
    try:
        s.login(addr, password)
        assert s.sendmail(addr, [addr], encrypted_message(addr, addr).encode()) == {}
    finally:
        s.quit()
    maildir = f"$(chatmail-relay get mailboxes_dir)/{addr}"
    wait_for(lambda: server.sh(f"ls {maildir}/new {maildir}/cur 2>/dev/null | grep -c .",
                               check=False).strip() not in ("", "0"),
             timeout=30, what="delivery into the mailbox")

    for unit in DAEMONS:
        server.sh(f"systemctl restart {unit}")
        assert server.show(unit, "ActiveState") == "active", unit
    exchange(*cores, "after restarts")

    # The cores go offline meanwhile, as phones do: a connection to the old container would
    # hang in IDLE until a TCP timeout (nothing tells this machine that it is gone).
    for ac in cores:
        ac.stop_io()
    server.poweroff()
    server.boot()
    for unit in UNITS:
        assert server.show(unit, "ActiveState") == "active", unit
    assert server.sh(f"cat {maildir}/password").strip()
    assert server.sh(f"ls {maildir}/new {maildir}/cur | grep -c .").strip() != "0"
    for ac in cores:
        ac.start_io()
    exchange(*cores, "after a reboot")

    server.sh("systemctl start chatmail-expire.service")
    assert server.show("chatmail-expire.service", "Result") == "success"


def test_purge_keeps_mailboxes_and_configuration(server):
    mailboxes = server.sh("chatmail-relay get mailboxes_dir").strip()
    server.sh("dpkg --purge chatmail-relay")
    server.sh(f"test -d {mailboxes} && test -f /etc/chatmail/chatmail.ini")
    assert server.sh(f"ls {mailboxes} | grep -c @").strip() != "0"
