"""The mix kernel and ``Mixer``, the one object the rest of the daemon plays sound through.

Thread: ``render_block`` and ``render_from_table`` run in the audio thread (from the compiled
callbacks of ``rt/jack.py`` and ``rt/portaudio.py``, or from ``Mixer.render`` for a Python
callback); ``Mixer``'s other methods run on the control threads (engine, MIDI, OSC, decode
client) and never make the audio side wait. The kernel takes only numpy arrays, so it needs no
GIL (why: docs/performance.md, "Why the real-time side is built this way").

All state lives in preallocated arrays, found through one address table (``rt/layout.py``).
Hits come in through the hit ring (``rt/ring.py``), wait in the pending list (``rt/hits.py``),
start at their exact frame on a voice and read their sound from the buffer table
(``rt/buffers.py``); the audio callback also places note-ons itself from the note table
(``rt/notes.py``). Each block publishes its clock (``rt/clock.py``).
"""

from __future__ import annotations

import heapq
import math
import threading

import numpy as np
from numba import carray, njit

from snaresynth.rt.buffers import BufferTable, buffer_at, mono, use_ended
from snaresynth.rt.clock import AUDIO_STALLED_S, K_SIZE, BlockClock, clock_publish
from snaresynth.rt.hits import (
    H_CHOKE,
    H_ENTRY,
    H_FRAME,
    H_LAYER,
    H_SLOT,
    N_HIT,
    Hit,
    copy_hit,
)
from snaresynth.rt.layout import (
    C_BLOCKS,
    C_BUSY_NS,
    C_FRAME,
    C_HITS,
    C_LATE,
    C_MAX_BLOCK_NS,
    C_MAX_LATE,
    C_NOTE_MODE,
    C_OVERFLOW,
    C_PENDING,
    C_REC_ON,
    C_RNG,
    C_RT_NOTES,
    C_STALE,
    C_STOLEN,
    C_UNDERFLOWS,
    N_CTRL,
    T_BUF_ADDR,
    T_BUF_LEN,
    T_CLOCK,
    T_CTRL,
    T_DONE,
    T_FADE,
    T_HIT_G,
    T_HIT_I,
    T_HITS,
    T_LAYER_COUNT,
    T_LAYER_ENTRY,
    T_MAX_VOICES,
    T_N_FADE,
    T_N_PEND,
    T_N_TABLE,
    T_N_VOICES,
    T_NOTE_SLOT,
    T_PEND_G,
    T_PEND_I,
    T_REC,
    T_REC_DATA,
    T_RT_STARTED,
    T_SIZE,
    T_SLOT_CHOKE,
    T_SLOT_LAST,
    T_TIMESPEC,
    T_VEL_GAIN,
    T_VEL_LAYER,
    T_VOICE_G,
    T_VOICE_I,
)
from snaresynth.rt.notes import MAX_SLOTS, N_CHANNELS, N_NOTES, NoteTable, SlotNotes, place_note
from snaresynth.rt.primitives import as_pointer, now_ns
from snaresynth.rt.ring import R_CAPACITY, R_SIZE, Ring, ring_publish, ring_reserve, ring_row
from snaresynth.rt.variants import MAX_LAYERS, MAX_VARIANTS, seed_state, take_hits

__all__ = ["AUDIO_STALLED_S", "MAX_LATE_S", "N_CHANNELS", "N_HIT", "N_NOTES", "STEAL_FADE_S",
           "Hit", "Mixer", "SlotNotes", "pan_gains", "place_note", "render_block",
           "render_from_table"]

STEAL_FADE_S = 0.003
"""Fade of a stolen or choked voice: short enough to free it, long enough not to click."""
MAX_LATE_S = 0.1
"""A hit later than this is dropped, not played: after the audio device was gone for a while,
the hits queued meanwhile must not all sound at once when it is back."""

# voices: int64 columns, and float32 gains (left, right) beside them
V_ACTIVE, V_ENTRY, V_POS, V_FADE, V_START, V_OFFSET, V_CHOKE, V_SLOT = range(8)
N_VOICE = 8


