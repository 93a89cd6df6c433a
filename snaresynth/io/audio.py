"""Audio output backends behind one tiny contract, chosen by name.

- ``jack``: a JACK client of its own (JACK-Client, not PortAudio's JACK host API, which cannot
  be closed after a server loss: docs/reliability.md), ports ``snaresynth-audio:out_1/out_2``
  connected to the system playback ports (unless ``--no-autoconnect``);
- ``sounddevice``: PortAudio, the system default output or a named device (``auto``);
- ``null``: a clocked sink with no device, calling ``process(out, xrun)`` every block period;
- ``Recorder`` writes exactly what the mixer played to a file, with any backend.

JACK and PortAudio play the mixer from the compiled callbacks of ``rt/`` (no GIL in the audio
thread). Each backend offers ``alive`` and ``reopen()`` to the supervisor
(``io/supervisor.py``), which reconnects a lost device with backoff.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from snaresynth.errors import DeviceError

log = logging.getLogger(__name__)

Process = Callable[[np.ndarray, bool], None]
CHANNELS = 2

# libjack would otherwise start a JACK server of its own when PortAudio probes for one.
os.environ.setdefault("JACK_NO_START_SERVER", "1")


class AudioOut:
    """Base: start/stop, a name for the ready line, the supervisor's ``alive`` and ``reopen``."""

    name = "audio"

    def __init__(self, rate: int, blocksize: int) -> None:
        self.rate = rate
        self.blocksize = blocksize
        # told of each xrun the compiled JACK callback cannot report itself
        self.on_xrun: Callable[[], None] | None = None

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    @property
    def alive(self) -> bool:
        return True

    def reopen(self) -> None:
        """Thread: supervisor. Open the device again after ``alive`` turned False."""
        self.stop()
        self.start()


class NullAudio(AudioOut):
    """A clocked sink: calls ``process`` every block period against the monotonic clock."""

    name = "null"

    def __init__(self, process: Process, rate: int, blocksize: int) -> None:
        super().__init__(rate, blocksize)
        self.process = process
        self._failed = False
        self._out = np.zeros((blocksize, CHANNELS), dtype=np.float32)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="snaresynth-null-audio",
                                        daemon=True)

    def start(self) -> None:
        if not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="snaresynth-null-audio",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(1.0)

    def _run(self) -> None:
        period = self.blocksize / self.rate
        deadline = time.monotonic()
        while not self._stop.is_set():
            late = time.monotonic() - deadline > period  # a missed period is an xrun
            try:
                self.process(self._out, late)
            except Exception:  # the sink keeps its clock; the block is silence
                self._out.fill(0.0)
                if not self._failed:
                    self._failed = True
                    log.exception("null audio: process failed (logged once)")
            deadline += period
            delay = deadline - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.5:  # fell far behind (suspended process): resynchronise
                deadline = time.monotonic()


class SoundDeviceAudio(AudioOut):
    """PortAudio output through python-sounddevice, played by ``rt/portaudio.py``'s compiled
    callback (underflows are counted in ``mixer.underflows``)."""

    def __init__(self, rate: int, blocksize: int, device: int | str | None, mixer: Any) -> None:
        super().__init__(rate, blocksize)
        import sounddevice as sd

        self._sd = sd
        self.device = device
        self.mixer = mixer
        try:
            info = sd.query_devices(device, kind="output")
            api = sd.query_hostapis(info["hostapi"])["name"]
        except (ValueError, sd.PortAudioError) as exc:
            raise DeviceError(f"audio device {device!r}: {exc}") from exc
        self._index = int(info["index"])
        self.name = f"{info['name']} ({api}, compiled callback)"
        self._stream: Any = None

    def start(self) -> None:
        from snaresynth.rt.portaudio import CompiledStream

        self._stream = CompiledStream(self._sd, self._index, self.rate, self.blocksize,
                                      self.mixer)

    def stop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.close()
            except self._sd.PortAudioError as exc:
                log.warning("closing audio output: %s", exc)

    @property
    def alive(self) -> bool:
        return self._stream is not None and self._stream.active

    def reopen(self) -> None:
        """Re-initialise PortAudio (so it enumerates devices again) and open a new stream."""
        sd = self._sd
        self.stop()
        sd._terminate()
        sd._initialize()
        try:  # device indices may have moved
            self._index = int(sd.query_devices(self.device, kind="output")["index"])
        except (ValueError, sd.PortAudioError) as exc:
            raise DeviceError(f"audio device {self.device!r}: {exc}") from exc
        self.start()


