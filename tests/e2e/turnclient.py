"""A small TURN client for the tests (test_turn.py, test_deploy.py): long-term credentials,
Allocate and CreatePermission over UDP, each answer told exactly (200 or the error code);
and coturn's own client, turnutils_uclient."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import socket
import struct
import subprocess

from relaytest import HOST

TURN_PORT = 3478
# Five days, as chatmail-pushnotify (and the reference's chatmail-turn) gives them.
LIFETIME = 5 * 24 * 3600


def rest_password(key: str, user: str) -> str:
    """TURN REST password: base64(HMAC-SHA1(secret, user name))."""
    return base64.b64encode(hmac.new(key.encode(), user.encode(), hashlib.sha1).digest()).decode()


MAGIC = 0x2112A442
ALLOCATE, CREATE_PERMISSION = 0x0003, 0x0008
A_USERNAME, A_MESSAGE_INTEGRITY, A_ERROR_CODE = 0x0006, 0x0008, 0x0009
A_XOR_PEER_ADDRESS, A_REALM, A_NONCE = 0x0012, 0x0014, 0x0015
A_XOR_RELAYED_ADDRESS, A_REQUESTED_TRANSPORT = 0x0016, 0x0019


def _attr(kind: int, value: bytes) -> bytes:
    return struct.pack("!HH", kind, len(value)) + value + b"\0" * (-len(value) % 4)


def _xor_address(ip: str, port: int) -> bytes:
    addr = int.from_bytes(socket.inet_aton(ip), "big") ^ MAGIC
    return struct.pack("!BBHI", 0, 1, port ^ (MAGIC >> 16), addr)


class Turn:
    """A TURN client over UDP: long-term credentials, Allocate and CreatePermission."""

    def __init__(self, user: str, password: str, host: str = HOST, port: int = TURN_PORT):
        self.user, self.password = user, password
        self.server = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(2)
        self.realm = self.nonce = None

    def close(self):
        self.sock.close()

    def _request(self, method: int, attrs: bytes, sign: bool) -> tuple[int, dict[int, bytes]]:
        txid = os.urandom(12)
        if sign:
            attrs += _attr(A_USERNAME, self.user.encode()) + _attr(A_REALM, self.realm)
            attrs += _attr(A_NONCE, self.nonce)
            key = hashlib.md5(f"{self.user}:{self.realm.decode()}:{self.password}".encode()).digest()
            head = struct.pack("!HHI", method, len(attrs) + 24, MAGIC) + txid
            mac = hmac.new(key, head + attrs, hashlib.sha1).digest()
            attrs += _attr(A_MESSAGE_INTEGRITY, mac)
        msg = struct.pack("!HHI", method, len(attrs), MAGIC) + txid + attrs
        for _ in range(3):
            self.sock.sendto(msg, self.server)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            if data[8:20] == txid:
                return self._parse(data)
        raise AssertionError("no answer from the TURN server")

    @staticmethod
    def _parse(data: bytes) -> tuple[int, dict[int, bytes]]:
        kind, length = struct.unpack("!HH", data[:4])
        attrs, pos = {}, 20
        while pos < 20 + length:
            a, n = struct.unpack("!HH", data[pos:pos + 4])
            attrs.setdefault(a, data[pos + 4:pos + 4 + n])
            pos += 4 + n + (-n % 4)
        return kind, attrs

    @staticmethod
    def _outcome(kind: int, attrs: dict[int, bytes]) -> int:
        """200 for a success response, else the error code."""
        if kind & 0x0110 == 0x0100:
            return 200
        err = attrs.get(A_ERROR_CODE, b"\0\0\0\0")
        return (err[2] & 7) * 100 + err[3]

    def allocate(self) -> int:
        transport = _attr(A_REQUESTED_TRANSPORT, bytes([17, 0, 0, 0]))
        kind, attrs = self._request(ALLOCATE, transport, sign=False)
        if self._outcome(kind, attrs) == 401 and A_NONCE in attrs:
            self.realm, self.nonce = attrs[A_REALM], attrs[A_NONCE]
            kind, attrs = self._request(ALLOCATE, transport, sign=True)
        code = self._outcome(kind, attrs)
        if code == 200:
            assert A_XOR_RELAYED_ADDRESS in attrs, attrs
        return code

    def permit(self, peer: str) -> int:
        kind, attrs = self._request(CREATE_PERMISSION, _attr(A_XOR_PEER_ADDRESS, _xor_address(peer, 9)), sign=True)
        return self._outcome(kind, attrs)


def allocate(user: str, password: str, host: str = HOST) -> int:
    client = Turn(user, password, host)
    try:
        return client.allocate()
    finally:
        client.close()


def uclient(user: str, password: str, peer: str = "127.0.0.1", host: str = HOST) -> str:
    """coturn's test client (verbose): one allocation (no second one for RTCP), then a
    channel to `peer` for one message. Returns what it printed."""
    out = subprocess.run(
        ["turnutils_uclient", "-v", "-c", "-p", str(TURN_PORT), "-n", "1", "-m", "1", "-u", user,
         "-w", password, "-e", peer, host],
        capture_output=True, text=True, timeout=60,
    )
    return out.stdout + out.stderr
