"""A network of two chatmail relays for federation tests and benchmarks.

On a bridge that exists only on this machine (BRIDGE, 10.213.78.0/24 and fd42:13:78::/64, no
route beyond it):
- two relays, each a Debian 12 (or 13) container under systemd (test_deploy's `Server`), installed
  from the .deb and set up with `chatmail-relay init` and `setup`: `alpha.test` and
  `beta.test`;
- an authoritative DNS server, Debian's `nsd`, in a network namespace of its own (DNS_IP),
  serving each relay's zone exactly as that relay's `chatmail-relay dns --zonefile` prints it
  (plus the SOA and NS every zone needs); the relays' resolv.conf points at it;
- Debian's `pebble` on this machine's end of the bridge (HOST_IP), the ACME server both relays
  get their certificates from, validating with the names nsd serves; its root is installed in
  each relay's trust store, so Postfix verifies the other relay (`smtp_tls_security_level =
  verify`).

This machine reaches the relays at their addresses (the Delta Chat cores log in with links
rewritten to them). Everything is torn down at the end: containers, namespace, bridge.
"""

from __future__ import annotations

import gzip
import imaplib
import shutil
import smtplib
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rdatatype
from relaytest import tls_context, wait_for
from test_deb_systemd import build_rootfs
from test_deploy import Pebble, Server, link_credentials, run

BRIDGE = "cmfed0"
HOST_IP = "10.213.78.1"
DNS_IP = "10.213.78.53"
DNS_NETNS = "cmfed-dns"
WORK = Path("/var/tmp/chatmail-federation-test")
HOST_IP6 = "fd42:13:78::1"
# domain: (IPv4, IPv6); Postfix delivers over either (smtp_address_preference = any).
RELAYS = {"alpha.test": ("10.213.78.2", "fd42:13:78::2"),
          "beta.test": ("10.213.78.3", "fd42:13:78::3")}
PEBBLE_CA = "/etc/chatmail/pebble-ca.pem"


def zone(domain: str, records: str) -> str:
    """A zone file: the SOA and NS nsd needs, then the relay's own records."""
    return (f"$ORIGIN {domain}.\n$TTL 3600\n"
            "@ IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60\n"
            "@ IN NS ns.test.\n" + records)


class Nameserver:
    """nsd, authoritative for the relays' zones, on DNS_IP:53 in its own network namespace
    (a veth into the bridge), so it can never clash with a DNS server of this machine."""

    def __init__(self, work: Path):
        self.dir = work / "nsd"
        self.dir.mkdir(parents=True)
        self.proc = None
        self.zones: dict[str, str] = {}
        run("ip", "netns", "add", DNS_NETNS)
        run("ip", "link", "add", "cmfed-dns0", "type", "veth", "peer", "name", "eth0",
            "netns", DNS_NETNS)
        run("ip", "link", "set", "cmfed-dns0", "master", BRIDGE, "up")
        inside = ["ip", "netns", "exec", DNS_NETNS, "ip"]
        run(*inside, "link", "set", "lo", "up")
        run(*inside, "addr", "add", f"{DNS_IP}/24", "dev", "eth0")
        run(*inside, "link", "set", "eth0", "up")

    def serve(self, zones: dict[str, str]) -> None:
        """(Re)starts nsd with these zones (domain: zone file text)."""
        self.zones.update(zones)
        self.stop()
        conf = ["server:", f"  ip-address: {DNS_IP}", "  port: 53", '  username: ""',
                '  chroot: ""', f'  zonesdir: "{self.dir}"', '  database: ""',
                f'  zonelistfile: "{self.dir}/zone.list"', f'  xfrdfile: "{self.dir}/xfrd.state"',
                f'  xfrdir: "{self.dir}"', f'  pidfile: "{self.dir}/nsd.pid"',
                f'  logfile: "{self.dir}/nsd.log"', "  server-count: 1",
                # No response rate limiting: it drops answers beyond 200 a second to one
                # network, and a relay under load asks more often (Postfix's client then waits
                # out its resolver's 5 s timeout).
                "  rrl-ratelimit: 0", "  rrl-whitelist-ratelimit: 0",
                "remote-control:", "  control-enable: no"]
        for domain, text in self.zones.items():
            (self.dir / f"{domain}.zone").write_text(text)
            conf += ["zone:", f"  name: {domain}", f"  zonefile: {domain}.zone"]
        (self.dir / "nsd.conf").write_text("\n".join(conf) + "\n")
        run("nsd-checkconf", str(self.dir / "nsd.conf"))
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", DNS_NETNS, "nsd", "-d", "-c", str(self.dir / "nsd.conf")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        for domain in self.zones:
            wait_for(lambda d=domain: self.answers(d), timeout=20, what=f"nsd to serve {domain}")

    def answers(self, domain: str) -> bool:
        try:
            reply = dns.query.udp(dns.message.make_query(domain, dns.rdatatype.SOA), DNS_IP,
                                  timeout=1)
        except (OSError, dns.exception.DNSException):
            return False
        return bool(reply.answer)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def destroy(self) -> None:
        self.stop()
        run("ip", "netns", "del", DNS_NETNS, check=False)


