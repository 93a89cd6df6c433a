"""MIDI sources for tests: a JACK MIDI sender that writes raw bytes (so running status, sysex
and junk reach the daemon exactly as written), the same in a child process, and rtmidi port
lookup for mido.

JACK-Client, not rtmidi, for the senders: an rtmidi JACK port crashes its process when closed
after the server died.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import deque
from typing import Any

from snaresynth.testing import HarnessError
from snaresynth.testing.procs import wait_for

MAX_EVENTS_PER_CYCLE = 64


class MidiSender:
    """A JACK client with one MIDI output; ``send(raw)`` queues bytes, each call one event,
    written at offset 0 of the next cycles (``MAX_EVENTS_PER_CYCLE`` a cycle at most)."""

    def __init__(self, client_name: str, server: str | None = None,
                 connect_to: str | None = None) -> None:
        import jack

        self._jack_error = jack.JackError
        self.client = jack.Client(client_name, no_start_server=True,
                                  servername=server or os.environ.get("JACK_DEFAULT_SERVER"))
        self.port = self.client.midi_outports.register("out")
        self._queue: deque[bytes] = deque()
        self._lock = threading.Lock()
        self.client.set_process_callback(self._process)
        self.client.activate()
        if connect_to:
            self.connect(connect_to)

    def connect(self, target: str, timeout: float = 10.0) -> None:
        """Connect to the MIDI input ``target`` once it exists."""
        def present() -> bool:
            names = [p.name for p in self.client.get_ports(is_midi=True, is_input=True)]
            return target in names

        try:
            wait_for(present, timeout, f"MIDI input {target}")
        except HarnessError:
            names = [p.name for p in self.client.get_ports(is_midi=True, is_input=True)]
            raise HarnessError(f"no MIDI input {target}: {names}") from None
        self.client.connect(self.port, target)

    def _process(self, frames: int) -> None:
        self.port.clear_buffer()
        for _ in range(min(len(self._queue), MAX_EVENTS_PER_CYCLE)):
            try:
                self.port.write_midi_event(0, self._queue[0])
            except self._jack_error:  # buffer full: the rest waits for the next period
                break
            self._queue.popleft()

    def send(self, *events: bytes | list[int]) -> None:
        for event in events:
            self._queue.append(bytes(event))

    def drain(self, timeout: float = 10.0) -> None:
        """Until every queued event is written (or ``timeout``), and one cycle more."""
        deadline = time.monotonic() + timeout
        while self._queue and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


_PAD_SCRIPT = """
import sys
from snaresynth.testing.midi import MidiSender
pad = MidiSender(sys.argv[1], server=sys.argv[2])
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() == "quit":
        break
    pad.send(bytes.fromhex(line.strip()))
    pad.drain()
    print("sent", flush=True)
pad.close()
"""


class MidiPadProcess:
    """A ``MidiSender`` in a child process, for tests that kill the JACK server under it: a
    process whose JACK client saw its server die keeps a damaged libjack (later clients in it
    hang or crash), so the test process itself never holds a client of that server."""

    def __init__(self, client_name: str, server: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _PAD_SCRIPT, client_name, server],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     stderr=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise HarnessError(f"MIDI pad {client_name} did not start")

    def send(self, raw: bytes) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(raw.hex() + "\n")
        self.proc.stdin.flush()
        if self.proc.stdout.readline().strip() != "sent":
            raise HarnessError("MIDI pad did not send")

    def close(self) -> None:
        """Quit cleanly: the client and its port leave the server."""
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(10)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def jack_mido_backend() -> Any:
    """mido's rtmidi backend on JACK."""
    import mido

    return mido.Backend("mido.backends.rtmidi/UNIX_JACK", load=True)


def mido_port_name(backend: Any, kind: str, part: str, timeout: float = 10.0) -> str:
    """The first rtmidi ``kind`` ("in" or "out") port whose name contains ``part``, waited for."""
    def find() -> str | None:
        names = backend.get_output_names() if kind == "out" else backend.get_input_names()
        return next((n for n in names if part in n), None)

    try:
        return wait_for(find, timeout, f"MIDI {kind} port matching {part}")
    except HarnessError:
        names = backend.get_output_names() if kind == "out" else backend.get_input_names()
        raise HarnessError(f"no MIDI {kind} port matching {part}: {names}") from None
