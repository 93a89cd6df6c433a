"""Shared pieces of the JACK benchmarks: a private JACK server, the synths under test, and a
probe that plays MIDI and listens to audio on JACK's own frame clock.

The probe is two JACK clients of this process: ``probe-midi`` (one MIDI output) and
``probe-audio`` (one audio input). Two clients, not one, so the graph runs
probe-midi -> synth -> probe-audio inside one cycle with no feedback loop; both stamp their
events with ``last_frame_time`` of the same server, so a note-on frame and an onset frame are on
one clock, to the sample.

Threads: ``Probe.schedule`` (main thread) writes into a ring; the MIDI client's process
callback writes each event at its frame offset inside the cycle it falls in; the audio
client's process callback finds the first non-silent sample after a silence. Both callbacks
are compiled with numba, like the daemon's, so the probe never waits for the GIL.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

RATE = 48000
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
ONSET_THRESHOLD = 1e-5
"""-100 dBFS: both synths output digital silence between hits, so the first sample above this
is the first sample of the hit."""
QUIET_GAP = 2400
"""Frames of silence (50 ms at 48 kHz) that separate one onset from the next."""
REPO = Path(__file__).resolve().parent.parent
_LATE_CLIENT = re.compile(
    r"client = (\S+) was not finished, state = (\w+)|client (\S+) (finished after) current")


def _wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}")
        time.sleep(0.1)
    raise RuntimeError(f"{what}: not ready within {timeout:.0f} s")


class JackServer:
    """``jackd -n NAME -d dummy -r RATE -p PERIOD`` under a unique name; a context manager."""

    def __init__(self, period: int, rate: int = RATE) -> None:
        jackd = shutil.which("jackd")
        if jackd is None:
            raise RuntimeError("jackd not found (Debian package jackd2)")
        self.period = period
        self.rate = rate
        os.environ["JACK_NO_START_SERVER"] = "1"
        import jack

        def connects() -> bool:
            try:
                jack.Client("bench-check", no_start_server=True, servername=self.name).close()
                return True
            except jack.JackError:
                return False

        for attempt in range(3):  # jackd now and then exits at start when others start theirs
            # one name per period: libjack's registry holds 8 servers, and a crashed server's
            # slot is freed only when a server of the same name starts again
            self.name = f"snaresynth-bench-{period}" + (f"-{attempt}" if attempt else "")
            self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115 (a file, never a pipe)
            self.proc = subprocess.Popen(
                [jackd, "-n", self.name, "-d", "dummy", "-r", str(rate), "-p", str(period)],
                stdout=self.log, stderr=subprocess.STDOUT, text=True)
            try:
                _wait_for(connects, 10, "jackd", self.proc)
                return
            except RuntimeError as exc:
                stop(self.proc)
                self.log.seek(0)
                err = self.log.read()
                self.log.close()
                if attempt == 2:
                    raise RuntimeError(f"{exc}: {err[-300:]}") from exc
                time.sleep(1.0)

    def log_text(self) -> str:
        """Everything jackd printed so far."""
        self.log.flush()
        self.log.seek(0)
        text = self.log.read()
        self.log.seek(0, os.SEEK_END)
        return text

    def late_clients(self, since: int = 0) -> dict[str, int]:
        """Which clients jackd found unfinished at the end of a cycle (its own xrun lines,
        "JackEngine::XRun: client = NAME was not finished, state = STATE" / "client NAME
        finished after current callback"), counted per "NAME STATE", from character ``since``
        of its log on. JACK counts xruns server-wide; these lines say whose cycle ran late:
        ``Running`` was still in its callback, ``Triggered`` was woken but had not run yet
        (waiting for a core, or for a client before it)."""
        counts: dict[str, int] = {}
        for match in _LATE_CLIENT.finditer(self.log_text()[since:]):
            key = f"{match.group(1)} {match.group(2)}" if match.group(1) else \
                f"{match.group(3)} finished late"
            counts[key] = counts.get(key, 0) + 1
        return counts

    def env(self) -> dict[str, str]:
        """Environment for a child that should use this server."""
        return dict(os.environ, JACK_DEFAULT_SERVER=self.name, JACK_NO_START_SERVER="1")

    def close(self) -> None:
        stop(self.proc)
        self.log.close()

    def __enter__(self) -> JackServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Synth:
    """A synth under test: its process and JACK port names."""

    name: str
    proc: subprocess.Popen
    midi_in: str
    audio_out: str
    osc_port: int = 0
    lines: list[str] = field(default_factory=list)

    def close(self) -> None:
        stop(self.proc)


def start_daemon(server: JackServer, workdir: Path, extra: tuple[str, ...] = (),
                 timeout: float = 180.0) -> Synth:
    """``snaresynth serve`` on ``server`` at its period; state and presets under ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(server.env(), SNARESYNTH_PRESET_DIR=str(workdir / "presets"),
               TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "snaresynth.cli", "serve", "--audio", "jack", "--midi-api",
           "jack", "--osc-port", "0", "--blocksize", str(server.period), "--state-file",
           str(workdir / "state.toml"), *extra]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    synth = Synth("snaresynth", proc, "snaresynth:midi_in", "")
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            synth.lines.append(line)
            if line.startswith("snaresynth ready:"):
                match = re.search(r"OSC osc\.udp://[\d.]+:(\d+)", line)
                synth.osc_port = int(match.group(1)) if match else 0
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(timeout):
        stop(proc)
        raise RuntimeError("daemon not ready:\n" + "".join(synth.lines[-30:]))
    synth.audio_out = daemon_audio_port(server, proc)
    return synth


def daemon_audio_port(server: JackServer, proc: subprocess.Popen) -> str:
    """The daemon's first audio output (PortAudio's "PortAudio:out_0" or a JACK-native
    client's): any audio output that is not the system's, FluidSynth's or a probe's."""
    import jack

    client = jack.Client("bench-lsp", no_start_server=True, servername=server.name)
    others = ("system:", "fluidsynth", "probe-", "gil-probe", "bench-")
    try:
        def find() -> str | None:
            names = sorted(p.name for p in client.get_ports(is_audio=True, is_output=True))
            mine = [n for n in names if not n.startswith(others)]
            return mine[0] if mine else None

        return _wait_for(find, 10, "daemon audio port", proc)
    finally:
        client.close()


def start_fluidsynth(server: JackServer, timeout: float = 30.0) -> Synth:
    """FluidSynth, GM soundfont, JACK audio + MIDI, no reverb/chorus, no autoconnect."""
    exe = shutil.which("fluidsynth")
    if exe is None or not SOUNDFONT.exists():
        raise RuntimeError("fluidsynth or FluidR3_GM.sf2 missing (Debian fluidsynth, "
                           "fluid-soundfont-gm)")
    cmd = [exe, "-a", "jack", "-m", "jack", "-i", "-s", "-g", "1", "-R", "0", "-C", "0",
           "-r", str(server.rate), "-o", "audio.jack.autoconnect=0", str(SOUNDFONT)]
    proc = subprocess.Popen(cmd, env=server.env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import jack

    client = jack.Client("bench-lsp", no_start_server=True, servername=server.name)
    try:
        def ports() -> list[str]:
            return [p.name for p in client.get_ports("fluidsynth")]

        names = _wait_for(lambda: {"midi_00", "left"} <= {n.split(":")[-1] for n in ports()}
                          and ports(), timeout, "fluidsynth", proc)
    finally:
        client.close()
    client_name = names[0].split(":")[0]
    return Synth("FluidSynth", proc, f"{client_name}:midi_00", f"{client_name}:left")


PROBE_RING = 1 << 17
"""Scheduled MIDI messages and heard onsets the probe keeps (a 60 s soak sends ~16 000)."""
(Q_CTRL, Q_FRAMES, Q_SIZES, Q_BYTES, Q_SENT, Q_CYCLE, Q_PORT, Q_CLIENT) = range(8)
(R_CTRL, R_ONSETS, R_RING, R_N_RING, R_PORT, R_CLIENT) = range(6)
QC_WRITE, QC_READ, QC_LATE = range(3)
RC_ONSETS, RC_LAST_LOUD, RC_CYCLES = range(3)


def _compiled_callbacks():
    """The probe's two process callbacks, compiled like the daemon's (snaresynth.rt.jack),
    so the probe never waits for this process's GIL either and its own lateness cannot be
    counted against the synth under test."""
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

    Both process callbacks are compiled (no GIL): ``schedule`` (main thread) fills a ring the
    MIDI callback drains, and the audio callback logs onsets and keeps a ring of what it heard.
    """

    def __init__(self, server: JackServer, record_seconds: float = 0.0) -> None:
        import jack

        from snaresynth.io.memlock import lock_memory
        from snaresynth.rt.jack import address, set_process_callback

        send_midi, hear_audio = _compiled_callbacks()
        lock_memory()  # like the daemon: the probe's callbacks must not page-fault either
        self.rate = server.rate
        self.midi = jack.Client("probe-midi", no_start_server=True, servername=server.name)
        self.audio = jack.Client("probe-audio", no_start_server=True, servername=server.name)
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
        self._callbacks = (send_midi, hear_audio)
        set_process_callback(self.midi, send_midi, self._q_table)
        set_process_callback(self.audio, hear_audio, self._r_table)
        self.xruns = 0
        self.midi.set_xrun_callback(self._xrun)
        self.midi.activate()
        self.audio.activate()

    def connect(self, synth: Synth) -> None:
        self.midi.connect(self.out, synth.midi_in)
        self.audio.connect(synth.audio_out, self.inp)

    def _xrun(self, delay_usecs: float) -> None:
        self.xruns += 1

    def now(self) -> int:
        """The server's current frame (estimated between cycles). Thread: any."""
        return self.midi.frame_time

    def schedule(self, frame: int, message: bytes) -> None:
        """Send ``message`` at absolute ``frame``; calls must come in frame order. Thread: main."""
        write = int(self._q_ctrl[QC_WRITE])
        if write - int(self._q_ctrl[QC_READ]) >= PROBE_RING or len(message) > 8:
            raise RuntimeError("probe: MIDI ring full or message too long")
        k = write % PROBE_RING
        self._q_frames[k] = frame
        self._q_sizes[k] = len(message)
        self._q_bytes[k, :len(message)] = np.frombuffer(message, dtype=np.uint8)
        self._messages.append(message)
        self._q_ctrl[QC_WRITE] = write + 1

    @property
    def sent(self) -> list[tuple[int, bytes, int]]:
        """(frame, message, cycle start frame) of every message sent since ``clear_sent``."""
        read = int(self._q_ctrl[QC_READ])
        return [(int(self._q_sent[n % PROBE_RING]), self._messages[n],
                 int(self._q_cycle[n % PROBE_RING])) for n in range(self._sent_from, read)]

    def clear_sent(self) -> None:
        self._sent_from = int(self._q_ctrl[QC_READ])

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


def note_on(note: int, velocity: int, channel: int = 1) -> bytes:
    return bytes([0x90 | (channel - 1), note, velocity])


def note_off(note: int, channel: int = 1) -> bytes:
    return bytes([0x80 | (channel - 1), note, 0])


def control_change(cc: int, value: int, channel: int = 1) -> bytes:
    return bytes([0xB0 | (channel - 1), cc, value])


class OscStatus:
    """Ask the daemon for /snaresynth/status over UDP."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.target = ("127.0.0.1", port)

    def send(self, address: str, *args: object) -> None:
        from snaresynth.io.osc import build_message

        self.sock.sendto(build_message(address, list(args)), self.target)

    def status(self, timeout: float = 5.0) -> dict[str, float]:
        from pythonosc.osc_message import OscMessage

        self.send("/snaresynth/status")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                data, _ = self.sock.recvfrom(65536)
            except TimeoutError:
                break
            try:
                msg = OscMessage(data)
            except Exception:  # a bundle or something else: not the reply
                continue
            if msg.address == "/snaresynth/status.reply":
                flat = list(msg.params)
                return dict(zip(flat[::2], flat[1::2], strict=True))
        raise RuntimeError("no /snaresynth/status.reply")

    def close(self) -> None:
        self.sock.close()


def proc_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc/PID/task/*/children)."""
    pids = [pid]
    i = 0
    while i < len(pids):
        for task in Path(f"/proc/{pids[i]}/task").glob("*"):
            with contextlib.suppress(OSError):
                pids.extend(int(c) for c in (task / "children").read_text().split())
        i += 1
    return pids


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of one process, in KiB."""
    fields: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(":")[0]
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(line.split()[1])
    except OSError:
        pass
    return fields


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process."""
    try:
        parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])
