"""A watchdog for the devices: notices a lost audio output or MIDI input and reconnects it.

One thread in the main process polls each supervised device's ``alive`` every ``interval``
seconds. When it turns False the supervisor logs one line and tries ``reopen()`` with
exponential backoff (0.25 s doubling to 4 s) until it works, then logs one line again. The
music never waits on it: the other devices, OSC and the engine keep running meanwhile, and
``counters()`` (``audio_reconnects``, ``midi_reconnects``, ``audio_lost``, ``midi_lost``, and the
MIDI input's ``midi_messages``, ``midi_coalesced``, ``midi_overflows``) goes into ``/status``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.25
MAX_BACKOFF_S = 4.0


class Supervised(Protocol):
    name: str

    @property
    def alive(self) -> bool: ...

    def reopen(self) -> None: ...


@dataclass
class _Watch:
    kind: str  # "audio" or "midi": the counter prefix
    device: Supervised
    lost_since: float | None = None
    next_try: float = 0.0
    backoff: float = FIRST_BACKOFF_S
    reconnects: int = 0


class Supervisor:
    """Watches devices from its own thread; thread-safe reads of ``counters()``."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self._watches: list[_Watch] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="snaresynth-supervisor",
                                        daemon=True)

    def watch(self, kind: str, device: Supervised | None) -> None:
        if device is not None:
            self._watches.append(_Watch(kind, device))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)

    def counters(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for kind in ("audio", "midi", "midi_out"):
            watches = [w for w in self._watches if w.kind == kind]
            out[f"{kind}_reconnects"] = sum(w.reconnects for w in watches)
            out[f"{kind}_lost"] = sum(w.lost_since is not None for w in watches)
        midi = [w.device for w in self._watches if w.kind == "midi"]
        for name in ("messages", "coalesced", "overflows"):  # the MIDI input's own counters
            out[f"midi_{name}"] = sum(int(getattr(d, name, 0)) for d in midi)
        return out

    def check(self) -> None:
        """One round: every device's state, reconnect attempts that are due. Thread: own."""
        now = time.monotonic()
        for w in self._watches:
            try:
                alive = w.device.alive
            except Exception as exc:  # a probe that fails means the device is not usable
                log.debug("%s probe failed: %s", w.kind, exc)
                alive = False
            if alive:
                continue
            if w.lost_since is None:
                w.lost_since, w.next_try, w.backoff = now, now, FIRST_BACKOFF_S
                log.warning("%s lost: %s; reconnecting in the background", w.kind,
                            w.device.name)
            if now < w.next_try:
                continue
            try:
                w.device.reopen()
            except Exception as exc:
                w.next_try = now + w.backoff
                w.backoff = min(w.backoff * 2, MAX_BACKOFF_S)
                log.debug("%s reconnect failed: %s", w.kind, exc)
                continue
            w.reconnects += 1
            log.warning("%s back after %.1f s: %s", w.kind, now - w.lost_since, w.device.name)
            w.lost_since = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # the watchdog must outlive any bug in a device's reopen
                log.exception("supervisor round failed")


def jack_server_running(server: str | None = None) -> bool:
    """Whether a JACK (jack2) server listens on its socket, asked without libjack.

    A failed ``jack_client_open`` while a client of a dead server is still open leaves libjack in
    a state where closing that client crashes the process; so reconnects first close the dead
    clients, then wait for this probe before opening new ones.
    """
    import os
    import socket

    name = server or os.environ.get("JACK_DEFAULT_SERVER") or "default"
    path = f"/dev/shm/jack_{name}_{os.getuid()}_0"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(0.5)
        sock.connect(path)
    except OSError:
        return False
    finally:
        sock.close()
    return True