@njit(cache=True, nogil=True)
def render_block(ctrl, hits, hit_i, hit_g, pend_i, pend_g, voice_i, voice_g, buf_addr, buf_len,
                 done, fade, left, right, frames, max_voices, layer_entry, layer_count, slot_last,
                 rt_started):
    """Thread: audio. Mix one block into ``left``/``right`` (float32, ``frames`` long): take
    new hits from the hit ring (counters ``hits``; ``rt/variants.py`` picks their variant),
    start the ones due in this block at their exact frame, mix every sounding voice, and count
    every entry use that ends (``done``)."""
    for i in range(frames):
        left[i] = 0.0
        right[i] = 0.0
    block_start = ctrl[C_FRAME]
    block_end = block_start + frames
    # 1. hit ring -> pending list, kept in time order, round-robin variants chosen
    n_pend = take_hits(ctrl, hits, hit_i, hit_g, pend_i, pend_g, layer_entry, layer_count,
                       slot_last, rt_started, done)
    # 2. start the hits due in this block
    taken = 0
    while taken < n_pend and pend_i[taken, H_FRAME] < block_end:
        offset = pend_i[taken, H_FRAME] - block_start
        if offset < -ctrl[C_MAX_LATE]:  # a drum hit this late is noise, not music: drop it
            use_ended(done, pend_i[taken, H_ENTRY])
            ctrl[C_STALE] += 1
            taken += 1
            continue
        if offset < 0:
            ctrl[C_LATE] += 1
            offset = 0
        _start(ctrl, pend_i, pend_g, taken, voice_i, voice_g, done, block_start + offset,
               offset, max_voices)
        taken += 1
    if taken:
        for j in range(n_pend - taken):
            copy_hit(pend_i, pend_g, j, pend_i, pend_g, j + taken)
        n_pend -= taken
    ctrl[C_PENDING] = n_pend
    # 3. mix
    for v in range(voice_i.shape[0]):
        if voice_i[v, V_ACTIVE]:
            _mix(voice_i, voice_g, v, buf_addr, buf_len, done, fade, left, right, frames)
    ctrl[C_FRAME] = block_end
    ctrl[C_BLOCKS] += 1


@njit(cache=True, nogil=True)
def _start(ctrl, pend_i, pend_g, p, voice_i, voice_g, done, frame, offset, max_voices):
    """Thread: audio. Pending hit ``p`` onto a free voice, choking and stealing as needed."""
    choke = pend_i[p, H_CHOKE]
    n_voices = voice_i.shape[0]
    if choke:
        for v in range(n_voices):
            if voice_i[v, V_ACTIVE] and voice_i[v, V_CHOKE] == choke and voice_i[v, V_FADE] < 0:
                voice_i[v, V_FADE] = 0
    # past the polyphony limit the oldest sounding voice fades out (never a click)
    sounding = 0
    oldest = -1
    for v in range(n_voices):
        if voice_i[v, V_ACTIVE] and voice_i[v, V_FADE] < 0:
            sounding += 1
            if oldest < 0 or voice_i[v, V_START] < voice_i[oldest, V_START]:
                oldest = v
    if sounding >= max_voices:
        voice_i[oldest, V_FADE] = 0
        ctrl[C_STOLEN] += 1
    free = -1
    for v in range(n_voices):
        if not voice_i[v, V_ACTIVE]:
            free = v
            break
    if free < 0:  # every voice busy (many steals within one fade): cut the furthest-faded one
        for v in range(n_voices):
            if voice_i[v, V_FADE] >= 0 and (free < 0 or voice_i[v, V_FADE] > voice_i[free, V_FADE]):
                free = v
        use_ended(done, voice_i[free, V_ENTRY])
    voice_i[free, V_ACTIVE] = 1
    voice_i[free, V_ENTRY] = pend_i[p, H_ENTRY]
    voice_i[free, V_POS] = 0
    voice_i[free, V_FADE] = -1
    voice_i[free, V_START] = frame
    voice_i[free, V_OFFSET] = offset
    voice_i[free, V_CHOKE] = choke
    voice_i[free, V_SLOT] = pend_i[p, H_SLOT]
    voice_g[free, 0] = pend_g[p, 0]
    voice_g[free, 1] = pend_g[p, 1]
    ctrl[C_HITS] += 1


