"""JACK process callbacks compiled to machine code, so JACK's real-time thread never waits for
Python's GIL.

JACK-Client runs a Python function as the process callback; that function must take the GIL at
the start of every cycle, and while the daemon's other threads (OSC, MIDI, the decode client)
hold it, the whole JACK graph waits: 1600–1800 xruns in 20 s with three busy Python threads
here, 1–5 with the same work in a compiled callback (docs/performance.md). So the daemon's JACK
clients register a numba ``cfunc`` directly with libjack (``jack_set_process_callback``):

- audio: plays the note-ons of its ``notes_in`` port at their own frame in this very cycle
  (``voices.place_note``, through the note table the engine publishes), then
  ``voices.render_from_table`` into the two output ports (the mix, and the block's clock:
  mixer frame, the cycle's start on CLOCK_MONOTONIC from JACK's own estimate, JACK frame time,
  for placing the other events);
- MIDI in: sends each note-on on to the audio client's ``notes_in`` (same cycle, same frame;
  JACK then runs the MIDI client before the audio client), copies each event with its JACK
  frame time into a ring and wakes the reader thread through a non-blocking pipe; the reader
  parses and handles the rest (``io/midi.py``);
- MIDI out (controller feedback): sends what ``MidiSend.send`` queued, at the next cycle.

The compiled functions reach their state through an int64 table of addresses (``arg``), and
libjack/libc by symbol name (numba ``ExternalFunction``). JACK-Client still owns the clients,
ports, connections and the notification callbacks (xrun, shutdown), which JACK runs outside the
real-time thread.
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

from snaresynth.rt.mixer import N_HIT, Mixer, place_note, render_from_table
from snaresynth.rt.primitives import as_pointer, memory_fence, now_ns

# libjack's and libc's functions are linked by name (not through ctypes pointers, which would
# keep numba from caching the compiled callbacks: a 3 s compile at every start)
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
    """When this cycle started, on CLOCK_MONOTONIC, from JACK's own estimate (its DLL, so free
    of the callback's wake-up jitter: OSC bundles are placed by it); 0 if JACK cannot say.
    JACK's clock is not CLOCK_MONOTONIC, so the two are read one right after the other here."""
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
M_CTRL, M_FRAMES, M_BYTES, M_EVENT, M_PORT, M_CLIENT, M_FD, M_ONE, M_N_RING, M_FORWARD = range(10)
M_SIZE = 10
MIDI_RING = 4096
"""Events held for the reader thread (a full second of a dense MIDI stream)."""
MIDI_MAX_BYTES = 8
"""Longer events (SysEx) are not captured: the daemon has no use for them."""
# ctrl slots
MC_WRITE, MC_READ, MC_OVERFLOW, MC_SKIPPED = range(4)


@cfunc(types.int32(types.uint32, types.voidptr), cache=True, nopython=True)
def _midi_process(frames, arg):
    tab = carray(arg, (M_SIZE,), np.int64)
    n_ring = tab[M_N_RING]
    ctrl = carray(as_pointer(tab[M_CTRL]), (4,), np.int64)
    stamps = carray(as_pointer(tab[M_FRAMES]), (n_ring, 3), np.int64)
    data = carray(as_pointer(tab[M_BYTES]), (n_ring, MIDI_MAX_BYTES), np.uint8)
    event = carray(as_pointer(tab[M_EVENT]), (3,), np.int64)  # jack_midi_event_t
    port_buffer = port_get_buffer(as_pointer(tab[M_PORT]), frames)
    # note-ons go on at once to the audio client's notes port (same cycle, same frame), when
    # it is connected; the reader then only counts them
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
            ctrl[MC_SKIPPED] += 1
            continue
        source = carray(as_pointer(event[2]), (size,), np.uint8)
        forwarded = 0
        if (forward and size == 3 and source[0] & 0xF0 == 0x90 and source[2] > 0
                and midi_event_write(forward_buffer, np.uint32(event[0] & 0xFFFFFFFF),
                                     as_pointer(event[2]), 3) == 0):
            forwarded = 1
        write = ctrl[MC_WRITE]
        if write - ctrl[MC_READ] >= n_ring:
            ctrl[MC_OVERFLOW] += 1
            continue
        k = write % n_ring
        stamps[k, 0] = (cycle + (event[0] & 0xFFFFFFFF)) & 0xFFFFFFFF
        stamps[k, 1] = size
        stamps[k, 2] = forwarded
        for b in range(size):
            data[k, b] = source[b]
        memory_fence()
        ctrl[MC_WRITE] = write + 1
        got = True
    if got:
        _write(np.int32(tab[M_FD]), as_pointer(tab[M_ONE]), 1)  # non-blocking; full = awake
    return 0


