"""The buffer table: the sounds the audio kernel may read, by entry, with deferred release.

Thread: ``BufferTable``'s methods run on the producers' threads, under the mixer's lock; the
kernels ``buffer_at`` and ``use_ended`` run in the audio thread. A hit names its sound by an
entry (an address and a length), since compiled code cannot hold a Python reference. The table
keeps each entry's numpy array alive until the audio side has counted every use of it ended
(``scheduled + rt_started == done``), so a voice never reads freed memory, and a sound
published anew never changes a sounding hit.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import carray, njit

from snaresynth.rt.primitives import as_pointer, memory_fence

RETIRE_BLOCKS = 2
"""Blocks an entry the note table stopped naming stays: a callback may have read the old
table at the start of the block under way."""


@njit(cache=True, nogil=True)
def buffer_at(buf_addr, buf_len, entry):
    """Thread: audio. The float32 samples of ``entry``."""
    return carray(as_pointer(buf_addr[entry]), (buf_len[entry],), np.float32)


@njit(cache=True, nogil=True)
def use_ended(done, entry):
    """Thread: audio. One use of ``entry`` (a hit) ended: it will not be read again for it."""
    memory_fence()  # the samples are read before the entry may be released
    done[entry] += 1


class BufferTable:
    """The entries' addresses, lengths and use counters, and the arrays behind them.

    ``progress()``: (blocks rendered, whether the audio is stalled) — an entry retired from
    the note table waits ``RETIRE_BLOCKS`` blocks, or none while no callback runs.
    """

    def __init__(self, size: int, progress: Callable[[], tuple[int, bool]]) -> None:
        self.buf_addr = np.zeros(size, dtype=np.int64)
        self.buf_len = np.zeros(size, dtype=np.int64)
        self.scheduled = np.zeros(size, dtype=np.int64)  # hits given each entry (producers)
        self.rt_started = np.zeros(size, dtype=np.int64)  # hits given each entry (audio)
        self.done = np.zeros(size, dtype=np.int64)  # of both, finished or dropped (audio)
        self.arrays: list[np.ndarray | None] = [None] * size  # keeps each entry's memory alive
        self._entry_of: dict[int, int] = {}  # id(array) -> entry
        self._free = list(range(size - 1, -1, -1))
        self._pinned: set[int] = set()  # entries the note table names
        self._retired: dict[int, int] = {}  # entry -> block count when the table dropped it
        self._progress = progress

    def __len__(self) -> int:
        return self.buf_addr.shape[0]

    def entry_of(self, buffer: np.ndarray) -> int | None:
        """The entry holding ``buffer`` (as given to ``entry``), or None."""
        entry = self._entry_of.get(id(buffer))
        return entry if entry is not None and self.arrays[entry] is buffer else None

    def entry(self, buffer: np.ndarray, collect: bool = True) -> int:
        """The entry of ``buffer`` (1-D contiguous float32, see ``mono``), a new one if it has
        none yet; -1 if the table is full of sounds still in use. ``collect=False``: free
        nothing first (the note table's publish, whose new entries are not pinned yet)."""
        entry = self.entry_of(buffer)
        if entry is not None:
            return entry
        if collect:
            self.collect()
        if not self._free:
            return -1
        entry = self._free.pop()
        self.arrays[entry] = buffer
        self._entry_of[id(buffer)] = entry
        self.buf_len[entry] = buffer.shape[0]
        self.buf_addr[entry] = buffer.ctypes.data
        return entry

    def pin(self, entries: set[int]) -> None:
        """The entries the note table names from now on: kept while named, and for
        ``RETIRE_BLOCKS`` blocks after they stop being named."""
        blocks, _ = self._progress()
        for entry in self._pinned - entries:
            self._retired[entry] = blocks
        for entry in entries:
            self._retired.pop(entry, None)
        self._pinned = set(entries)

    def collect(self) -> None:
        """Release every entry whose uses have all ended (its array may be freed), unless the
        note table names it or retired it less than ``RETIRE_BLOCKS`` blocks ago."""
        idle = np.flatnonzero(self.scheduled + self.rt_started == self.done)
        if not idle.size:
            return
        blocks, stalled = self._progress()
        for entry in idle.tolist():
            array = self.arrays[entry]
            if array is None or entry in self._pinned:
                continue
            retired = self._retired.get(entry)
            if retired is not None:
                if blocks < retired + RETIRE_BLOCKS and not stalled:
                    continue
                del self._retired[entry]
            self.arrays[entry] = None
            del self._entry_of[id(array)]
            self._free.append(entry)


def mono(buffer: np.ndarray) -> np.ndarray:
    """``buffer`` itself when it already is 1-D contiguous float32 (so one array keeps one
    buffer-table entry), else such a copy."""
    if buffer.dtype == np.float32 and buffer.ndim == 1 and buffer.flags.c_contiguous:
        return buffer
    return np.ascontiguousarray(buffer, dtype=np.float32).reshape(-1)
