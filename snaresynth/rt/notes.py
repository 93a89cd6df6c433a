"""The note table: what each MIDI note-on plays, for the audio callback to look up itself.

Thread: ``NoteTable.publish`` runs on the engine's threads (under the mixer's lock);
``place_note`` runs in the audio thread, before the block is mixed. So a JACK note-on becomes a
hit in the cycle it arrives, at its own frame, with no Python thread in between: channel x
note -> kit slot; slot x velocity -> velocity layer, left/right gain and choke group; the layer's
round-robin variant -> buffer-table entry (``rt/variants.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import carray, njit

from snaresynth.rt.buffers import BufferTable, mono
from snaresynth.rt.hits import H_CHOKE, H_ENTRY, H_FRAME, H_LAYER, H_SLOT, N_HIT, insert_pending
from snaresynth.rt.layout import (
    C_FRAME,
    C_NOTE_MODE,
    C_OVERFLOW,
    C_PENDING,
    C_RT_NOTES,
    N_CTRL,
    T_CTRL,
    T_LAYER_COUNT,
    T_LAYER_ENTRY,
    T_N_PEND,
    T_N_TABLE,
    T_NOTE_SLOT,
    T_PEND_G,
    T_PEND_I,
    T_RT_STARTED,
    T_SIZE,
    T_SLOT_CHOKE,
    T_SLOT_LAST,
    T_VEL_GAIN,
    T_VEL_LAYER,
)
from snaresynth.rt.primitives import as_pointer
from snaresynth.rt.variants import MAX_LAYERS, MAX_VARIANTS, choose_entry, variant_columns

N_CHANNELS = 16
N_NOTES = 128
MAX_SLOTS = 128


@dataclass(slots=True)
class SlotNotes:
    """What a note-on of one kit slot plays, for each MIDI velocity (row 0 is never used):
    the ``layers`` buffer ``layer_of[v]`` (-1: nothing) at ``gains[v]`` (left, right), or one of
    that layer's round-robin ``variants`` (``variants[layer]``: the further decoded buffers)."""

    layers: list[np.ndarray | None]
    layer_of: np.ndarray  # int (128,)
    gains: np.ndarray  # float32 (128, 2)
    choke_group: int = 0
    variants: list[list[np.ndarray]] = field(default_factory=list)


class NoteTable:
    """Owns the table's arrays (the audio callback finds them through the address table)."""

    def __init__(self) -> None:
        self.note_slot = np.full((N_CHANNELS, N_NOTES), -1, dtype=np.int64)
        self.vel_layer = np.full((MAX_SLOTS, N_NOTES), -1, dtype=np.int64)
        self.vel_gain = np.zeros((MAX_SLOTS, N_NOTES, 2), dtype=np.float32)
        self.slot_choke = np.zeros(MAX_SLOTS, dtype=np.int64)
        self.layer_entry = np.full((MAX_SLOTS, MAX_LAYERS, MAX_VARIANTS), -1, dtype=np.int64)
        self.layer_count = np.zeros((MAX_SLOTS, MAX_LAYERS), dtype=np.int64)
        self.slot_last = np.zeros(MAX_SLOTS, dtype=np.int64)  # written by the audio side only

    def entry(self, slot: int, velocity: int, variant: int = 0) -> int:
        """The entry a note-on of ``slot`` at MIDI ``velocity`` plays as ``variant`` (-1: none;
        tests and diagnostics)."""
        layer = int(self.vel_layer[slot, velocity])
        return -1 if layer < 0 else int(self.layer_entry[slot, layer, variant])

    def publish(self, note_slot: np.ndarray, slots: list[SlotNotes], buffers: BufferTable) -> int:
        """Make ``note_slot[channel, note]`` (a slot index, -1: none) and ``slots`` what the
        audio callback plays, pinning their buffers in ``buffers``. Returns the buffers that
        found no room there (their velocities stay silent)."""
        if len(slots) > MAX_SLOTS:
            raise ValueError(f"at most {MAX_SLOTS} slots, got {len(slots)}")
        missing = 0
        pinned: set[int] = set()
        n = len(slots)
        buffers.collect()  # once: a later entry() must not free one this publish just made
        vel_layer = np.full((n, N_NOTES), -1, dtype=np.int64)
        for s, notes in enumerate(slots):
            if len(notes.layers) > MAX_LAYERS:
                raise ValueError(f"at most {MAX_LAYERS} velocity layers, got {len(notes.layers)}")
            decoded = np.zeros(len(notes.layers) + 1, dtype=bool)  # [-1] -> not decoded
            for layer, buffer in enumerate(notes.layers):
                extra = notes.variants[layer] if layer < len(notes.variants) else []
                entries = []
                for b in ([] if buffer is None else [buffer, *extra][:MAX_VARIANTS]):
                    entry = buffers.entry(mono(b), collect=False)
                    if entry < 0:
                        missing += 1
                        continue
                    entries.append(entry)
                    pinned.add(entry)
                decoded[layer] = bool(entries)
                # the columns before the count: a torn read finds a valid entry either way
                self.layer_entry[s, layer] = variant_columns(entries)
                self.layer_count[s, layer] = len(entries)
            self.layer_count[s, len(notes.layers):] = 0
            layer_of = np.asarray(notes.layer_of, dtype=np.int64)
            vel_layer[s] = np.where(decoded[layer_of], layer_of, -1)
            self.vel_gain[s] = notes.gains
            self.slot_choke[s] = notes.choke_group
        # rows before the map that points at them; a torn read costs one hit's gain at most
        self.vel_layer[:n] = vel_layer
        self.vel_layer[n:] = -1
        self.layer_count[n:] = 0
        self.note_slot[:] = note_slot
        buffers.pin(pinned)
        return missing


