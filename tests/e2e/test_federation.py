"""Federation: two of our relays exchange mail over verified TLS, DKIM-signed and verified.

The network is fednet.py's: `alpha.test` and `beta.test`, each a Debian 12 container set up
with `chatmail-relay init` and `setup`, nsd serving the zones the relays print
(`chatmail-relay dns --zonefile`), certificates from pebble, whose root both relays trust.
Postfix delivers from one to the other with `smtp_tls_security_level = verify`. beta's
`/mxdeliv` (relay-to-relay delivery over HTTPS) applies the same policy as its port 25.

Each relay has an IPv4 and an IPv6 address (A and AAAA records); Postfix uses either.

The tests share the network and run in this order on purpose: the first mail from alpha into
beta is the one sent while DNS is down (beta's milter would otherwise have alpha's DKIM key
from an earlier lookup in its cache), and beta is powered off only in the last test.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import smtplib
import socket
import ssl

import dkim
import dns.message
import dns.query
import dns.rdatatype
import pytest
from fednet import DNS_IP, Federation, Relay, User
from relaytest import tls_context, wait_for
from test_deb import deb  # noqa: F401 - a fixture: the package built from target/release
from test_deb_systemd import pytestmark  # noqa: F401 - the same skips and timeout
from test_deploy import dc_account, link_for_host, remove_cores
from test_dkim import DKIM_MISSING as DKIM_MISSING_BYTES
from test_dkim import DKIM_REJECTED as DKIM_REJECTED_BYTES
from test_dkim import sign
from test_milter import encrypted_message

DKIM_REJECTED = DKIM_REJECTED_BYTES.decode()
DKIM_MISSING = DKIM_MISSING_BYTES.decode()


@pytest.fixture(scope="module")
def net(deb):  # noqa: F811
    if not (os.path.exists("/usr/sbin/nsd") and os.path.exists("/usr/bin/pebble")):
        pytest.skip("needs nsd and pebble (apt-get install nsd pebble)")
    network = Federation(deb)
    try:
        yield network
    finally:
        network.close()


def message_ids(messages: list[str]) -> list[str]:
    return [m for raw in messages for m in re.findall(r"(?im)^Message-ID:\s*(<[^>]+>)", raw)]


def queued(relay: Relay) -> list[dict]:
    return [json.loads(line) for line in relay.queue().splitlines() if line.strip()]


def delay_reasons(relay: Relay) -> str:
    return " | ".join(r.get("delay_reason", "") for m in queued(relay) for r in m["recipients"])


def dkim_key(relay: Relay) -> tuple[bytes, bytes]:
    """The relay's DKIM selector and private key (PEM)."""
    selector = relay.sh("chatmail-relay get dkim_selector").strip()
    key = relay.sh("cat \"$(chatmail-relay get dkim_key)\"")
    return selector.encode(), key.encode()


def dns_txt(name: bytes, timeout: float = 5) -> bytes | None:
    """DNS TXT lookups for dkimpy, asked of the network's nsd."""
    query = dns.message.make_query(name.decode(), dns.rdatatype.TXT)
    reply = dns.query.udp(query, DNS_IP, timeout=timeout)
    for rrset in reply.answer:
        for rdata in rrset:
            return b"".join(rdata.strings)
    return None


def port25(relay: Relay, sender: str, rcpt: str, msg: str) -> tuple[int, str]:
    """Delivers `msg` straight to the relay's port 25 as another mail server would (STARTTLS):
    the reply to DATA (or to the first command refused)."""
    with smtplib.SMTP(relay.address, 25, timeout=60) as s:
        s.starttls(context=tls_context())
        try:
            s.sendmail(sender, [rcpt], msg.encode())
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error.decode()
        except smtplib.SMTPRecipientsRefused as e:
            code, text = e.recipients[rcpt]
            return code, text.decode()
    return 250, ""


def test_relays_are_set_up_and_dns_has_their_records(net):
    for relay in net.relays.values():
        assert "is running" in relay.setup, relay.setup
        check = relay.sh("chatmail-relay dns --check; echo rc=$?", check=False)
        assert "rc=0" in check, check
        assert relay.sh("postconf -h smtp_tls_security_level").strip() == "verify"


