"""The one single-producer, single-consumer ring every hand-over to or from the audio thread uses.

Thread: two, one at each end. The compiled end (the audio kernel, a JACK callback) calls the
``ring_*`` functions; the Python end (a control thread) calls ``Ring``'s methods. Python
producers that share one ring take a lock of their own, so the ring still sees one producer.

A ring is an int64 ``counters`` array and one or more record arrays of ``capacity`` rows each
(one record = the same row of every array). Positions only grow; a record's row is its position
modulo the capacity. The producer writes a record, then publishes its position; the consumer
reads the records, then releases their positions. Neither end waits, locks or allocates: a full
ring refuses the record and counts it lost.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numba import njit

from snaresynth.rt.primitives import memory_fence

R_WRITE = 0  # records published (producer)
R_LOST = 1  # records refused because the ring was full (producer)
R_CAPACITY = 2  # rows of each record array (set once, before either end runs)
R_READ = 8  # records released (consumer); a cache line away from the producer's counters
R_SIZE = 16


# --- compiled end -------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def ring_reserve(counters, count):
    """Producer: the position from which ``count`` records fit, or -1 (the ``count`` records
    are counted lost) if they do not. Nothing is published until ``ring_publish``."""
    write = counters[R_WRITE]
    if write + count - counters[R_READ] > counters[R_CAPACITY]:
        counters[R_LOST] += count
        return np.int64(-1)
    return write


@njit(cache=True, nogil=True)
def ring_publish(counters, end):
    """Producer: every record before position ``end`` is written; the consumer may take it."""
    memory_fence()  # the records before the position that publishes them
    counters[R_WRITE] = end


@njit(cache=True, nogil=True)
def ring_readable(counters):
    """Consumer: (read, write): the positions read..write-1 hold published records."""
    write = counters[R_WRITE]
    memory_fence()  # the records are read after the position that published them
    return counters[R_READ], write


@njit(cache=True, nogil=True)
def ring_release(counters, end):
    """Consumer: every record before position ``end`` is read; the producer may overwrite it."""
    memory_fence()  # the records are read before their rows are given back
    counters[R_READ] = end


@njit(cache=True, nogil=True)
def ring_row(counters, position):
    """The row of the record at ``position``."""
    return position % counters[R_CAPACITY]


# --- Python end ---------------------------------------------------------------------------------
class Ring:
    """Owns a ring's counters and record arrays; its methods are the Python end of it.

    ``records``: a (row shape, dtype) pair per record array, e.g. ``((4,), np.int64)``. The
    compiled end gets ``counters`` and ``arrays`` by address. Python's stores reach memory in
    program order (x86-TSO; CPython does not reorder them), so the Python end needs no fence.
    """

    def __init__(self, capacity: int, *records: tuple[tuple[int, ...], type]) -> None:
        if capacity < 1:
            raise ValueError(f"a ring holds at least one record, got {capacity}")
        self.counters = np.zeros(R_SIZE, dtype=np.int64)
        self.counters[R_CAPACITY] = capacity
        self.arrays = tuple(np.zeros((capacity, *shape), dtype=dtype) for shape, dtype in records)

    @property
    def capacity(self) -> int:
        return int(self.counters[R_CAPACITY])

    @property
    def lost(self) -> int:
        """Records refused because the ring was full."""
        return int(self.counters[R_LOST])

    def unread(self) -> int:
        """Records published and not yet released (a racy but harmless read from either end)."""
        return int(self.counters[R_WRITE]) - int(self.counters[R_READ])

    # --- producer -----------------------------------------------------------------------------
    def claim(self) -> int:
        """The row for the next record, or -1 (counted lost) if the ring is full; the record
        is the consumer's only once ``publish``ed."""
        write = int(self.counters[R_WRITE])
        if write - int(self.counters[R_READ]) >= self.capacity:
            self.counters[R_LOST] += 1
            return -1
        return write % self.capacity

    def publish(self) -> None:
        """Hand the ``claim``ed record over, after every store into its row."""
        self.counters[R_WRITE] += 1

    def push(self, *rows: object) -> bool:
        """Write one record (a row for each array, in order) and publish it. False if full."""
        k = self.claim()
        if k < 0:
            return False
        for array, row in zip(self.arrays, rows, strict=True):
            array[k] = row
        self.publish()
        return True

    # --- consumer -----------------------------------------------------------------------------
    def rows(self) -> list[int]:
        """The rows of the records not yet taken, oldest first; nothing is released."""
        read, write = int(self.counters[R_READ]), int(self.counters[R_WRITE])
        return [position % self.capacity for position in range(read, write)]

    def drain(self) -> Iterator[int]:
        """The row of each record not yet taken, oldest first. A record is released when the
        caller asks for the next one (its row may then be overwritten: copy what you keep)."""
        read, write = int(self.counters[R_READ]), int(self.counters[R_WRITE])
        for position in range(read, write):
            yield position % self.capacity
            self.counters[R_READ] = position + 1

    def take(self) -> tuple[np.ndarray, ...]:
        """Copies of every record not yet taken (one array per record array, oldest first),
        released once copied."""
        read, write = int(self.counters[R_READ]), int(self.counters[R_WRITE])
        index = np.arange(read, write) % self.capacity
        records = tuple(array[index] for array in self.arrays)  # copies, before the release
        self.counters[R_READ] = write
        return records