@njit(cache=True, nogil=True)
def _mix(voice_i, voice_g, v, buf_addr, buf_len, done, fade, left, right, frames):
    """Thread: audio. Voice ``v``'s part of this block, added into ``left``/``right``."""
    entry = voice_i[v, V_ENTRY]
    buf = buffer_at(buf_addr, buf_len, entry)
    length = buf.shape[0]
    offset = voice_i[v, V_OFFSET]
    voice_i[v, V_OFFSET] = 0
    pos = voice_i[v, V_POS]
    fade_pos = voice_i[v, V_FADE]
    n = min(frames - offset, length - pos)
    if fade_pos >= 0:
        n = min(n, fade.shape[0] - fade_pos)
    gain_left = voice_g[v, 0]
    gain_right = voice_g[v, 1]
    for i in range(max(n, 0)):
        x = buf[pos + i]
        if fade_pos >= 0:
            x *= fade[fade_pos + i]
        left[offset + i] += x * gain_left
        right[offset + i] += x * gain_right
    if n > 0:
        pos += n
        voice_i[v, V_POS] = pos
        if fade_pos >= 0:
            fade_pos += n
            voice_i[v, V_FADE] = fade_pos
    if pos >= length or fade_pos >= fade.shape[0]:
        voice_i[v, V_ACTIVE] = 0
        use_ended(done, entry)


@njit(cache=True, nogil=True)
def render_from_table(table_address, left, right, frames, jack_frame, underflow, start_ns):
    """Thread: audio. One block: count the backend's underflow flag, publish the block's
    clock, mix, copy the block into the record ring if one is on, and add the time it took to
    ``C_BUSY_NS``. ``start_ns``: when the block starts on CLOCK_MONOTONIC as the backend knows
    it (JACK: its cycle time, free of the callback's wake-up jitter), or 0 for now."""
    tab = carray(as_pointer(table_address), (T_SIZE,), np.int64)
    t0 = now_ns(tab[T_TIMESPEC])
    hits = carray(as_pointer(tab[T_HITS]), (R_SIZE,), np.int64)
    n_ring, n_pend = hits[R_CAPACITY], tab[T_N_PEND]
    n_voices, n_table = tab[T_N_VOICES], tab[T_N_TABLE]
    ctrl = carray(as_pointer(tab[T_CTRL]), (N_CTRL,), np.int64)
    if underflow:
        ctrl[C_UNDERFLOWS] += 1
    clock_publish(carray(as_pointer(tab[T_CLOCK]), (K_SIZE,), np.int64), ctrl[C_FRAME],
                  start_ns if start_ns > 0 else t0, jack_frame, frames)
    render_block(ctrl, hits,
                 carray(as_pointer(tab[T_HIT_I]), (n_ring, N_HIT), np.int64),
                 carray(as_pointer(tab[T_HIT_G]), (n_ring, 2), np.float32),
                 carray(as_pointer(tab[T_PEND_I]), (n_pend, N_HIT), np.int64),
                 carray(as_pointer(tab[T_PEND_G]), (n_pend, 2), np.float32),
                 carray(as_pointer(tab[T_VOICE_I]), (n_voices, N_VOICE), np.int64),
                 carray(as_pointer(tab[T_VOICE_G]), (n_voices, 2), np.float32),
                 carray(as_pointer(tab[T_BUF_ADDR]), (n_table,), np.int64),
                 carray(as_pointer(tab[T_BUF_LEN]), (n_table,), np.int64),
                 carray(as_pointer(tab[T_DONE]), (n_table,), np.int64),
                 carray(as_pointer(tab[T_FADE]), (tab[T_N_FADE],), np.float32),
                 left, right, frames, tab[T_MAX_VOICES],
                 carray(as_pointer(tab[T_LAYER_ENTRY]), (MAX_SLOTS, MAX_LAYERS, MAX_VARIANTS),
                        np.int64),
                 carray(as_pointer(tab[T_LAYER_COUNT]), (MAX_SLOTS, MAX_LAYERS), np.int64),
                 carray(as_pointer(tab[T_SLOT_LAST]), (MAX_SLOTS,), np.int64),
                 carray(as_pointer(tab[T_RT_STARTED]), (n_table,), np.int64))
    if ctrl[C_REC_ON]:
        rec = carray(as_pointer(tab[T_REC]), (R_SIZE,), np.int64)
        _record(rec, carray(as_pointer(tab[T_REC_DATA]), (rec[R_CAPACITY], 2), np.float32),
                left, right, frames)
    took = now_ns(tab[T_TIMESPEC]) - t0
    ctrl[C_BUSY_NS] += took
    if took > ctrl[C_MAX_BLOCK_NS]:
        ctrl[C_MAX_BLOCK_NS] = took