def test_without_dns_mail_waits_and_arrives_once_dns_is_back(net):
    """DNS down: beta cannot look up alpha's DKIM key (451 4.7.5 to a server that delivers
    straight to its port 25), and alpha cannot find beta (its Postfix keeps the message).
    Once DNS is back, alpha's retry delivers it, once."""
    sender, rcpt = User(net.alpha), User(net.beta)
    signed = sign(encrypted_message(sender.addr, rcpt.addr), net.alpha.domain,
                  *dkim_key(net.alpha))
    net.dns.stop()
    try:
        code, text = port25(net.beta, sender.addr, rcpt.addr, signed)
        assert (code, text[:5]) == (451, "4.7.5"), (code, text)
        msg = encrypted_message(sender.addr, rcpt.addr)
        sender.send(rcpt.addr, msg)
        wait_for(lambda: "try again" in delay_reasons(net.alpha).lower(), timeout=30,
                 what="alpha's Postfix to defer the message")
    finally:
        net.dns.serve({})
    net.alpha.flush()
    wait_for(lambda: rcpt.mailbox(), timeout=60, what="delivery once DNS is back")
    assert message_ids(rcpt.mailbox()) == message_ids([msg])
    assert queued(net.alpha) == []


def test_relays_deliver_to_each_other_over_ipv6(net):
    """Each relay has an IPv6 address beside its IPv4 one, in DNS (AAAA) and on its Postfix
    (inet_protocols = all): with IPv6 preferred, alpha delivers to beta over IPv6."""
    sender, rcpt = User(net.alpha), User(net.beta)
    net.alpha.sh("postconf -e smtp_address_preference=ipv6 && postfix reload")
    try:
        msg = encrypted_message(sender.addr, rcpt.addr)
        sender.send(rcpt.addr, msg)
        wait_for(lambda: rcpt.mailbox(), timeout=60, what="delivery over IPv6")
    finally:
        net.alpha.sh("postconf -X smtp_address_preference && postfix reload")
    assert message_ids(rcpt.mailbox()) == message_ids([msg])
    log = net.alpha.sh("journalctl -q -o cat SYSLOG_IDENTIFIER=postfix/smtp")
    assert f"relay=beta.test[{net.beta.address6}]:25" in log and "status=sent" in log, log


@pytest.fixture(scope="module")
def cores(net, rpc):
    """Delta Chat cores on this machine: one account on alpha, two on beta."""
    accounts = [dc_account(rpc, link_for_host(relay.invite(), relay.address))
                for relay in [net.alpha, net.beta, net.beta]]
    yield accounts
    remove_cores(accounts)


def incoming(ac, text: str):
    msg = ac.wait_for_incoming_msg().get_snapshot()
    assert msg.text == text and msg.show_padlock, (msg.text, msg.show_padlock)
    return msg


def test_cores_secure_join_and_chat_across_relays(cores):
    a1, b1, _ = cores
    assert a1.get_config("configured_addr").endswith("@alpha.test")
    assert b1.get_config("configured_addr").endswith("@beta.test")
    b1.secure_join(a1.get_qr_code())
    a1.wait_for_securejoin_inviter_success()
    b1.wait_for_securejoin_joiner_success()
    b1.create_chat(a1).send_text("hello alpha, from beta")
    msg = incoming(a1, "hello alpha, from beta")
    msg.chat.send_text("hello beta, from alpha")
    incoming(b1, "hello beta, from alpha")


def test_cores_group_with_members_on_both_relays(cores):
    a1, b1, b2 = cores
    # b2 and a1 learn each other's keys from a chat created with the other (a vCard).
    a1.create_chat(b2)
    b2.create_chat(a1)
    group = a1.create_group("alpha and beta")
    group.add_contact(b1, b2)
    group.send_text("hello group")
    incoming(b1, "hello group")
    msg = incoming(b2, "hello group")
    msg.chat.send_text("hello from beta to the group")
    incoming(a1, "hello from beta to the group")
    incoming(b1, "hello from beta to the group")


def test_cores_send_an_attachment_of_several_mb(cores, tmp_path):
    a1, b1, _ = cores
    path = tmp_path / "several-mb.bin"
    path.write_bytes(os.urandom(6 * 1024 * 1024))
    a1.create_chat(b1).send_message(text="a big file", file=str(path))
    # Delta Chat announces a big attachment with a small message first (its text shows the
    # file's name and size) and replaces it when the whole message has arrived.
    first = b1.wait_for_incoming_msg().get_snapshot()
    assert first.text.startswith("a big file"), first.text

    def whole():
        for m in first.chat.get_messages():
            snapshot = m.get_snapshot()
            if snapshot.file and snapshot.text == "a big file":
                return snapshot
        return None

    msg = wait_for(whole, timeout=120, interval=1, what="the whole attachment")
    assert msg.show_padlock
    assert os.path.getsize(msg.file) == path.stat().st_size
    assert hashlib.sha256(open(msg.file, "rb").read()).digest() == hashlib.sha256(
        path.read_bytes()).digest()


