"""The shims the reference suite needs, one for today's Delta Chat core and one for a test
network's CA (a pytest plugin that tests/reference/run loads with `-p shim`).

1. The suite's `imap_mailbox` fixture reads an account's address and password with
`get_config("addr")` and `get_config("mail_pw")`. Delta Chat core since its multi-transport
rework answers None for both (the address is `configured_addr`, the password is in the
account's transport), so the fixture fails before the tests (TestMetadataTokens) run, on any
relay. The shim answers the two old keys from there when the core has nothing for them;
nothing else of the suite or of the core changes.

2. Only with CHATMAIL_PRIVATE_CA set (tests/reference/containers.py sets it: the relays of a
   test network have certificates from a test CA, which the machine's trust store holds).
   Delta Chat core verifies certificates against the public roots built into it and nothing
   else (webpki-roots; no setting adds a CA), so to its accounts such a relay is as good as
   self-signed. The suite knows that case: for a relay whose `tls_cert_mode` is "self" its
   tests fetch `/new` without verifying and let the accounts accept the certificate. The
   shim makes the suite see "self", and makes its account factory, which looks only at the
   domain's spelling (a leading `_`, an IPv4 address), accept the certificate too.
"""

from __future__ import annotations

import os

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


if os.environ.get("CHATMAIL_PRIVATE_CA"):
    from chatmaild.config import Config
    from cmdeploy.tests.plugin import ChatmailACFactory

    _init = Config.__init__

    def init(self, *args, **kwargs):
        _init(self, *args, **kwargs)
        if self.tls_cert_mode == "acme":
            self.tls_cert_mode = "self"

    Config.__init__ = init

    _make_transport = ChatmailACFactory._make_transport

    def make_transport(self, domain):
        transport = _make_transport(self, domain)
        transport.setdefault("certificateChecks", "acceptInvalidCertificates")
        return transport

    ChatmailACFactory._make_transport = make_transport
