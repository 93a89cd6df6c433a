"""Voice pool and mixer: a compiled kernel that never needs Python's GIL.

The mixing itself (``render_block``) is compiled by numba to machine code that takes only
numpy arrays, so it can run inside the audio thread as a C callback (JACK: ``io/jack_rt.py``;
PortAudio: ``io/portaudio_rt.py``, both through ``render_from_table``) while Python threads —
OSC, MIDI, the decode client — hold the GIL. A Python audio callback has to take the GIL at the
start of every block; with three busy Python threads that wait cost 1600–1800 xruns in 20 s
here, against 1–5 compiled (``bench/rt_callback.py``, docs/performance.md).

All state lives in preallocated arrays. Other threads hand hits over through a single-producer
ring (a Python lock orders the producers among themselves; the audio side never locks): a hit
record is written first, then the write index, and x86 stores become visible in that order.
A hit names its buffer by an entry in a buffer table. ``Mixer`` keeps the numpy array of every
entry alive until the audio side has counted all of that entry's hits as finished, so a voice
never plays freed memory and a new sound published for a slot never changes a sounding hit.

A JACK note-on needs no Python at all: the audio callback reads it and ``place_note`` looks it
up in the note table (``Mixer.set_notes``, republished by the engine after every change), whose
entries stay pinned while named and for two blocks after.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import numpy as np
from numba import carray, njit

from snaresynth.dsp import fade_out
from snaresynth.rt.primitives import as_pointer, memory_fence, now_ns

STEAL_FADE_S = 0.003
"""Fade of a stolen or choked voice: short enough to free it, long enough not to click."""
AUDIO_STALLED_S = 0.25
"""An audio clock older than this means no callback is running (a lost device): blocks come
every 1-20 ms."""
MAX_LATE_S = 0.1
"""A hit later than this is dropped, not played: after the audio device was gone for a while,
the hits queued meanwhile must not all sound at once when it is back."""

# ctrl: int64 counters and indices; the comment says which side writes each one
C_WRITE = 0  # hits written into the ring (producers)
C_READ = 1  # hits taken from the ring (audio)
C_FRAME = 2  # absolute output frame of the next block's first frame (audio)
C_PENDING = 3  # hits waiting in the pending list for a later block (audio)
C_HITS = 4  # hits started (audio)
C_LATE = 5  # hits that arrived after their frame and started at a block's first frame (audio)
C_STOLEN = 6  # voices faded out to make room past the polyphony limit (audio)
C_OVERFLOW = 7  # hits dropped because the pending list was full (audio)
C_SEQ = 8  # clock sequence: odd while the clock below is being written (audio)
C_CLOCK_FRAME = 9  # block start frame of the last block (audio)
C_CLOCK_NS = 10  # CLOCK_MONOTONIC at that block's start, ns (audio)
C_CLOCK_JACK = 11  # JACK frame time of that block, -1 without JACK (audio)
C_BUSY_NS = 12  # time spent rendering, ns (audio)
C_BLOCKS = 13  # blocks rendered (audio)
C_CLOCK_BLOCK = 14  # frames in that block (audio)
C_UNDERFLOWS = 15  # output underflows reported to a compiled callback (audio; PortAudio)
C_MAX_LATE = 16  # frames a hit may be late and still play (set once by Mixer)
C_STALE = 17  # hits dropped for being later than that, e.g. queued while the device was gone
C_NOTE_MODE = 18  # where ``place_note`` puts a note: 0 its own frame, 1 the block start (Mixer)
C_RT_NOTES = 19  # notes placed by the audio callback itself (audio)
C_REC_ON = 20  # 1: every block is also copied into the record ring (Mixer.enable_recording)
C_REC_WRITE = 21  # frames copied into the record ring (audio)
C_REC_READ = 22  # of those, frames taken out by the writer (Mixer.recorded)
C_REC_DROPPED = 23  # frames not recorded because the writer fell a whole ring behind (audio)
C_MAX_BLOCK_NS = 24  # the longest block so far, wall time from its start to its end (audio)
N_CTRL = 32

N_CHANNELS = 16
N_NOTES = 128
MAX_SLOTS = 128

# hit records (ring and pending list): int64 columns, and float32 gains beside them
H_FRAME, H_ENTRY, H_CHOKE, H_SLOT = range(4)
N_HIT = 4
# voices: int64 columns, and float32 gains beside them
V_ACTIVE, V_ENTRY, V_POS, V_FADE, V_START, V_OFFSET, V_CHOKE, V_SLOT = range(8)
N_VOICE = 8


@njit(cache=True, nogil=True)
def render_block(ctrl, ring_i, ring_g, pend_i, pend_g, voice_i, voice_g, buf_addr, buf_len,
                 done, fade, left, right, frames, max_voices):
    """Mix one block into ``left``/``right`` (float32, ``frames`` long). Thread: audio. Takes
    new hits from the ring, starts the ones due in this block at their exact frame, mixes every
    sounding voice, and counts every entry use that ends (``done``)."""
    for i in range(frames):
        left[i] = 0.0
        right[i] = 0.0
    block_start = ctrl[C_FRAME]
    block_end = block_start + frames
    # 1. ring -> pending list, kept in time order
    read = ctrl[C_READ]
    write = ctrl[C_WRITE]
    n_ring = ring_i.shape[0]
    n_pend = ctrl[C_PENDING]
    while read < write:
        k = read % n_ring
        if n_pend >= pend_i.shape[0]:
            done[ring_i[k, H_ENTRY]] += 1
            ctrl[C_OVERFLOW] += 1
        else:
            _insert_pending(pend_i, pend_g, n_pend, ring_i, ring_g, k)
            n_pend += 1
        read += 1
    ctrl[C_READ] = read
    # 2. start the hits due in this block
    taken = 0
    while taken < n_pend and pend_i[taken, H_FRAME] < block_end:
        offset = pend_i[taken, H_FRAME] - block_start
        if offset < -ctrl[C_MAX_LATE]:  # a drum hit this late is noise, not music: drop it
            memory_fence()
            done[pend_i[taken, H_ENTRY]] += 1
            ctrl[C_STALE] += 1
            taken += 1
            continue
        if offset < 0:
            ctrl[C_LATE] += 1
            offset = 0
        _start(ctrl, pend_i, pend_g, taken, voice_i, voice_g, done, fade, block_start + offset,
               offset, max_voices)
        taken += 1
    if taken:
        for j in range(n_pend - taken):
            _copy_hit(pend_i, pend_g, j, pend_i, pend_g, j + taken)
        n_pend -= taken
    ctrl[C_PENDING] = n_pend
    # 3. mix
    for v in range(voice_i.shape[0]):
        if voice_i[v, V_ACTIVE]:
            _mix(voice_i, voice_g, v, buf_addr, buf_len, done, fade, left, right, frames)
    ctrl[C_FRAME] = block_end
    ctrl[C_BLOCKS] += 1


@njit(cache=True, nogil=True)
def _copy_hit(dst_i, dst_g, j, src_i, src_g, k):
    """Hit record ``k`` of (src_i, src_g) into row ``j`` of (dst_i, dst_g)."""
    for c in range(N_HIT):
        dst_i[j, c] = src_i[k, c]
    dst_g[j, 0] = src_g[k, 0]
    dst_g[j, 1] = src_g[k, 1]


@njit(cache=True, nogil=True)
def _insert_pending(pend_i, pend_g, n_pend, src_i, src_g, k):
    """Hit ``k`` of (src_i, src_g) into the first ``n_pend`` rows of the pending list, which
    stay in time order (the caller checked there is room)."""
    j = n_pend
    while j > 0 and pend_i[j - 1, H_FRAME] > src_i[k, H_FRAME]:
        _copy_hit(pend_i, pend_g, j, pend_i, pend_g, j - 1)
        j -= 1
    _copy_hit(pend_i, pend_g, j, src_i, src_g, k)


@njit(cache=True, nogil=True)
def _start(ctrl, pend_i, pend_g, p, voice_i, voice_g, done, fade, frame, offset, max_voices):
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
        memory_fence()
        done[voice_i[free, V_ENTRY]] += 1
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
    entry = voice_i[v, V_ENTRY]
    length = buf_len[entry]
    buf = carray(as_pointer(buf_addr[entry]), (length,), np.float32)
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
        memory_fence()  # the buffer is read before its entry may be released
        done[entry] += 1


# The address table: where compiled callbacks (io/jack_rt.py, io/portaudio_rt.py) find the
# mixer's arrays. Entries 0..10 are ``Mixer.kernel_args()`` in order, then their sizes.
(T_CTRL, T_RING_I, T_RING_G, T_PEND_I, T_PEND_G, T_VOICE_I, T_VOICE_G, T_BUF_ADDR, T_BUF_LEN,
 T_DONE, T_FADE, T_N_RING, T_N_PEND, T_N_VOICES, T_N_TABLE, T_N_FADE, T_MAX_VOICES,
 T_TIMESPEC, T_NOTE_SLOT, T_VEL_ENTRY, T_VEL_GAIN, T_SLOT_CHOKE, T_RT_STARTED, T_REC,
 T_N_REC) = range(25)
T_SIZE = 25


@njit(cache=True, nogil=True)
def render_from_table(table_address, left, right, frames, jack_frame, underflow, start_ns):
    """One block: count the backend's underflow flag, publish the block's clock (a seqlock read
    by ``Mixer.clock``), mix, and add the time it took to ``C_BUSY_NS``. Thread: audio (the
    compiled callbacks, and ``Mixer.render`` for the Python ones). ``start_ns``: when the block
    starts on CLOCK_MONOTONIC as the backend knows it (JACK: its cycle time, free of the
    callback's wake-up jitter), or 0 for the time the callback runs."""
    tab = carray(as_pointer(table_address), (T_SIZE,), np.int64)
    t0 = now_ns(tab[T_TIMESPEC])
    n_ring, n_pend = tab[T_N_RING], tab[T_N_PEND]
    n_voices, n_table = tab[T_N_VOICES], tab[T_N_TABLE]
    ctrl = carray(as_pointer(tab[T_CTRL]), (N_CTRL,), np.int64)
    if underflow:
        ctrl[C_UNDERFLOWS] += 1
    ctrl[C_SEQ] += 1  # odd while the clock is written
    memory_fence()
    ctrl[C_CLOCK_FRAME] = ctrl[C_FRAME]
    ctrl[C_CLOCK_NS] = start_ns if start_ns > 0 else t0
    ctrl[C_CLOCK_JACK] = jack_frame
    ctrl[C_CLOCK_BLOCK] = frames
    memory_fence()
    ctrl[C_SEQ] += 1
    render_block(ctrl,
                 carray(as_pointer(tab[T_RING_I]), (n_ring, N_HIT), np.int64),
                 carray(as_pointer(tab[T_RING_G]), (n_ring, 2), np.float32),
                 carray(as_pointer(tab[T_PEND_I]), (n_pend, N_HIT), np.int64),
                 carray(as_pointer(tab[T_PEND_G]), (n_pend, 2), np.float32),
                 carray(as_pointer(tab[T_VOICE_I]), (n_voices, N_VOICE), np.int64),
                 carray(as_pointer(tab[T_VOICE_G]), (n_voices, 2), np.float32),
                 carray(as_pointer(tab[T_BUF_ADDR]), (n_table,), np.int64),
                 carray(as_pointer(tab[T_BUF_LEN]), (n_table,), np.int64),
                 carray(as_pointer(tab[T_DONE]), (n_table,), np.int64),
                 carray(as_pointer(tab[T_FADE]), (tab[T_N_FADE],), np.float32),
                 left, right, frames, tab[T_MAX_VOICES])
    if ctrl[C_REC_ON]:
        _record(ctrl, carray(as_pointer(tab[T_REC]), (tab[T_N_REC], 2), np.float32), left,
                right, frames)
    took = now_ns(tab[T_TIMESPEC]) - t0
    ctrl[C_BUSY_NS] += took
    if took > ctrl[C_MAX_BLOCK_NS]:
        ctrl[C_MAX_BLOCK_NS] = took


@njit(cache=True, nogil=True)
def _record(ctrl, ring, left, right, frames):
    """Copy the block into the record ring (``--record``), or count it lost if the writer
    thread is a whole ring behind: the audio thread never waits for the disk."""
    write = ctrl[C_REC_WRITE]
    n = ring.shape[0]
    if write + frames - ctrl[C_REC_READ] > n:
        ctrl[C_REC_DROPPED] += frames
        return
    for i in range(frames):
        k = (write + i) % n
        ring[k, 0] = left[i]
        ring[k, 1] = right[i]
    memory_fence()  # the frames before the index that publishes them
    ctrl[C_REC_WRITE] = write + frames


@njit(cache=True, nogil=True)
def place_note(table_address, status, note, velocity, offset, hit_i, hit_g):
    """A MIDI note-on read by the audio callback itself, placed in the block about to be
    rendered: at its own frame ``offset`` (``C_NOTE_MODE`` 0), or at the block's first frame
    (1). Thread: audio, before ``render_from_table``. The sound comes from the note table the
    engine publishes (``Mixer.set_notes``): no Python between the note and the hit. ``hit_i``
    and ``hit_g`` are one-row scratch records. True if a hit was placed."""
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
    _insert_pending(pend_i, carray(as_pointer(tab[T_PEND_G]), (tab[T_N_PEND], 2), np.float32),
                    n_pend, hit_i, hit_g, 0)
    ctrl[C_PENDING] = n_pend + 1
    ctrl[C_RT_NOTES] += 1
    return True


@dataclass(slots=True)
class Hit:
    """A scheduled note: which buffer, when (absolute output frame), how loud, where."""

    frame: int
    buffer: np.ndarray  # mono float32 at the output rate
    gain_left: float
    gain_right: float
    choke_group: int = 0
    slot: int = 0


@dataclass(slots=True)
class SlotNotes:
    """What a note-on of one kit slot plays, for each MIDI velocity (row 0 is never used):
    the ``layers`` buffer ``layer_of[v]`` (-1: nothing) at ``gains[v]`` (left, right)."""

    layers: list[np.ndarray | None]
    layer_of: np.ndarray  # int (128,)
    gains: np.ndarray  # float32 (128, 2)
    choke_group: int = 0


def pan_gains(pan: float) -> tuple[float, float]:
    """Constant-power pan: -1 left, 0 centre (-3 dB each side), +1 right."""
    angle = (min(max(pan, -1.0), 1.0) + 1.0) * math.pi / 4.0
    return math.cos(angle), math.sin(angle)


class Mixer:
    """Mixes scheduled hits into stereo output blocks at their exact frame offsets.

    ``max_voices`` hits sound at once; a further hit steals the oldest, which fades out over
    ``STEAL_FADE_S`` on a spare voice (the pool holds twice ``max_voices``), so a steal never
    clicks and never delays the new hit. ``render`` runs the kernel from a Python audio
    callback; ``io/jack_rt.py`` runs the same kernel from JACK's thread without Python.
    """

    def __init__(self, rate: int, max_voices: int = 16, max_block: int = 8192,
                 ring: int = 1024, pending: int = 256, table: int = 1024,
                 max_late_s: float = MAX_LATE_S, notes_at_block_start: bool = False) -> None:
        if max_voices < 1:
            raise ValueError(f"max_voices must be >= 1, got {max_voices}")
        self.rate = rate
        self.max_voices = max_voices
        self.ctrl = np.zeros(N_CTRL, dtype=np.int64)
        self.ctrl[C_CLOCK_JACK] = -1
        self.ctrl[C_MAX_LATE] = int(max_late_s * rate)
        self.ring_i = np.zeros((ring, N_HIT), dtype=np.int64)
        self.ring_g = np.zeros((ring, 2), dtype=np.float32)
        self.pend_i = np.zeros((pending, N_HIT), dtype=np.int64)
        self.pend_g = np.zeros((pending, 2), dtype=np.float32)
        self.voice_i = np.zeros((2 * max_voices, N_VOICE), dtype=np.int64)
        self.voice_g = np.zeros((2 * max_voices, 2), dtype=np.float32)
        self.buf_addr = np.zeros(table, dtype=np.int64)
        self.buf_len = np.zeros(table, dtype=np.int64)
        self.scheduled = np.zeros(table, dtype=np.int64)  # hits given each entry (producers)
        self.done = np.zeros(table, dtype=np.int64)  # of those, finished or dropped (audio)
        self.fade = fade_out(max(1, int(STEAL_FADE_S * rate)))
        # the note table (Mixer.set_notes) through which the audio callback plays a note-on
        self.note_slot = np.full((N_CHANNELS, N_NOTES), -1, dtype=np.int64)
        self.vel_entry = np.full((MAX_SLOTS, N_NOTES), -1, dtype=np.int64)
        self.vel_gain = np.zeros((MAX_SLOTS, N_NOTES, 2), dtype=np.float32)
        self.slot_choke = np.zeros(MAX_SLOTS, dtype=np.int64)
        self.rt_started = np.zeros(table, dtype=np.int64)  # hits given each entry (audio)
        self._pinned: set[int] = set()  # entries the note table names
        self._retired: dict[int, int] = {}  # entry -> block count when the table dropped it
        self.ctrl[C_NOTE_MODE] = 1 if notes_at_block_start else 0
        self._rec = np.zeros((0, 2), dtype=np.float32)  # the record ring (enable_recording)
        self._left = np.zeros(max_block, dtype=np.float32)
        self._right = np.zeros(max_block, dtype=np.float32)
        self._arrays: list[np.ndarray | None] = [None] * table  # keeps each entry's memory alive
        self._entry_of: dict[int, int] = {}  # id(array) -> entry
        self._free = list(range(table - 1, -1, -1))
        self._lock = threading.Lock()  # producers only
        self.refused = 0  # hits refused because the ring or the buffer table was full
        self._timespec = np.zeros(2, dtype=np.int64)  # scratch of the kernel's clock
        # where render_from_table finds every array above (the Python backends and the
        # compiled callbacks all mix through it)
        self.table = self._address_table()
        self.rt_keepalive: object = None  # a compiled callback's own table, alive with the mixer
        self._warm_up()

    def _warm_up(self) -> None:
        """Compile (or load from numba's cache) before the first block, off the audio thread."""
        self.render(np.zeros((16, 2), dtype=np.float32))
        for index in (C_FRAME, C_CLOCK_FRAME, C_BLOCKS, C_BUSY_NS, C_MAX_BLOCK_NS):
            self.ctrl[index] = 0  # the clock's time stays: frame 0 is "now"

    # --- any thread ----------------------------------------------------------------------------
    def schedule(self, hit: Hit) -> bool:
        """Queue a hit for the audio side's next block. Thread: any (never the audio thread).
        False if it was refused (ring or buffer table full)."""
        buffer = _mono(hit.buffer)
        with self._lock:
            write = int(self.ctrl[C_WRITE])
            if write - int(self.ctrl[C_READ]) >= self.ring_i.shape[0]:
                self.refused += 1
                return False
            entry = self._entry(buffer)
            if entry < 0:
                self.refused += 1
                return False
            k = write % self.ring_i.shape[0]
            self.ring_i[k] = (hit.frame, entry, hit.choke_group, hit.slot)
            self.ring_g[k] = (hit.gain_left, hit.gain_right)
            self.scheduled[entry] += 1
            self.ctrl[C_WRITE] = write + 1  # last: publishes the record above
        return True

    def _entry(self, buffer: np.ndarray) -> int:
        entry = self._entry_of.get(id(buffer))
        if entry is not None and self._arrays[entry] is buffer:
            return entry
        self._collect()
        if not self._free:
            return -1
        entry = self._free.pop()
        self._arrays[entry] = buffer
        self._entry_of[id(buffer)] = entry
        self.buf_len[entry] = buffer.shape[0]
        self.buf_addr[entry] = buffer.ctypes.data
        return entry

    def _collect(self) -> None:
        """Release every entry whose hits have all finished (their arrays may be freed), unless
        the note table names it, or dropped it less than two blocks ago (a callback that read
        the table before may still start a hit from it)."""
        idle = np.flatnonzero(self.scheduled + self.rt_started == self.done)
        if not idle.size:
            return
        blocks = int(self.ctrl[C_BLOCKS])
        stalled = time.monotonic() - self.clock()[1] > AUDIO_STALLED_S  # no callback running
        for entry in idle.tolist():
            array = self._arrays[entry]
            if array is None or entry in self._pinned:
                continue
            retired = self._retired.get(entry)
            if retired is not None:
                if blocks < retired + 2 and not stalled:
                    continue
                del self._retired[entry]
            self._arrays[entry] = None
            del self._entry_of[id(array)]
            self._free.append(entry)

    def set_notes(self, note_slot: np.ndarray, slots: list[SlotNotes]) -> int:
        """Publish what each MIDI note-on plays, for ``place_note`` in the audio callback.
        ``note_slot[channel, note]`` is a slot index (-1: none). Thread: any but audio. Returns
        the buffers that found no room in the buffer table (their velocities stay silent)."""
        if len(slots) > MAX_SLOTS:
            raise ValueError(f"at most {MAX_SLOTS} slots, got {len(slots)}")
        missing = 0
        with self._lock:
            pinned: set[int] = set()
            n = len(slots)
            vel_entry = np.full((n, N_NOTES), -1, dtype=np.int64)
            for s, notes in enumerate(slots):
                entries = np.full(len(notes.layers) + 1, -1, dtype=np.int64)  # [-1] -> -1
                for layer, buffer in enumerate(notes.layers):
                    if buffer is None:
                        continue
                    entry = self._entry(_mono(buffer))
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
            blocks = int(self.ctrl[C_BLOCKS])
            for entry in self._pinned - pinned:
                self._retired[entry] = blocks
            for entry in pinned:
                self._retired.pop(entry, None)
            self._pinned = pinned
        return missing

    def queued(self) -> list[Hit]:
        """Hits handed over but not yet taken by the audio side (tests, diagnostics)."""
        with self._lock:
            read, write = int(self.ctrl[C_READ]), int(self.ctrl[C_WRITE])
            out = []
            for n in range(read, write):
                k = n % self.ring_i.shape[0]
                frame, entry, choke, slot = (int(x) for x in self.ring_i[k])
                out.append(Hit(frame, self._arrays[entry], float(self.ring_g[k, 0]),
                               float(self.ring_g[k, 1]), choke, slot))
        return out

    def active_voices(self) -> int:
        """Voices sounding (fading ones included). Thread: any (a racy but harmless read)."""
        return int(np.count_nonzero(self.voice_i[:, V_ACTIVE]))

    def clock(self) -> tuple[int, float, int, int]:
        """(first frame, its CLOCK_MONOTONIC time in s, its JACK frame time or -1, its length in
        frames) of the last block rendered, read consistently. Thread: any."""
        ctrl = self.ctrl
        while True:
            seq = int(ctrl[C_SEQ])
            clock = (int(ctrl[C_CLOCK_FRAME]), int(ctrl[C_CLOCK_NS]) / 1e9,
                     int(ctrl[C_CLOCK_JACK]), int(ctrl[C_CLOCK_BLOCK]))
            if not seq & 1 and int(ctrl[C_SEQ]) == seq:
                return clock
            time.sleep(0)

    @property
    def frame(self) -> int:
        return int(self.ctrl[C_FRAME])

    @property
    def hits_started(self) -> int:
        return int(self.ctrl[C_HITS])

    @property
    def hits_late(self) -> int:
        return int(self.ctrl[C_LATE])

    @property
    def voices_stolen(self) -> int:
        return int(self.ctrl[C_STOLEN])

    @property
    def dropped(self) -> int:
        """Hits lost: refused on the way in, past a full pending list, or too late to play."""
        return self.refused + int(self.ctrl[C_OVERFLOW]) + int(self.ctrl[C_STALE])

    def enable_recording(self, frames: int) -> None:
        """From the next block on, copy every block into a ring of ``frames`` frames, for
        ``recorded`` to take out. Thread: main, once, before the audio starts."""
        if frames < 1:
            raise ValueError(f"record ring must hold at least one frame, got {frames}")
        self._rec = np.zeros((frames, 2), dtype=np.float32)
        self.table[T_REC] = self._rec.ctypes.data
        self.table[T_N_REC] = frames
        self.ctrl[C_REC_ON] = 1  # last: the ring above is in place

    def recorded(self) -> np.ndarray:
        """The frames (n, 2) recorded since the last call, oldest first. Thread: one writer."""
        read, write = int(self.ctrl[C_REC_READ]), int(self.ctrl[C_REC_WRITE])
        n = self._rec.shape[0]
        if write == read or n == 0:
            return np.zeros((0, 2), dtype=np.float32)
        index = np.arange(read, write) % n
        frames = self._rec[index]  # a copy, taken before the space is given back
        self.ctrl[C_REC_READ] = write
        return frames

    @property
    def record_dropped(self) -> int:
        """Frames not recorded because the writer fell a whole ring behind."""
        return int(self.ctrl[C_REC_DROPPED])

    @property
    def notes_in_callback(self) -> int:
        """Note-ons the audio callback placed itself (``place_note``)."""
        return int(self.ctrl[C_RT_NOTES])

    @property
    def longest_block_seconds(self) -> float:
        """The longest time one block took to mix (wall time, so a preemption counts too)."""
        return int(self.ctrl[C_MAX_BLOCK_NS]) / 1e9

    @property
    def busy_seconds(self) -> float:
        return int(self.ctrl[C_BUSY_NS]) / 1e9

    def kernel_args(self) -> tuple:
        """The state arrays in ``render_block``'s order (before the output arrays)."""
        return (self.ctrl, self.ring_i, self.ring_g, self.pend_i, self.pend_g, self.voice_i,
                self.voice_g, self.buf_addr, self.buf_len, self.done, self.fade)

    def _address_table(self) -> np.ndarray:
        table = np.zeros(T_SIZE, dtype=np.int64)
        for slot, array in enumerate(self.kernel_args()):
            table[slot] = array.ctypes.data
        table[T_N_RING] = self.ring_i.shape[0]
        table[T_N_PEND] = self.pend_i.shape[0]
        table[T_N_VOICES] = self.voice_i.shape[0]
        table[T_N_TABLE] = self.buf_addr.shape[0]
        table[T_N_FADE] = self.fade.shape[0]
        table[T_MAX_VOICES] = self.max_voices
        table[T_TIMESPEC] = self._timespec.ctypes.data
        table[T_NOTE_SLOT] = self.note_slot.ctypes.data
        table[T_VEL_ENTRY] = self.vel_entry.ctypes.data
        table[T_VEL_GAIN] = self.vel_gain.ctypes.data
        table[T_SLOT_CHOKE] = self.slot_choke.ctypes.data
        table[T_RT_STARTED] = self.rt_started.ctypes.data
        return table

    @property
    def underflows(self) -> int:
        """Output underflows a compiled callback was told of (PortAudio's flags)."""
        return int(self.ctrl[C_UNDERFLOWS])

    # --- audio thread (Python backends) ----------------------------------------------------------
    def render(self, out: np.ndarray, jack_frame: int = -1) -> None:
        """Fill ``out`` (frames, 2) float32 with this block's mix. Thread: audio callback."""
        frames = out.shape[0]
        left, right = self._left[:frames], self._right[:frames]
        render_from_table(self.table.ctypes.data, left, right, frames, jack_frame, False, 0)
        out[:, 0] = left
        out[:, 1] = right


def _mono(buffer: np.ndarray) -> np.ndarray:
    """``buffer`` itself when it already is 1-D contiguous float32 (so one array keeps one
    buffer-table entry), else such a copy."""
    if buffer.dtype == np.float32 and buffer.ndim == 1 and buffer.flags.c_contiguous:
        return buffer
    return np.ascontiguousarray(buffer, dtype=np.float32).reshape(-1)