@njit(cache=True, nogil=True)
def _record(rec, frames_out, left, right, frames):
    """Thread: audio. The block into the record ring (``--record``), or counted lost if the
    writer thread is a whole ring behind: the audio thread never waits for the disk."""
    write = ring_reserve(rec, frames)
    if write < 0:
        return
    for i in range(frames):
        k = ring_row(rec, write + i)
        frames_out[k, 0] = left[i]
        frames_out[k, 1] = right[i]
    ring_publish(rec, write + frames)


def pan_gains(pan: float) -> tuple[float, float]:
    """Constant-power pan: -1 left, 0 centre (-3 dB each side), +1 right."""
    angle = (min(max(pan, -1.0), 1.0) + 1.0) * math.pi / 4.0
    return math.cos(angle), math.sin(angle)


def _steal_fade(frames: int) -> np.ndarray:
    """A raised-cosine fade from 1 to 0 over ``frames`` frames (a stolen voice never clicks)."""
    t = np.arange(frames, dtype=np.float32) / frames
    return (0.5 * (1.0 + np.cos(np.pi * t))).astype(np.float32)


def _counter(index: int, doc: str) -> property:
    """A read-only property: ``ctrl[index]`` as an int."""
    return property(lambda self: int(self.ctrl[index]), doc=doc)


class AheadFull(ValueError):
    """Too many hits are scheduled ahead; the text says so to whoever sent the hit."""


