"""Round robin: which variant of a velocity layer a hit plays, chosen in the audio thread.

Thread: the kernels run in the audio thread only (``place_note`` for JACK note-ons, and the
mix kernel for hits scheduled from Python with a layer, see ``Hit.layer``). Each velocity layer
of a slot has up to ``MAX_VARIANTS`` decoded variants (buffer-table entries, written by
``NoteTable.publish``); a hit plays one of them at random, never the one the slot played last,
drawn with a xorshift32 state kept in ``ctrl[C_RNG]``: no allocation, no lock, no decode.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from snaresynth.rt.buffers import use_ended
from snaresynth.rt.hits import H_ENTRY, H_LAYER, H_SLOT, insert_pending
from snaresynth.rt.layout import C_OVERFLOW, C_PENDING, C_RNG
from snaresynth.rt.ring import ring_readable, ring_release, ring_row

MAX_LAYERS = 8
"""Velocity layers per slot the note table can hold (the engine uses 4)."""
MAX_VARIANTS = 8
"""Round-robin variants per velocity layer the note table can hold."""


def seed_state(seed: int) -> int:
    """A valid xorshift32 state (1..2**32-1) from any integer."""
    return (int(seed) & 0xFFFF_FFFF) or 0x9E37_79B9


@njit(cache=True, nogil=True)
def xorshift32(ctrl):
    """Thread: audio. The next 32-bit number of the state in ``ctrl[C_RNG]`` (kept non-zero;
    non-negative int64 arithmetic, so no overflow)."""
    x = ctrl[C_RNG]
    x ^= (x << 13) & 0xFFFFFFFF
    x ^= x >> 17
    x ^= (x << 5) & 0xFFFFFFFF
    if x == 0:  # only if the state was written as 0 from outside
        x = 0x9E3779B9
    ctrl[C_RNG] = x
    return x


@njit(cache=True, nogil=True)
def choose_entry(ctrl, layer_entry, layer_count, slot_last, slot, layer):
    """Thread: audio. The entry a hit of ``slot`` in velocity ``layer`` plays (-1: none): variant
    0 when the layer has one, else a random one other than the slot's last."""
    if slot < 0 or slot >= layer_count.shape[0] or layer < 0 or layer >= layer_count.shape[1]:
        return -1
    n = layer_count[slot, layer]
    if n <= 0:
        return -1
    variant = 0
    if n > 1:
        r = xorshift32(ctrl) % (n - 1)
        variant = r if r < slot_last[slot] else r + 1  # uniform over the n - 1 others
    slot_last[slot] = variant
    return layer_entry[slot, layer, variant]


@njit(cache=True, nogil=True)
def vary_hit(ctrl, layer_entry, layer_count, slot_last, rt_started, done, hit_i, k):
    """Thread: audio, as the mix kernel takes hit ``k`` from the hit ring. A hit scheduled with a
    layer (``H_LAYER`` >= 0) plays a variant chosen here; the entry it came with is counted
    ended, the chosen one started, so the buffer table keeps every use counted."""
    layer = hit_i[k, H_LAYER]
    if layer < 0:
        return
    entry = choose_entry(ctrl, layer_entry, layer_count, slot_last, hit_i[k, H_SLOT], layer)
    if entry < 0 or entry == hit_i[k, H_ENTRY]:
        return
    rt_started[entry] += 1  # before the old entry's use ends: the chosen one is named now
    use_ended(done, hit_i[k, H_ENTRY])
    hit_i[k, H_ENTRY] = entry


@njit(cache=True, nogil=True)
def take_hits(ctrl, hits, hit_i, hit_g, pend_i, pend_g, layer_entry, layer_count, slot_last,
              rt_started, done):
    """Thread: audio, step 1 of the mix kernel. Every new hit of the hit ring into the pending
    list (kept in time order) with its variant chosen, or counted ended and dropped if the list
    is full; returns the hits pending."""
    read, write = ring_readable(hits)
    n_pend = ctrl[C_PENDING]
    for position in range(read, write):
        k = ring_row(hits, position)
        if n_pend >= pend_i.shape[0]:
            use_ended(done, hit_i[k, H_ENTRY])
            ctrl[C_OVERFLOW] += 1
        else:
            vary_hit(ctrl, layer_entry, layer_count, slot_last, rt_started, done, hit_i, k)
            insert_pending(pend_i, pend_g, n_pend, hit_i, hit_g, k)
            n_pend += 1
    ring_release(hits, write)
    return n_pend


def variant_columns(entries: list[int]) -> np.ndarray:
    """Every variant column of one layer: the decoded entries, repeated to fill
    ``MAX_VARIANTS``, so a callback that reads a count from a newer table than the columns
    (a torn read) still finds a valid entry, never -1."""
    out = np.full(MAX_VARIANTS, -1, dtype=np.int64)
    if entries:
        out[:] = [entries[i % len(entries)] for i in range(MAX_VARIANTS)]
    return out
