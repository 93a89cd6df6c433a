"""One OSC client for tests and benchmarks: a UDP socket that sends messages and bundles to the
daemon and waits for its replies by address.

Messages are built with python-osc here, not with the daemon's own encoder, so a test checks the
daemon against an independent implementation of the format.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from snaresynth.testing import HarnessError

PREFIX = "/snaresynth"
Message = tuple[Any, ...]  # (address, *args)


class NoReply(HarnessError):
    """No reply to the address waited for came within the timeout."""


def message(address: str, *args: Any) -> bytes:
    """One OSC message as a datagram."""
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


def bundle(timetag: float, *messages: Message) -> bytes:
    """One OSC bundle as a datagram: ``messages`` as (address, *args), ``timetag`` in
    ``time.time()`` seconds (python-osc converts it to NTP time)."""
    builder = OscBundleBuilder(timetag)
    for address, *args in messages:
        content = OscMessageBuilder(address)
        for arg in args:
            content.add_arg(arg)
        builder.add_content(content.build())
    return builder.build().dgram


class OscClient:
    """A UDP socket bound to ``bind`` (any free port) that talks to ``host:port``."""

    def __init__(self, port: int, host: str = "127.0.0.1", bind: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((bind, 0))
        self.target = (host, port)

    def send(self, address: str, *args: Any) -> None:
        self.sock.sendto(message(address, *args), self.target)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.target)

    def send_bundle(self, timetag: float, *messages: Message) -> None:
        self.sock.sendto(bundle(timetag, *messages), self.target)

    def receive(self, address: str, timeout: float = 5.0) -> list:
        """Arguments of the next reply to ``address``; other replies, and datagrams that are
        not one message, are skipped. Raises NoReply after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                data, _ = self.sock.recvfrom(65536)
            except TimeoutError as exc:
                raise NoReply(f"no {address} reply within {timeout:g} s") from exc
            try:
                msg = OscMessage(data)
            except Exception:  # python-osc raises its own error types for non-messages
                continue
            if msg.address == address:
                return list(msg.params)

    def request(self, address: str, *args: Any, reply: str | None = None,
                timeout: float = 5.0) -> list:
        """Send, then the arguments of the reply (``ADDRESS.reply`` unless ``reply`` says)."""
        self.send(address, *args)
        return self.receive(reply or address + ".reply", timeout)

    def ping(self, timeout: float = 5.0) -> list:
        return self.request(PREFIX + "/ping", reply=PREFIX + "/pong", timeout=timeout)

    def status(self, timeout: float = 5.0) -> dict[str, Any]:
        """/snaresynth/status as a dict (the reply is flat: name, value, name, value ...)."""
        flat = self.request(PREFIX + "/status", timeout=timeout)
        return dict(zip(flat[::2], flat[1::2], strict=True))

    def state(self, timeout: float = 5.0) -> dict[str, Any]:
        """/snaresynth/state: the kit and controls, as the daemon's JSON."""
        return json.loads(self.request(PREFIX + "/state", timeout=timeout)[0])

    def wait_status(self, predicate: Callable[[dict[str, Any]], object], timeout: float,
                    what: str, interval: float = 0.2) -> dict[str, Any]:
        """The first status for which ``predicate`` holds; HarnessError with the last one."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if predicate(status):
                return status
            if time.monotonic() > deadline:
                raise HarnessError(f"{what} within {timeout:g} s: {status}")
            time.sleep(interval)

    def wait_settled(self, keys: Sequence[str] = ("decodes", "cache_hits", "dropped_requests"),
                     interval: float = 0.15, timeout: float = 10.0) -> dict[str, Any]:
        """The status once the counters ``keys`` stop moving between two readings ``interval``
        apart (the decode worker has nothing pending)."""
        deadline = time.monotonic() + timeout
        last: tuple | None = None
        while time.monotonic() < deadline:
            status = self.status()
            now = tuple(status[k] for k in keys)
            if now == last:
                return status
            last = now
            time.sleep(interval)
        raise HarnessError(f"{', '.join(keys)} did not settle within {timeout:g} s")

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> OscClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

