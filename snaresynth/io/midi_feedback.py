"""Controller feedback over MIDI: every change, from any source, goes out as the CC bound to it,
so motorised faders and LED rings follow what OSC, MIDI learn, presets and undo did.

Thread: whichever thread made the change (the engine calls listeners synchronously); sends are
serialised by a lock, and a change that came in from this controller's own input is not echoed
back to it (a moving fader would fight its own echo).

On JACK the output is a client of our own with a compiled callback (``io/jack_port.py``), so
the supervisor reopens it after a JACK server loss like the MIDI input; on ALSA it is rtmidi.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from snaresynth.control.params import Param, knob_to_cc, parse_param
from snaresynth.errors import DeviceError
from snaresynth.io.midi import CLIENT_NAME, backend, find_port

log = logging.getLogger(__name__)

class MidiFeedback:
    """An open MIDI output that mirrors the engine's parameters as CCs."""

    def __init__(self, engine: Any, spec: str, api: str, skip_source: object = None) -> None:
        self.engine = engine
        self.skip_source = skip_source
        self.sent = 0
        self._lock = threading.Lock()
        self._jack: Any = None  # on JACK: our port, which the supervisor reopens
        self.port: Any = None  # on ALSA: the rtmidi port
        if api == "jack":
            self._send_message, self.name = self._open_jack(spec)
        else:
            self._send_message, self.name = self._open_rtmidi(spec, api)
        engine.add_listener(self.on_change)

    def _open_jack(self, spec: str) -> tuple[Callable[[Any], Any], str]:
        from snaresynth.io.jack_port import JackMidiPort
        from snaresynth.rt.jack import MidiSend

        sender = MidiSend()
        self._jack = JackMidiPort(f"{CLIENT_NAME}-feedback", "midi_out", "out", spec,
                                  sender.attach)  # JACK client names must be unique
        return (lambda msg: sender.send(bytes(msg.bytes()))), self._jack.name

    def _open_rtmidi(self, spec: str, api: str) -> tuple[Callable[[Any], Any], str]:
        be = backend(api)
        try:
            if spec == "virtual":
                client = f"{CLIENT_NAME}-feedback"
                self.port = be.open_output("midi_out", virtual=True, client_name=client)
                name = f"{client}:midi_out (virtual, {api})"
            else:
                name = find_port(be.get_output_names(), spec, "output", api)
                self.port = be.open_output(name)
                name = f"{name} ({api})"
        except DeviceError:
            raise
        except Exception as exc:
            raise DeviceError(f"cannot open MIDI output {spec!r} on {api}: {exc}") from exc
        return self.port.send, name

    def on_change(self, address: str, value: Any, source: object) -> None:
        """Engine listener: one CC for each parameter value told (the engine tells every value
        of the slot after a change of many)."""
        if source is not None and source is self.skip_source:
            return
        if not isinstance(value, float):
            return  # not a parameter value (e.g. /preset/save, /randomize)
        try:
            param = parse_param(address[1:])
        except ValueError:
            return
        self._send(param, value)

    def send_all(self) -> None:
        """Send every bound parameter of the selected slot."""
        for param, x in self.engine.param_values().items():
            self._send(param, x)

    def _send(self, param: Param, x: float) -> None:
        import mido

        cc = self.engine.controls.param_to_cc(param)
        if cc is None:
            return
        channel = (self.engine.kit.midi_channel or 1) - 1
        msg = mido.Message("control_change", channel=channel, control=cc, value=knob_to_cc(x))
        with self._lock:
            try:
                self._send_message(msg)
                self.sent += 1
            except Exception as exc:  # a vanished port must not break the change that caused it
                log.warning("MIDI feedback to %s failed: %s", self.name, exc)

    @property
    def alive(self) -> bool:
        """For the supervisor: JACK outputs can be lost and reopened; rtmidi ones are not."""
        return self._jack.alive if self._jack is not None else True

    def reopen(self) -> None:
        """Thread: supervisor (see ``JackMidiPort.reopen``)."""
        if self._jack is not None:
            self._jack.reopen()

    def close(self) -> None:
        if self._jack is not None:
            self._jack.close()
            return
        try:
            self.port.close()
        except Exception as exc:
            log.debug("closing MIDI feedback output: %s", exc)


def open_midi_feedback(engine: Any, spec: str, api: str, skip_source: object = None,
                       audio: str = "auto") -> MidiFeedback | None:
    """Open ``--midi-out`` (virtual | none | NAME substring) on ``api`` (alsa | jack | auto, for
    the ``--audio`` named)."""
    if spec == "none":
        return None
    from snaresynth.io.midi import auto_api

    return MidiFeedback(engine, spec, auto_api(audio) if api == "auto" else api, skip_source)
