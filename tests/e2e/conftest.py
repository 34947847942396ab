"""Shared fixtures of the end-to-end suite.

The suite runs against the relay that `packaging/relay up` started on this machine (tests/run
does that first). Other test files use these fixtures:

- `relay`: the relay's settings (`RelayConfig`, read from chatmail.ini).
- `new_account`: a function returning fresh random credentials (`Account`); the account comes
  into existence at its first login. `account`: one that has logged in once over IMAP.
- `dc_account` / `dc_factory`: Delta Chat cores (deltachat-rpc-server) configured from dclogin:
  links, online.
- Plain helpers (IMAP/SMTP clients accepting the self-signed certificate, `wait_for`,
  `doveadm`, ...) are in `relaytest.py`: `from relaytest import imap_connect, smtp_connect`.
- On every failing test, the lines that each log in /var/log/chatmail-relay/ got during the test
  are attached to the report.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from relaytest import (
    CHATMAIL_INI,
    HOST,
    IMAP_PORT,
    LOG_DIR,
    Account,
    RelayConfig,
    create_account,
    port_open,
    random_localpart,
    random_password,
    read_config,
)

# Lines of each log shown for a failing test.
LOG_LINES = 200


@pytest.fixture(scope="session")
def relay() -> RelayConfig:
    if not CHATMAIL_INI.exists() or not port_open(IMAP_PORT):
        pytest.exit(
            f"no relay on {HOST}: run `packaging/relay up` first (or use tests/run)",
            returncode=3,
        )
    return read_config()


@pytest.fixture
def new_account(relay):
    """new_account(localpart=None, password=None) -> Account with fresh random credentials."""

    def make(localpart: str | None = None, password: str | None = None) -> Account:
        localpart = localpart or random_localpart(relay.username_max_length)
        password = password or random_password(relay.password_min_length + 3)
        return Account(f"{localpart}@{relay.mail_domain}", password)

    return make


@pytest.fixture
def account(relay) -> Account:
    """An account that exists: it has logged in once over IMAP."""
    return create_account(relay)


# ---------------------------------------------------------------- Delta Chat


def rpc_server_path() -> str:
    candidate = Path(sys.executable).parent / "deltachat-rpc-server"
    return str(candidate) if candidate.exists() else "deltachat-rpc-server"


@pytest.fixture(scope="session")
def rpc(tmp_path_factory):
    from deltachat_rpc_client import Rpc

    accounts_dir = tmp_path_factory.mktemp("deltachat") / "accounts"  # must not exist yet
    with Rpc(accounts_dir=str(accounts_dir), rpc_server_path=rpc_server_path()) as rpc:
        yield rpc


@dataclass
class DeltaChatFactory:
    """Creates Delta Chat accounts on the relay, each configured from a dclogin: link."""

    rpc: object
    make_credentials: object
    created: list = field(default_factory=list)

    def new_account(self, credentials: Account | None = None):
        from deltachat_rpc_client import DeltaChat

        credentials = credentials or self.make_credentials()
        ac = DeltaChat(self.rpc).add_account()
        ac.add_transport_from_qr(credentials.dclogin())
        ac.credentials = credentials
        self.created.append(ac)
        return ac

    def online_account(self, credentials: Account | None = None):
        ac = self.new_account(credentials)
        ac.bring_online()
        return ac

    def online_accounts(self, n: int):
        accounts = [self.new_account() for _ in range(n)]
        for ac in accounts:
            ac.bring_online()
        return accounts

    def close(self):
        for ac in self.created:
            try:
                ac.stop_io()
                ac.remove()
            except Exception:  # noqa: BLE001 - best effort cleanup, the rpc server may be gone
                pass


@pytest.fixture
def dc_factory(rpc, new_account):
    factory = DeltaChatFactory(rpc, new_account)
    yield factory
    factory.close()


@pytest.fixture
def dc_account(dc_factory):
    return dc_factory.online_account()


# ---------------------------------------------------------------- relay logs on failure

_LOG_OFFSETS = pytest.StashKey[dict]()


def _log_sizes() -> dict[Path, int]:
    sizes = {}
    for path in sorted(LOG_DIR.glob("*.log")):
        try:
            sizes[path] = path.stat().st_size
        except OSError:
            pass
    return sizes


def _log_tail(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(offset if offset <= size else 0)
            data = f.read()
    except OSError as e:
        return f"(cannot read: {e})"
    lines = data.decode("utf-8", "replace").splitlines()
    if len(lines) > LOG_LINES:
        lines = [f"... ({len(lines) - LOG_LINES} earlier lines omitted)"] + lines[-LOG_LINES:]
    return "\n".join(lines) if lines else "(nothing new)"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item.stash[_LOG_OFFSETS] = _log_sizes()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        offsets = item.stash.get(_LOG_OFFSETS, {})
        for path in _log_sizes():
            text = _log_tail(path, offsets.get(path, 0))
            report.sections.append((f"relay log {path} (during this test)", text))
    return report