def test_port25_refuses_mail_without_a_valid_aligned_signature(net):
    """As spec §6: from a named domain, a valid signature of the From domain or nothing."""
    sender, rcpt = User(net.alpha), User(net.beta)
    alpha_key, beta_key = dkim_key(net.alpha), dkim_key(net.beta)

    def msg() -> str:
        return encrypted_message(sender.addr, rcpt.addr)

    code, text = port25(net.beta, sender.addr, rcpt.addr, msg())
    assert (code, text) == (554, DKIM_MISSING), ("unsigned", code, text)
    refused = {
        # signed by alpha, then a signed header changed
        "broken": sign(msg(), net.alpha.domain, *alpha_key).replace("Subject: [...]",
                                                                   "Subject: [....]"),
        # a valid signature, of another domain than From's
        "foreign": sign(msg(), net.beta.domain, *beta_key),
    }
    for name, raw in refused.items():
        code, text = port25(net.beta, sender.addr, rcpt.addr, raw)
        assert (code, text) == (550, DKIM_REJECTED), (name, code, text)
    # A good signature passes; a verdict the sender wrote itself does not reach the mailbox.
    good = encrypted_message(sender.addr, rcpt.addr, extra={
        "Authentication-Results": f"{net.beta.domain}; dkim=pass header.d={net.alpha.domain}"})
    assert port25(net.beta, sender.addr, rcpt.addr, sign(good, net.alpha.domain, *alpha_key)) \
        == (250, "")
    wait_for(lambda: rcpt.mailbox(), timeout=30, what="the signed message")
    (stored,) = rcpt.mailbox()
    assert message_ids([stored]) == message_ids([good])
    assert not re.search(r"(?im)^Authentication-Results:", stored), stored[:2000]


def mxdeliv(net, relay: Relay, sender: str, rcpt: str, msg: str) -> tuple[int, str]:
    """POST https://DOMAIN/mxdeliv as filtermail's transport does, the certificate verified for
    the relay's name against pebble's root."""
    ctx = ssl.create_default_context(cadata=net.pebble.root_ca())
    conn = http.client.HTTPSConnection(relay.domain, 443, context=ctx, timeout=60)
    conn.sock = ctx.wrap_socket(socket.create_connection((relay.address, 443), timeout=60),
                                server_hostname=relay.domain)
    try:
        body = msg.encode()
        conn.request("POST", "/mxdeliv", body=body,
                     headers={"X-Mail-From": sender, "X-Mail-To": rcpt,
                              "Content-Length": str(len(body))})
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def test_mxdeliv_over_https_takes_port_25s_policy(net):
    """Relay-to-relay delivery over HTTPS (beta's /mxdeliv, as filtermail's transport sends
    it): a message signed by alpha arrives; unsigned and foreign-signed ones get port 25's
    refusal texts (554 "No DKIM signature found", 550 "No valid DKIM signature found")."""
    sender, rcpt = User(net.alpha), User(net.beta)
    alpha_key, beta_key = dkim_key(net.alpha), dkim_key(net.beta)
    unsigned = encrypted_message(sender.addr, rcpt.addr)
    assert mxdeliv(net, net.beta, sender.addr, rcpt.addr, unsigned) == (400, f"554 {DKIM_MISSING}")
    foreign = sign(encrypted_message(sender.addr, rcpt.addr), net.beta.domain, *beta_key)
    assert mxdeliv(net, net.beta, sender.addr, rcpt.addr, foreign) == (400, f"550 {DKIM_REJECTED}")
    good = sign(encrypted_message(sender.addr, rcpt.addr), net.alpha.domain, *alpha_key)
    status, text = mxdeliv(net, net.beta, sender.addr, rcpt.addr, good)
    assert status == 200 and text.startswith("250 "), text
    wait_for(lambda: rcpt.mailbox(), timeout=30, what="the message delivered over HTTPS")
    assert message_ids(rcpt.mailbox()) == message_ids([good])


def test_unknown_recipient_is_refused_by_beta_and_bounced_by_alpha(net):
    """beta refuses the address at RCPT; alpha's Postfix tells its user (a bounce to a
    mailbox of alpha never leaves alpha: the milter signs only what leaves, see milter/README)."""
    sender = User(net.alpha)
    nobody = f"nobody{os.urandom(4).hex()}@{net.beta.domain}"
    sender.send(nobody, encrypted_message(sender.addr, nobody))
    wait_for(lambda: sender.mailbox(), timeout=60, what="the bounce")
    (bounce,) = sender.mailbox()
    assert re.search(r"(?im)^From:.*MAILER-DAEMON@alpha\.test", bounce), bounce[:2000]
    assert "multipart/report" in bounce, bounce[:2000]
    said = re.sub(r"\s+", " ", bounce)
    for part in ["Remote-MTA: dns; beta.test", "Diagnostic-Code: smtp; 550 5.1.1",
                 "in reply to RCPT TO command"]:
        assert part in said, bounce
    assert queued(net.alpha) == []


