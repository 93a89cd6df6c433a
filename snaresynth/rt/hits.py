"""Hit records: the ``Hit`` a producer schedules, and the time-ordered pending list.

Thread: ``Hit`` any; the pending-list kernels run in the audio thread only (the mix kernel,
and ``place_note`` before it). A hit record is a row of int64 columns (``H_*``) beside a row of
two float32 gains (left, right), in the hit ring and in the pending list alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

H_FRAME, H_ENTRY, H_CHOKE, H_SLOT, H_LAYER = range(5)
N_HIT = 5


@dataclass(slots=True)
class Hit:
    """A scheduled note: which buffer, when (absolute output frame), how loud, where."""

    frame: int
    buffer: np.ndarray  # mono float32 at the output rate
    gain_left: float
    gain_right: float
    choke_group: int = 0
    slot: int = 0
    layer: int = -1  # >= 0: the audio side plays a round-robin variant of (slot, layer) instead


@njit(cache=True, nogil=True)
def copy_hit(dst_i, dst_g, j, src_i, src_g, k):
    """Hit record ``k`` of (src_i, src_g) into row ``j`` of (dst_i, dst_g)."""
    for c in range(N_HIT):
        dst_i[j, c] = src_i[k, c]
    dst_g[j, 0] = src_g[k, 0]
    dst_g[j, 1] = src_g[k, 1]


@njit(cache=True, nogil=True)
def insert_pending(pend_i, pend_g, n_pend, src_i, src_g, k):
    """Hit ``k`` of (src_i, src_g) into the first ``n_pend`` rows of the pending list, which
    stay in time order (the caller checked there is room)."""
    j = n_pend
    while j > 0 and pend_i[j - 1, H_FRAME] > src_i[k, H_FRAME]:
        copy_hit(pend_i, pend_g, j, pend_i, pend_g, j - 1)
        j -= 1
    copy_hit(pend_i, pend_g, j, src_i, src_g, k)
