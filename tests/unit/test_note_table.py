"""The note table: a note-on the audio callback reads itself (JACK) plays, with no Python in
between, exactly what the engine's own ``note_on`` would have played."""

import numpy as np
import pytest

from snaresynth.control.kit import Kit, Slot
from snaresynth.control.params import parse_param
from snaresynth.engine.engine import Engine, EngineSettings
from snaresynth.rt.mixer import N_CHANNELS, N_HIT, N_NOTES, Mixer, SlotNotes, place_note
from tests.unit.test_voices import _render


def _scratch():
    return np.zeros((1, N_HIT), dtype=np.int64), np.zeros((1, 2), dtype=np.float32)


def _place(mixer, status, note, velocity, offset=0):
    return place_note(mixer.table.ctypes.data, status, note, velocity, offset, *_scratch())


def _one_slot(mixer, buffer, note=38, gain=(1.0, 0.5)):
    """Slot 0 on ``note`` (every channel) plays ``buffer`` at ``gain`` for every velocity."""
    note_slot = np.full((N_CHANNELS, N_NOTES), -1, dtype=np.int64)
    note_slot[:, note] = 0
    layer_of = np.zeros(N_NOTES, dtype=np.int64)
    layer_of[0] = -1
    gains = np.tile(np.array(gain, dtype=np.float32), (N_NOTES, 1))
    return mixer.set_notes(note_slot, [SlotNotes([buffer], layer_of, gains)])


@pytest.mark.parametrize("at_block_start", [False, True])
def test_a_placed_note_starts_at_its_frame_or_at_the_block_start(at_block_start):
    mixer = Mixer(48000, notes_at_block_start=at_block_start)
    assert _one_slot(mixer, np.ones(300, dtype=np.float32)) == 0
    _render(mixer, 2)
    assert _place(mixer, 0x90, 38, 100, offset=10)
    audio = _render(mixer, 1)
    start = 0 if at_block_start else 10
    assert np.all(audio[:start] == 0.0)
    assert audio[start, 0] == pytest.approx(1.0) and audio[start, 1] == pytest.approx(0.5)
    assert mixer.notes_in_callback == 1 and mixer.hits_started == 1 and mixer.hits_late == 0


def test_only_mapped_note_ons_with_a_sound_are_placed():
    mixer = Mixer(48000)
    assert not _place(mixer, 0x90, 38, 100)  # nothing published yet
    _one_slot(mixer, np.ones(300, dtype=np.float32))
    assert not _place(mixer, 0x90, 38, 0)  # velocity 0: a note-off
    assert not _place(mixer, 0x80, 38, 100)  # a note-off
    assert not _place(mixer, 0xB0, 38, 100)  # a CC
    assert not _place(mixer, 0x90, 39, 100)  # no slot listens to it
    assert _place(mixer, 0x99, 38, 100)  # any channel the table maps
    assert mixer.notes_in_callback == 1


def test_note_table_entries_outlive_their_replacement_by_two_blocks_and_their_hits():
    mixer = Mixer(48000)
    first = np.ones(1000, dtype=np.float32)
    _one_slot(mixer, first)
    entry = mixer.buffers.entry_of(first)
    mixer._collect()
    assert mixer.buffers.arrays[entry] is first  # named by the table: kept, though nothing plays it
    assert _place(mixer, 0x90, 38, 100)
    _render(mixer, 1)
    _one_slot(mixer, np.ones(1000, dtype=np.float32) * 0.5)  # a new sound for the slot
    _render(mixer, 2)  # past the grace period...
    mixer._collect()
    assert mixer.buffers.arrays[entry] is first  # ...but its hit still sounds (1000 frames)
    _render(mixer, 16)
    mixer._collect()
    assert mixer.buffers.arrays[entry] is None


def test_a_replaced_entry_waits_two_blocks_even_when_unplayed():
    mixer = Mixer(48000)
    first = np.ones(1000, dtype=np.float32)
    _one_slot(mixer, first)
    entry = mixer.buffers.entry_of(first)
    _render(mixer, 1)
    _one_slot(mixer, np.ones(1000, dtype=np.float32) * 0.5)
    mixer._collect()
    assert mixer.buffers.arrays[entry] is first  # a callback may have read the old table just now
    _render(mixer, 2)
    mixer._collect()
    assert mixer.buffers.arrays[entry] is None


def _kit(channel=None):
    return Kit(name="t", slots=[Slot(name="a", notes=[38], knobs=[0.5] * 4),
                                Slot(name="b", notes=[40, 41], knobs=[0.9] * 4, pan=0.5,
                                     level_db=-6.0, choke_group=2)],
               cc={}, midi_channel=channel)


@pytest.mark.parametrize("velocity", [1, 37, 100, 127])
def test_a_placed_note_sounds_exactly_like_the_engines_own_note_on(sine_decoder, velocity):
    settings = EngineSettings(rate=48000, blocksize=64, latency="lowest")
    by_python, by_table = Engine(sine_decoder, _kit(), settings), Engine(sine_decoder, _kit(),
                                                                         settings)
    for engine in (by_python, by_table):
        engine.start()
    try:
        _render(by_python.mixer, 1)
        _render(by_table.mixer, 1)
        assert by_python.note_on(40, velocity)
        assert _place(by_table.mixer, 0x90, 40, velocity)
        expected, got = _render(by_python.mixer, 20), _render(by_table.mixer, 20)
        assert np.abs(expected).max() > 0
        np.testing.assert_allclose(got, expected, atol=1e-7)
    finally:
        for engine in (by_python, by_table):
            engine.stop()


def test_the_note_table_follows_the_kit(sine_decoder):
    engine = Engine(sine_decoder, _kit(channel=10), EngineSettings(rate=48000, blocksize=64))
    engine.start()
    try:
        mixer = engine.mixer
        assert not _place(mixer, 0x90, 40, 100)  # channel 1: not this kit's
        assert _place(mixer, 0x99, 41, 100)  # channel 10, the second note of slot b
        assert mixer.note_table.slot_choke[1] == 2
        before = mixer.note_table.vel_gain[1, 100].copy()
        engine.set_param(parse_param("level"), 1.0, slot=1)  # +6 dB from -6
        assert mixer.note_table.vel_gain[1, 100, 0] > before[0] * 1.5
        old = mixer.note_table.entry(0, 127)
        engine.set_param(parse_param("latent/1"), 0.1, slot=0)
        assert engine.worker.wait_idle(5)
        assert mixer.note_table.entry(0, 127) != old  # the new sound, once decoded
        engine.load_kit(Kit(name="one", slots=[Slot(name="a", notes=[50], knobs=[0.5] * 4)], cc={}))
        assert not _place(mixer, 0x99, 41, 100)  # the slot is gone
        assert _place(mixer, 0x90, 50, 100)
        assert engine.note_on(50, 100, placed=True) and engine.mixer.queued() == []
    finally:
        engine.stop()
