"""Faults: the JACK server dies and comes back, a MIDI source port vanishes and returns, SIGTERM
arrives at a busy moment. The daemon says so, keeps answering OSC, reconnects, and still plays.

Guards ``io/supervisor.py`` with ``JackAudio.reopen`` / ``JackMidiIn.reopen`` (docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

from snaresynth.control.presets import PresetStore
from snaresynth.testing.daemon import Daemon
from snaresynth.testing.jackd import JackServer
from snaresynth.testing.midi import MidiPadProcess
from snaresynth.testing.osc import OscClient

pytestmark = pytest.mark.e2e

NOTE_ON = bytes([0x90, 38, 110])


def _hit(sender: MidiPadProcess, client: OscClient, before: dict) -> dict:
    """A note-on sounds, played by the audio callback itself (so the MIDI client's link to
    the audio client's notes port is back too)."""
    sender.send(NOTE_ON)
    return client.wait_status(lambda s: s["hits"] > before["hits"]
                              and s["notes_in_callback"] > before["notes_in_callback"], 10,
                              "a MIDI note sounds, placed by the audio callback")


def test_jack_loss_port_loss_and_sigterm(tmp_path: Path, monkeypatch) -> None:
    # a SIGKILLed jackd keeps its slot in libjack's registry (8 servers at most) until a
    # server of the same name starts again: so one name per test process, not per server
    server = JackServer(f"snaresynth-fault-{os.getpid()}", period=256)
    server.start()
    monkeypatch.setenv("JACK_DEFAULT_SERVER", server.name)
    pad = MidiPadProcess("fakepad", server.name)
    daemon = None
    try:
        daemon = Daemon.in_home(tmp_path, "--audio", "jack", "--midi-api", "jack", "--midi-in",
                                "fakepad:out", "--midi-out", "virtual", "--blocksize", "256")
        client = OscClient(daemon.osc_port)
        status = _hit(pad, client, {"hits": 0, "notes_in_callback": 0})
        assert status["audio_reconnects"] == 0 and status["midi_reconnects"] == 0

        # 1. the MIDI source goes away (its client quits) and comes back: connected again
        pad.close()
        client.wait_status(lambda s: s["midi_lost"] == 1, 5, "MIDI loss noticed")
        pad = MidiPadProcess("fakepad", server.name)
        status = client.wait_status(lambda s: s["midi_reconnects"] == 1, 10,
                                    "MIDI source reconnected")
        status = _hit(pad, client, status)

        # 2. the JACK server is killed: OSC still answers; the server returns: both reconnect
        server.kill()
        pad.kill()
        status = client.wait_status(lambda s: s["audio_lost"] == 1 and s["midi_lost"] == 1
                                    and s["midi_out_lost"] == 1, 5, "JACK loss noticed")
        assert client.ping() == []
        client.send("/snaresynth/latent/0", 0.9)  # controls still work while audio is gone
        time.sleep(1.0)
        server.start()
        pad = MidiPadProcess("fakepad", server.name)
        status = client.wait_status(
            lambda s: s["audio_reconnects"] == 1 and s["midi_reconnects"] == 2
            and s["midi_out_reconnects"] == 1 and s["audio_lost"] == 0 and s["midi_lost"] == 0
            and s["midi_out_lost"] == 0, 15, "audio, MIDI in and the feedback output reconnected")
        status = _hit(pad, client, status)
        out = daemon.output()
        assert "audio lost" in out and "audio back" in out and "midi back" in out, out
        assert "midi_out back" in out, out

        # 3. SIGTERM in the middle of a save flood: stops within a second, files intact
        for i in range(200):
            client.send("/snaresynth/preset/save", f"flood {i % 3}")
            client.send("/snaresynth/latent/1", (i % 100) / 100)
        stop_s = daemon.stop(signal.SIGTERM)
        assert daemon.proc.returncode == 0, daemon.output()
        # 1 s is the goal; the decode child process alone takes ~2 s to exit, more under load
        # (docs/reliability.md, known gaps)
        assert stop_s < 5.0, f"stop took {stop_s:.2f} s"
        print(f"SIGTERM to exit: {stop_s:.2f} s")
        store = PresetStore(user_dir=tmp_path / "presets")
        for name in store.list():
            store.load(name)  # every preset on disk parses
        assert (tmp_path / "state.toml").read_text().strip()
        client.close()
    finally:
        if daemon is not None:
            daemon.stop(signal.SIGKILL)
        with contextlib.suppress(Exception):
            pad.kill()
        server.close()
