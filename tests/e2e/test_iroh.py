"""The iroh relay of the local relay: chatmail-iroh-relay on 127.0.0.1:3340
(`packaging/sidecars/60-iroh.sh`) behind nginx's port 443, as Delta Chat finds it from the
`irohrelay` METADATA.

The probes iroh clients send (`/generate_204`, `/ping`) answer through nginx, and
`chatmail-iroh-relay check` (two clients of the iroh-relay crate) relays a datagram through
`https://127.0.0.1/relay`, the relay's self-signed certificate checked; nginx's access log
shows the WebSocket went through it.
"""

from __future__ import annotations

import http.client
import subprocess

from relaytest import HOST, LOG_DIR, SERVER_METADATA, get_metadata, imap_connect, tls_context

BINARY = "/usr/local/bin/chatmail-iroh-relay"
CERT = "/etc/chatmail/tls/cert.pem"


def get(path: str) -> tuple[int, dict[str, str], bytes]:
    ctx = tls_context()
    ctx.set_alpn_protocols(["http/1.1"])
    conn = http.client.HTTPSConnection(HOST, 443, context=ctx, timeout=30)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def test_metadata_points_at_the_relays_own_iroh_relay(relay, account):
    imap = imap_connect()
    try:
        imap.login(account.addr, account.password)
        url = get_metadata(imap, '""', SERVER_METADATA + "irohrelay")
    finally:
        imap.logout()
    assert url == relay.params.get("iroh_relay", f"https://{relay.mail_domain_bare}")


def test_probes_answer_through_nginx():
    status, headers, body = get("/generate_204")
    assert status == 204, (headers, body)
    status, headers, _ = get("/ping")
    assert status == 200, headers


def test_a_datagram_is_relayed_between_two_clients():
    log = LOG_DIR / "nginx-access.log"
    before = log.stat().st_size if log.exists() else 0
    check = subprocess.run([BINARY, "check", f"https://{HOST}", "--ca", CERT],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "relayed a datagram" in check.stdout, check.stdout
    with log.open() as f:
        f.seek(before)
        upgrades = [line for line in f if "GET /relay" in line and " 101 " in line]
    assert len(upgrades) >= 2, upgrades


def test_an_untrusted_certificate_is_refused(tmp_path):
    other = tmp_path / "other.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(tmp_path / "k.pem"),
                    "-out", str(other), "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1", "-days", "1"],
                   check=True, capture_output=True)
    check = subprocess.run([BINARY, "check", f"https://{HOST}", "--ca", str(other),
                            "--timeout", "5"], capture_output=True, text=True, timeout=60)
    assert check.returncode != 0, check.stdout
    assert len(check.stderr.strip().splitlines()) == 1, check.stderr
