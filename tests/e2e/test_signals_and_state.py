"""Stopping and starting against real signals and real files: SIGHUP saves like SIGTERM, a
signal during start-up stops it at once, a corrupt state file never keeps the daemon from
starting and is kept aside as evidence, and a log flood into a pipe nobody reads never stops
the daemon (each through the real daemon process, OSC over UDP)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from snaresynth.control.presets import load_state
from snaresynth.testing.daemon import daemon_env, serve_args
from snaresynth.testing.osc import OscClient, message

pytestmark = pytest.mark.e2e


def _bare_daemon(home: Path, stderr: int) -> subprocess.Popen:
    """``snaresynth serve`` with no harness around it: these tests signal or flood it before or
    past what ``Daemon`` waits for."""
    return subprocess.Popen(
        [sys.executable, "-m", "snaresynth.cli", "serve",
         *serve_args(home, "--audio", "null", "--midi-in", "none")],
        stdout=subprocess.PIPE, stderr=stderr, env=daemon_env(home), text=True)


def test_sighup_saves_the_state_and_stops(start_daemon, osc_client, tmp_path: Path) -> None:
    daemon = start_daemon("--audio", "null", "--midi-in", "none")
    client = osc_client(daemon.osc_port)
    client.send("/snaresynth/latent/1", 0.125, 0)
    client.ping()  # handled in order: the knob moved before the pong
    took = daemon.stop(signal.SIGHUP)
    assert daemon.returncode == 0 and took < 5.0, daemon.tail()
    kit, _ = load_state(tmp_path / "state.toml")
    assert kit.slots[0].knobs[1] == pytest.approx(0.125)


def test_sigterm_during_start_up_stops_it_at_once(tmp_path: Path) -> None:
    proc = _bare_daemon(tmp_path, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        seen = []
        while not any(" model: " in line for line in seen[-1:]):  # the model is loaded: the
            seen.append(proc.stdout.readline())  # kit's sounds are decoded next
            assert seen[-1], "".join(seen)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
        took = time.monotonic() - t0
    finally:
        proc.kill()
    out = "".join(seen) + out
    assert proc.returncode == 0, out
    assert "snaresynth ready" not in out and "Traceback" not in out, out
    assert "during start-up" in out and took < 5.0, out


@pytest.mark.parametrize("garbage", [
    "a = " + "[" * 5000 + "]" * 5000,  # nested thousands deep
    "a = " + "9" * 5000,  # an integer longer than Python converts
    "\x00\xff not toml at all",
])
def test_a_corrupt_state_file_is_set_aside_and_the_daemon_starts(
        start_daemon, osc_client, tmp_path: Path, garbage: str) -> None:
    (tmp_path / "state.toml").write_text(garbage, encoding="utf-8", errors="surrogateescape")
    daemon = start_daemon("--audio", "null", "--midi-in", "none")
    assert osc_client(daemon.osc_port).state()["kit"]["name"] == "default"
    aside = list(tmp_path.glob("state.toml.bad-*"))
    assert len(aside) == 1 and aside[0].read_text(errors="replace")[:4] == garbage[:4]
    assert "kept as" in daemon.output()
    daemon.stop()
    assert daemon.returncode == 0, daemon.tail()
    load_state(tmp_path / "state.toml")  # the new state is a good one; the evidence stays
    assert list(tmp_path.glob("state.toml.bad-*")) == aside


def test_a_log_flood_into_an_unread_pipe_never_stops_the_daemon(tmp_path: Path) -> None:
    """Unknown type tags and 30,000-character addresses make log lines; with stderr a pipe
    nobody reads, /ping must still be answered and SIGTERM must still stop the daemon."""
    proc = _bare_daemon(tmp_path, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        ready = ""
        deadline = time.monotonic() + 180
        while not ready.startswith("snaresynth ready") and time.monotonic() < deadline:
            ready = proc.stdout.readline()
        port = int(ready.split("osc.udp://127.0.0.1:")[1].split()[0])
        with OscClient(port) as client:
            bad_tags = b"/snaresynth/ping\x00\x00\x00\x00," + b"Q" * 15_999 + b"\x00" * 4
            for _ in range(20):
                client.send_raw(bad_tags)
                client.send_raw(message("/" + "x" * 30_000, 1.0))
            assert client.ping(timeout=5.0) == []
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()


def test_a_busy_web_port_does_not_keep_the_instrument_from_playing(start_daemon) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        daemon = start_daemon("--audio", "null", "--midi-in", "none", "--http-port", str(port))
        assert "serving the page on a free port instead" in daemon.output()
        url = daemon.ready_line.split("| web ")[1].split()[0]
        assert url.startswith("http://127.0.0.1:") and f":{port}/" not in url


def test_a_bad_model_file_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip archive")
    proc = subprocess.run(
        [sys.executable, "-m", "snaresynth.cli", "serve", *serve_args(
            tmp_path, "--audio", "null", "--midi-in", "none", "--model", str(bad))],
        capture_output=True, text=True, env=daemon_env(tmp_path), timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and f"{bad}: corrupt" in proc.stderr
