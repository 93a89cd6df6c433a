"""A small SFZ reader and player: enough of the format to play back what ``sfz.py`` writes,
sample for sample, and to refuse what it cannot play (an unknown opcode is an error, not a
silent guess). Regions inherit ``<control>`` -> ``<global>`` -> ``<master>`` -> ``<group>``.

Playback follows the SFZ semantics the exporter relies on: a region sounds when the note is in
``lokey..hikey`` and the velocity in ``lovel..hivel``; with ``seq_length`` each region counts the
notes that reached it and sounds on ``seq_position``; a region of ``group`` g stops the voices
of regions with ``off_by`` g; the gain is ``volume`` (dB) times ``amp_velcurve_N``
(interpolated, as in the spec) and the daemon's constant-power ``pan``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from snaresynth.errors import SnareSynthError

HEADERS = ("control", "global", "master", "group", "region")
_INT = ("key", "lokey", "hikey", "lovel", "hivel", "seq_length", "seq_position", "group",
        "off_by", "pitch_keytrack", "amp_veltrack")
_FLOAT = ("volume", "pan")
_TEXT = ("sample", "default_path", "loop_mode")
_TOKEN = re.compile(r"<(\w+)>|([A-Za-z_][A-Za-z0-9_]*)=")
_NOTE_NAMES = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}


class SfzError(SnareSynthError):
    """An SFZ file this reader cannot play."""


def _note(value: str) -> int:
    if re.fullmatch(r"-?\d+", value):
        return int(value)
    m = re.fullmatch(r"([a-gA-G])([#b]?)(-?\d+)", value)
    if not m:
        raise ValueError(value)
    shift = {"#": 1, "b": -1, "": 0}[m.group(2)]
    return _NOTE_NAMES[m.group(1).lower()] + shift + 12 * (int(m.group(3)) + 1)


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def parse(text: str, source: str = "sfz") -> list[dict[str, str]]:
    """The regions of an SFZ document, each a dict of every opcode it inherits."""
    scopes: dict[str, dict[str, str]] = {h: {} for h in HEADERS}
    regions: list[dict[str, str]] = []
    current: str | None = None
    for line_no, line in enumerate(_strip_comments(text).splitlines(), 1):
        tokens = list(_TOKEN.finditer(line))
        if line.strip() and (not tokens or line[:tokens[0].start()].strip()):
            raise SfzError(f"{source}:{line_no}: cannot read {line.strip()!r}")
        for i, tok in enumerate(tokens):
            end = tokens[i + 1].start() if i + 1 < len(tokens) else len(line)
            if tok.group(1):
                header = tok.group(1)
                if header not in HEADERS:
                    raise SfzError(f"{source}:{line_no}: unsupported header <{header}>")
                if line[tok.end():end].strip():
                    raise SfzError(f"{source}:{line_no}: text after <{header}>")
                # a header resets its own scope and the ones below it
                for lower in HEADERS[HEADERS.index(header):]:
                    scopes[lower] = {}
                current = header
                if header == "region":
                    # a region inherits what the scopes above it hold at this point
                    for upper in HEADERS[:-1]:
                        scopes["region"].update(scopes[upper])
                    regions.append(scopes["region"])
                continue
            if current is None:
                raise SfzError(f"{source}:{line_no}: opcode before any header")
            name, value = tok.group(2), line[tok.end():end].strip()
            _check(name, value, f"{source}:{line_no}")
            scopes[current][name] = value
    return regions


def _check(name: str, value: str, where: str) -> None:
    try:
        if name in ("key", "lokey", "hikey"):
            _note(value)
        elif name in _INT:
            int(value)
        elif name in _FLOAT or re.fullmatch(r"amp_velcurve_\d+", name):
            if not math.isfinite(float(value)):
                raise ValueError(value)
        elif name not in _TEXT:
            raise SfzError(f"{where}: unsupported opcode {name!r}")
    except ValueError:
        raise SfzError(f"{where}: bad value {value!r} for {name}") from None


@dataclass
class Region:
    sample: np.ndarray = field(repr=False)
    path: str
    lokey: int
    hikey: int
    lovel: int
    hivel: int
    seq_length: int
    seq_position: int
    gain: float  # volume, linear
    pan: float  # -1..1
    velcurve: np.ndarray = field(repr=False)  # gain at velocities 0..127
    group: int
    off_by: int | None
    counter: int = 0

    def matches(self, note: int, velocity: int) -> bool:
        return self.lokey <= note <= self.hikey and self.lovel <= velocity <= self.hivel


def _velcurve(opcodes: dict[str, str]) -> np.ndarray:
    """amp_velcurve_N points, linearly interpolated; unset ends are 0 at 0 and 1 at 127; no
    points at all is the spec's default curve (vel/127)^2 scaled by amp_veltrack."""
    points = {int(k.rsplit("_", 1)[1]): float(v) for k, v in opcodes.items()
              if k.startswith("amp_velcurve_")}
    vel = np.arange(128, dtype=np.float64)
    if not points:
        track = float(opcodes.get("amp_veltrack", "100")) / 100.0
        return (1.0 - track) + track * (vel / 127.0) ** 2
    points.setdefault(0, 0.0)
    points.setdefault(127, 1.0)
    xs = sorted(points)
    return np.interp(vel, xs, [points[x] for x in xs])


