"""Voice pool and mixer, run inside the audio callback.

Everything here is preallocated at start-up: a fixed number of voices, one scratch block, one
fade curve. ``Mixer.render`` (audio thread only) never allocates large arrays, never locks,
never logs; other threads hand it work through ``Mixer.schedule`` (a ``deque.append``, atomic in
CPython) and read its counters.

A voice holds its own reference to the buffer it started with, so a new sound published for the
slot never changes a hit that is already sounding.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from snaresynth.dsp import fade_out

STEAL_FADE_S = 0.003
"""Fade of a stolen or choked voice: short enough to free it, long enough not to click."""


@dataclass(slots=True)
class Hit:
    """A scheduled note: which buffer, when (absolute output frame), how loud, where."""

    frame: int
    buffer: np.ndarray  # mono float32 at the output rate
    gain_left: float
    gain_right: float
    choke_group: int = 0
    slot: int = 0


class Voice:
    __slots__ = ("buffer", "pos", "gain_left", "gain_right", "choke_group", "slot",
                 "active", "fade_pos", "started_frame", "offset")

    def __init__(self) -> None:
        self.buffer: np.ndarray | None = None
        self.pos = 0
        self.gain_left = 0.0
        self.gain_right = 0.0
        self.choke_group = 0
        self.slot = 0
        self.active = False
        self.fade_pos = -1  # >= 0 while fading out after a steal or choke
        self.started_frame = 0
        self.offset = 0  # first frame of the current block this voice plays in


def pan_gains(pan: float) -> tuple[float, float]:
    """Constant-power pan: -1 left, 0 centre (-3 dB each side), +1 right."""
    angle = (min(max(pan, -1.0), 1.0) + 1.0) * math.pi / 4.0
    return math.cos(angle), math.sin(angle)


class Mixer:
    """Mixes scheduled hits into stereo output blocks at their exact frame offsets.

    ``max_voices`` hits sound at once; a further hit steals the oldest, which fades out over
    ``STEAL_FADE_S`` on a spare voice object (the pool holds twice ``max_voices``), so a steal
    never clicks and never delays the new hit.
    """

    def __init__(self, rate: int, max_voices: int = 16, max_block: int = 8192) -> None:
        if max_voices < 1:
            raise ValueError(f"max_voices must be >= 1, got {max_voices}")
        self.rate = rate
        self.max_voices = max_voices
        self.voices = [Voice() for _ in range(2 * max_voices)]
        self._fade = fade_out(max(1, int(STEAL_FADE_S * rate)))
        self._scratch = np.zeros(max_block, dtype=np.float32)
        self._scratch2 = np.zeros(max_block, dtype=np.float32)
        self._inbox: deque[Hit] = deque()
        self._pending: list[Hit] = []  # hits due in a later block, in time order
        self.frame = 0  # absolute output frame of the next block's first frame
        # counters: written by the audio thread only, read by others
        self.hits_started = 0
        self.hits_late = 0
        self.voices_stolen = 0

    # --- any thread ----------------------------------------------------------------------------
    def schedule(self, hit: Hit) -> None:
        """Queue a hit; the audio thread picks it up at its next block. Thread: any."""
        self._inbox.append(hit)

    def active_voices(self) -> int:
        """Voices sounding (fading ones included). Thread: any (a racy but harmless read)."""
        return sum(1 for v in self.voices if v.active)

    # --- audio thread --------------------------------------------------------------------------
    def render(self, out: np.ndarray) -> None:
        """Fill ``out`` (frames, 2) float32 with this block's mix. Thread: audio callback."""
        frames = out.shape[0]
        out.fill(0.0)
        block_start = self.frame
        block_end = block_start + frames
        self._take_inbox()
        pending = self._pending
        while pending and pending[0].frame < block_end:
            hit = pending.pop(0)
            offset = hit.frame - block_start
            if offset < 0:
                self.hits_late += 1
                offset = 0
            self._start(hit, block_start + offset, offset)
        for voice in self.voices:
            if voice.active:
                self._mix(voice, out, frames)
        self.frame = block_end

    def _take_inbox(self) -> None:
        inbox = self._inbox
        pending = self._pending
        while inbox:
            hit = inbox.popleft()
            i = len(pending)
            while i > 0 and pending[i - 1].frame > hit.frame:
                i -= 1
            pending.insert(i, hit)

    def _start(self, hit: Hit, frame: int, offset: int) -> None:
        if hit.choke_group:
            for v in self.voices:
                if v.active and v.choke_group == hit.choke_group and v.fade_pos < 0:
                    v.fade_pos = 0
        voice = self._free_voice()
        voice.buffer = hit.buffer
        voice.pos = 0
        voice.gain_left = hit.gain_left
        voice.gain_right = hit.gain_right
        voice.choke_group = hit.choke_group
        voice.slot = hit.slot
        voice.active = True
        voice.fade_pos = -1
        voice.started_frame = frame
        voice.offset = offset
        self.hits_started += 1

    def _free_voice(self) -> Voice:
        """A free voice object; past the polyphony limit the oldest sounding voice fades out."""
        sounding = [v for v in self.voices if v.active and v.fade_pos < 0]
        if len(sounding) >= self.max_voices:
            oldest = min(sounding, key=lambda v: v.started_frame)
            oldest.fade_pos = 0
            self.voices_stolen += 1
        for v in self.voices:
            if not v.active:
                return v
        # every object busy (many steals within one fade time): cut the furthest-faded one
        victim = max((v for v in self.voices if v.fade_pos >= 0), key=lambda v: v.fade_pos)
        victim.active = False
        return victim

    def _mix(self, voice: Voice, out: np.ndarray, frames: int) -> None:
        buf = voice.buffer
        offset = voice.offset
        voice.offset = 0
        n = 0 if buf is None else min(frames - offset, buf.shape[0] - voice.pos)
        if voice.fade_pos >= 0:
            n = min(n, self._fade.shape[0] - voice.fade_pos)
        if n > 0:
            tmp = self._scratch[:n]
            np.copyto(tmp, buf[voice.pos:voice.pos + n])
            if voice.fade_pos >= 0:
                np.multiply(tmp, self._fade[voice.fade_pos:voice.fade_pos + n], out=tmp)
                voice.fade_pos += n
            scaled = self._scratch2[:n]
            left = out[offset:offset + n, 0]
            np.multiply(tmp, voice.gain_left, out=scaled)
            np.add(left, scaled, out=left)
            right = out[offset:offset + n, 1]
            np.multiply(tmp, voice.gain_right, out=scaled)
            np.add(right, scaled, out=right)
            voice.pos += n
        finished = buf is None or voice.pos >= buf.shape[0] or (
            voice.fade_pos >= self._fade.shape[0])
        if finished:
            voice.active = False
            voice.buffer = None