class JackAudio(AudioOut):
    """Two JACK output ports and a ``notes_in`` MIDI port of a client of our own, played by
    ``rt/jack.py``'s compiled process callback (xruns go to ``on_xrun``)."""

    def __init__(self, rate: int, blocksize: int, mixer: Any,
                 client_name: str = "snaresynth-audio", autoconnect: bool = True) -> None:
        super().__init__(rate, blocksize)
        import jack

        self._jack = jack
        self.mixer = mixer
        self.client_name = client_name
        self.autoconnect = autoconnect  # False: the user's patchbay connects our outputs
        self.client: Any = None
        self.ports: list[Any] = []
        self._lost = threading.Event()
        self.notes_port: Any = None  # note-ons played by the compiled callback itself
        self.notes_source: str | None = None  # the MIDI input's port that feeds it
        self._open()

    def _open(self) -> None:
        from snaresynth.rt.jack import attach_mixer

        jack = self._jack
        try:
            client = jack.Client(self.client_name, no_start_server=True)
        except jack.JackError as exc:
            raise DeviceError(f"no JACK server ({exc}); start one, e.g. "
                              "`jackd -d dummy -r 48000 -p 128`") from exc
        self._lost.clear()
        self.ports = [client.outports.register(f"out_{i + 1}") for i in range(CHANNELS)]
        self.notes_port = client.midi_inports.register("notes_in")
        attach_mixer(client, self.ports, self.mixer, self.notes_port)
        client.set_xrun_callback(self._on_xrun)
        client.set_shutdown_callback(self._on_shutdown)
        if client.samplerate != self.rate:
            log.warning("JACK runs at %d Hz, the engine at %d Hz: sounds play at the wrong pitch",
                        client.samplerate, self.rate)
        self.name = (f"JACK ({client.name}, {client.samplerate} Hz / {client.blocksize} frames, "
                     "compiled callback)")
        self.client = client

    def start(self) -> None:
        from snaresynth.io.jack_port import connect_quietly

        if self.client is None:
            self._open()
        client = self.client
        client.activate()
        playback = client.get_ports(is_physical=True, is_input=True, is_audio=True)
        for port, target in zip(self.ports, playback if self.autoconnect else [], strict=False):
            connect_quietly(client, port.name, target.name)
        if self.notes_source is not None:
            connect_quietly(client, self.notes_source, self.notes_port.name)

    @property
    def notes_port_name(self) -> str:
        """The compiled callback's MIDI input for note-ons."""
        return self.notes_port.name

    def _on_xrun(self, delay_usecs: float) -> None:
        if self.on_xrun is not None:
            self.on_xrun()  # JACK's notification thread, not the process thread

    def _on_shutdown(self, status: Any, reason: str) -> None:
        self._lost.set()  # JACK's thread: only flags, no client calls

    @property
    def alive(self) -> bool:
        return self.client is not None and not self._lost.is_set()

    def reopen(self) -> None:
        from snaresynth.io.supervisor import jack_server_running

        self.stop()  # the dead client first: see jack_server_running
        if not jack_server_running():
            raise DeviceError("JACK server not running")
        self._open()
        self.start()

    def stop(self) -> None:
        from snaresynth.io.jack_port import close_client

        client, self.client = self.client, None
        close_client(client, lost=self._lost.is_set())


def jack_rate() -> int:
    """The running JACK server's sample rate in Hz (DeviceError if there is none)."""
    import jack

    try:
        # a name of its own: a probe must never meet another process's probe on the server
        client = jack.Client(f"snaresynth-probe-{os.getpid()}", no_start_server=True)
    except jack.JackError as exc:
        raise DeviceError(f"no JACK server: {exc}") from exc
    try:
        return int(client.samplerate)
    finally:
        client.close()


def open_audio(spec: str, process: Process, rate: int, blocksize: int, mixer: Any,
               autoconnect: bool = True) -> AudioOut:
    """Open the backend named by ``--audio``: auto | jack | null | DEVICE (name part or index).

    JACK and PortAudio play ``mixer`` from a compiled callback; the null sink calls
    ``process``. ``auto`` falls back to ``null`` with one log line when there is no device.
    ``autoconnect``: JACK's outputs go to the physical playback ports (``--no-autoconnect``).
    """
    if spec == "null":
        return NullAudio(process, rate, blocksize)
    if spec == "jack":
        return JackAudio(rate, blocksize, mixer, autoconnect=autoconnect)
    if spec == "auto":
        try:
            return SoundDeviceAudio(rate, blocksize, None, mixer)
        except (DeviceError, OSError) as exc:
            log.warning("no audio output device (%s); using the null sink", _one_line(exc))
            return NullAudio(process, rate, blocksize)
    device: int | str = int(spec) if spec.isdigit() else spec
    return SoundDeviceAudio(rate, blocksize, device, mixer)


def _one_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


class Recorder:
    """Writes exactly what the mixer plays to a WAV file, from a writer thread.

    The mixer's kernel copies each block into a preallocated ring in the audio thread
    (``Mixer.enable_recording``: no allocation, no disk, no GIL, so recording keeps the compiled
    callbacks); this thread takes the new frames out every ``POLL_S`` and writes them. If it
    falls a whole ring (``seconds``) behind, frames are counted in ``dropped``, not waited for.
    """

    POLL_S = 0.05

    def __init__(self, path: Path, rate: int, mixer: Any, seconds: float = 10.0) -> None:
        import soundfile as sf

        self.path = Path(path)
        self._file = sf.SoundFile(self.path, "w", samplerate=rate, channels=CHANNELS,
                                  subtype="FLOAT")
        self._mixer = mixer
        mixer.enable_recording(int(seconds * rate))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._write, name="snaresynth-record", daemon=True)
        self._thread.start()

    def _write(self) -> None:
        while not self._stop.wait(self.POLL_S):
            self._file.write(self._mixer.recorded())
        self._file.write(self._mixer.recorded())  # what the last blocks played
        self._file.close()

    def close(self) -> None:
        """Thread: main, after the audio stopped."""
        self._stop.set()
        self._thread.join(5.0)
