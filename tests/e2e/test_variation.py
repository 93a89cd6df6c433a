"""Round-robin variation over real JACK MIDI: the compiled callback's ``place_note`` picks a
variant per note-on, so successive hits of a roll differ in the recorded audio, with variation
0 they are the same sound, and in ``--latency constant`` every hit still starts at its note's
own frame (0 frames of latency)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from snaresynth.testing.probe import Probe, note_on

pytestmark = pytest.mark.e2e

HITS = 6
SPACING_S = 0.6  # a 16384-sample hit is 0.34 s: silence between hits, as the probe needs
LEAD_S = 0.05
WINDOW = 4096  # frames of each hit compared
XRUN_TOLD_S = 0.25  # how late JACK's notification thread may tell an xrun, on a loaded machine


def _wait_decoded(client, before: dict, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        status = client.status()
        done = (status["decodes"] + status["cache_hits"]
                - before["decodes"] - before["cache_hits"])
        if done >= count:
            time.sleep(0.3)  # the last publish reaches the note table
            return
        assert time.monotonic() < deadline, f"only {done} of {count} variants decoded"
        time.sleep(0.2)


def _roll(probe: Probe) -> tuple[list[tuple[np.ndarray, np.ndarray]], int]:
    """Successive pairs of hits of a roll that JACK recorded whole. An xrun leaves a period of
    the probe's recording unwritten or stale, and such a hit cannot be compared sample by
    sample; on a loaded machine that happens now and then, so a roll with fewer than 3 whole
    pairs is played again (3 tries). Returns the pairs and how many rolls were played."""
    for tries in range(1, 4):
        hits, whole = _roll_once(probe)
        pairs = [(hits[i], hits[i + 1]) for i in range(HITS - 1) if whole[i] and whole[i + 1]]
        if len(pairs) >= 3:
            return pairs, tries
        print(f"\nroll played again: {len(probe.xrun_frames)} xruns so far broke "
              f"{whole.count(False)} of its hits")
    raise AssertionError(f"xruns broke the recording of 3 rolls running ({probe.xruns} xruns)")


def _roll_once(probe: Probe) -> tuple[list[np.ndarray], list[bool]]:
    """``HITS`` note-ons of slot 0 (note 38), each at a frame offset of its own; the audio of
    each hit from its note's frame, checked to start exactly there, and whether no xrun came
    near it."""
    probe.clear_sent()
    start = probe.now()
    for i in range(HITS):
        probe.schedule_at_offset((37 * i) % probe.period, note_on(38, 110),
                                 int(LEAD_S * probe.rate))
        time.sleep(SPACING_S)
    time.sleep(0.3)
    sent = probe.sent
    assert len(sent) == HITS and sent[0][0] >= start, sent
    whole = [not probe.xrun_near(cycle, frame - cycle + WINDOW, int(XRUN_TOLD_S * probe.rate))
             for frame, _, cycle in sent]
    matched = probe.match([(frame, cycle) for frame, _, cycle in sent], probe.period * 4)
    late = [m for m, ok in zip(matched, whole, strict=True) if ok and m != 0]
    assert not late, f"note-on -> onset latency {matched} frames (constant mode), whole {whole}"
    return [probe.heard(frame, WINDOW) for frame, _, _ in sent], whole


def test_a_roll_varies_hit_to_hit_with_no_latency(jack_server, start_daemon, osc_client):
    daemon = start_daemon("--audio", "jack", "--midi-api", "jack", "--midi-in", "virtual",
                          "--blocksize", "256", "--latency", "constant")
    client = osc_client(daemon.osc_port)
    probe = Probe(jack_server, record_seconds=2 * HITS * SPACING_S + 4.0)
    try:
        probe.connect("snaresynth:midi_in", "snaresynth-audio:out_1")
        time.sleep(0.3)
        plain, _ = _roll(probe)
        before = client.status()
        client.send("/snaresynth/variants", 4, 0)
        client.send("/snaresynth/variation", 0.3, 0)
        layers = 4  # the default kit's velocity layers (velocity_latent = 0)
        _wait_decoded(client, before, 3 * layers)
        varied, rolls = _roll(probe)
        after = client.status()
    finally:
        probe.close()
    peak = max(float(np.abs(h).max()) for pair in plain for h in pair)
    assert peak > 0.05, "the roll is silent"
    for a, b in plain:  # variation 0: one buffer, every hit
        assert float(np.abs(a - b).max()) < 1e-4 * peak
    diffs = [float(np.abs(a - b).max()) / peak for a, b in varied]
    assert all(d > 0.01 for d in diffs), f"successive hits too alike: {diffs}"
    assert after["notes_in_callback"] - before["notes_in_callback"] == rolls * HITS, after
    assert after["late_hits"] == 0, after
    print(f"\nvariation roll: successive hits differ by {[round(d, 3) for d in diffs]} "
          f"of the peak; without variation by < 1e-4; latency 0 frames")
