"""The OSC socket: one blocking server thread that reads datagrams in batches (so messages
keep their order and a flood is coalesced) and hands them to an ``OscController``, the socket
replies go out of, and the pusher thread that sends subscribers what changed."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Sequence
from typing import Any

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer

from snaresynth.errors import DeviceError
from snaresynth.io.osc import PREFIX, Address, OscController
from snaresynth.io.osc_args import build_message

log = logging.getLogger(__name__)

BATCH = 1024
"""Datagrams read in one go by the server thread (bounds what a flood can make it hold)."""
RECV_BUFFER = 4 * 2**20
"""Bytes of datagrams the kernel may hold for the OSC socket while a batch is handled."""
MAX_DATAGRAM = 65507
"""The largest UDP payload over IPv4."""
REPLY_BYTES = 64 * 2**10
"""Reply bytes to one sender per batch of datagrams at most."""
PUSH_HZ = 60
"""Updates a second to each subscriber at most (the latest value of each address wins)."""


class OscServer:
    """UDP server thread feeding an OscController; replies go out of the same socket."""

    def __init__(self, engine: Any, host: str = "127.0.0.1", port: int = 9000,
                 allow: Sequence[str] | None = None) -> None:
        self.controller = OscController(engine, allow, send=self.send)
        server_self = self

        class _Server(BlockingOSCUDPServer):
            max_packet_size = 65535  # socketserver's 8192 would cut bigger datagrams silently

            def verify_request(self, request: Any, client_address: Address) -> bool:
                return True  # malformed datagrams are answered with /fail, not dropped silently

            def finish_request(self, request: Any, client_address: Address) -> None:
                # everything already waiting is read too (up to BATCH datagrams), so a knob
                # flood is coalesced instead of overflowing the socket and losing triggers
                batch = [(request[0], client_address)]
                while len(batch) < BATCH:
                    try:
                        batch.append(self.socket.recvfrom(self.max_packet_size,
                                                          socket.MSG_DONTWAIT))
                    except OSError:  # BlockingIOError: nothing more waiting
                        break
                server_self.reply(server_self.controller.handle_batch(batch))

        try:
            # the dispatcher is never consulted (finish_request routes every datagram itself);
            # strict_timing=False so nothing in python-osc would ever sleep on a timetag
            self.server = _Server((host, port), Dispatcher(strict_timing=False))
        except OSError as exc:
            raise DeviceError(f"cannot listen for OSC on {host}:{port}: {exc}") from exc
        self.host, self.port = self.server.server_address[:2]
        try:  # room for bursts (the kernel caps it at net.core.rmem_max; memory stays bounded)
            self.server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER)
        except OSError as exc:
            log.debug("OSC receive buffer left at its default: %s", exc)
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={
            "poll_interval": 0.1}, name="snaresynth-osc", daemon=True)
        self._stopping = threading.Event()
        self._pusher = threading.Thread(target=self._push, name="snaresynth-osc-push",
                                        daemon=True)

    @property
    def address(self) -> str:
        return f"osc.udp://{self.host}:{self.port}"

    def reply(self, replies: list[tuple[str, list[Any], Address]]) -> None:
        """Send a batch's replies; past ``REPLY_BYTES`` to one sender the rest are left out,
        with one /fail saying how many (a datagram of 2,000 /status requests would otherwise
        get 26 times its size back)."""
        sent: dict[Address, int] = {}
        left_out: dict[Address, int] = {}
        for address, args, target in replies:
            if sent.get(target, 0) >= REPLY_BYTES:
                left_out[target] = left_out.get(target, 0) + 1
                continue
            sent[target] = sent.get(target, 0) + self.send(address, args, target)
        for target, count in left_out.items():
            self.send(PREFIX + "/fail", ["?", f"reply volume limit ({REPLY_BYTES} bytes a "
                                         f"batch): {count} replies left out"], target)

    def send(self, address: str, args: list[Any], target: Address) -> int:
        """Send one message; one that cannot be encoded or does not fit a datagram becomes a
        /fail to its target instead, and never costs the rest of the batch their replies."""
        try:
            data = build_message(address, args)
        except Exception as exc:  # a value python-osc cannot encode
            data = build_message(PREFIX + "/fail", [address, "reply could not be encoded "
                                                    f"({type(exc).__name__})"])
        if len(data) > MAX_DATAGRAM:
            data = build_message(PREFIX + "/fail", [address, "reply too large for one "
                                                    f"datagram ({len(data)} bytes)"])
        try:
            self.server.socket.sendto(data, target)
        except OSError as exc:
            log.debug("OSC reply to %s failed: %s", target, exc)
        return len(data)

    def start(self) -> None:
        self.warm_up()
        self._thread.start()
        self._pusher.start()

    def _push(self) -> None:
        while not self._stopping.wait(1.0 / PUSH_HZ):
            self.controller.flush()

    def warm_up(self) -> None:
        """Build one /status and one /state reply before the daemon goes live: python-osc's and
        the engine's first use costs milliseconds while holding the GIL, which the audio
        callback would wait for (an xrun on the first /status of a session)."""
        nobody = ("127.0.0.1", 0)
        for _address, args, _target in (self.controller._status([], nobody)
                                         + self.controller._state([], nobody)):
            build_message(PREFIX + "/status.reply", args)

    def stop(self) -> None:
        self._stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(1.0)
        self._pusher.join(1.0)