@dataclass
class Relay:
    """One relay of the network: its container, its domain and address."""
    domain: str
    address: str
    address6: str
    server: Server
    setup: str = ""

    def sh(self, command: str, check: bool = True, timeout: float = 120) -> str:
        return self.server.sh(command, check=check, timeout=timeout)

    def invite(self) -> str:
        return self.sh("chatmail-relay invite --no-qr").strip()

    def zonefile(self) -> str:
        return self.sh(f"chatmail-relay dns --zonefile --ip {self.address} --ip {self.address6}")

    def queue(self) -> str:
        """Postfix's queue, one JSON object a message (postqueue -j)."""
        return self.sh("postqueue -j")

    def flush(self) -> None:
        self.sh("postqueue -f")


class User:
    """An account on a relay, made by logging in with the credentials of an invite link."""

    def __init__(self, relay: Relay):
        self.relay = relay
        self.addr, self.password = link_credentials(relay.invite())
        self.imap().logout()
        mailboxes = relay.sh("chatmail-relay get mailboxes_dir").strip().lstrip("/")
        # Read from this machine through the container's root.
        self.maildir = relay.server.root / mailboxes / self.addr

    def imap(self) -> imaplib.IMAP4_SSL:
        imap = imaplib.IMAP4_SSL(self.relay.address, 993, ssl_context=tls_context(), timeout=60)
        imap.login(self.addr, self.password)
        return imap

    def smtp(self) -> smtplib.SMTP:
        """An authenticated connection to the relay's port 587 (STARTTLS)."""
        s = smtplib.SMTP(self.relay.address, 587, timeout=120)
        s.starttls(context=tls_context())
        s.login(self.addr, self.password)
        return s

    def send(self, to: str, msg: str) -> None:
        with self.smtp() as s:
            assert s.sendmail(self.addr, [to], msg.encode()) == {}

    def files(self) -> list[Path]:
        """The maildir's message files."""
        return sorted(f for sub in ["new", "cur"] for f in (self.maildir / sub).glob("*"))

    def mailbox(self) -> list[str]:
        """Every message in the mailbox (Dovecot stores them compressed)."""
        return [read_stored(f.read_bytes()) for f in self.files()]


