"""What audio outputs and MIDI ports there are: ``serve --audio list``, ``--midi-in list`` and
``--midi-out list`` print them; ``check_devices`` refuses a device named on the command line
that is not there, with the names that are, before the model and the compiled kernels load.

JACK is asked on its server's socket first (``jack_server_running``), so a machine with no JACK
server costs no libjack client and prints nothing; PortAudio (sounddevice) is imported only
when a PortAudio device is asked for or listed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from snaresynth.errors import DeviceError
from snaresynth.io.midi import auto_api, backend, find_port
from snaresynth.io.supervisor import jack_server_running

NAMED_OUTPUTS = {"auto": "the system's default output; the null sink if there is none",
                 "jack": "a JACK client of our own, the compiled callback",
                 "null": "a clocked sink, no device"}
MIDI_SPECS = {"virtual": "a port of our own that others connect to", "none": "no port"}
JACK_HINT = "start one, e.g. `jackd -d dummy -r 48000 -p 128`"


@dataclass
class JackView:
    """A JACK server as a probe client sees it."""

    server: str
    running: bool
    rate: int = 0
    blocksize: int = 0
    playback: list[str] = field(default_factory=list)
    midi_sources: list[str] = field(default_factory=list)  # what --midi-in NAME connects from
    midi_destinations: list[str] = field(default_factory=list)  # what --midi-out NAME feeds


def jack_view() -> JackView:
    server = os.environ.get("JACK_DEFAULT_SERVER") or "default"
    if not jack_server_running():
        return JackView(server, running=False)
    import jack

    try:
        client = jack.Client(f"snaresynth-probe-{os.getpid()}", no_start_server=True)
    except jack.JackError:  # it went away between the two questions
        return JackView(server, running=False)
    try:
        return JackView(
            server, True, int(client.samplerate), int(client.blocksize),
            [p.name for p in client.get_ports(is_physical=True, is_input=True, is_audio=True)],
            [p.name for p in client.get_ports(is_midi=True, is_output=True)],
            [p.name for p in client.get_ports(is_midi=True, is_input=True)])
    finally:
        client.close()


def portaudio_outputs() -> tuple[list[tuple[int, str, str]], str | None]:
    """([(index, name, "host API, channels, rate")], why PortAudio is not there or None)."""
    try:
        import sounddevice as sd
    except (ImportError, OSError) as exc:
        return [], f"PortAudio not available ({exc})"
    try:
        default = sd.default.device[1]
        apis = sd.query_hostapis()
        outputs = []
        for info in sd.query_devices():
            if info["max_output_channels"] > 0:
                about = (f"{apis[info['hostapi']]['name']}, {info['max_output_channels']} ch, "
                         f"{info['default_samplerate']:.0f} Hz"
                         + (", the default" if info["index"] == default else ""))
                outputs.append((int(info["index"]), str(info["name"]), about))
    except sd.PortAudioError as exc:
        return [], f"PortAudio: {exc}"
    return outputs, None


def midi_ports(api: str, direction: str, jack: JackView | None = None) -> list[str]:
    """Port names on ``api`` that ``--midi-in NAME`` ("in") or ``--midi-out NAME`` ("out")
    can connect to; DeviceError when the API is not there (no sequencer, no JACK server)."""
    if api == "jack":
        view = jack or jack_view()
        if not view.running:
            raise DeviceError(f'MIDI API jack unavailable: no JACK server "{view.server}" '
                              f"running; {JACK_HINT}")
        return view.midi_sources if direction == "in" else view.midi_destinations
    be = backend(api)
    try:
        return list(be.get_input_names() if direction == "in" else be.get_output_names())
    except Exception as exc:  # rtmidi raises its own SystemError types
        raise DeviceError(f"MIDI API {api} unavailable: {exc}") from exc


def _audio_names(jack: JackView) -> str:
    outputs, why = portaudio_outputs()
    names = [f"{i} {name!r}" for i, name, _ in outputs] or [why or "no PortAudio devices"]
    return ", ".join(["null", "auto", "jack" + ("" if jack.running else " (no server)"),
                      *names])


def check_devices(settings: Any) -> None:
    """DeviceError for an ``--audio``, ``--midi-in`` or ``--midi-out`` that is not there,
    naming the ones that are (asked in milliseconds, before anything slow)."""
    named_midi = [(option, spec, direction) for option, spec, direction in (
        ("--midi-in", settings.midi_in, "in"), ("--midi-out", settings.midi_out, "out"))
        if spec not in MIDI_SPECS]
    if settings.audio in ("auto", "null") and not named_midi:
        return  # nothing named: no probe client on a running JACK server
    jack = jack_view()
    if settings.audio == "jack" and not jack.running:
        raise DeviceError(f'--audio jack: no JACK server "{jack.server}" running; {JACK_HINT}; '
                          f"outputs here: {_audio_names(jack)}")
    if settings.audio not in NAMED_OUTPUTS:
        try:
            import sounddevice as sd
        except (ImportError, OSError) as exc:
            raise DeviceError(f"--audio {settings.audio}: PortAudio not available ({exc})") \
                from exc
        spec = int(settings.audio) if settings.audio.isdigit() else settings.audio
        try:
            sd.query_devices(spec, kind="output")
        except (ValueError, sd.PortAudioError) as exc:
            raise DeviceError(f"--audio {settings.audio}: {exc}; outputs here: "
                              f"{_audio_names(jack)}") from exc
    api = auto_api(settings.audio) if settings.midi_api == "auto" else settings.midi_api
    for option, spec, direction in named_midi:
        kind = "input" if direction == "in" else "output"
        try:
            find_port(midi_ports(api, direction, jack), spec, kind, api)
        except DeviceError as exc:
            raise DeviceError(f"{option} {spec}: {exc}") from exc


def device_lines(settings: Any) -> list[str]:
    """What ``--audio list`` / ``--midi-in list`` / ``--midi-out list`` print."""
    jack = jack_view()
    lines: list[str] = []
    if settings.audio == "list":
        lines.append("audio outputs (serve --audio NAME):")
        lines += [f"  {name:8s} {about}" for name, about in NAMED_OUTPUTS.items()]
        lines.append(f'JACK server "{jack.server}": ' + (
            f"{jack.rate} Hz / {jack.blocksize} frames; playback ports: "
            f"{', '.join(jack.playback) or 'none'}" if jack.running else
            f"not running ({JACK_HINT})"))
        outputs, why = portaudio_outputs()
        lines.append("PortAudio outputs (serve --audio INDEX or a part of the name):")
        lines += [f"  {i:<3d} {name}  ({about})" for i, name, about in outputs]
        lines += [f"  {why or 'none'}"] if not outputs else []
    for direction in ("in", "out"):
        if (settings.midi_in if direction == "in" else settings.midi_out) != "list":
            continue
        kind = "inputs" if direction == "in" else "outputs"
        lines.append(f"MIDI {kind} (serve --midi-{direction} NAME, a part of a port's name):")
        lines += [f"  {name:8s} {about}" for name, about in MIDI_SPECS.items()]
        for api in ("alsa", "jack"):
            try:
                ports = midi_ports(api, direction, jack)
            except DeviceError as exc:
                lines.append(f"  {api}: {str(exc).split(': ', 1)[-1]}")
                continue
            lines.append(f"  {api}: " + ("none" if not ports else ""))
            lines += [f"    {port}" for port in ports]
        audio = "auto" if settings.audio == "list" else settings.audio
        lines.append(f"  --midi-api auto picks {auto_api(audio)} here (with --audio {audio})")
    return lines


def print_devices(settings: Any) -> int:
    print("\n".join(device_lines(settings)), flush=True)
    return 0