def test_a_certificate_alpha_cannot_verify_defers_mail(net):
    """beta serves a certificate of no CA alpha trusts: alpha keeps the mail (never sends it
    unverified or in the clear) and delivers it once beta's certificate is good again."""
    sender, rcpt = User(net.alpha), User(net.beta)
    beta = net.beta
    beta.sh("install -d /etc/ssl/relay && openssl req -x509 -newkey ec -pkeyopt"
            " ec_paramgen_curve:prime256v1 -nodes -days 30 -subj /CN=beta.test"
            " -addext subjectAltName=DNS:beta.test -keyout /etc/ssl/relay/key.pem"
            " -out /etc/ssl/relay/cert.pem 2>/dev/null")
    ini = beta.sh("cat /etc/chatmail/chatmail.ini")
    beta.sh("sed -i 's|^tls_external_cert_and_key =.*|tls_external_cert_and_key = "
            "/etc/ssl/relay/cert.pem /etc/ssl/relay/key.pem|' /etc/chatmail/chatmail.ini"
            " && chatmail-relay setup")
    try:
        msg = encrypted_message(sender.addr, rcpt.addr)
        sender.send(rcpt.addr, msg)
        wait_for(lambda: "certificate" in delay_reasons(net.alpha).lower(), timeout=30,
                 what="alpha to defer for the certificate")
        assert rcpt.mailbox() == []
    finally:
        beta.sh(f"cat > /etc/chatmail/chatmail.ini <<'EOF'\n{ini}EOF\nchatmail-relay setup")
    net.alpha.flush()
    wait_for(lambda: rcpt.mailbox(), timeout=60, what="delivery with beta's certificate back")
    assert message_ids(rcpt.mailbox()) == message_ids([msg])


def test_beta_down_alpha_queues_signed_mail_and_delivers_it_once(net, cores):
    """beta powered off: alpha keeps every message, DKIM-signed as it will go on the wire
    (From oversigned, valid with the key in DNS). beta back: each arrives once, and beta's
    milter verified each signature (its log; the signature itself is removed before the
    mailbox, as are Authentication-Results)."""
    a1, b1, b2 = cores
    sender, rcpt = User(net.alpha), User(net.beta)
    for ac in (b1, b2):
        ac.stop_io()  # phones offline meanwhile: nothing tells them beta is gone
    net.beta.server.poweroff()
    sent = [encrypted_message(sender.addr, rcpt.addr) for _ in range(3)]
    for msg in sent:
        sender.send(rcpt.addr, msg)
    a1.create_chat(b1).send_text("while beta was down")
    wait_for(lambda: len(queued(net.alpha)) >= 4 and all(
        r.get("delay_reason") for m in queued(net.alpha) for r in m["recipients"]),
        timeout=60, what="alpha to queue four messages")

    for entry in queued(net.alpha):
        raw = net.alpha.sh(f"postcat -bh -q {entry['queue_id']}").encode().replace(b"\n", b"\r\n")
        fields = re.search(rb"(?ims)^DKIM-Signature:(.*?)\r\n(?=\S)", raw)
        assert fields, raw[:2000]
        signature = re.sub(rb"\s+", b"", fields[1])
        assert b"d=alpha.test;" in signature, signature
        h = re.search(rb"h=([^;]+)", signature)[1].lower().split(b":")
        assert h.count(b"from") == 2, h
        assert dkim.verify(raw, dnsfunc=dns_txt), raw[:2000]

    net.beta.server.boot()
    for ac in (b1, b2):
        ac.start_io()
    net.alpha.flush()
    wait_for(lambda: queued(net.alpha) == [], timeout=90, what="alpha's queue to empty")
    incoming(b1, "while beta was down")
    stored = rcpt.mailbox()
    assert sorted(message_ids(stored)) == sorted(message_ids(sent))
    for raw in stored:
        assert not re.search(r"(?im)^(DKIM-Signature|Authentication-Results):", raw), raw[:2000]
    verified = net.beta.sh("journalctl -q -o cat -b -u chatmail-milter.service")
    assert verified.count("Incoming: valid DKIM signature") >= 4, verified
