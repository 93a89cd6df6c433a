"""One JACK client with one MIDI port, run by a compiled callback, that survives its server.

Shared by the MIDI input (``io/midi.py``) and the controller feedback output
(``io/midi_feedback.py``). ``spec`` is ``virtual`` (a port others connect to) or part of a peer
port's name to connect to. The supervisor (``io/supervisor.py``) polls ``alive`` and calls
``reopen``: a new client after a server loss, or a new connection when the peer came back.
"""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Callable
from typing import Any

from snaresynth.errors import DeviceError

log = logging.getLogger(__name__)


class JackMidiPort:
    """``direction`` "in": our input port, connected from a matching output; "out": the other
    way round. ``attach(client, port)`` installs the compiled process callback."""

    def __init__(self, client_name: str, port_name: str, direction: str, spec: str,
                 attach: Callable[[Any, Any], None],
                 activated: Callable[[Any], object] | None = None) -> None:
        """``activated(client)``: called after each (re)opened client is active and connected
        (to make connections of the client's own further ports)."""
        if direction not in ("in", "out"):
            raise ValueError(f"direction must be 'in' or 'out', got {direction!r}")
        self.client_name = client_name
        self.port_name = port_name
        self.direction = direction
        self.spec = spec
        self._attach = attach
        self._activated = activated
        self._lost = threading.Event()
        self.client: Any = None
        self.port: Any = None
        self.peer: str | None = None  # the connected port, for a named spec
        self._open()

    @property
    def _what(self) -> str:
        return "MIDI input" if self.direction == "in" else "MIDI output"

    @property
    def name(self) -> str:
        if self.spec == "virtual":
            return f"{self.client_name}:{self.port_name} (virtual, jack)"
        return f"{self.peer} (jack)"

    def _open(self) -> None:
        import jack

        try:
            client = jack.Client(self.client_name, no_start_server=True)
        except jack.JackError as exc:
            raise DeviceError(f"cannot open {self._what} on jack: no JACK server ({exc})") from exc
        try:
            ports = client.midi_inports if self.direction == "in" else client.midi_outports
            self.port = ports.register(self.port_name)
            self._attach(client, self.port)
            client.set_shutdown_callback(self._on_shutdown)
            self._lost.clear()
            client.activate()
        except jack.JackError as exc:
            client.close()
            raise DeviceError(f"cannot open {self._what} on jack: {exc}") from exc
        self.client = client
        if self.spec != "virtual" and not self._connect():
            names = [p.name for p in self._peers()]
            client.deactivate()
            client.close()
            self.client = None
            raise DeviceError(f"no {self._what} matching {self.spec!r} on jack; "
                              f"available: {', '.join(names) or 'none'}")
        if self._activated is not None:
            self._activated(client)

    def _on_shutdown(self, status: Any, reason: str) -> None:
        self._lost.set()  # JACK's own thread: no client calls here

    def _peers(self) -> list[Any]:
        """Other clients' MIDI ports of the opposite direction."""
        own = self.client.name + ":"
        ports = self.client.get_ports(is_midi=True, is_output=self.direction == "in",
                                      is_input=self.direction == "out")
        return [p for p in ports if not p.name.startswith(own)]

    def _connect(self) -> bool:
        """Connect to the first peer port matching ``spec``; True if connected."""
        client = self.client
        for peer in self._peers():
            if self.spec.lower() in peer.name.lower():
                if not any(p.name == peer.name for p in client.get_all_connections(self.port)):
                    if self.direction == "in":
                        client.connect(peer, self.port)
                    else:
                        client.connect(self.port, peer)
                self.peer = peer.name
                return True
        return False

    @property
    def alive(self) -> bool:
        """The JACK server is there and, for a named peer, our port is connected to it."""
        if self._lost.is_set() or self.client is None:
            return False
        if self.spec == "virtual":
            return True
        try:
            return bool(self.client.get_all_connections(self.port))
        except Exception:
            return False

    def reopen(self) -> None:
        """Thread: supervisor. A new client after a server loss, else reconnect the peer."""
        if self._lost.is_set() or self.client is None:
            from snaresynth.io.supervisor import jack_server_running

            self.close()  # the dead client first: see jack_server_running
            if not jack_server_running():
                raise DeviceError("JACK server not running")
            self._open()
        elif not self._connect():
            raise DeviceError(f"{self._what} peer {self.spec!r} not there yet")

    def close(self) -> None:
        client, self.client = self.client, None
        close_client(client, lost=self._lost.is_set())


def connect_quietly(client: Any, source: str, destination: str) -> bool:
    """Connect two ports by name; an existing connection counts, a failure is logged."""
    import jack

    try:
        client.connect(source, destination)
    except jack.JackErrorCode as exc:
        if exc.code != errno.EEXIST:
            log.warning("cannot connect %s to %s: %s", source, destination, exc)
            return False
    except jack.JackError as exc:
        log.warning("cannot connect %s to %s: %s", source, destination, exc)
        return False
    return True


def close_client(client: Any, lost: bool) -> None:
    """Deactivate (unless its server is gone) and close a JACK-Client client; never raises.
    JACK-Client's close returns even after a server loss (PortAudio's JACK API does not)."""
    if client is None:
        return
    try:
        if not lost:
            client.deactivate()
        client.close()
    except Exception as exc:
        log.warning("closing JACK client %s: %s", getattr(client, "name", "?"), exc)
