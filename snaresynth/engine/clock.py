"""When an event plays: its output frame, from the mixer's clock (the last block's first
frame, its monotonic time and its JACK frame time). Thread: any (the mixer's clock is a
seqlock the audio thread writes)."""

from __future__ import annotations

import time

from snaresynth.rt.mixer import AUDIO_STALLED_S, Mixer


class Clock:
    def __init__(self, mixer: Mixer, rate: int, blocksize: int, lowest: bool) -> None:
        self.mixer = mixer
        self.rate = rate
        self.blocksize = blocksize
        self.lowest = lowest  # --latency lowest: every event at the start of the next block

    def frame_at(self, t: float | None = None) -> int:
        """Output frame of an event arriving at monotonic time ``t`` (None: now): one block
        after it, so every event keeps its offset (constant latency)."""
        if self.lowest:
            return self.mixer.frame
        frame0, t0, _, _ = self.mixer.clock()
        t = time.monotonic() if t is None else t
        return int(round(frame0 + (t - t0) * self.rate)) + self.blocksize

    def frame_at_jack(self, jack_frame: int) -> int:
        """Output frame of an event stamped with JACK's frame time: exactly one block after
        it, whatever the callbacks' wake-up jitter (no wall clock involved)."""
        frame0, _, jack0, block = self.mixer.clock()
        if jack0 < 0 or self.lowest:
            return self.frame_at(None)
        delta = (jack_frame - jack0) & 0xFFFFFFFF  # JACK frame times are uint32 and wrap
        if delta >= 1 << 31:
            delta -= 1 << 32
        return frame0 + delta + max(block, self.blocksize)

    def stalled(self) -> bool:
        """No block for a while: the device is gone (a JACK server loss)."""
        return time.monotonic() - self.mixer.clock()[1] > AUDIO_STALLED_S
