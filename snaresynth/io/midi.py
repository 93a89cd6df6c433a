"""MIDI in through JACK (JACK-Client) or ALSA (mido + python-rtmidi), supervised.

This module only translates MIDI bytes into Engine calls. ``MidiRouter.handle`` does the
translating and counting; it is driven by

- ``JackMidiIn`` (``--midi-api jack``): a JACK client ``snaresynth`` with one MIDI port
  ``midi_in``; its process callback parses the raw bytes (running status included), hands notes
  to the engine at once, keeps only the latest value of each CC and leaves CCs and the rest to
  a reader thread (so a CC flood is bounded and the last value wins). JACK-Client rather
  than rtmidi because an rtmidi JACK port cannot be closed after the JACK server died (it
  crashes the process), so a daemon on rtmidi could never reconnect;
- ``AlsaMidiIn`` (``--midi-api alsa``): rtmidi's callback thread calls ``handle``.

Both offer ``alive`` and ``reopen()`` to the supervisor (``io/supervisor.py``): a JACK server that
went away and came back gets a new client; a named source port (``--midi-in NAME``) that vanished
is connected again when it returns. Bad bytes are counted and logged, never raised.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from snaresynth.errors import DeviceError

log = logging.getLogger(__name__)

os.environ.setdefault("JACK_NO_START_SERVER", "1")

CLIENT_NAME = "snaresynth"
ALSA_SEQUENCER = Path("/dev/snd/seq")
APIS = {"alsa": "LINUX_ALSA", "jack": "UNIX_JACK"}
IGNORED = frozenset({"clock", "active_sensing", "sysex", "start", "stop", "continue",
                     "songpos", "song_select", "tune_request", "quarter_frame", "reset",
                     "polytouch", "aftertouch", "pitchwheel", "note_off"})


def backend(api: str) -> Any:
    """A mido backend for ``api`` ("alsa" or "jack"); raises DeviceError if it cannot start."""
    import mido

    if api not in APIS:
        raise ValueError(f"MIDI API must be one of {', '.join(APIS)}, got {api!r}")
    if api == "alsa" and not ALSA_SEQUENCER.exists():  # said plainly, before ALSA says it
        raise DeviceError(f"MIDI API alsa unavailable: no ALSA sequencer ({ALSA_SEQUENCER} "
                          "missing; `modprobe snd-seq` loads it)")
    try:
        be = mido.Backend(f"mido.backends.rtmidi/{APIS[api]}", load=True)
        be.get_input_names()  # probes the API: fails here without an ALSA sequencer/JACK server
    except Exception as exc:  # rtmidi raises its own SystemError types
        raise DeviceError(f"MIDI API {api} unavailable: {exc}") from exc
    return be


def auto_api(audio: str = "auto") -> str:
    """``--midi-api auto``: JACK when the audio is on JACK and a JACK server runs (the audio
    callback then plays each note-on in the cycle it arrives); else ALSA where there is a
    sequencer; else JACK if a server runs; else ALSA, which says why it cannot open."""
    from snaresynth.io.supervisor import jack_server_running

    jack = jack_server_running()  # asked on the server's socket: no libjack, no lines
    if jack and (audio == "jack" or not ALSA_SEQUENCER.exists()):
        return "jack"
    return "alsa"


def find_port(names: list[str], spec: str, kind: str, api: str) -> str:
    """The first port whose name contains ``spec`` (case-insensitive), or a DeviceError that
    lists what there is."""
    for name in names:
        if spec.lower() in name.lower():
            return name
    raise DeviceError(f"no MIDI {kind} matching {spec!r} on {api}; "
                      f"available: {', '.join(names) or 'none'}")


def warm_up_parsing() -> None:
    """Build one message of each kind we handle, on a throwaway parser: mido's first message
    of a kind costs milliseconds (its checks are set up lazily), which in JACK's process thread is
    several lost periods on the first hit."""
    RunningStatusParser().feed(bytes([0x90, 38, 1, 0xB0, 20, 0, 0xC0, 0, 0xF8]))


class RunningStatusParser:
    """Raw MIDI bytes -> mido messages, with running status and real-time bytes inside other
    messages (mido's own parser drops both: the message they interrupt is lost).

    Real-time bytes (0xF8..0xFF) may appear anywhere and keep running status; system common
    bytes cancel it; data bytes with no status to belong to, undefined status bytes and sysex
    longer than ``MAX_SYSEX`` bytes are discarded and counted in ``stray``.
    """

    MAX_SYSEX = 4096

    def __init__(self) -> None:
        self._running = 0  # last channel-voice status byte, 0 = none
        self._msg: list[int] = []  # the message in progress, status byte first
        self._need = 0  # data bytes it still needs (-1: inside sysex)
        self.stray = 0

    def feed(self, data: bytes | bytearray | list[int]) -> list[Any]:
        out: list[Any] = []
        for byte in data:
            if not 0 <= byte <= 255:
                self.stray += 1
            elif byte >= 0xF8:
                self._emit([byte], out)
            elif byte == 0xF7 and self._need == -1:
                self._msg.append(byte)
                self._need = 0
                self._emit(self._msg, out)
            elif byte >= 0x80:
                if self._msg:
                    self.stray += len(self._msg)  # a message cut short by a new status
                self._running = byte if byte < 0xF0 else 0
                self._msg, self._need = [byte], _data_bytes(byte)
                if self._need == 0:
                    self._emit(self._msg, out)
            elif self._need == -1:
                self._msg.append(byte)
                if len(self._msg) > self.MAX_SYSEX:
                    self.stray += len(self._msg)
                    self._msg, self._need = [], 0
            elif self._need > 0:
                self._msg.append(byte)
                self._need -= 1
                if self._need == 0:
                    self._emit(self._msg, out)
            elif self._running:  # running status: the status byte is implied
                self._msg, self._need = [self._running, byte], _data_bytes(self._running) - 1
                if self._need == 0:
                    self._emit(self._msg, out)
            else:
                self.stray += 1
        return out

    def _emit(self, raw: list[int], out: list[Any]) -> None:
        import mido

        try:
            out.append(mido.Message.from_bytes(raw))
        except (ValueError, TypeError):  # undefined status bytes (0xF4, 0xF5, 0xF9, 0xFD)
            self.stray += len(raw)
        if raw is self._msg:
            self._msg = []


def _data_bytes(status: int) -> int:
    if status < 0xF0:
        return 1 if 0xC0 <= status < 0xE0 else 2
    return {0xF0: -1, 0xF1: 1, 0xF2: 2, 0xF3: 1}.get(status, 0)


class MidiRouter:
    """Translates mido messages into Engine calls and counts them (no ports here)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.messages = 0
        self.ignored = 0
        self.bad = 0

    def handle(self, msg: Any, at: float | None = None, jack_frame: int | None = None,
               placed: bool = False) -> None:
        """Translate one mido message; ``at`` is its arrival (monotonic s), ``jack_frame`` its
        JACK frame time when it came from JACK (then notes are placed by frame); ``placed``: a
        note-on the audio callback already played. Thread: MIDI."""
        at = time.monotonic() if at is None else at
        self.messages += 1
        try:
            kind = msg.type
            if kind == "note_on":
                self.engine.note_on(msg.note, msg.velocity, msg.channel + 1, at=at,
                                    jack_frame=jack_frame, placed=placed)
            elif kind == "control_change":
                self.engine.control_change(msg.control, msg.value, msg.channel + 1, source=self)
            elif kind == "program_change":
                self.engine.program_change(msg.program, source=self)
            else:  # IGNORED, and anything mido may add later
                self.ignored += 1
        except Exception as exc:  # never raise into the MIDI thread
            self.bad += 1
            self.engine.count_bad()
            log.warning("MIDI %s rejected: %s", msg, exc)


class JackMidiIn(MidiRouter):
    """A JACK MIDI input port, virtual or connected to the source port named by ``spec``.

    The port is read by a compiled process callback (``io/jack_rt.py``) that never takes the
    GIL. With ``notes_to`` (the JACK audio client's notes port) it sends each note-on on to the
    audio callback, which plays it in the same cycle at its own frame. It stamps every event
    with its JACK frame time and wakes the reader thread, which parses and handles them: notes
    at once (only counted when already played; else placed one block after their frame), CCs
    coalesced to the latest value per channel and controller within what it drained, so a CC
    flood costs one handling per controller and the last value always wins.
    """

    api = "jack"

    def __init__(self, engine: Any, spec: str, notes_to: str | None = None) -> None:
        from snaresynth.io.jack_port import JackMidiPort
        from snaresynth.rt.jack import MidiCapture

        super().__init__(engine)
        self.spec = spec
        self.notes_to = notes_to
        self.coalesced = 0  # CC values replaced by a newer one before they were handled
        self._capture = MidiCapture()
        self._forward: Any = None
        self._stop = False
        self._parser = RunningStatusParser()
        warm_up_parsing()
        try:
            self._jack = JackMidiPort(CLIENT_NAME, "midi_in", "in", spec, self._attach,
                                      self._link_notes)
        except DeviceError:
            self._capture.close()
            raise
        self.name = self._jack.name
        self._reader = threading.Thread(target=self._read, name="snaresynth-midi", daemon=True)
        self._reader.start()

    def _attach(self, client: Any, port: Any) -> None:
        """With an audio client to play notes (``notes_to``), a ``notes_out`` port too: the
        capture callback sends note-ons on to it in the same cycle."""
        self._forward = None
        if self.notes_to is not None:
            self._forward = client.midi_outports.register("notes_out")
        self._capture.attach(client, port, self._forward)

    def _link_notes(self, client: Any) -> bool:
        from snaresynth.io.jack_port import connect_quietly

        if self._forward is None or self.notes_to is None:
            return True
        return connect_quietly(client, self._forward.name, self.notes_to)

    @property
    def notes_port_name(self) -> str | None:
        """``notes_out``'s full name (None without ``notes_to``)."""
        return None if self._forward is None else self._forward.name

    @property
    def overflows(self) -> int:
        """Events dropped because the reader thread fell a whole ring behind."""
        return self._capture.overflows

    @property
    def alive(self) -> bool:
        """The client, its source (a named one), and the link through which the audio callback
        plays the notes: a patchbay that cleared it would leave notes one block late."""
        return self._jack.alive and self._notes_linked()

    def _notes_linked(self) -> bool:
        client, forward = self._jack.client, self._forward
        if forward is None or client is None:
            return True
        try:
            return bool(client.get_all_connections(forward))
        except Exception:
            return False

    def reopen(self) -> None:
        """Thread: supervisor (see ``JackMidiPort.reopen``); with the client alive, only the
        notes link is made again."""
        if not self._jack.alive:
            self._jack.reopen()
        elif not self._link_notes(self._jack.client):
            raise DeviceError(f"cannot link {self.notes_port_name} to {self.notes_to}")

    def _read(self) -> None:
        """Thread: the reader. Notes first and at once; CCs (latest wins) and the rest after."""
        capture = self._capture
        while not self._stop:
            capture.wait(0.2)
            latest_cc: dict[tuple[int, int], Any] = {}
            later: list[Any] = []
            now = time.monotonic()
            for jack_frame, data, forwarded in capture.events():
                for msg in self._parser.feed(data):
                    kind = msg.type
                    if kind == "note_on":
                        self.handle(msg, now, jack_frame, placed=forwarded)
                    elif kind == "control_change":
                        key = (msg.channel, msg.control)
                        if key in latest_cc:
                            self.coalesced += 1  # an older value nobody will hear
                        latest_cc[key] = msg
                    else:
                        later.append(msg)
            for msg in latest_cc.values():
                self.handle(msg)
            for msg in later:
                self.handle(msg, now)

    def close(self) -> None:
        self._stop = True
        self._capture.wake()
        self._jack.close()
        self._reader.join(1.0)
        self._capture.close()  # after the client: its callback writes to the wake pipe


class AlsaMidiIn(MidiRouter):
    """An rtmidi (ALSA sequencer) input feeding an Engine; re-opened when a named port returns."""

    api = "alsa"

    def __init__(self, engine: Any, spec: str) -> None:
        super().__init__(engine)
        self.spec = spec
        self._be = backend("alsa")
        self.port: Any = None
        self._open()

    def _open(self) -> None:
        be = self._be
        try:
            if self.spec == "virtual":
                self.port = be.open_input("midi_in", virtual=True, callback=self.handle,
                                          client_name=CLIENT_NAME)
                self.name = f"{CLIENT_NAME}:midi_in (virtual, alsa)"
            else:
                name = find_port(be.get_input_names(), self.spec, "input", "alsa")
                self.port = be.open_input(name, callback=self.handle, client_name=CLIENT_NAME)
                self.name = f"{name} (alsa)"
        except DeviceError:
            raise
        except Exception as exc:
            raise DeviceError(f"cannot open MIDI input {self.spec!r} on alsa: {exc}") from exc

    @property
    def alive(self) -> bool:
        if self.port is None or self.spec == "virtual":
            return self.port is not None
        try:
            return any(self.spec.lower() in n.lower() for n in self._be.get_input_names())
        except Exception:
            return False

    def reopen(self) -> None:
        self.close()
        self._open()

    def close(self) -> None:
        port, self.port = self.port, None
        if port is None:
            return
        try:
            port.close()
        except Exception as exc:
            log.debug("closing MIDI input: %s", exc)


MidiIn = JackMidiIn | AlsaMidiIn


def open_midi_in(engine: Any, spec: str, api: str, notes_to: str | None = None,
                 audio: str = "auto") -> MidiIn | None:
    """Open ``--midi-in`` (virtual | none | NAME substring) on ``api`` (alsa | jack | auto, for
    the ``--audio`` named). ``notes_to``: the JACK audio client's notes port, which then plays
    JACK note-ons itself."""
    if spec == "none":
        return None
    api = auto_api(audio) if api == "auto" else api
    if api == "jack":
        return JackMidiIn(engine, spec, notes_to)
    if api == "alsa":
        return AlsaMidiIn(engine, spec)
    raise ValueError(f"MIDI API must be one of {', '.join(APIS)}, got {api!r}")