class Mixer:
    """Mixes scheduled hits into stereo output blocks at their exact frame offsets.

    ``max_voices`` hits sound at once; a further hit steals the oldest, which fades out over
    ``STEAL_FADE_S`` on a spare voice (the pool holds twice ``max_voices``), so a steal never
    clicks and never delays the new hit. ``render`` runs the kernel from a Python audio
    callback; ``rt/jack.py`` and ``rt/portaudio.py`` run it from the device's thread.
    Thread: the methods say; producers among themselves take ``_lock``, the audio side never.
    """

    def __init__(self, rate: int, max_voices: int = 16, max_block: int = 8192,
                 ring: int = 1024, pending: int = 256, table: int = 1024,
                 max_late_s: float = MAX_LATE_S, notes_at_block_start: bool = False,
                 ahead_frames: int | None = None, rr_seed: int = 0x2545F491) -> None:
        if max_voices < 1:
            raise ValueError(f"max_voices must be >= 1, got {max_voices}")
        self.rate = rate
        self.max_voices = max_voices
        self.ctrl = np.zeros(N_CTRL, dtype=np.int64)
        self.ctrl[C_MAX_LATE] = int(max_late_s * rate)
        self.ctrl[C_NOTE_MODE] = 1 if notes_at_block_start else 0
        self.ctrl[C_RNG] = seed_state(rr_seed)
        self.hits = Ring(ring, ((N_HIT,), np.int64), ((2,), np.float32))
        self.pend_i = np.zeros((pending, N_HIT), dtype=np.int64)
        self.pend_g = np.zeros((pending, 2), dtype=np.float32)
        self.voice_i = np.zeros((2 * max_voices, N_VOICE), dtype=np.int64)
        self.voice_g = np.zeros((2 * max_voices, 2), dtype=np.float32)
        self.fade = _steal_fade(max(1, int(STEAL_FADE_S * rate)))
        self._clock = BlockClock()
        self.buffers = BufferTable(table, self._progress)
        self.note_table = NoteTable()
        self._rec: Ring | None = None  # the record ring (enable_recording)
        self._left = np.zeros(max_block, dtype=np.float32)
        self._right = np.zeros(max_block, dtype=np.float32)
        self._lock = threading.Lock()  # producers only
        self.refused = 0  # hits refused: ring or buffer table full, or no audio running
        # hits due later than ``ahead_frames`` may hold half the pending list at most, so
        # scheduled hits never take the room of live ones
        self.ahead_frames = rate // 20 if ahead_frames is None else ahead_frames
        self.max_ahead = pending // 2
        self._ahead: list[int] = []  # heap of the frames of hits scheduled ahead
        self._timespec = np.zeros(2, dtype=np.int64)  # scratch of the kernel's clock
        self.table = self._address_table()  # where every compiled caller finds the arrays
        self.rt_keepalive: object = None  # a compiled callback's own table, alive with the mixer
        self._warm_up()

    def _address_table(self) -> np.ndarray:
        buffers, notes = self.buffers, self.note_table
        table = np.zeros(T_SIZE, dtype=np.int64)
        for slot, array in ((T_CTRL, self.ctrl), (T_HITS, self.hits.counters),
                            (T_HIT_I, self.hits.arrays[0]), (T_HIT_G, self.hits.arrays[1]),
                            (T_PEND_I, self.pend_i), (T_PEND_G, self.pend_g),
                            (T_VOICE_I, self.voice_i), (T_VOICE_G, self.voice_g),
                            (T_BUF_ADDR, buffers.buf_addr), (T_BUF_LEN, buffers.buf_len),
                            (T_DONE, buffers.done), (T_RT_STARTED, buffers.rt_started),
                            (T_FADE, self.fade), (T_CLOCK, self._clock.array),
                            (T_TIMESPEC, self._timespec), (T_NOTE_SLOT, notes.note_slot),
                            (T_VEL_LAYER, notes.vel_layer), (T_VEL_GAIN, notes.vel_gain),
                            (T_SLOT_CHOKE, notes.slot_choke), (T_LAYER_ENTRY, notes.layer_entry),
                            (T_LAYER_COUNT, notes.layer_count), (T_SLOT_LAST, notes.slot_last)):
            table[slot] = array.ctypes.data
        table[T_N_PEND] = self.pend_i.shape[0]
        table[T_N_VOICES] = self.voice_i.shape[0]
        table[T_MAX_VOICES] = self.max_voices
        table[T_N_TABLE] = len(buffers)
        table[T_N_FADE] = self.fade.shape[0]
        return table

    def _warm_up(self) -> None:
        """Compile (or load from numba's cache) before the first block, off the audio thread."""
        self.render(np.zeros((16, 2), dtype=np.float32))
        for index in (C_FRAME, C_BLOCKS, C_BUSY_NS, C_MAX_BLOCK_NS):
            self.ctrl[index] = 0
        self._clock.restart()  # the clock's time stays: frame 0 is "now"

    def _progress(self) -> tuple[int, bool]:
        """(blocks rendered, no audio callback running), for the buffer table's releases."""
        return int(self.ctrl[C_BLOCKS]), self._clock.stalled()

    # --- producers (any thread but audio) ------------------------------------------------------
    def schedule(self, hit: Hit) -> bool:
        """Queue a hit for the audio side's next block. Thread: any (never the audio thread).
        False if it was refused (ring or buffer table full); ``AheadFull`` if it is due later
        than ``ahead_frames`` and ``max_ahead`` such hits are already waiting."""
        buffer = mono(hit.buffer)
        with self._lock:
            now = self.frame
            ahead = hit.frame > now + self.ahead_frames
            if ahead:
                while self._ahead and self._ahead[0] <= now:
                    heapq.heappop(self._ahead)
                if len(self._ahead) >= self.max_ahead:
                    self.refused += 1
                    raise AheadFull(f"{self.max_ahead} hits are already scheduled ahead; "
                                    "this one was refused (live hits keep their room)")
            k = self.hits.claim()
            entry = -1 if k < 0 else self.buffers.entry(buffer)
            if entry < 0:
                self.refused += 1
                return False
            hit_i, hit_g = self.hits.arrays
            hit_i[k] = (hit.frame, entry, hit.choke_group, hit.slot, hit.layer)
            hit_g[k] = (hit.gain_left, hit.gain_right)
            self.buffers.scheduled[entry] += 1  # before the hit can end and count in ``done``
            self.hits.publish()
            if ahead:
                heapq.heappush(self._ahead, hit.frame)
        return True

    def set_notes(self, note_slot: np.ndarray, slots: list[SlotNotes]) -> int:
        """Publish what each MIDI note-on plays, for ``place_note`` in the audio callback.
        ``note_slot[channel, note]`` is a slot index (-1: none). Thread: any but audio. Returns
        the buffers that found no room in the buffer table (their velocities stay silent)."""
        with self._lock:
            return self.note_table.publish(note_slot, slots, self.buffers)

    def _collect(self) -> None:
        """Release the buffer-table entries nothing plays any more. Thread: any but audio."""
        with self._lock:
            self.buffers.collect()

    def enable_recording(self, frames: int) -> None:
        """From the next block on, copy every block into a ring of ``frames`` frames, for
        ``recorded`` to take out. Thread: main, once, before the audio starts."""
        if frames < 1:
            raise ValueError(f"record ring must hold at least one frame, got {frames}")
        self._rec = Ring(frames, ((2,), np.float32))
        self.table[T_REC_DATA] = self._rec.arrays[0].ctypes.data
        self.table[T_REC] = self._rec.counters.ctypes.data
        self.ctrl[C_REC_ON] = 1  # last: the ring above is in place

    # --- consumers and readers (any thread but audio) ------------------------------------------
    def recorded(self) -> np.ndarray:
        """The frames (n, 2) recorded since the last call, oldest first. Thread: one writer."""
        if self._rec is None:
            return np.zeros((0, 2), dtype=np.float32)
        return self._rec.take()[0]

    def queued(self) -> list[Hit]:
        """Hits handed over but not yet taken by the audio side (tests, diagnostics)."""
        with self._lock:
            hit_i, hit_g = self.hits.arrays
            return [Hit(int(hit_i[k, H_FRAME]), self.buffers.arrays[int(hit_i[k, H_ENTRY])],
                        float(hit_g[k, 0]), float(hit_g[k, 1]), int(hit_i[k, H_CHOKE]),
                        int(hit_i[k, H_SLOT]), int(hit_i[k, H_LAYER])) for k in self.hits.rows()]

    def clock(self) -> tuple[int, float, int, int]:
        """(first frame, its CLOCK_MONOTONIC time in s, its JACK frame time or -1, its length in
        frames) of the last block rendered, read consistently. Thread: any but audio."""
        return self._clock.read()

    def active_voices(self) -> int:
        """Voices sounding (fading ones included). Thread: any (a racy but harmless read)."""
        return int(np.count_nonzero(self.voice_i[:, V_ACTIVE]))

    frame = _counter(C_FRAME, "The output frame the next block starts at.")
    hits_started = _counter(C_HITS, "Hits started on a voice.")
    hits_late = _counter(C_LATE, "Hits that came after their frame, started at a block start.")
    voices_stolen = _counter(C_STOLEN, "Voices faded out to keep the polyphony limit.")
    notes_in_callback = _counter(C_RT_NOTES, "Note-ons the audio callback placed itself.")
    underflows = _counter(C_UNDERFLOWS, "Output underflows a compiled callback was told of.")

    @property
    def dropped(self) -> int:
        """Hits lost: refused on the way in, past a full pending list, or too late to play."""
        return self.refused + int(self.ctrl[C_OVERFLOW]) + int(self.ctrl[C_STALE])

    @property
    def record_dropped(self) -> int:
        """Frames not recorded because the writer fell a whole ring behind."""
        return 0 if self._rec is None else self._rec.lost

    @property
    def longest_block_seconds(self) -> float:
        """The longest time one block took to mix (wall time, so a preemption counts too)."""
        return int(self.ctrl[C_MAX_BLOCK_NS]) / 1e9

    @property
    def busy_seconds(self) -> float:
        """Time the audio thread spent mixing, all blocks together."""
        return int(self.ctrl[C_BUSY_NS]) / 1e9

    # --- audio thread (Python backends) ----------------------------------------------------------
    def render(self, out: np.ndarray, jack_frame: int = -1) -> None:
        """Fill ``out`` (frames, 2) float32 with this block's mix. Thread: audio callback."""
        frames = out.shape[0]
        left, right = self._left[:frames], self._right[:frames]
        render_from_table(self.table.ctypes.data, left, right, frames, jack_frame, False, 0)
        out[:, 0] = left
        out[:, 1] = right
