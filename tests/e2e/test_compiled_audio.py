"""The compiled audio callbacks on a real JACK server: JACK-Client's own client (``--audio
jack``) and PortAudio's JACK host API (``--audio DEVICE``), each captured by a JACK client of
this test. Every OSC trigger must be heard once, as a snare-shaped hit, and the daemon's clock
must move (OSC places hits by it)."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from tests.e2e.audio_analysis import is_snare_shaped, onsets

pytestmark = pytest.mark.e2e

HITS = 3
SPACING_S = 0.6


class Capture:
    """A JACK client recording the sum of everything connected to its input port."""

    def __init__(self, seconds: float) -> None:
        import jack

        self.client = jack.Client("capture", no_start_server=True)
        self.port = self.client.inports.register("in")
        self.rate = self.client.samplerate
        self.audio = np.zeros(int(seconds * self.rate), dtype=np.float32)
        self.n = 0
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _process(self, frames: int) -> None:
        block = self.port.get_array()
        n = min(frames, self.audio.size - self.n)
        self.audio[self.n:self.n + n] = block[:n]
        self.n += n

    def connect_outputs_of(self, owner_excluded: tuple[str, ...]) -> list[str]:
        """Connect every other client's audio output (not ``system``, not ours)."""
        connected = []
        deadline = time.monotonic() + 10
        while not connected and time.monotonic() < deadline:
            for port in self.client.get_ports(is_audio=True, is_output=True):
                if port.name.split(":")[0] in ("system", "capture", *owner_excluded):
                    continue
                self.client.connect(port, self.port)
                connected.append(port.name)
            if not connected:
                time.sleep(0.1)
        return connected

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


def _portaudio_jack_device() -> int:
    """PortAudio's JACK output device, asked in a child: PortAudio initialised in this process
    would abort it at exit once the test's JACK server is gone (pa_jack.c's Terminate)."""
    code = ("import sounddevice as sd; print(next((a['default_output_device'] for a in "
            "sd.query_hostapis() if a['name'].startswith('JACK')), -1))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, check=True).stdout.split()
    if not out or int(out[-1]) < 0:
        pytest.fail("PortAudio sees no JACK output device")
    return int(out[-1])


@pytest.mark.parametrize("backend", ["jack", "portaudio"])
def test_compiled_callback_plays_every_trigger(backend, jack_server, start_daemon, osc_client):
    audio = "jack" if backend == "jack" else str(_portaudio_jack_device())
    daemon = start_daemon("--audio", audio, "--midi-in", "none", "--blocksize", "256")
    assert "compiled callback" in daemon.ready_line, daemon.ready_line
    client = osc_client(daemon.osc_port)
    capture = Capture(seconds=HITS * SPACING_S + 2.0)
    try:
        assert capture.connect_outputs_of(()), "no daemon output port"
        time.sleep(0.3)
        before = client.status()
        for _ in range(HITS):
            client.send("/snaresynth/trigger", 1.0)
            time.sleep(SPACING_S)
        time.sleep(0.5)
        after = client.status()
        recorded = capture.audio[:capture.n].copy()
    finally:
        capture.close()
    assert after["hits"] - before["hits"] == HITS, after
    starts = onsets(recorded)
    assert len(starts) == HITS, f"onsets at {starts} for {HITS} triggers"
    spacing = np.diff(starts) / capture.rate
    assert np.all(np.abs(spacing - SPACING_S) < 0.1), spacing  # each hit when it was sent
    for start in starts:
        ok, why = is_snare_shaped(recorded[start:start + capture.rate // 2], capture.rate)
        assert ok, why
    print(f"\n{backend} compiled callback: {HITS} of {HITS} hits heard, "
          f"xruns {after['xruns']}, late hits {after['late_hits']}")
