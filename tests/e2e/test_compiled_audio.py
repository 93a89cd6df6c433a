"""The compiled audio callbacks on a real JACK server: JACK-Client's own client (``--audio
jack``) and PortAudio's JACK host API (``--audio DEVICE``), each heard by the harness's frame
probe in this test. Every OSC trigger must be heard once, as a snare-shaped hit, and the
daemon's clock must move (OSC places hits by it)."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from snaresynth.testing.probe import Probe, synth_audio_ports
from snaresynth.testing.signals import is_snare_shaped, onsets

pytestmark = pytest.mark.e2e

HITS = 3
SPACING_S = 0.6


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
    probe = Probe(jack_server, record_seconds=HITS * SPACING_S + 2.0)
    try:
        probe.connect(audio_out=synth_audio_ports(jack_server, daemon.proc))  # all, summed
        time.sleep(0.3)
        before = client.status()
        start = probe.now()
        for _ in range(HITS):
            client.send("/snaresynth/trigger", 1.0)
            time.sleep(SPACING_S)
        time.sleep(0.5)
        after = client.status()
        recorded = probe.heard(start, probe.now() - start)
    finally:
        probe.close()
    assert after["hits"] - before["hits"] == HITS, after
    starts = onsets(recorded)
    assert len(starts) == HITS, f"onsets at {starts} for {HITS} triggers"
    spacing = np.diff(starts) / probe.rate
    assert np.all(np.abs(spacing - SPACING_S) < 0.1), spacing  # each hit when it was sent
    for start in starts:
        ok, why = is_snare_shaped(recorded[start:start + probe.rate // 2], probe.rate)
        assert ok, why
    print(f"\n{backend} compiled callback: {HITS} of {HITS} hits heard, "
          f"xruns {after['xruns']}, late hits {after['late_hits']}")
