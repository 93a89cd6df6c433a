"""The JACK frame probe: plays MIDI at exact frames and hears audio onsets, both on JACK's own
frame clock, so a note-on frame and an onset frame compare to the sample.

The probe is two JACK clients of this process: ``probe-midi`` (one MIDI output) and
``probe-audio`` (one audio input). Two clients, not one, so the graph runs
probe-midi -> synth -> probe-audio inside one cycle with no feedback loop; both stamp their
events with ``last_frame_time`` of the same server.

Threads: ``Probe.schedule`` (the caller's thread) writes into a ring; the MIDI client's process
callback writes each event at its frame offset inside the cycle it falls in; the audio
client's process callback finds the first non-silent sample after a silence and keeps a ring
of everything heard. Both callbacks are compiled with numba, like the daemon's, so the probe
never waits for this process's GIL and its own lateness is not counted against the synth.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from typing import Any

import numpy as np

from snaresynth.testing.jackd import JackServer
from snaresynth.testing.procs import wait_for

ONSET_THRESHOLD = 1e-5
"""-100 dBFS: the synths output digital silence between hits, so the first sample above this
is the first sample of the hit."""
QUIET_GAP = 2400
"""Frames of silence (50 ms at 48 kHz) that separate one onset from the next."""
PROBE_RING = 1 << 17
"""Scheduled MIDI messages and heard onsets the probe keeps (a 60 s soak sends ~16 000)."""
PROBE_CLIENTS = ("system:", "fluidsynth", "probe-", "gil-probe", "bench-", "rt-probe-")
"""Audio outputs that are never the daemon's: the hardware, the other synth, the harness's."""

(Q_CTRL, Q_FRAMES, Q_SIZES, Q_BYTES, Q_SENT, Q_CYCLE, Q_PORT, Q_CLIENT) = range(8)
(R_CTRL, R_ONSETS, R_RING, R_N_RING, R_PORT, R_CLIENT) = range(6)
QC_WRITE, QC_READ, QC_LATE = range(3)
RC_ONSETS, RC_LAST_LOUD, RC_CYCLES = range(3)


def note_on(note: int, velocity: int, channel: int = 1) -> bytes:
    return bytes([0x90 | (channel - 1), note, velocity])


def note_off(note: int, channel: int = 1) -> bytes:
    return bytes([0x80 | (channel - 1), note, 0])


def control_change(cc: int, value: int, channel: int = 1) -> bytes:
    return bytes([0xB0 | (channel - 1), cc, value])


def _compiled_callbacks() -> tuple[Any, Any]:
    """The probe's two process callbacks, compiled like the daemon's (snaresynth.rt.jack)."""
    from numba import carray, cfunc, types

    from snaresynth.rt.jack import (
        last_frame_time,
        midi_clear_buffer,
        midi_event_write,
        port_get_buffer,
    )
    from snaresynth.rt.primitives import as_pointer, memory_fence

    sig = types.int32(types.uint32, types.voidptr)

    @cfunc(sig, cache=True, nopython=True)
    def send_midi(frames, arg):
        tab = carray(arg, (8,), np.int64)
        ctrl = carray(as_pointer(tab[Q_CTRL]), (3,), np.int64)
        when = carray(as_pointer(tab[Q_FRAMES]), (PROBE_RING,), np.int64)
        sizes = carray(as_pointer(tab[Q_SIZES]), (PROBE_RING,), np.int64)
        sent = carray(as_pointer(tab[Q_SENT]), (PROBE_RING,), np.int64)
        cycle = carray(as_pointer(tab[Q_CYCLE]), (PROBE_RING,), np.int64)
        buffer = port_get_buffer(as_pointer(tab[Q_PORT]), frames)
        midi_clear_buffer(buffer)
        base = np.int64(last_frame_time(as_pointer(tab[Q_CLIENT])))
        read = ctrl[QC_READ]
        write = ctrl[QC_WRITE]
        while read < write:
            k = read % PROBE_RING
            offset = when[k] - base
            if offset >= frames:
                break
            if offset < 0:
                ctrl[QC_LATE] += 1
                offset = 0
            midi_event_write(buffer, np.uint32(offset), as_pointer(tab[Q_BYTES] + k * 8),
                             sizes[k])
            sent[k] = base + offset
            cycle[k] = base
            read += 1
        memory_fence()
        ctrl[QC_READ] = read
        return 0

    @cfunc(sig, cache=True, nopython=True)
    def hear_audio(frames, arg):
        tab = carray(arg, (6,), np.int64)
        ctrl = carray(as_pointer(tab[R_CTRL]), (3,), np.int64)
        onsets = carray(as_pointer(tab[R_ONSETS]), (PROBE_RING,), np.int64)
        ring = carray(as_pointer(tab[R_RING]), (tab[R_N_RING],), np.float32)
        buf = carray(port_get_buffer(as_pointer(tab[R_PORT]), frames), (frames,), np.float32)
        base = np.int64(last_frame_time(as_pointer(tab[R_CLIENT])))
        ctrl[RC_CYCLES] += 1
        n_ring = ring.shape[0]
        for i in range(frames):
            x = buf[i]
            ring[(base + i) % n_ring] = x
            if abs(x) > ONSET_THRESHOLD:
                frame = base + i
                if frame - ctrl[RC_LAST_LOUD] > QUIET_GAP and ctrl[RC_ONSETS] < PROBE_RING:
                    onsets[ctrl[RC_ONSETS]] = frame
                    memory_fence()
                    ctrl[RC_ONSETS] += 1
                ctrl[RC_LAST_LOUD] = frame
        return 0

    return send_midi, hear_audio


class Probe:
    """Sends scheduled MIDI at exact frames and records onsets, both on JACK's frame clock.

    ``record_seconds`` sizes the ring of everything heard (``heard``; one second at least).
    ``lock_memory`` locks this process's pages like the daemon does (benchmarks: a page fault
    in the probe's callback would be a lost cycle counted against the synth).
    """

    def __init__(self, server: JackServer, record_seconds: float = 0.0,
                 lock_memory: bool = False) -> None:
        import jack

        from snaresynth.rt.jack import address, set_process_callback

        send_midi, hear_audio = _compiled_callbacks()
        if lock_memory:
            from snaresynth.io.memlock import lock_memory as mlockall

            mlockall()
        self.rate = server.rate
        self.midi = jack.Client("probe-midi", no_start_server=True, servername=server.name)
        self.audio = jack.Client("probe-audio", no_start_server=True, servername=server.name)
        self.period = self.midi.blocksize
        self.out = self.midi.midi_outports.register("out")
        self.inp = self.audio.inports.register("in")
        self._q_ctrl = np.zeros(3, dtype=np.int64)
        self._q_frames = np.zeros(PROBE_RING, dtype=np.int64)
        self._q_sizes = np.zeros(PROBE_RING, dtype=np.int64)
        self._q_bytes = np.zeros((PROBE_RING, 8), dtype=np.uint8)
        self._q_sent = np.zeros(PROBE_RING, dtype=np.int64)
        self._q_cycle = np.zeros(PROBE_RING, dtype=np.int64)
        self._messages: list[bytes] = []
        self._sent_from = 0
        self._r_ctrl = np.array([0, -(10**12), 0], dtype=np.int64)
        self._onsets = np.zeros(PROBE_RING, dtype=np.int64)
        # everything heard, as a ring indexed by frame (for comparing sounds)
        self.ring = np.zeros(max(int(record_seconds * server.rate), server.rate),
                             dtype=np.float32)
        self._q_table = np.array([
            self._q_ctrl.ctypes.data, self._q_frames.ctypes.data, self._q_sizes.ctypes.data,
            self._q_bytes.ctypes.data, self._q_sent.ctypes.data, self._q_cycle.ctypes.data,
            address(self.out), address(self.midi)], dtype=np.int64)
        self._r_table = np.array([
            self._r_ctrl.ctypes.data, self._onsets.ctypes.data, self.ring.ctypes.data,
            self.ring.shape[0], address(self.inp), address(self.audio)], dtype=np.int64)
        self._callbacks = (send_midi, hear_audio)  # kept alive as long as the clients
        set_process_callback(self.midi, send_midi, self._q_table)
        set_process_callback(self.audio, hear_audio, self._r_table)
        self.xruns = 0
        self.xrun_frames: list[int] = []  # the server's frame when each xrun was told
        self.midi.set_xrun_callback(self._xrun)
        self.midi.activate()
        self.audio.activate()

    def connect(self, midi_in: str | None = None,
                audio_out: str | Sequence[str] | None = None) -> None:
        """Play into the MIDI input ``midi_in``; hear the audio output(s) ``audio_out``
        (several are summed by JACK)."""
        if midi_in:
            self.midi.connect(self.out, midi_in)
        outs = [audio_out] if isinstance(audio_out, str) else list(audio_out or ())
        for port in outs:
            self.audio.connect(port, self.inp)

    def _xrun(self, delay_usecs: float) -> None:
        self.xruns += 1
        self.xrun_frames.append(self.midi.frame_time)

    def xrun_near(self, frame: int, length: int, told_within: int) -> bool:
        """Whether an xrun may have broken frames ``frame .. frame + length`` of the recording:
        one was told from ``frame`` to ``told_within`` frames after the span (JACK tells an
        xrun after it happened, from another thread)."""
        return any(frame <= told <= frame + length + told_within for told in self.xrun_frames)

    def now(self) -> int:
        """The server's current frame (estimated between cycles). Thread: any."""
        return self.midi.frame_time

    def schedule(self, frame: int, message: bytes) -> None:
        """Send ``message`` at absolute ``frame``; calls must come in frame order, from one
        thread."""
        write = int(self._q_ctrl[QC_WRITE])
        if write - int(self._q_ctrl[QC_READ]) >= PROBE_RING or len(message) > 8:
            raise RuntimeError("probe: MIDI ring full or message too long")
        k = write % PROBE_RING
        self._q_frames[k] = frame
        self._q_sizes[k] = len(message)
        self._q_bytes[k, :len(message)] = np.frombuffer(message, dtype=np.uint8)
        self._messages.append(message)
        self._q_ctrl[QC_WRITE] = write + 1

    def schedule_at_offset(self, offset: int, message: bytes, lead: int) -> int:
        """Send ``message`` ``offset`` frames into the first cycle that starts at least
        ``lead`` frames from now; returns the frame."""
        now = self.now()
        frame = now + lead - now % self.period + offset
        self.schedule(frame, message)
        return frame

    @property
    def sent(self) -> list[tuple[int, bytes, int]]:
        """(frame, message, cycle start frame) of every message sent since ``clear_sent``."""
        read = int(self._q_ctrl[QC_READ])
        return [(int(self._q_sent[n % PROBE_RING]), self._messages[n],
                 int(self._q_cycle[n % PROBE_RING])) for n in range(self._sent_from, read)]

    def clear_sent(self) -> None:
        self._sent_from = int(self._q_ctrl[QC_READ])

    @property
    def pending(self) -> int:
        """Scheduled messages not sent yet."""
        return int(self._q_ctrl[QC_WRITE]) - int(self._q_ctrl[QC_READ])

    @property
    def late_events(self) -> int:
        """Scheduled for a cycle already gone: sent at offset 0."""
        return int(self._q_ctrl[QC_LATE])

    @property
    def cycles(self) -> int:
        return int(self._r_ctrl[RC_CYCLES])

    @property
    def onsets(self) -> list[int]:
        return self._onsets[:int(self._r_ctrl[RC_ONSETS])].tolist()

    def match(self, note_frames: list[tuple[int, int]], window: int) -> list[int | None]:
        """Latency in frames of each (note frame, cycle start) pair: the first onset at or after
        the cycle the note was sent in, within ``window`` frames; None = missed."""
        onsets = np.asarray(self.onsets, dtype=np.int64)
        result: list[int | None] = []
        for frame, cycle in note_frames:
            i = int(np.searchsorted(onsets, cycle))
            ok = i < onsets.size and onsets[i] - frame <= window
            result.append(int(onsets[i] - frame) if ok else None)
        return result

    def heard(self, frame: int, length: int) -> np.ndarray:
        """``length`` recorded frames from absolute ``frame`` (within the last ring length)."""
        idx = (np.arange(frame, frame + length) % self.ring.size)
        return self.ring[idx].copy()

    def close(self) -> None:
        for client in (self.midi, self.audio):
            client.deactivate()
            client.close()

    def __enter__(self) -> Probe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def synth_audio_ports(server: JackServer, proc: subprocess.Popen | None = None,
                      timeout: float = 10.0, exclude: Sequence[str] = PROBE_CLIENTS) -> list[str]:
    """The audio outputs of the synth under test (PortAudio's "PortAudio:out_0" or a JACK-native
    client's), waited for: every audio output whose name starts with none of ``exclude``."""
    import jack

    client = jack.Client("bench-lsp", no_start_server=True, servername=server.name)
    prefixes = tuple(exclude)
    try:
        def find() -> list[str]:
            names = sorted(p.name for p in client.get_ports(is_audio=True, is_output=True))
            return [n for n in names if not n.startswith(prefixes)]

        return wait_for(find, timeout, "synth audio ports", proc)
    finally:
        client.close()


def jack_port_names(server: JackServer, pattern: str = "", **kinds: bool) -> list[str]:
    """Names of the server's ports matching ``pattern`` (``is_audio=True`` etc. as in
    JACK-Client's ``get_ports``), from a short-lived client."""
    import jack

    client = jack.Client("bench-lsp", no_start_server=True, servername=server.name)
    try:
        return [p.name for p in client.get_ports(pattern, **kinds)]
    finally:
        client.close()
