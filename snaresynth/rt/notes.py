"""The note table: what each MIDI note-on plays, for the audio callback to look up itself.

Thread: ``NoteTable.publish`` runs on the engine's threads (under the mixer's lock);
``place_note`` runs in the audio thread, before the block is mixed. So a JACK note-on becomes a
hit in the cycle it arrives, at its own frame, with no Python thread in between: channel x
note -> kit slot; slot x velocity -> buffer-table entry, left/right gain and choke group.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import carray, njit

from snaresynth.rt.buffers import BufferTable, mono
from snaresynth.rt.hits import H_CHOKE, H_ENTRY, H_FRAME, H_SLOT, N_HIT, insert_pending
from snaresynth.rt.layout import (
    C_FRAME,
    C_NOTE_MODE,
    C_OVERFLOW,
    C_PENDING,
    C_RT_NOTES,
    N_CTRL,
    T_CTRL,
    T_N_PEND,
    T_N_TABLE,
    T_NOTE_SLOT,
    T_PEND_G,
    T_PEND_I,
    T_RT_STARTED,
    T_SIZE,
    T_SLOT_CHOKE,
    T_VEL_ENTRY,
    T_VEL_GAIN,
)
from snaresynth.rt.primitives import as_pointer

N_CHANNELS = 16
N_NOTES = 128
MAX_SLOTS = 128


@dataclass(slots=True)
class SlotNotes:
    """What a note-on of one kit slot plays, for each MIDI velocity (row 0 is never used):
    the ``layers`` buffer ``layer_of[v]`` (-1: nothing) at ``gains[v]`` (left, right)."""

    layers: list[np.ndarray | None]
    layer_of: np.ndarray  # int (128,)
    gains: np.ndarray  # float32 (128, 2)
    choke_group: int = 0


class NoteTable:
    """Owns the table's arrays (the audio callback finds them through the address table)."""

    def __init__(self) -> None:
        self.note_slot = np.full((N_CHANNELS, N_NOTES), -1, dtype=np.int64)
        self.vel_entry = np.full((MAX_SLOTS, N_NOTES), -1, dtype=np.int64)
        self.vel_gain = np.zeros((MAX_SLOTS, N_NOTES, 2), dtype=np.float32)
        self.slot_choke = np.zeros(MAX_SLOTS, dtype=np.int64)

    def publish(self, note_slot: np.ndarray, slots: list[SlotNotes], buffers: BufferTable) -> int:
        """Make ``note_slot[channel, note]`` (a slot index, -1: none) and ``slots`` what the
        audio callback plays, pinning their buffers in ``buffers``. Returns the buffers that
        found no room there (their velocities stay silent)."""
        if len(slots) > MAX_SLOTS:
            raise ValueError(f"at most {MAX_SLOTS} slots, got {len(slots)}")
        missing = 0
        pinned: set[int] = set()
        n = len(slots)
        vel_entry = np.full((n, N_NOTES), -1, dtype=np.int64)
        for s, notes in enumerate(slots):
            entries = np.full(len(notes.layers) + 1, -1, dtype=np.int64)  # [-1] -> -1
            for layer, buffer in enumerate(notes.layers):
                if buffer is None:
                    continue
                entry = buffers.entry(mono(buffer))
                if entry < 0:
                    missing += 1
                    continue
                entries[layer] = entry
                pinned.add(entry)
            vel_entry[s] = entries[np.asarray(notes.layer_of, dtype=np.int64)]
            self.vel_gain[s] = notes.gains
            self.slot_choke[s] = notes.choke_group
        # rows before the map that points at them; a torn read costs one hit's gain at most
        self.vel_entry[:n] = vel_entry
        self.vel_entry[n:] = -1
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
    vel_entry = carray(as_pointer(tab[T_VEL_ENTRY]), (MAX_SLOTS, N_NOTES), np.int64)
    entry = vel_entry[slot, velocity]
    if entry < 0:  # the slot has no sound yet (still decoding)
        return False
    n_pend = ctrl[C_PENDING]
    pend_i = carray(as_pointer(tab[T_PEND_I]), (tab[T_N_PEND], N_HIT), np.int64)
    if n_pend >= pend_i.shape[0]:
        ctrl[C_OVERFLOW] += 1
        return False
    vel_gain = carray(as_pointer(tab[T_VEL_GAIN]), (MAX_SLOTS, N_NOTES, 2), np.float32)
    hit_i[0, H_FRAME] = ctrl[C_FRAME] + (0 if ctrl[C_NOTE_MODE] else offset)
    hit_i[0, H_ENTRY] = entry
    hit_i[0, H_CHOKE] = carray(as_pointer(tab[T_SLOT_CHOKE]), (MAX_SLOTS,), np.int64)[slot]
    hit_i[0, H_SLOT] = slot
    hit_g[0, 0] = vel_gain[slot, velocity, 0]
    hit_g[0, 1] = vel_gain[slot, velocity, 1]
    rt_started = carray(as_pointer(tab[T_RT_STARTED]), (tab[T_N_TABLE],), np.int64)
    rt_started[entry] += 1  # before the hit can end and count in ``done``
    insert_pending(pend_i, carray(as_pointer(tab[T_PEND_G]), (tab[T_N_PEND], 2), np.float32),
                   n_pend, hit_i, hit_g, 0)
    ctrl[C_PENDING] = n_pend + 1
    ctrl[C_RT_NOTES] += 1
    return True
