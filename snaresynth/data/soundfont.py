"""Drum kits inside SoundFont 2 files, rendered note by note with FluidSynth.

A General MIDI SoundFont keeps its drum kits as presets of bank 128, each key a GM percussion
note (38 = acoustic snare, 36 = bass drum, ...); a drum-only SoundFont (the AVL kits) keeps them
in bank 0 with the same key map. Rather than re-implement SoundFont synthesis (zones, envelopes,
filters, velocity layers), every (preset, key, velocity) is played by ``fluidsynth`` in its
fast-render mode, reverb and chorus off, one hit every ``SPACING_S`` seconds, and the render is
cut into one WAV per hit. Labels come from the GM key, the kit (group) is "<file>/<preset>",
and the collection is the SoundFont file, so a listener can be judged leave-one-source-out.

Debian packages that hold such files (licences in /usr/share/doc/<package>/copyright):
fluid-soundfont-gm (MIT), musescore-general-soundfont-lossless (MIT, parts CC0/PD),
timgm6mb-soundfont (GPL-2), avldrums.lv2-soundfont (CC-BY-SA-3.0).
"""

from __future__ import annotations

import logging
import re
import shutil
import struct
import subprocess
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from snaresynth.data.hydrogen import Source
from snaresynth.data.labels import UNKNOWN
from snaresynth.errors import CorpusError

log = logging.getLogger(__name__)

RENDER_RATE = 44100
SPACING_S = 2.0  # one hit per 2 s: a crash's tail is down > 40 dB before the next hit
NOTE_S = 1.0
VELOCITIES = (50, 90, 127)
GM_NOTES = range(35, 82)

# GM percussion key map (General MIDI 1, channel 10) -> listener class
GM_LABELS: dict[int, str] = {
    35: "kick", 36: "kick", 37: "other", 38: "snare", 39: "clap", 40: "snare",
    41: "tom", 42: "hat", 43: "tom", 44: "hat", 45: "tom", 46: "hat", 47: "tom", 48: "tom",
    49: "cymbal", 50: "tom", 51: "cymbal", 52: "cymbal", 53: "cymbal", 55: "cymbal",
    57: "cymbal", 59: "cymbal",
}
GM_NAMES = {35: "kick2", 36: "kick", 37: "sidestick", 38: "snare", 39: "clap", 40: "snare2",
            42: "hat-closed", 44: "hat-pedal", 46: "hat-open", 49: "crash", 51: "ride"}


# GS / GM2 drum sets by program: those up to Orchestra (48) and the CM-64 set (127) follow the
# GM key map; 56 is GS's SFX set (sound effects on the drum keys), and MuseScore puts marching
# percussion and a metronome on programs 55-96 with maps of their own: keys mean nothing there
GM_MAPPED_PROGRAMS = frozenset(range(49)) | {127}
BRUSH, ORCHESTRA = 40, 48
TIMPANI_KEYS = range(41, 54)  # the Orchestra set: timpani where the toms, hats and cymbals are


def kit_label(bank: int, program: int, note: int) -> str:
    """The class of ``note`` in a drum preset: the GM map with the GS sets' exceptions (the
    Brush set's key 39 is a brush slap on the snare, not a clap)."""
    if bank == 128 and program == ORCHESTRA and note in TIMPANI_KEYS:
        return "other"
    if bank == 128 and program == BRUSH and note == 39:
        return "snare"
    return gm_label(note)


def gm_label(note: int) -> str:
    """The class of a GM percussion key; keys 54, 56, 58, 60-81 are other percussion."""
    if note in GM_LABELS:
        return GM_LABELS[note]
    return "other" if 54 <= note <= 81 else UNKNOWN


