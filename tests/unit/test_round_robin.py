"""Round robin in the audio thread: ``place_note`` (JACK note-ons) and the mix kernel (hits
scheduled from Python with a layer) pick a variant per hit, never the slot's last one."""

from __future__ import annotations

import numpy as np

from snaresynth.rt.hits import H_ENTRY
from snaresynth.rt.mixer import N_CHANNELS, N_NOTES, Hit, Mixer, SlotNotes
from snaresynth.rt.variants import MAX_VARIANTS, variant_columns
from tests.unit.test_note_table import _place, _scratch
from tests.unit.test_voices import _render


def _sounds(n: int, length: int = 200) -> list[np.ndarray]:
    """``n`` constant buffers, told apart by their level (variant i plays i + 1)."""
    return [np.full(length, float(i + 1), dtype=np.float32) for i in range(n)]


def _slot(mixer: Mixer, sounds: list[np.ndarray], note: int = 38) -> None:
    note_slot = np.full((N_CHANNELS, N_NOTES), -1, dtype=np.int64)
    note_slot[:, note] = 0
    layer_of = np.zeros(N_NOTES, dtype=np.int64)
    layer_of[0] = -1
    gains = np.ones((N_NOTES, 2), dtype=np.float32)
    assert mixer.set_notes(note_slot, [SlotNotes([sounds[0]], layer_of, gains, 0,
                                                 [sounds[1:]])]) == 0


def _placed_entry(mixer: Mixer) -> int:
    """Place one note-on and return the entry ``place_note`` itself wrote into the hit."""
    hit_i, hit_g = _scratch()
    from snaresynth.rt.notes import place_note

    assert place_note(mixer.table.ctypes.data, 0x90, 38, 100, 0, hit_i, hit_g)
    return int(hit_i[0, H_ENTRY])


def test_successive_note_ons_never_repeat_a_variant_and_use_them_all() -> None:
    mixer = Mixer(48000, pending=1024)
    sounds = _sounds(4)
    _slot(mixer, sounds)
    entries = [_placed_entry(mixer) for _ in range(400)]  # chosen in place_note, no render
    assert all(a != b for a, b in zip(entries, entries[1:], strict=False))
    table = mixer.buffers
    played = {id(table.arrays[e]) for e in entries}
    assert played == {id(s) for s in sounds}
    for e in set(entries):  # none starves
        assert entries.count(e) > 400 / 4 / 2


def test_two_variants_alternate() -> None:
    mixer = Mixer(48000, pending=64)
    _slot(mixer, _sounds(2))
    entries = [_placed_entry(mixer) for _ in range(20)]
    assert entries[0::2] == [entries[0]] * 10 and entries[1::2] == [entries[1]] * 10
    assert entries[0] != entries[1]


def test_without_variants_the_buffer_itself_plays_every_time() -> None:
    mixer = Mixer(48000)
    (sound,) = _sounds(1)
    _slot(mixer, [sound])
    entry = mixer.buffers.entry_of(sound)
    assert entry is not None
    assert [_placed_entry(mixer) for _ in range(5)] == [entry] * 5
    assert mixer.note_table.entry(0, 100) == entry


def test_the_recorded_audio_of_a_roll_changes_from_hit_to_hit() -> None:
    mixer = Mixer(48000)
    _slot(mixer, _sounds(3, length=64))
    levels = []
    for _ in range(12):
        assert _place(mixer, 0x90, 38, 100)
        levels.append(float(_render(mixer, 1)[0, 0]))
        _render(mixer, 1)  # the hit (64 frames) ends
    assert set(levels) <= {1.0, 2.0, 3.0}
    assert all(a != b for a, b in zip(levels, levels[1:], strict=False))


def test_python_hits_with_a_layer_vary_in_the_kernel_and_keep_the_counts() -> None:
    mixer = Mixer(48000)
    sounds = _sounds(4, length=64)
    _slot(mixer, sounds)
    levels = []
    for _ in range(16):
        assert mixer.schedule(Hit(mixer.frame, sounds[0], 1.0, 1.0, 0, 0, layer=0))
        levels.append(float(_render(mixer, 1)[0, 0]))
        _render(mixer, 1)
    assert all(a != b for a, b in zip(levels, levels[1:], strict=False))
    assert len(set(levels)) > 1
    table = mixer.buffers
    assert np.array_equal(table.scheduled + table.rt_started, table.done)  # every use ended
    # a hit without a layer plays exactly its own buffer
    for _ in range(3):
        assert mixer.schedule(Hit(mixer.frame, sounds[2], 1.0, 1.0, 0, 0))
        assert float(_render(mixer, 1)[0, 0]) == 3.0
        _render(mixer, 1)


def test_variant_columns_never_hold_minus_one_when_anything_is_decoded() -> None:
    assert list(variant_columns([])) == [-1] * MAX_VARIANTS
    assert list(variant_columns([7, 9, 4])) == [7, 9, 4, 7, 9, 4, 7, 9][:MAX_VARIANTS]
