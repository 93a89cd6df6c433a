"""JACK process callbacks compiled to machine code, registered with libjack directly.

Thread: the callbacks run in JACK's real-time thread and never take Python's GIL (why:
docs/performance.md, "Why the real-time side is built this way"); ``attach_*`` run on the
thread that opens the client, before ``activate``; ``MidiCapture``'s reader end and
``MidiSend.send`` on control threads.

- audio: plays the note-ons of its ``notes_in`` port at their own frame in this very cycle
  (``rt/notes.py``'s ``place_note``), then ``rt/mixer.py``'s ``render_from_table`` into the two
  output ports, clocked by JACK's own estimate of the cycle's start;
- MIDI in: sends each note-on on to the audio client's ``notes_in`` (same cycle, same frame;
  JACK then runs the MIDI client before the audio client), puts each event with its JACK frame
  time into a ring (``rt/ring.py``) and wakes the reader thread through a non-blocking pipe;
  the reader parses and handles the rest (``io/midi.py``);
- MIDI out (controller feedback): sends what ``MidiSend.send`` put into its ring, next cycle.

The callbacks reach their state through an int64 table of addresses (``arg``), and libjack and
libc by symbol name (numba ``ExternalFunction``). JACK-Client still owns the clients, ports,
connections and the notification callbacks (xrun, shutdown), which run outside the real-time
thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import select
import threading
from collections.abc import Iterator
from typing import Any

import llvmlite.binding as llvm
import numpy as np
from numba import carray, cfunc, njit, types

from snaresynth.rt.hits import N_HIT
from snaresynth.rt.mixer import Mixer, render_from_table
from snaresynth.rt.notes import place_note
from snaresynth.rt.primitives import as_pointer, now_ns
from snaresynth.rt.ring import (
    R_CAPACITY,
    R_SIZE,
    Ring,
    ring_publish,
    ring_readable,
    ring_release,
    ring_reserve,
    ring_row,
)

# linked by symbol name: a ctypes function pointer would keep numba from caching the callbacks
_LIBJACK = ctypes.util.find_library("jack") or "libjack.so.0"
llvm.load_library_permanently(_LIBJACK)
port_get_buffer = types.ExternalFunction("jack_port_get_buffer",
                                          types.voidptr(types.voidptr, types.uint32))
last_frame_time = types.ExternalFunction("jack_last_frame_time", types.uint32(types.voidptr))
midi_event_count = types.ExternalFunction("jack_midi_get_event_count",
                                           types.uint32(types.voidptr))
midi_event_get = types.ExternalFunction(
    "jack_midi_event_get", types.int32(types.voidptr, types.voidptr, types.uint32))
midi_clear_buffer = types.ExternalFunction("jack_midi_clear_buffer", types.void(types.voidptr))
midi_event_write = types.ExternalFunction(
    "jack_midi_event_write", types.int32(types.voidptr, types.uint32, types.voidptr, types.uint64))
port_connected = types.ExternalFunction("jack_port_connected", types.int32(types.voidptr))
get_time = types.ExternalFunction("jack_get_time", types.uint64())
get_cycle_times = types.ExternalFunction(
    "jack_get_cycle_times",
    types.int32(types.voidptr, types.voidptr, types.voidptr, types.voidptr, types.voidptr))
_write = types.ExternalFunction("write", types.int64(types.int32, types.voidptr, types.uint64))


def address(jack_object: Any) -> int:
    """The C pointer behind a JACK-Client client or port, as an int."""
    import jack

    return int(jack._ffi.cast("uintptr_t", jack_object._ptr))


def set_process_callback(client: Any, callback: Any, table: np.ndarray) -> None:
    import jack

    result = jack._lib.jack_set_process_callback(
        client._ptr, jack._ffi.cast("JackProcessCallback", callback.address),
        jack._ffi.cast("void *", table.ctypes.data))
    if result != 0:
        raise jack.JackError(f"cannot set the process callback of {client.name} ({result})")


# --- audio ---------------------------------------------------------------------------------------
A_MIXER, A_PORT_L, A_PORT_R, A_CLIENT, A_NOTES, A_EVENT, A_HIT_I, A_HIT_G, A_CYCLE = range(9)
A_SIZE = 9
CYCLE_SCRATCH = 6  # jack_get_cycle_times' four results, then a struct timespec


@njit(cache=True, nogil=True)
def cycle_start_ns(client_address, scratch_address):
    """Thread: JACK's. When this cycle started, on CLOCK_MONOTONIC, from JACK's own estimate
    (its DLL, so free of the callback's wake-up jitter: OSC bundles are placed by it); 0 if
    JACK cannot say. JACK's clock is not CLOCK_MONOTONIC, so the two are read back to back."""
    times = carray(as_pointer(scratch_address), (CYCLE_SCRATCH,), np.int64)
    if get_cycle_times(as_pointer(client_address), as_pointer(scratch_address),
                       as_pointer(scratch_address + 8), as_pointer(scratch_address + 16),
                       as_pointer(scratch_address + 24)) != 0:
        return np.int64(0)
    jack_now_us = np.int64(get_time())
    mono_now_ns = now_ns(scratch_address + 32)
    return mono_now_ns - (jack_now_us - times[1]) * 1000


@cfunc(types.int32(types.uint32, types.voidptr), cache=True, nopython=True)
def _audio_process(frames, arg):
    """Thread: JACK's. Place this cycle's note-ons, then mix the block into the two ports."""
    tab = carray(arg, (A_SIZE,), np.int64)
    if tab[A_NOTES] != 0:  # note-ons of this very cycle, played at their own frame
        notes = port_get_buffer(as_pointer(tab[A_NOTES]), frames)
        event = carray(as_pointer(tab[A_EVENT]), (3,), np.int64)  # jack_midi_event_t
        hit_i = carray(as_pointer(tab[A_HIT_I]), (1, N_HIT), np.int64)
        hit_g = carray(as_pointer(tab[A_HIT_G]), (1, 2), np.float32)
        for i in range(midi_event_count(notes)):
            if midi_event_get(as_pointer(tab[A_EVENT]), notes, i) == 0 and event[1] == 3:
                data = carray(as_pointer(event[2]), (3,), np.uint8)
                place_note(tab[A_MIXER], data[0], data[1], data[2], event[0] & 0xFFFFFFFF,
                           hit_i, hit_g)
    left = carray(port_get_buffer(as_pointer(tab[A_PORT_L]), frames), (frames,), np.float32)
    right = carray(port_get_buffer(as_pointer(tab[A_PORT_R]), frames), (frames,), np.float32)
    jack_frame = np.int64(last_frame_time(as_pointer(tab[A_CLIENT])))
    start_ns = cycle_start_ns(tab[A_CLIENT], tab[A_CYCLE])
    render_from_table(tab[A_MIXER], left, right, frames, jack_frame, False,  # xruns: notified
                      start_ns)
    return 0


def attach_mixer(client: Any, ports: list[Any], mixer: Mixer, notes: Any = None) -> None:
    """Make ``mixer`` the compiled process callback of ``client`` (before ``activate``); the
    mixer keeps the tables alive. ``notes``: a MIDI input port of ``client`` whose note-ons
    the callback plays itself, through the mixer's note table, in the cycle they arrive."""
    table = np.zeros(A_SIZE, dtype=np.int64)
    scratch = (np.zeros(3, dtype=np.int64), np.zeros((1, N_HIT), dtype=np.int64),
               np.zeros((1, 2), dtype=np.float32), np.zeros(CYCLE_SCRATCH, dtype=np.int64))
    table[A_MIXER] = mixer.table.ctypes.data
    table[A_PORT_L] = address(ports[0])
    table[A_PORT_R] = address(ports[1])
    table[A_CLIENT] = address(client)
    table[A_NOTES] = 0 if notes is None else address(notes)
    table[A_EVENT], table[A_HIT_I], table[A_HIT_G], table[A_CYCLE] = (
        a.ctypes.data for a in scratch)
    set_process_callback(client, _audio_process, table)
    mixer.rt_keepalive = (table, scratch)


# --- MIDI in -------------------------------------------------------------------------------------
M_RING, M_STAMPS, M_BYTES, M_SKIPPED, M_EVENT, M_PORT, M_CLIENT, M_FD, M_ONE, M_FORWARD = range(10)
M_SIZE = 10
MIDI_RING = 4096
"""Events held for the reader thread (a full second of a dense MIDI stream)."""
MIDI_MAX_BYTES = 8
"""Longer events (SysEx) are not captured: the daemon has no use for them."""


@cfunc(types.int32(types.uint32, types.voidptr), cache=True, nopython=True)
def _midi_process(frames, arg):
    """Thread: JACK's. Forward this cycle's note-ons, ring every event, wake the reader."""
    tab = carray(arg, (M_SIZE,), np.int64)
    ring = carray(as_pointer(tab[M_RING]), (R_SIZE,), np.int64)
    n_ring = ring[R_CAPACITY]
    stamps = carray(as_pointer(tab[M_STAMPS]), (n_ring, 3), np.int64)
    data = carray(as_pointer(tab[M_BYTES]), (n_ring, MIDI_MAX_BYTES), np.uint8)
    skipped = carray(as_pointer(tab[M_SKIPPED]), (1,), np.int64)
    event = carray(as_pointer(tab[M_EVENT]), (3,), np.int64)  # jack_midi_event_t
    port_buffer = port_get_buffer(as_pointer(tab[M_PORT]), frames)
    # note-ons on to the audio client at once (same cycle and frame); the reader only counts them
    forward = False
    forward_buffer = port_buffer  # (typed on every path; written only when forwarding)
    if tab[M_FORWARD] != 0:
        forward_buffer = port_get_buffer(as_pointer(tab[M_FORWARD]), frames)
        midi_clear_buffer(forward_buffer)
        forward = port_connected(as_pointer(tab[M_FORWARD])) > 0
    count = midi_event_count(port_buffer)
    if count == 0:
        return 0
    cycle = np.int64(last_frame_time(as_pointer(tab[M_CLIENT])))
    got = False
    for i in range(count):
        if midi_event_get(as_pointer(tab[M_EVENT]), port_buffer, i) != 0:
            continue
        size = event[1]
        if size > MIDI_MAX_BYTES or size < 1:
            skipped[0] += 1
            continue
        source = carray(as_pointer(event[2]), (size,), np.uint8)
        forwarded = 0
        if (forward and size == 3 and source[0] & 0xF0 == 0x90 and source[2] > 0
                and midi_event_write(forward_buffer, np.uint32(event[0] & 0xFFFFFFFF),
                                     as_pointer(event[2]), 3) == 0):
            forwarded = 1
        write = ring_reserve(ring, 1)
        if write < 0:  # the reader is a whole ring behind: counted lost
            continue
        k = ring_row(ring, write)
        stamps[k, 0] = (cycle + (event[0] & 0xFFFFFFFF)) & 0xFFFFFFFF
        stamps[k, 1] = size
        stamps[k, 2] = forwarded
        for b in range(size):
            data[k, b] = source[b]
        ring_publish(ring, write + 1)
        got = True
    if got:
        _write(np.int32(tab[M_FD]), as_pointer(tab[M_ONE]), 1)  # non-blocking; full = awake
    return 0


class MidiCapture:
    """The compiled MIDI input callback of one JACK client, and the reader's end of its ring.

    Thread: ``attach`` on the opening thread (before ``activate``); ``wait`` and ``events`` on
    one reader; ``wake`` and the counters any.
    """

    def __init__(self) -> None:
        # a record: (JACK frame time, size, forwarded) and the event's bytes
        self.ring = Ring(MIDI_RING, ((3,), np.int64), ((MIDI_MAX_BYTES,), np.uint8))
        self._skipped = np.zeros(1, dtype=np.int64)
        self._event = np.zeros(3, dtype=np.int64)
        self._one = np.ones(1, dtype=np.uint8)
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)
        self._table = np.zeros(M_SIZE, dtype=np.int64)

    def attach(self, client: Any, port: Any, forward: Any = None) -> None:
        """``forward``: a MIDI output port of ``client`` that gets every note-on at once."""
        table = self._table
        table[M_FORWARD] = 0 if forward is None else address(forward)
        table[M_RING] = self.ring.counters.ctypes.data
        table[M_STAMPS] = self.ring.arrays[0].ctypes.data
        table[M_BYTES] = self.ring.arrays[1].ctypes.data
        table[M_SKIPPED] = self._skipped.ctypes.data
        table[M_EVENT] = self._event.ctypes.data
        table[M_PORT] = address(port)
        table[M_CLIENT] = address(client)
        table[M_FD] = self._wake_write
        table[M_ONE] = self._one.ctypes.data
        set_process_callback(client, _midi_process, table)

    @property
    def overflows(self) -> int:
        """Events lost because the reader fell a whole ring behind."""
        return self.ring.lost

    @property
    def skipped(self) -> int:
        """Events too long to capture (SysEx)."""
        return int(self._skipped[0])

    def wait(self, timeout: float) -> None:
        """Block until the callback captured something (or ``timeout`` s, or ``wake``)."""
        ready, _, _ = select.select([self._wake_read], [], [], timeout)
        if ready:
            os.read(self._wake_read, 4096)

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_write, b"\0")

    def events(self) -> Iterator[tuple[int, bytes, bool]]:
        """(JACK frame time, raw bytes, forwarded) of every captured event not yet read, oldest
        first; ``forwarded``: a note-on the callback already sent on to the audio client."""
        stamps, data = self.ring.arrays
        for k in self.ring.drain():
            frame, size, forwarded = (int(x) for x in stamps[k])
            yield frame, bytes(data[k, :size]), bool(forwarded)

    def close(self) -> None:
        for fd in (self._wake_read, self._wake_write):
            with contextlib.suppress(OSError):
                os.close(fd)


