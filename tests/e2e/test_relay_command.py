"""The `packaging/relay` command itself: its links work and it reports what runs."""

import re
import subprocess
import urllib.parse
from pathlib import Path

from relaytest import HOST, imap_login_ok, smtp_login_ok

RELAY = Path(__file__).resolve().parents[2] / "packaging" / "relay"
LINK = re.compile(
    r"^dclogin:(?P<addr>[^?]+)\?p=(?P<p>[^&]+)&v=1&ih=(?P<ih>[^&]+)&ip=993&is=ssl"
    r"&sh=(?P<sh>[^&]+)&sp=465&ss=ssl&ic=3&sc=3$"
)


def relay_link() -> str:
    out = subprocess.run([RELAY, "link"], check=True, capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


def test_link_is_a_fresh_valid_account(relay):
    link = relay_link()
    m = LINK.match(link)
    assert m, link
    assert m["ih"] == m["sh"] == HOST
    addr = m["addr"]
    password = urllib.parse.unquote(m["p"])
    local, domain = addr.rsplit("@", 1)
    assert domain == relay.mail_domain
    assert re.fullmatch(r"[a-z0-9]+", local) and len(local) == relay.username_max_length
    assert len(password) == relay.password_min_length + 3
    assert not relay.password_file(addr).exists()
    assert imap_login_ok(addr, password)
    assert smtp_login_ok(addr, password)
    assert relay.password_file(addr).exists()
    assert relay_link() != link


def test_link_works_in_delta_chat(rpc):
    from deltachat_rpc_client import DeltaChat

    ac = DeltaChat(rpc).add_account()
    try:
        ac.add_transport_from_qr(relay_link())
        assert ac.is_configured()
    finally:
        ac.stop_io()
        ac.remove()


def test_status_lists_running_daemons(relay):
    out = subprocess.run([RELAY, "status"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    names = [line.split()[0] for line in out.stdout.splitlines()]
    assert {"doveauth", "dovecot", "postfix"} <= set(names)
