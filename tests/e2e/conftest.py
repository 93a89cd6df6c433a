"""End-to-end fixtures: a private JACK server (dummy driver), the daemon as a subprocess, and
an OSC client on a real UDP socket. Every fixture starts what it needs and stops it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pythonosc.osc_message import OscMessage

from snaresynth.io.osc import build_message

READY_TIMEOUT_S = 120  # TensorFlow start-up on 2 busy cores


@pytest.fixture(scope="session")
def jack_server() -> Iterator[str]:
    """A JACK server of our own (unique name), 48 kHz, 256-frame periods, dummy driver."""
    jackd = shutil.which("jackd")
    if jackd is None:
        pytest.fail("jackd not found: `make test` installs it (Debian package jackd2)")
    name = f"snaresynth-test-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen([jackd, "-n", name, "-d", "dummy", "-r", "48000", "-p", "256"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    os.environ["JACK_DEFAULT_SERVER"] = name
    os.environ["JACK_NO_START_SERVER"] = "1"
    deadline = time.monotonic() + 10
    import jack

    while True:
        try:
            client = jack.Client("snaresynth-probe", no_start_server=True, servername=name)
            client.close()
            break
        except jack.JackError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                pytest.fail(f"jackd did not start: {out[-500:]}")
            time.sleep(0.1)
    yield name
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()


class Daemon:
    """A running ``snaresynth serve``; its output is collected by a reader thread."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "snaresynth.cli", "serve", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.osc_port = 0
        threading.Thread(target=self._read, daemon=True).start()
        if not self.ready.wait(READY_TIMEOUT_S):
            self.stop()
            raise AssertionError("daemon not ready:\n" + self.output())
        match = re.search(r"OSC osc\.udp://[\d.]+:(\d+)", self.ready_line)
        assert match, self.ready_line
        self.osc_port = int(match.group(1))

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.startswith("snaresynth ready:"):
                self.ready_line = line
                self.ready.set()

    def output(self) -> str:
        return "".join(self.lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> float:
        """Signal the daemon and return how long it took to exit."""
        if self.proc.poll() is not None:
            return 0.0
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return time.monotonic() - t0


@pytest.fixture
def start_daemon(tmp_path: Path):
    """Factory: start_daemon(*extra_args) -> Daemon; all are stopped at teardown."""
    started: list[Daemon] = []

    def start(*extra: str) -> Daemon:
        env = dict(os.environ, SNARESYNTH_PRESET_DIR=str(tmp_path / "presets"),
                   TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
        args = ["--osc-port", "0", "--state-file", str(tmp_path / "state.toml"), *extra]
        daemon = Daemon(args, env)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


class OscClient:
    """A UDP socket that sends to the daemon and receives its replies."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.target = ("127.0.0.1", port)

    def send(self, address: str, *args) -> None:
        self.sock.sendto(build_message(address, list(args)), self.target)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.target)

    def receive(self, address: str, timeout: float = 5.0) -> list:
        """Arguments of the next reply to ``address`` (other replies are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                data, _ = self.sock.recvfrom(65536)
            except TimeoutError as exc:
                raise AssertionError(f"no {address} reply within {timeout} s") from exc
            msg = OscMessage(data)
            if msg.address == address:
                return list(msg.params)

    def request(self, address: str, *args, reply: str | None = None, timeout: float = 5.0):
        self.send(address, *args)
        return self.receive(reply or address + ".reply", timeout)

    def status(self) -> dict:
        flat = self.request("/snaresynth/status")
        return dict(zip(flat[::2], flat[1::2], strict=True))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def osc_client():
    clients: list[OscClient] = []

    def make(port: int) -> OscClient:
        client = OscClient(port)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