@njit(cache=True, nogil=True)
def place_note(table_address, status, note, velocity, offset, hit_i, hit_g):
    """Thread: audio, before ``render_from_table``. A MIDI note-on read by the audio callback
    itself, into the pending list of the block about to be rendered: at its own frame
    ``offset`` (``C_NOTE_MODE`` 0), or at the block's first frame (1). ``hit_i`` and ``hit_g``
    are one-row scratch records. True if a hit was placed."""
    if status & 0xF0 != 0x90 or velocity == 0 or note >= N_NOTES:
        return False
    tab = carray(as_pointer(table_address), (T_SIZE,), np.int64)
    ctrl = carray(as_pointer(tab[T_CTRL]), (N_CTRL,), np.int64)
    note_slot = carray(as_pointer(tab[T_NOTE_SLOT]), (N_CHANNELS, N_NOTES), np.int64)
    slot = note_slot[status & 0x0F, note]
    if slot < 0:
        return False
    layer = carray(as_pointer(tab[T_VEL_LAYER]), (MAX_SLOTS, N_NOTES), np.int64)[slot, velocity]
    if layer < 0:  # the slot has no sound yet (still decoding)
        return False
    n_pend = ctrl[C_PENDING]
    pend_i = carray(as_pointer(tab[T_PEND_I]), (tab[T_N_PEND], N_HIT), np.int64)
    if n_pend >= pend_i.shape[0]:
        ctrl[C_OVERFLOW] += 1
        return False
    entry = choose_entry(
        ctrl, carray(as_pointer(tab[T_LAYER_ENTRY]), (MAX_SLOTS, MAX_LAYERS, MAX_VARIANTS),
                     np.int64),
        carray(as_pointer(tab[T_LAYER_COUNT]), (MAX_SLOTS, MAX_LAYERS), np.int64),
        carray(as_pointer(tab[T_SLOT_LAST]), (MAX_SLOTS,), np.int64), slot, layer)
    if entry < 0:
        return False
    vel_gain = carray(as_pointer(tab[T_VEL_GAIN]), (MAX_SLOTS, N_NOTES, 2), np.float32)
    hit_i[0, H_FRAME] = ctrl[C_FRAME] + (0 if ctrl[C_NOTE_MODE] else offset)
    hit_i[0, H_ENTRY] = entry
    hit_i[0, H_CHOKE] = carray(as_pointer(tab[T_SLOT_CHOKE]), (MAX_SLOTS,), np.int64)[slot]
    hit_i[0, H_SLOT] = slot
    hit_i[0, H_LAYER] = -1  # already chosen
    hit_g[0, 0] = vel_gain[slot, velocity, 0]
    hit_g[0, 1] = vel_gain[slot, velocity, 1]
    rt_started = carray(as_pointer(tab[T_RT_STARTED]), (tab[T_N_TABLE],), np.int64)
    rt_started[entry] += 1  # before the hit can end and count in ``done``
    insert_pending(pend_i, carray(as_pointer(tab[T_PEND_G]), (tab[T_N_PEND], 2), np.float32),
                   n_pend, hit_i, hit_g, 0)
    ctrl[C_PENDING] = n_pend + 1
    ctrl[C_RT_NOTES] += 1
    return True
