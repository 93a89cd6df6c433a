"""MIDI in (and feedback out) through mido + python-rtmidi, on the ALSA or JACK API.

This module only translates MIDI messages into Engine calls. Thread: rtmidi's callback thread
calls ``MidiIn.handle``; each message is stamped with its arrival time on the monotonic clock,
which the engine maps onto the audio clock. A bad message is counted and logged, never raised.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from snaresynth.errors import DeviceError

log = logging.getLogger(__name__)

os.environ.setdefault("JACK_NO_START_SERVER", "1")

CLIENT_NAME = "snaresynth"
APIS = {"alsa": "LINUX_ALSA", "jack": "UNIX_JACK"}
IGNORED = frozenset({"clock", "active_sensing", "sysex", "start", "stop", "continue",
                     "songpos", "song_select", "tune_request", "quarter_frame", "reset",
                     "polytouch", "aftertouch", "pitchwheel", "note_off"})


def backend(api: str) -> Any:
    """A mido backend for ``api`` ("alsa" or "jack"); raises DeviceError if it cannot start."""
    import mido

    if api not in APIS:
        raise ValueError(f"MIDI API must be one of {', '.join(APIS)}, got {api!r}")
    try:
        be = mido.Backend(f"mido.backends.rtmidi/{APIS[api]}", load=True)
        be.get_input_names()  # probes the API: fails here without an ALSA sequencer/JACK server
    except Exception as exc:  # rtmidi raises its own SystemError types
        raise DeviceError(f"MIDI API {api} unavailable: {exc}") from exc
    return be


def auto_api() -> str:
    """JACK when a JACK server is running, else ALSA."""
    try:
        backend("jack")
    except DeviceError:
        return "alsa"
    return "jack"


class MidiIn:
    """An open MIDI input feeding an Engine."""

    def __init__(self, engine: Any, spec: str, api: str) -> None:
        self.engine = engine
        self.api = api
        self.messages = 0
        self.ignored = 0
        self.bad = 0
        be = backend(api)
        try:
            if spec == "virtual":
                self.port = be.open_input("midi_in", virtual=True, callback=self.handle,
                                          client_name=CLIENT_NAME)
                self.name = f"{CLIENT_NAME}:midi_in (virtual, {api})"
            else:
                names = be.get_input_names()
                matches = [n for n in names if spec.lower() in n.lower()]
                if not matches:
                    raise DeviceError(f"no MIDI input matching {spec!r} on {api}; "
                                      f"available: {', '.join(names) or 'none'}")
                self.port = be.open_input(matches[0], callback=self.handle,
                                          client_name=CLIENT_NAME)
                self.name = f"{matches[0]} ({api})"
        except DeviceError:
            raise
        except Exception as exc:
            raise DeviceError(f"cannot open MIDI input {spec!r} on {api}: {exc}") from exc

    def handle(self, msg: Any) -> None:
        """Translate one mido message. Thread: rtmidi callback."""
        at = time.monotonic()
        self.messages += 1
        try:
            kind = msg.type
            if kind == "note_on":
                self.engine.note_on(msg.note, msg.velocity, msg.channel + 1, at=at)
            elif kind == "control_change":
                self.engine.control_change(msg.control, msg.value, msg.channel + 1, source=self)
            elif kind == "program_change":
                self.engine.program_change(msg.program, source=self)
            elif kind in IGNORED:
                self.ignored += 1
            else:
                self.ignored += 1
        except Exception as exc:  # never raise into rtmidi's thread
            self.bad += 1
            self.engine.count_bad()
            log.warning("MIDI %s rejected: %s", msg, exc)

    def close(self) -> None:
        try:
            self.port.close()
        except Exception as exc:
            log.debug("closing MIDI input: %s", exc)


def open_midi_in(engine: Any, spec: str, api: str) -> MidiIn | None:
    """Open ``--midi-in`` (virtual | none | NAME substring) on ``api`` (alsa | jack | auto)."""
    if spec == "none":
        return None
    return MidiIn(engine, spec, auto_api() if api == "auto" else api)
