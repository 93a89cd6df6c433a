"""JACK note-ons are played by the daemon's compiled audio callback itself, in the cycle they
arrive, to the sample: at the note's own frame (``--latency constant``) or at the first frame
of its cycle (``lowest``). The harness's frame probe sends note-ons at chosen frame offsets and
hears the daemon's output, both on JACK's frame clock."""

from __future__ import annotations

import time

import pytest

from snaresynth.testing.probe import Probe, note_on

pytestmark = pytest.mark.e2e

OFFSETS = (0, 5, 77, 128, 200, 255)  # frames into a 256-frame cycle
SPACING_S = 0.6  # a 16384-sample hit is 0.34 s: silence between hits
LEAD_S = 0.05  # each note-on goes into a cycle this far ahead: never one already gone


def _note(probe: Probe, offset: int) -> None:
    probe.schedule_at_offset(offset, note_on(38, 110), int(LEAD_S * probe.rate))


@pytest.mark.parametrize("latency", ["constant", "lowest"])
def test_jack_note_ons_play_in_their_own_cycle(latency, jack_server, start_daemon, osc_client):
    daemon = start_daemon("--audio", "jack", "--midi-api", "jack", "--midi-in", "virtual",
                          "--blocksize", "256", "--latency", latency)
    client = osc_client(daemon.osc_port)
    probe = Probe(jack_server)
    try:
        probe.connect("snaresynth:midi_in", "snaresynth-audio:out_1")
        time.sleep(0.3)
        before = client.status()
        for offset in OFFSETS:
            _note(probe, offset)
            time.sleep(SPACING_S)
        time.sleep(0.3)
        after = client.status()
        sent = [(frame, cycle) for frame, _, cycle in probe.sent]
        onsets = probe.onsets
    finally:
        probe.close()
    # the xruns first: pytest cuts a long dict short, and they say whether a cycle was missed
    why = (f"xruns {before['xruns']} -> {after['xruns']}", after)
    assert after["notes_in_callback"] - before["notes_in_callback"] == len(OFFSETS), why
    assert after["hits"] - before["hits"] == len(OFFSETS) and after["late_hits"] == 0, why
    assert len(sent) == len(onsets) == len(OFFSETS), (sent, onsets)
    for (frame, cycle), onset in zip(sent, onsets, strict=True):
        # to the sample: its own frame, or its cycle's first frame. (An xrun may move a whole
        # cycle, never a part of one: compared modulo a cycle.)
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
    probe = Probe(jack_server)
    try:
        probe.connect("snaresynth:midi_in")
        patchbay.disconnect("snaresynth:notes_out", "snaresynth-audio:notes_in")
        deadline = time.monotonic() + 10
        while client.status()["midi_reconnects"] < 1:
            assert time.monotonic() < deadline, "the notes link was not made again"
            time.sleep(0.1)
        assert patchbay.get_all_connections("snaresynth:notes_out")
        before = client.status()
        _note(probe, 17)
        time.sleep(0.5)
        after = client.status()
    finally:
        probe.close()
        patchbay.close()
    assert after["notes_in_callback"] - before["notes_in_callback"] == 1, after
    assert after["hits"] - before["hits"] == 1, after