def read_presets(path: str | Path) -> list[tuple[str, int, int]]:
    """[(name, bank, program)] from a SoundFont 2 file's preset headers (``phdr``)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"sfbk":
                raise CorpusError(f"{path}: not a SoundFont 2 file")
            while True:
                chunk = fh.read(8)
                if len(chunk) < 8:
                    raise CorpusError(f"{path}: no preset headers (pdta/phdr) found")
                cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if cid == b"LIST" and fh.read(4) == b"pdta":
                    return _phdr(fh, size - 4, path)
                if cid == b"LIST":
                    fh.seek(size - 4 + (size & 1), 1)
                else:
                    fh.seek(size + (size & 1), 1)
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read SoundFont: {exc}") from exc


def _phdr(fh, size: int, path: Path) -> list[tuple[str, int, int]]:
    end = fh.tell() + size
    while fh.tell() < end:
        cid, sub = fh.read(4), struct.unpack("<I", fh.read(4))[0]
        if cid != b"phdr":
            fh.seek(sub + (sub & 1), 1)
            continue
        raw = fh.read(sub)
        presets = []
        for i in range(0, len(raw) - 38, 38):  # the last record is the EOP terminator
            name = raw[i:i + 20].split(b"\0", 1)[0].decode("latin-1").strip()
            program, bank = struct.unpack("<HH", raw[i + 20:i + 24])
            presets.append((name, bank, program))
        return sorted(set(presets), key=lambda p: (p[1], p[2]))
    raise CorpusError(f"{path}: no preset headers (phdr) found")


def drum_presets(path: str | Path) -> list[tuple[str, int, int]]:
    """Bank-128 presets; a file without any (a drum-only SoundFont) gives all its presets.

    Sets whose keys do not follow the GM map (``GM_MAPPED_PROGRAMS``) are left out: their labels
    would be guesses. Numbered variants ("Standard 3") are left out where their base kit
    ("Standard") exists:
    in GM SoundFonts they mostly reuse its samples, and near-copies would flatter a held-out
    split.
    """
    presets = read_presets(path)
    drums = [p for p in presets if p[1] == 128] or presets
    drums = [p for p in drums if p[1] != 128 or p[2] in GM_MAPPED_PROGRAMS]
    names = {p[0] for p in drums}
    return [p for p in drums if not (re.fullmatch(r"(.+) \d+", p[0])
                                     and re.fullmatch(r"(.+) \d+", p[0]).group(1) in names)]


def _vlq(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def hits_midi(bank: int, program: int, hits: list[tuple[int, int]]) -> bytes:
    """A format-0 MIDI file: select the preset, then each (note, velocity) ``SPACING_S`` apart.

    Bank 128 is played on the GM drum channel (10), whose bank FluidSynth sets to 128 itself;
    any other bank on channel 1 with a bank select.
    """
    ticks = 960  # per second at the default tempo (480 per quarter, 120 bpm)
    ch = 9 if bank == 128 else 0
    track = bytearray()
    if bank != 128:
        track += b"\x00" + bytes([0xB0 | ch, 0, bank & 0x7F])
    track += b"\x00" + bytes([0xC0 | ch, program & 0x7F])
    on, off = int(0.1 * ticks), int(NOTE_S * ticks)  # first hit 0.1 s in
    rest = int(SPACING_S * ticks) - off
    for i, (note, vel) in enumerate(hits):
        track += _vlq(on if i == 0 else rest) + bytes([0x90 | ch, note, vel])
        track += _vlq(off) + bytes([0x80 | ch, note, 0])
    track += _vlq(rest) + b"\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480)
    return header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)


def render_preset(sf2: Path, bank: int, program: int, hits: list[tuple[int, int]],
                  work: Path) -> np.ndarray:
    """(len(hits), SPACING_S * RENDER_RATE) mono audio, one row per hit."""
    import soundfile as sf

    exe = shutil.which("fluidsynth")
    if exe is None:
        raise CorpusError("rendering SoundFonts needs fluidsynth (apt-get install fluidsynth)")
    work.mkdir(parents=True, exist_ok=True)
    midi, wav = work / "hits.mid", work / "hits.wav"
    midi.write_bytes(hits_midi(bank, program, hits))
    cmd = [exe, "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.5", "-r", str(RENDER_RATE),
           "-F", str(wav), "-T", "wav", str(sf2), str(midi)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0 or not wav.is_file():
        raise CorpusError(f"{sf2}: fluidsynth failed: {done.stderr.strip()[-300:]}")
    audio, _ = sf.read(str(wav), dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    step = int(SPACING_S * RENDER_RATE)
    start = int(0.1 * RENDER_RATE)
    rows = [mono[start + i * step:start + (i + 1) * step] for i in range(len(hits))]
    return np.stack([np.pad(r, (0, step - len(r))) for r in rows])


def distinct_soundfonts(paths: Iterable[str | Path]) -> list[Path]:
    """Each SoundFont file once, named by the file itself rather than a link to it.

    Debian's ``default-GM.sf2`` is a link to one of the installed banks, so
    ``--soundfont /usr/share/sounds/sf2/*.sf2`` names that bank twice: rendered twice, its kits
    would be two "kits" of identical audio (a leak between a listener's folds, duplicates in a
    held-out set). A path that is not a file is kept as given for ``soundfont_sources`` to name.
    """
    out: list[Path] = []
    seen: dict[Path, Path] = {}
    for given in map(Path, paths):
        if not given.is_file():
            out.append(given)
            continue
        real = given.resolve()
        if real in seen:
            log.warning("%s is the same file as %s: its kits are rendered once", given,
                        seen[real])
            continue
        seen[real] = given
        out.append(real)
    return out


def soundfont_sources(sf2: str | Path, cache: str | Path) -> list[Source]:
    """Render every drum preset of ``sf2`` into WAVs under ``cache``; one Source per hit.

    Renders are kept: a second build of the same file reads the WAVs it finds.
    """
    import soundfile as sf

    sf2 = Path(sf2)
    if not sf2.is_file():
        raise CorpusError(f"{sf2}: no such SoundFont file")
    hits = [(n, v) for n in GM_NOTES if gm_label(n) != UNKNOWN for v in VELOCITIES]
    sources: list[Source] = []
    for name, bank, program in drum_presets(sf2):
        kit = f"{sf2.stem}/{bank:03d}-{program:03d} {name}".replace("\\", "_")
        folder = Path(cache) / sf2.stem / f"{bank:03d}-{program:03d}"
        done_flag = folder / "done"
        if not done_flag.is_file():
            rows = render_preset(sf2, bank, program, hits, folder)
            for (note, vel), row in zip(hits, rows, strict=True):
                sf.write(str(folder / f"{note:03d}-{vel:03d}.wav"), row, RENDER_RATE,
                         subtype="FLOAT")
            for tmp in ("hits.mid", "hits.wav"):
                (folder / tmp).unlink(missing_ok=True)
            done_flag.write_text("rendered\n")
        for note, vel in hits:
            sources.append(Source(folder / f"{note:03d}-{vel:03d}.wav",
                                  kit_label(bank, program, note), kit,
                                  GM_NAMES.get(note, f"gm{note}"), collection=sf2.stem))
    return sources


__all__ = ["GM_LABELS", "GM_MAPPED_PROGRAMS", "drum_presets", "gm_label", "hits_midi",
           "kit_label", "read_presets",
           "soundfont_sources"]