def read_stored(data: bytes) -> str:
    return (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode(errors="replace")


class Federation:
    """The bridge, nsd, pebble and the two relays; `close()` removes all of it."""

    def __init__(self, deb: Path, settings: str = "", suite: str = "bookworm"):
        """`suite`: the relays' Debian release (test_deb_systemd's root file systems)."""
        started = time.monotonic()
        self.rootfs = build_rootfs(suite)
        self.cleanup_leftovers()
        WORK.mkdir(parents=True)
        run("ip", "link", "add", BRIDGE, "type", "bridge")
        run("ip", "addr", "add", f"{HOST_IP}/24", "dev", BRIDGE)
        run("ip", "-6", "addr", "add", f"{HOST_IP6}/64", "dev", BRIDGE, "nodad")
        run("ip", "link", "set", BRIDGE, "up")
        self.relays: dict[str, Relay] = {}
        self.dns = self.pebble = None
        try:
            self.dns = Nameserver(WORK)
            self.pebble = Pebble(WORK, [], ip=HOST_IP, dnsserver=f"{DNS_IP}:53")
            self.start(deb, settings)
        except BaseException:
            self.close()
            raise
        print(f"\nfederation network up: {time.monotonic() - started:.0f} s")

    def start(self, deb: Path, settings: str) -> None:
        for domain, (address, address6) in RELAYS.items():
            name = domain.split(".")[0]
            box = Server(deb.parent, machine=f"cmfed-{name}", work=WORK / name,
                         address=address, address6=address6, bridge=BRIDGE,
                         rootfs=self.rootfs)
            resolv = box.root / "etc/resolv.conf"
            resolv.unlink(missing_ok=True)
            resolv.write_text(f"nameserver {DNS_IP}\n")
            self.relays[name] = relay = Relay(domain, address, address6, box)
            box.boot()
            box.sh(f"DEBIAN_FRONTEND=noninteractive dpkg -i /mnt/deb/{deb.name}")
            shutil.copy(self.pebble.ca, box.root / PEBBLE_CA.lstrip("/"))
            # max_load_1m: the relays share a small machine with the tests, and first logins
            # must not be refused as "load too high".
            box.sh(f"chatmail-relay init {domain} --set acme_email=ops@{domain}"
                   f" --set acme_directory={self.pebble.directory}"
                   f" --set acme_ca_file={PEBBLE_CA} --set max_load_1m=1000{settings}")
        # The zones as the relays print them before setup (no DKIM key yet): names and MX,
        # so that pebble finds the relays for its HTTP-01 challenges.
        self.publish()
        root = self.pebble.root_ca()
        for relay in self.relays.values():
            relay.setup = relay.sh("chatmail-relay setup 2>&1")
            # The operator trusts the CA of the other relays' certificates (here: pebble's).
            relay.sh(f"cat > /usr/local/share/ca-certificates/pebble-root.crt <<'EOF'\n{root}EOF\n"
                     "update-ca-certificates >/dev/null && systemctl reload postfix")
        # Now with the DKIM keys that setup made.
        self.publish()

    def publish(self) -> None:
        zones = {r.domain: zone(r.domain, r.zonefile()) for r in self.relays.values()}
        # The parent zone, with the address of the name server that the relays' zones name
        # (as a registry's glue): a client that asks the authoritative server directly, as
        # the reference's DNS check does (`dig @ns.test.`), finds it.
        zones["test"] = zone("test", f"ns IN A {DNS_IP}\n")
        self.dns.serve(zones)

    @property
    def alpha(self) -> Relay:
        return self.relays["alpha"]

    @property
    def beta(self) -> Relay:
        return self.relays["beta"]

    @staticmethod
    def cleanup_leftovers() -> None:
        """What a killed earlier run may have left: mounts, namespace, bridge, files."""
        for name in ["alpha", "beta"]:
            if (WORK / name / "root").is_mount():
                run("umount", "-l", str(WORK / name / "root"), check=False)
        if Path(f"/run/netns/{DNS_NETNS}").exists():
            run("ip", "netns", "del", DNS_NETNS, check=False)
        for link in [BRIDGE, "cmfed-dns0"]:
            if Path(f"/sys/class/net/{link}").exists():
                run("ip", "link", "del", link, check=False)
        shutil.rmtree(WORK, ignore_errors=True)

    def close(self) -> None:
        for relay in self.relays.values():
            try:
                relay.server.destroy()
            except Exception as e:  # noqa: BLE001 - tear down the rest regardless
                print(f"teardown of {relay.domain}: {e}")
        if self.pebble is not None:
            self.pebble.stop()
        if self.dns is not None:
            self.dns.destroy()
        run("ip", "link", "del", BRIDGE, check=False)
        shutil.rmtree(WORK, ignore_errors=True)
