"""Helpers for the fault and bad-input end-to-end tests: a private JACK server that a test may
kill and restart, and a JACK MIDI sender that writes raw bytes (so running status, sysex and
junk reach the daemon exactly as written). JACK-Client, not rtmidi: an rtmidi JACK port crashes
its process when closed after the server died."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections import deque

import jack

from snaresynth.io.supervisor import jack_server_running


class JackServer:
    """``jackd -n NAME -d dummy``: start, kill (SIGKILL, as a crash) and start again by name."""

    def __init__(self, name: str | None = None) -> None:
        # a SIGKILLed jackd keeps its slot in libjack's registry (8 servers at most) until a
        # server of the same name starts again: so one name per test process, not per server
        self.name = name or f"snaresynth-fault-{os.getpid()}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        jackd = shutil.which("jackd")
        assert jackd, "jackd not found (Debian package jackd2)"
        self.proc = subprocess.Popen([jackd, "-n", self.name, "-d", "dummy", "-r", "48000",
                                      "-p", "256"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        # probed on its socket: a failed jack_client_open would upset libjack (see supervisor)
        while not jack_server_running(self.name):
            assert time.monotonic() < deadline and self.proc.poll() is None, "jackd did not start"
            time.sleep(0.1)
        time.sleep(0.2)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()


class MidiSender:
    """A JACK client with one MIDI output; ``send(raw)`` queues bytes, each call one event."""

    def __init__(self, client_name: str, server: str | None = None,
                 connect_to: str | None = None) -> None:
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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            names = [p.name for p in self.client.get_ports(is_midi=True, is_input=True)]
            if target in names:
                self.client.connect(self.port, target)
                return
            time.sleep(0.1)
        raise AssertionError(f"no MIDI input {target}: {names}")

    def _process(self, frames: int) -> None:
        self.port.clear_buffer()
        for _ in range(min(len(self._queue), 64)):  # at most 64 events a period
            try:
                self.port.write_midi_event(0, self._queue[0])
            except jack.JackError:  # buffer full: the rest waits for the next period
                break
            self._queue.popleft()

    def send(self, *events: bytes | list[int]) -> None:
        for event in events:
            self._queue.append(bytes(event))

    def drain(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self._queue and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


_PAD_SCRIPT = """
import sys, time
from tests.e2e.test_faults_helpers import MidiSender
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
        import subprocess
        import sys

        self.proc = subprocess.Popen([sys.executable, "-c", _PAD_SCRIPT, client_name, server],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     stderr=subprocess.DEVNULL)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def send(self, raw: bytes) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(raw.hex() + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "sent"

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
