"""Typed daemon settings: defaults, then a TOML file's ``[serve]`` table, then the command line.

Unknown keys and wrong types in the TOML file are errors naming the file and the key.
"""

from __future__ import annotations

import argparse
import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snaresynth.errors import SnareSynthError


@dataclass
class Settings:
    model: str | None = None  # model file, "untrained:FAMILY", or None for the bundled model
    preset: str | None = None  # preset name or TOML path; None = last state, else "default"
    audio: str = "auto"  # auto | jack | null | list | DEVICE
    autoconnect: bool = True  # JACK: connect our outputs to the physical playback ports
    rate: int | None = None  # Hz; None = the device's own rate (48000 for null)
    blocksize: int = 128  # frames
    record: Path | None = None
    midi_in: str = "virtual"  # virtual | none | list | NAME substring
    midi_api: str = "auto"  # auto | alsa | jack (auto: io/midi.py auto_api)
    midi_out: str = "none"  # virtual | none | list | NAME substring
    osc_host: str = "127.0.0.1"
    osc_port: int = 9000
    osc_allow: list[str] = field(default_factory=list)
    http: bool = True  # the browser page and its WebSocket (io/web.py)
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    voices: int = 16
    latency: str = "constant"  # constant | lowest
    decode: str = "thread"  # thread | process: where the model runs (docs/performance.md)
    # SCHED_FIFO priority of the decoder, 0 = never realtime; None: 1 with jack or null audio,
    # else 0 (PortAudio's callback thread is ordinary: a realtime decoder would preempt it)
    decode_priority: int | None = None
    state_file: Path | None = None
    autosave_s: float = 30.0

    def __post_init__(self) -> None:
        if self.blocksize < 16 or self.blocksize > 8192:
            raise ValueError(f"blocksize must be 16..8192 frames, got {self.blocksize}")
        if self.rate is not None and not 8000 <= self.rate <= 192000:
            raise ValueError(f"rate must be 8000..192000 Hz, got {self.rate}")
        if not 0 <= self.osc_port <= 65535:
            raise ValueError(f"osc_port must be 0..65535, got {self.osc_port}")
        if not 0 <= self.http_port <= 65535:
            raise ValueError(f"http_port must be 0..65535, got {self.http_port}")
        if not 1 <= self.voices <= 256:
            raise ValueError(f"voices must be 1..256, got {self.voices}")
        if self.latency not in ("constant", "lowest"):
            raise ValueError(f"latency must be 'constant' or 'lowest', got {self.latency!r}")
        if self.decode not in ("process", "thread"):
            raise ValueError(f"decode must be 'process' or 'thread', got {self.decode!r}")
        if self.decode_priority is not None and not 0 <= self.decode_priority <= 99:
            raise ValueError(f"decode_priority must be 0..99, got {self.decode_priority}")
        if self.midi_api not in ("auto", "alsa", "jack"):
            raise ValueError(f"midi_api must be auto, alsa or jack, got {self.midi_api!r}")

    def decode_rt_priority(self) -> int:
        """The decoder's realtime priority: what was asked, else 1 where the audio thread runs
        above it (JACK's threads at 10 and more; null's is no audio device), else 0."""
        if self.decode_priority is not None:
            return self.decode_priority
        return 1 if self.audio in ("jack", "null") else 0


_PATH_FIELDS = {"record", "state_file"}


def load_toml(path: Path) -> dict[str, Any]:
    """The ``[serve]`` table of a settings file, checked key by key."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SnareSynthError(f"{path}: cannot read settings: {exc}") from exc
    table = raw.get("serve", {})
    unknown = sorted(set(raw) - {"serve"})
    if unknown or not isinstance(table, dict):
        raise SnareSynthError(f"{path}: only a [serve] table is allowed, found {unknown}")
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in fields:
            raise SnareSynthError(f"{path}: serve.{key}: unknown setting")
        values[name] = Path(value) if name in _PATH_FIELDS and isinstance(value, str) else value
    return values


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Defaults < ``--config`` TOML < explicit command-line flags."""
    values: dict[str, Any] = {}
    if getattr(args, "config", None) is not None:
        values.update(load_toml(args.config))
    for f in dataclasses.fields(Settings):
        given = getattr(args, f.name, None)
        if given is not None:
            values[f.name] = given
    try:
        return Settings(**values)
    except (TypeError, ValueError) as exc:
        raise SnareSynthError(f"bad settings: {exc}") from exc
