"""The harness itself (``snaresynth.testing``): its layering, its OSC encoding, its signal
readers, its jackd restart, and that every bench script still starts as ``python bench/X.py``."""

from __future__ import annotations

import ast
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage

from snaresynth.testing.daemon import osc_port_of
from snaresynth.testing.jackd import JackServer
from snaresynth.testing.osc import NoReply, OscClient, bundle, message
from snaresynth.testing.signals import is_snare_shaped, onsets, synthetic_snares

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "snaresynth"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_daemon_never_imports_the_harness():
    offenders = [str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")
                 if "testing" not in p.relative_to(PACKAGE).parts[:1]
                 and any(n == "snaresynth.testing" or n.startswith("snaresynth.testing.")
                         for n in _imports(p))]
    assert offenders == []


def test_no_test_or_bench_script_edits_sys_path():
    edit = re.compile(r"^\s*sys\.path\.(insert|append)\(", re.MULTILINE)
    files = [*ROOT.joinpath("bench").glob("*.py"), *ROOT.joinpath("tests").rglob("*.py")]
    assert [str(p.relative_to(ROOT)) for p in files if edit.search(p.read_text())] == []


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "bench").glob("*.py")))
def test_bench_script_starts(script):
    done = subprocess.run([sys.executable, f"bench/{script}", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr[-2000:]


def test_osc_message_and_bundle_parse_back():
    msg = OscMessage(message("/snaresynth/trigger", 0.5, 2, "x"))
    assert msg.address == "/snaresynth/trigger" and list(msg.params) == [0.5, 2, "x"]
    parsed = OscBundle(bundle(1_900_000_000.25, ("/a", 1.0), ("/b",)))
    assert [m.address for m in parsed] == ["/a", "/b"]
    assert parsed.timestamp == pytest.approx(1_900_000_000.25, abs=1e-6)


def test_osc_client_waits_for_its_address_and_says_when_none_came():
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    client = OscClient(server.getsockname()[1])
    try:
        client.send("/snaresynth/status")
        data, sender = server.recvfrom(65536)
        assert OscMessage(data).address == "/snaresynth/status"
        server.sendto(b"not osc", sender)  # skipped
        server.sendto(message("/snaresynth/other", 1), sender)  # skipped
        server.sendto(message("/snaresynth/status.reply", "hits", 3, "xruns", 0), sender)
        assert client.receive("/snaresynth/status.reply") == ["hits", 3, "xruns", 0]
        with pytest.raises(NoReply):
            client.receive("/snaresynth/pong", timeout=0.2)
    finally:
        client.close()
        server.close()


def test_osc_port_of_the_ready_line():
    line = ("snaresynth ready: audio system (JACK Audio Connection Kit, compiled callback) at "
            "48000 Hz / 128 frames | MIDI snaresynth:midi_in (virtual, jack) | OSC "
            "osc.udp://127.0.0.1:9000 | model ddsp_snare | kit default")
    assert osc_port_of(line) == 9000


def test_synthetic_snares_are_snare_shaped_and_found_as_onsets():
    snares = synthetic_snares(4, rate=16000, seed=3)
    assert snares.shape == (4, 16384) and snares.dtype == np.float32
    assert np.array_equal(snares, synthetic_snares(4, rate=16000, seed=3))
    assert np.allclose(np.max(np.abs(snares), axis=1), 0.95)
    for hit in snares:
        ok, why = is_snare_shaped(hit, 16000)
        assert ok, why
    t = np.arange(16000) / 16000
    ok, _ = is_snare_shaped(np.sin(2 * np.pi * 440 * t).astype(np.float32), 16000)
    assert not ok  # a steady sine is neither decaying nor broadband
    track = np.zeros(3 * 16384, dtype=np.float32)
    expected = []
    for i, start in enumerate((100, 20000, 40000)):
        track[start:start + 4000] += snares[i, :4000]
        expected.append(start + int(np.flatnonzero(np.abs(snares[i]) > 1e-3)[0]))
    assert onsets(track) == expected


@pytest.mark.e2e
def test_jackd_restarts_under_its_name_after_a_kill():
    from snaresynth.io.supervisor import jack_server_running

    server = JackServer(f"snaresynth-harness-{os.getpid()}", period=128)
    try:
        server.start()
        assert jack_server_running(server.name) and server.env()["JACK_DEFAULT_SERVER"] == \
            server.name
        server.kill()
        assert not server.running and not jack_server_running(server.name)
        server.start()
        assert server.running and jack_server_running(server.name)
        assert server.log_text().count("Copyright 2001") == 2, server.log_text()  # both starts
    finally:
        server.close()
    assert not server.log_path.exists()
