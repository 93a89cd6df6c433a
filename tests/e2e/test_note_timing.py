"""JACK note-ons are played by the daemon's compiled audio callback itself, in the cycle they
arrive, to the sample: at the note's own frame (``--latency constant``) or at the first frame
of its cycle (``lowest``). A JACK MIDI client of this test sends note-ons at chosen frame
offsets and a second one hears the daemon's output, both on JACK's frame clock."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytestmark = pytest.mark.e2e

OFFSETS = (0, 5, 77, 128, 200, 255)  # frames into a 256-frame cycle
SPACING_S = 0.6  # a 16384-sample hit is 0.34 s: silence between hits
THRESHOLD = 1e-5  # the daemon outputs digital silence between hits
QUIET_GAP = 2400


class FrameProbe:
    """Two JACK clients: ``tprobe-midi`` writes each queued note-on at its offset in the next
    cycle and logs (frame, cycle start); ``tprobe-audio`` logs the frame of every onset."""

    def __init__(self) -> None:
        import jack

        self.midi = jack.Client("tprobe-midi", no_start_server=True)
        self.audio = jack.Client("tprobe-audio", no_start_server=True)
        self.period = self.midi.blocksize
        self.out = self.midi.midi_outports.register("out")
        self.inp = self.audio.inports.register("in")
        self.queue: list[tuple[int, bytes]] = []
        self.sent: list[tuple[int, int]] = []
        self.onsets: list[int] = []
        self._last_loud = -(10**9)
        self._lock = threading.Lock()
        self.midi.set_process_callback(self._send)
        self.audio.set_process_callback(self._hear)
        self.midi.activate()
        self.audio.activate()

    def _send(self, frames: int) -> None:
        self.out.clear_buffer()
        with self._lock:
            if not self.queue:
                return
            offset, message = self.queue.pop(0)
        base = self.midi.last_frame_time
        self.out.write_midi_event(offset, message)
        self.sent.append((base + offset, base))

    def _hear(self, frames: int) -> None:
        base = self.audio.last_frame_time
        loud = np.flatnonzero(np.abs(self.inp.get_array()) > THRESHOLD)
        if loud.size:
            if base + loud[0] - self._last_loud > QUIET_GAP:
                self.onsets.append(int(base + loud[0]))
            self._last_loud = int(base + loud[-1])

    def note(self, offset: int, note: int = 38, velocity: int = 110) -> None:
        with self._lock:
            self.queue.append((offset, bytes([0x90, note, velocity])))

    def close(self) -> None:
        for client in (self.midi, self.audio):
            client.deactivate()
            client.close()


@pytest.mark.parametrize("latency", ["constant", "lowest"])
def test_jack_note_ons_play_in_their_own_cycle(latency, jack_server, start_daemon, osc_client):
    daemon = start_daemon("--audio", "jack", "--midi-api", "jack", "--midi-in", "virtual",
                          "--blocksize", "256", "--latency", latency)
    client = osc_client(daemon.osc_port)
    probe = FrameProbe()
    try:
        probe.midi.connect(probe.out, "snaresynth:midi_in")
        probe.audio.connect("snaresynth-audio:out_1", probe.inp)
        time.sleep(0.3)
        before = client.status()
        for offset in OFFSETS:
            probe.note(offset)
            time.sleep(SPACING_S)
        time.sleep(0.3)
        after = client.status()
        sent, onsets = list(probe.sent), list(probe.onsets)
    finally:
        probe.close()
    assert after["notes_in_callback"] - before["notes_in_callback"] == len(OFFSETS), after
    assert after["hits"] - before["hits"] == len(OFFSETS) and after["late_hits"] == 0, after
    assert len(sent) == len(onsets) == len(OFFSETS), (sent, onsets)
    for (frame, cycle), onset in zip(sent, onsets, strict=True):
        # to the sample: its own frame, or its cycle's first frame. (An xrun of this test's
        # Python clients may move a whole cycle, never a part of one: compared modulo a cycle.)
        expected = frame if latency == "constant" else cycle
        assert (onset - expected) % probe.period == 0, (frame, cycle, onset)
    latencies = [onset - frame for (frame, _), onset in zip(sent, onsets, strict=True)]
    print(f"\n{latency}: note-on -> onset {latencies} frames at {probe.period}, "
          f"xruns {after['xruns']}")


def test_a_cleared_notes_link_is_made_again(jack_server, start_daemon, osc_client):
    """A patchbay that disconnects everything also cuts the MIDI client's link to the audio
    client: the supervisor makes it again, and notes are played in the callback once more."""
    import jack

    daemon = start_daemon("--audio", "jack", "--midi-api", "jack", "--midi-in", "virtual",
                          "--blocksize", "256")
    client = osc_client(daemon.osc_port)
    patchbay = jack.Client("patchbay", no_start_server=True)
    probe = FrameProbe()
    try:
        probe.midi.connect(probe.out, "snaresynth:midi_in")
        patchbay.disconnect("snaresynth:notes_out", "snaresynth-audio:notes_in")
        deadline = time.monotonic() + 10
        while client.status()["midi_reconnects"] < 1:
            assert time.monotonic() < deadline, "the notes link was not made again"
            time.sleep(0.1)
        assert patchbay.get_all_connections("snaresynth:notes_out")
        before = client.status()
        probe.note(17)
        time.sleep(0.5)
        after = client.status()
    finally:
        probe.close()
        patchbay.close()
    assert after["notes_in_callback"] - before["notes_in_callback"] == 1, after
    assert after["hits"] - before["hits"] == 1, after
