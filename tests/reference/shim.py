"""The one shim the reference suite needs with today's Delta Chat core (a pytest plugin that
tests/reference/run loads with `-p shim`).

The suite's `imap_mailbox` fixture reads an account's address and password with
`get_config("addr")` and `get_config("mail_pw")`. Delta Chat core since its multi-transport
rework answers None for both (the address is `configured_addr`, the password is in the
account's transport), so the fixture fails before the tests (TestMetadataTokens) run, on any
relay. The shim answers the two old keys from there when the core has nothing for them;
nothing else of the suite or of the core changes.
"""

from __future__ import annotations

from deltachat_rpc_client import Account

_get_config = Account.get_config


def get_config(self, key: str):
    value = _get_config(self, key)
    if value is not None or key not in ("addr", "mail_pw"):
        return value
    addr = _get_config(self, "configured_addr")
    if key == "addr":
        return addr
    for transport in self.list_transports():
        if transport.get("addr") == addr:
            return transport.get("password")
    return None


Account.get_config = get_config