class SfzInstrument:
    """An SFZ file loaded with its samples; ``render`` plays note events offline."""

    def __init__(self, path: str | Path) -> None:
        import soundfile as sf

        self.path = Path(path)
        text = self.path.read_text(encoding="utf-8")
        self.regions: list[Region] = []
        self.rate = 0
        for opcodes in parse(text, str(self.path)):
            if "sample" not in opcodes:
                raise SfzError(f"{self.path}: a region without sample=")
            rel = opcodes.get("default_path", "") + opcodes["sample"].replace("\\", "/")
            audio, rate = sf.read(self.path.parent / rel, dtype="float32", always_2d=True)
            if self.rate and rate != self.rate:
                raise SfzError(f"{rel}: {rate} Hz, other samples are {self.rate} Hz")
            self.rate = rate
            key = opcodes.get("key")
            lokey = _note(opcodes.get("lokey", key or "0"))
            hikey = _note(opcodes.get("hikey", key or "127"))
            off_by = opcodes.get("off_by")
            self.regions.append(Region(
                sample=audio[:, 0], path=rel, lokey=lokey, hikey=hikey,
                lovel=int(opcodes.get("lovel", "0")), hivel=int(opcodes.get("hivel", "127")),
                seq_length=int(opcodes.get("seq_length", "1")),
                seq_position=int(opcodes.get("seq_position", "1")),
                gain=10.0 ** (float(opcodes.get("volume", "0")) / 20.0),
                pan=min(max(float(opcodes.get("pan", "0")) / 100.0, -1.0), 1.0),
                velcurve=_velcurve(opcodes), group=int(opcodes.get("group", "0")),
                off_by=None if off_by is None else int(off_by)))

    def trigger(self, note: int, velocity: int) -> list[Region]:
        """The regions a note-on starts (advancing their round-robin counters)."""
        out = []
        for region in self.regions:
            if region.matches(note, velocity):
                if region.counter % region.seq_length == region.seq_position - 1:
                    out.append(region)
                region.counter += 1
        return out

    def render(self, events: list[tuple[int, int, int]], frames: int) -> np.ndarray:
        """(frame, note, velocity) note-ons -> (frames, 2) stereo; one-shot voices, a choke
        stops a voice at the frame of the note that chokes it."""
        out = np.zeros((frames, 2), dtype=np.float64)
        voices: list[tuple[int, Region, float]] = []  # start, region, gain
        ends: dict[int, int] = {}
        for frame, note, velocity in sorted(events):
            started = self.trigger(note, velocity)
            for group in {r.group for r in started if r.group}:
                for i, (_, region, _) in enumerate(voices):
                    if region.off_by == group and i not in ends:
                        ends[i] = frame
            voices += [(frame, r, r.gain * float(r.velcurve[velocity])) for r in started]
        for i, (start, region, gain) in enumerate(voices):
            stop = min(frames, start + region.sample.shape[0], ends.get(i, frames))
            if stop <= start:
                continue
            angle = (region.pan + 1.0) * math.pi / 4.0  # the daemon's constant-power law
            chunk = region.sample[:stop - start].astype(np.float64) * gain
            out[start:stop, 0] += chunk * math.cos(angle)
            out[start:stop, 1] += chunk * math.sin(angle)
        return out.astype(np.float32)
