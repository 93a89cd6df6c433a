"""The block clock: where and when the last block started, under a sequence lock.

Thread: the audio kernel writes it (``clock_publish``, once per block); any other thread reads
it (``BlockClock.read``) to place an event on the output's frames. A seqlock, because the
writer must never wait: the reader retries while the sequence is odd or moved.
"""

from __future__ import annotations

import time

import numpy as np
from numba import njit

from snaresynth.rt.primitives import memory_fence

AUDIO_STALLED_S = 0.25
"""An audio clock older than this means no callback is running (a lost device): blocks come
every 1-20 ms."""

K_SEQ = 0  # odd while the fields below are being written
K_FRAME = 1  # output frame of the block's first frame
K_NS = 2  # its CLOCK_MONOTONIC time, ns
K_JACK = 3  # its JACK frame time, -1 without JACK
K_BLOCK = 4  # frames in the block
K_SIZE = 8


@njit(cache=True, nogil=True)
def clock_publish(clock, frame, ns, jack_frame, frames):
    """Thread: audio. Publish one block's clock; readers never see half of it."""
    clock[K_SEQ] += 1  # odd: a write is under way
    memory_fence()
    clock[K_FRAME] = frame
    clock[K_NS] = ns
    clock[K_JACK] = jack_frame
    clock[K_BLOCK] = frames
    memory_fence()
    clock[K_SEQ] += 1


class BlockClock:
    """Owns the clock's array (the kernel finds it through the mixer's address table)."""

    def __init__(self) -> None:
        self.array = np.zeros(K_SIZE, dtype=np.int64)
        self.array[K_JACK] = -1

    def read(self) -> tuple[int, float, int, int]:
        """(first frame, its CLOCK_MONOTONIC time in s, its JACK frame time or -1, its length
        in frames) of the last block rendered, read consistently. Thread: any but audio."""
        clock = self.array
        while True:
            seq = int(clock[K_SEQ])
            value = (int(clock[K_FRAME]), int(clock[K_NS]) / 1e9, int(clock[K_JACK]),
                     int(clock[K_BLOCK]))
            if not seq & 1 and int(clock[K_SEQ]) == seq:
                return value
            time.sleep(0)  # the audio thread is mid-write: let it finish

    def stalled(self) -> bool:
        """No block for ``AUDIO_STALLED_S``: no audio callback is running. Thread: any."""
        return time.monotonic() - self.read()[1] > AUDIO_STALLED_S

    def restart(self) -> None:
        """Frame 0 from now on, before the audio starts (the time stays). Thread: main."""
        self.array[K_FRAME] = 0