# --- MIDI out ------------------------------------------------------------------------------------
O_RING, O_SIZES, O_BYTES, O_PORT = range(4)
O_SIZE = 4


@cfunc(types.int32(types.uint32, types.voidptr), cache=True, nopython=True)
def _midi_out_process(frames, arg):
    """Thread: JACK's. Send what ``MidiSend.send`` queued, as far as the port buffer takes."""
    tab = carray(arg, (O_SIZE,), np.int64)
    ring = carray(as_pointer(tab[O_RING]), (R_SIZE,), np.int64)
    sizes = carray(as_pointer(tab[O_SIZES]), (ring[R_CAPACITY],), np.int64)
    port_buffer = port_get_buffer(as_pointer(tab[O_PORT]), frames)
    midi_clear_buffer(port_buffer)
    read, write = ring_readable(ring)
    while read < write:
        k = ring_row(ring, read)
        if midi_event_write(port_buffer, 0, as_pointer(tab[O_BYTES] + k * MIDI_MAX_BYTES),
                             sizes[k]) != 0:
            break  # the port buffer is full: the rest goes out next cycle
        read += 1
    ring_release(ring, read)
    return 0


class MidiSend:
    """The compiled MIDI output callback of one JACK client: messages queued by ``send`` go out
    at the start of the next cycle.

    Thread: ``attach`` on the opening thread (before ``activate``); ``send`` any (its callers
    take ``_lock`` among themselves, so the ring has one producer).
    """

    def __init__(self, ring: int = 1024) -> None:
        self.ring = Ring(ring, ((), np.int64), ((MIDI_MAX_BYTES,), np.uint8))  # size, bytes
        self._table = np.zeros(O_SIZE, dtype=np.int64)
        self._lock = threading.Lock()

    def attach(self, client: Any, port: Any) -> None:
        table = self._table
        table[O_RING] = self.ring.counters.ctypes.data
        table[O_SIZES] = self.ring.arrays[0].ctypes.data
        table[O_BYTES] = self.ring.arrays[1].ctypes.data
        table[O_PORT] = address(port)
        set_process_callback(client, _midi_out_process, table)

    @property
    def dropped(self) -> int:
        """Messages refused because the ring was full (no JACK cycles running)."""
        return self.ring.lost

    def send(self, message: bytes) -> bool:
        """Queue one MIDI message (at most 8 bytes). Thread: any. False if it was dropped."""
        if not 1 <= len(message) <= MIDI_MAX_BYTES:
            raise ValueError(f"MIDI message must be 1..{MIDI_MAX_BYTES} bytes, got {len(message)}")
        padded = np.frombuffer(message.ljust(MIDI_MAX_BYTES, b"\0"), dtype=np.uint8)
        with self._lock:
            return self.ring.push(len(message), padded)
