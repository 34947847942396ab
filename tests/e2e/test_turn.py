"""TURN for calls: coturn of the local relay (127.0.0.1:3478, `packaging/sidecars/50-turn.sh`)
with the credentials a client reads over IMAP METADATA (`turn`, computed by
chatmail-pushnotify from the secret `chatmail-relay setup` made).

Allocations are made with coturn's own client, `turnutils_uclient`, and with the small STUN
client of `turnclient.py`, which tells the exact answer of each request: an allocation with the
credentials from METADATA succeeds, expired or forged ones get 401, and a permission to relay
to loopback or a private address gets 403 (coturn's denied-peer-ip). A permission sends
nothing to the peer: no packet leaves the machine.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from relaytest import SERVER_METADATA, create_account, get_metadata, imap_connect
from turnclient import LIFETIME, Turn, allocate, rest_password, uclient


@pytest.fixture(scope="module")
def secret_file(relay) -> Path:
    return Path(relay.params.get("turn_secret_file", "/etc/chatmail/turn.secret"))


@pytest.fixture(scope="module")
def turn_line(relay) -> str:
    """The `turn` metadata for a fresh account, as Delta Chat reads it."""
    account = create_account(relay)
    imap = imap_connect()
    try:
        imap.login(account.addr, account.password)
        return get_metadata(imap, '""', SERVER_METADATA + "turn")
    finally:
        imap.logout()


@pytest.fixture(scope="module")
def credentials(turn_line) -> tuple[str, str]:
    host, port, user, password = turn_line.split(":")
    return user, password


@pytest.fixture(scope="module")
def secret(secret_file) -> str:
    return secret_file.read_text().strip()


# ---------------------------------------------------------------- tests


def test_metadata_gives_fresh_rest_credentials(relay, turn_line, credentials, secret,
                                               secret_file):
    host, port, _, _ = turn_line.split(":")
    assert (host, port) == (relay.mail_domain_bare, "3478"), turn_line
    user, password = credentials
    assert abs(int(user) - (time.time() + LIFETIME)) < 60, user
    assert password == rest_password(secret, user)
    mode = secret_file.stat().st_mode & 0o777
    assert mode == 0o640, oct(mode)


def test_coturn_allocates_with_the_metadata_credentials(credentials):
    user, password = credentials
    log = uclient(user, password)
    assert "Received relay addr: 127.0.0.1:" in log, log
    # ... and coturn refuses the channel to the peer on loopback it asks for.
    assert "channel bind: error 403 (Forbidden IP)" in log, log
    assert allocate(user, password) == 200


def test_expired_and_forged_credentials_are_refused(credentials, secret):
    user, password = credentials
    expired = str(int(time.time()) - 60)
    assert allocate(expired, rest_password(secret, expired)) == 401
    assert allocate(user, rest_password("not the secret at all", user)) == 401
    assert allocate(user, password[:-4] + "AAA=") == 401
    later = str(int(time.time()) + LIFETIME)
    assert allocate(later, rest_password("guessed-" + secret[8:], later)) == 401
    log = uclient(expired, rest_password(secret, expired))
    assert "Received relay addr" not in log and "Cannot complete Allocation" in log, log


def test_relaying_to_loopback_and_private_addresses_is_refused(credentials):
    client = Turn(*credentials)
    try:
        assert client.allocate() == 200
        for peer in ["127.0.0.1", "127.1.2.3", "10.1.2.3", "172.16.5.4", "192.168.1.1",
                     "169.254.1.1", "100.64.0.1", "0.0.0.1", "224.0.0.1"]:
            assert client.permit(peer) == 403, peer
        # A peer on the Internet is permitted (TEST-NET-1: nothing is sent to it).
        assert client.permit("192.0.2.1") == 200
    finally:
        client.close()