class MidiCapture:
    """The compiled MIDI input callback of one JACK client, and the reader's side of its ring.

    Thread: ``attach`` on the opening thread (before ``activate``); ``events`` on one reader.
    """

    def __init__(self) -> None:
        self.ctrl = np.zeros(4, dtype=np.int64)
        self.stamps = np.zeros((MIDI_RING, 3), dtype=np.int64)  # frame, size, forwarded
        self.data = np.zeros((MIDI_RING, MIDI_MAX_BYTES), dtype=np.uint8)
        self._event = np.zeros(3, dtype=np.int64)
        self._one = np.ones(1, dtype=np.uint8)
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)
        self._table = np.zeros(M_SIZE, dtype=np.int64)

    def attach(self, client: Any, port: Any, forward: Any = None) -> None:
        """``forward``: a MIDI output port of ``client`` that gets every note-on at once."""
        table = self._table
        table[M_FORWARD] = 0 if forward is None else address(forward)
        table[M_CTRL] = self.ctrl.ctypes.data
        table[M_FRAMES] = self.stamps.ctypes.data
        table[M_BYTES] = self.data.ctypes.data
        table[M_EVENT] = self._event.ctypes.data
        table[M_PORT] = address(port)
        table[M_CLIENT] = address(client)
        table[M_FD] = self._wake_write
        table[M_ONE] = self._one.ctypes.data
        table[M_N_RING] = MIDI_RING
        set_process_callback(client, _midi_process, table)

    @property
    def overflows(self) -> int:
        return int(self.ctrl[MC_OVERFLOW])

    @property
    def skipped(self) -> int:
        return int(self.ctrl[MC_SKIPPED])

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
        ctrl = self.ctrl
        read, write = int(ctrl[MC_READ]), int(ctrl[MC_WRITE])
        for n in range(read, write):
            k = n % MIDI_RING
            frame, size, forwarded = (int(x) for x in self.stamps[k])
            yield frame, bytes(self.data[k, :size]), bool(forwarded)
            ctrl[MC_READ] = n + 1

    def close(self) -> None:
        for fd in (self._wake_read, self._wake_write):
            with contextlib.suppress(OSError):
                os.close(fd)


# --- MIDI out ------------------------------------------------------------------------------------
O_CTRL, O_SIZES, O_BYTES, O_PORT, O_N_RING = range(5)
O_SIZE = 5
# ctrl slots
OC_WRITE, OC_READ = range(2)


@cfunc(types.int32(types.uint32, types.voidptr), cache=True, nopython=True)
def _midi_out_process(frames, arg):
    tab = carray(arg, (O_SIZE,), np.int64)
    n_ring = tab[O_N_RING]
    ctrl = carray(as_pointer(tab[O_CTRL]), (2,), np.int64)
    sizes = carray(as_pointer(tab[O_SIZES]), (n_ring,), np.int64)
    port_buffer = port_get_buffer(as_pointer(tab[O_PORT]), frames)
    midi_clear_buffer(port_buffer)
    read = ctrl[OC_READ]
    write = ctrl[OC_WRITE]
    while read < write:
        k = read % n_ring
        if midi_event_write(port_buffer, 0, as_pointer(tab[O_BYTES] + k * MIDI_MAX_BYTES),
                             sizes[k]) != 0:
            break  # the port buffer is full: the rest goes out next cycle
        read += 1
    ctrl[OC_READ] = read
    return 0


class MidiSend:
    """The compiled MIDI output callback of one JACK client: messages queued by ``send`` (any
    thread) go out at the start of the next cycle.
    """

    def __init__(self, ring: int = 1024) -> None:
        self.ctrl = np.zeros(2, dtype=np.int64)
        self.sizes = np.zeros(ring, dtype=np.int64)
        self.data = np.zeros((ring, MIDI_MAX_BYTES), dtype=np.uint8)
        self._table = np.zeros(O_SIZE, dtype=np.int64)
        self._lock = threading.Lock()
        self.dropped = 0  # messages refused because the ring was full (no JACK cycles running)

    def attach(self, client: Any, port: Any) -> None:
        table = self._table
        table[O_CTRL] = self.ctrl.ctypes.data
        table[O_SIZES] = self.sizes.ctypes.data
        table[O_BYTES] = self.data.ctypes.data
        table[O_PORT] = address(port)
        table[O_N_RING] = self.sizes.shape[0]
        set_process_callback(client, _midi_out_process, table)

    def send(self, message: bytes) -> bool:
        """Queue one MIDI message (at most 8 bytes). Thread: any. False if it was dropped."""
        if not 1 <= len(message) <= MIDI_MAX_BYTES:
            raise ValueError(f"MIDI message must be 1..{MIDI_MAX_BYTES} bytes, got {len(message)}")
        with self._lock:
            write = int(self.ctrl[OC_WRITE])
            if write - int(self.ctrl[OC_READ]) >= self.sizes.shape[0]:
                self.dropped += 1
                return False
            k = write % self.sizes.shape[0]
            self.data[k, :len(message)] = np.frombuffer(message, dtype=np.uint8)
            self.sizes[k] = len(message)
            self.ctrl[OC_WRITE] = write + 1  # last: publishes the message above
        return True
