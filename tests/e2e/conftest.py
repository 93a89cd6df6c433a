"""End-to-end fixtures: a private JACK server (dummy driver), the daemon as a subprocess, and
OSC clients on real UDP sockets, all from ``snaresynth.testing``. Every fixture starts what it
needs and stops it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from snaresynth.testing.daemon import Daemon
from snaresynth.testing.jackd import JackServer
from snaresynth.testing.osc import OscClient


@pytest.fixture(scope="session")
def jack_server() -> Iterator[JackServer]:
    """A JACK server of our own, 48 kHz, 256-frame periods, dummy driver; the default server of
    this process and of every daemon it starts."""
    server = JackServer(f"snaresynth-test-{os.getpid()}", period=256)
    server.start()
    server.export()
    yield server
    server.close()


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Factory: start_daemon(*extra_args) -> Daemon with its presets and state under tmp_path;
    all are stopped at teardown."""
    started: list[Daemon] = []

    def start(*extra: str) -> Daemon:
        daemon = Daemon.in_home(tmp_path, *extra)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


@pytest.fixture
def osc_client() -> Iterator[Callable[[int], OscClient]]:
    """Factory: osc_client(port) -> OscClient; all are closed at teardown."""
    clients: list[OscClient] = []

    def make(port: int) -> OscClient:
        client = OscClient(port)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
