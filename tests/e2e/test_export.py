"""Exported kits in the real players: Hydrogen (h2cli renders a song with the exported drumkit)
and DrumGizmo (its command-line renderer plays a MIDI file through the exported kit), plus the
CLI end to end with the bundled model. Each hit found in the players' output is matched against
every sample of its slot: it must be one of its own velocity layer, and successive hits of one
layer must be different variants (round robin)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from snaresynth.control.kit import Kit, Slot, default_cc
from snaresynth.export import command
from snaresynth.export.render import Rendered, render_kit
from tests.conftest import SineDecoder

pytestmark = pytest.mark.e2e

RATE = 48000
VARIANTS = 2
VELOCITIES = (16, 48, 80, 112)  # one in each of the daemon's four velocity layers


class ShortDecoder(SineDecoder):
    length = 4096  # 0.26 s at 48 kHz: hits a quarter second apart never overlap


def kit() -> Kit:
    return Kit(name="e2e", slots=[
        Slot("main", [38], [0.5, 0.5, 0.5, 0.5]),
        Slot("rim", [37], [0.9, 0.1, 0.6, 0.3], level_db=-4, tune_semitones=2, pan=0.4),
        Slot("low", [41], [0.7, 0.9, 0.3, 0.6], level_db=-2, pan=-0.5),
    ], cc=default_cc(4), velocity_latent=0, velocity_latent_amount=0.6)


@pytest.fixture(scope="module")
def rendered() -> Rendered:
    return render_kit(kit(), ShortDecoder(4), RATE, 24, variants=VARIANTS, variation=0.3,
                      command="snaresynth export-kit e2e")


def hits() -> list[tuple[int, int]]:
    """(slot, velocity) in play order: each slot, each layer, twice (so round robin shows)."""
    return [(slot, v) for slot in range(3) for _ in range(VARIANTS) for v in VELOCITIES]


def identify(audio: np.ndarray, start: int, rendered: Rendered, slot: int,
             search: int = 64) -> tuple[int, int, float]:
    """The (layer, variant) of ``slot`` whose sample best explains ``audio`` from ``start``
    (least squares with a free gain per channel, onset searched within ``search`` frames)."""
    best = (-1, -1, np.inf)
    for s in rendered.slot_samples(slot):
        n = min(s.audio.size, 6000)
        ref = s.audio[:n].astype(np.float64)
        for shift in range(-search, search + 1):
            at = start + shift
            if at < 0 or at + n > audio.shape[0]:
                continue
            seg = audio[at:at + n].astype(np.float64)
            gain = seg.T @ ref / (ref @ ref)
            resid = np.sum((seg - np.outer(ref, gain)) ** 2) / max(np.sum(seg ** 2), 1e-20)
            if resid < best[2]:
                best = (s.layer, s.variant, resid)
    return best


def check_hits(found: list[tuple[int, int, int, int, float]], worst: float = 1e-3) -> None:
    """found: (slot, velocity, layer, variant, residual) per hit, in play order; another
    sample of the same slot leaves a residual of 0.07 or more."""
    last: dict[tuple[int, int], int] = {}
    for slot, velocity, layer, variant, resid in found:
        assert resid < worst, (slot, velocity, resid)
        assert layer == (velocity - 1) * 4 // 127, (slot, velocity, layer)
        if (slot, layer) in last:
            assert variant != last[(slot, layer)], f"slot {slot} layer {layer} repeated"
        last[(slot, layer)] = variant


# --- Hydrogen -------------------------------------------------------------------------------

def h2song(n_instruments: int, notes: list[tuple[int, int, float]]) -> str:
    """A song of one pattern per 4 notes: (instrument, tick, velocity 0..1); the instruments are
    empty, h2cli -k puts the exported kit's in their place."""
    inst = "".join(
        f"<instrument><id>{i}</id><name>i{i}</name><volume>1</volume><isMuted>false</isMuted>"
        "<isSoloed>false</isSoloed><pan>0</pan><gain>1</gain><applyVelocity>true</applyVelocity>"
        "<filterActive>false</filterActive><filterCutoff>1</filterCutoff>"
        "<filterResonance>0</filterResonance><Attack>0</Attack><Decay>0</Decay>"
        "<Sustain>1</Sustain><Release>1000</Release><pitchOffset>0</pitchOffset>"
        "<randomPitchFactor>0</randomPitchFactor><muteGroup>-1</muteGroup>"
        "<isStopNote>false</isStopNote><sampleSelectionAlgo>VELOCITY</sampleSelectionAlgo>"
        "<midiOutChannel>-1</midiOutChannel><midiOutNote>36</midiOutNote><isHihat>-1</isHihat>"
        "<lower_cc>0</lower_cc><higher_cc>127</higher_cc><instrumentComponent>"
        "<component_id>0</component_id><gain>1</gain></instrumentComponent></instrument>"
        for i in range(n_instruments))
    patterns, sequence = [], []
    for p in range(0, len(notes), 4):
        body = "".join(
            f"<note><position>{tick}</position><leadlag>0</leadlag><velocity>{v:.6f}</velocity>"
            f"<pan>0</pan><pitch>0</pitch><probability>1</probability><key>C0</key>"
            f"<length>-1</length><instrument>{i}</instrument><note_off>false</note_off></note>"
            for i, tick, v in notes[p:p + 4])
        patterns.append(f"<pattern><name>p{p}</name><info></info><category>t</category>"
                        f"<size>192</size><denominator>4</denominator><noteList>{body}"
                        "</noteList></pattern>")
        sequence.append(f"<group><patternID>p{p}</patternID></group>")
    # the declaration on a line of its own: with <song> on the same line h2cli plays silence
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<song><version>1.2.0</version><bpm>120</bpm>'
            "<volume>1</volume><metronomeVolume>0</metronomeVolume><name>e2e</name><author>t</author>"
            "<notes>t</notes><license>t</license><loopEnabled>false</loopEnabled>"
            "<patternModeMode>true</patternModeMode><mode>song</mode><humanize_time>0</humanize_time>"
            "<humanize_velocity>0</humanize_velocity><swing_factor>0</swing_factor>"
            "<componentList><drumkitComponent><id>0</id><name>Main</name><volume>1</volume>"
            f"</drumkitComponent></componentList><instrumentList>{inst}</instrumentList>"
            f"<patternList>{''.join(patterns)}</patternList><virtualPatternList/>"
            f"<patternSequence>{''.join(sequence)}</patternSequence></song>")


@pytest.mark.skipif(shutil.which("h2cli") is None, reason="needs Debian's hydrogen (h2cli)")
def test_hydrogen_plays_the_kit(rendered: Rendered, tmp_path: Path) -> None:
    folder = command.write_export(rendered, "hydrogen", tmp_path / "kit").parent
    plan = hits()
    # 48 ticks = a quarter note = 0.5 s at 120 bpm; Hydrogen's velocity is MIDI velocity / 127
    notes = [(slot, 48 * (i % 4), v / 127) for i, (slot, v) in enumerate(plan)]
    (tmp_path / "t.h2song").write_text(h2song(3, notes))
    env = {**os.environ, "HOME": str(tmp_path / "home"), "JACK_NO_START_SERVER": "1"}
    result = subprocess.run(
        ["h2cli", "-s", str(tmp_path / "t.h2song"), "-k", str(folder.resolve()),
         "-o", str(tmp_path / "out.wav"), "-r", str(RATE), "-b", "24", "-d", "alsa"],
        capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "Error loading sample" not in result.stdout
    audio, rate = sf.read(tmp_path / "out.wav", dtype="float32", always_2d=True)
    assert rate == RATE
    found = []
    for i, (slot, velocity) in enumerate(plan):
        start = i * RATE // 2
        layer, variant, resid = identify(audio, start, rendered, slot)
        found.append((slot, velocity, layer, variant, resid))
    check_hits(found)


# --- DrumGizmo ------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("drumgizmo") is None, reason="needs Debian's drumgizmo")
def test_drumgizmo_plays_the_kit(rendered: Rendered, tmp_path: Path) -> None:
    import mido

    kit_xml = command.write_export(rendered, "drumgizmo", tmp_path / "kit")
    plan = hits()
    notes = [kit().slots[slot].notes[0] for slot in range(3)]
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    for i, (slot, velocity) in enumerate(plan):
        track.append(mido.Message("note_on", note=notes[slot], velocity=velocity,
                                  time=0 if i == 0 else 240))  # 0.25 s apart
        track.append(mido.Message("note_off", note=notes[slot], velocity=0, time=0))
    midi.save(tmp_path / "t.mid")
    (tmp_path / "out").mkdir()
    result = subprocess.run(
        ["drumgizmo", "-i", "midifile", "-I",
         f"file={tmp_path / 't.mid'},midimap={tmp_path / 'kit' / 'midimap.xml'}",
         "-o", "wavfile", "-O", f"file={tmp_path / 'out'}/,srate={RATE}", "-r",
         # equal powers are told apart by DrumGizmo's diversity term; without its random
         # term it always takes the one played least lately: a strict round robin
         "-p", "diverse=0.3,random=0",
         "-e", str(RATE * 16), str(kit_xml)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    found = []
    for slot in range(3):
        # one output channel per slot, named after it: only that slot's hits are on it
        (path,) = (tmp_path / "out").glob(f"{slot + 1:02d}_*-{slot}.wav")
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        assert rate == RATE
        # the wavfile output drops the engine's latency (144 frames) from its start, which
        # cuts into a hit at time 0: pad it back, and let the first onset be searched for
        audio = np.concatenate([np.zeros((512, 1), np.float32), audio])
        pos = 0
        for hit_slot, velocity in plan:
            if hit_slot != slot:
                continue
            # DrumGizmo 0.9.20's midifile input places events late (an absolute offset read
            # as one into the block), so hits are found by their onset, in order
            loud = np.flatnonzero(np.abs(audio[pos:, 0]) > 1e-6)
            assert loud.size, f"slot {slot}: a hit is missing"
            start = pos + int(loud[0])
            layer, variant, resid = identify(audio, start, rendered, slot, search=256)
            found.append((slot, velocity, layer, variant, resid))
            pos = start + max(s.audio.size for s in rendered.slot_samples(slot))
        assert not np.any(np.abs(audio[pos:, 0]) > 1e-6), f"slot {slot}: extra sound"
    check_hits(found, worst=1e-2)  # the first hit lost its first 144 frames


# --- the command line, with the bundled model -----------------------------------------------

def test_cli_exports_a_preset(tmp_path: Path) -> None:
    out = tmp_path / "default-sfz"
    result = subprocess.run(
        [sys.executable, "-m", "snaresynth.cli", "-q", "export-kit", "default", "--format", "sfz",
         "--out", str(out), "--bits", "16", "--variants", "2", "--variation", "0.1"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    manifest = tomllib.loads((out / "export.toml").read_text())
    assert manifest["format"] == "sfz" and manifest["bits"] == 16
    assert "export-kit default --format sfz" in manifest["command"]
    assert len(manifest["sample"]) == 5 * 4 * 2  # the default kit: 5 slots, 4 layers, 2 variants
    info = sf.info(out / manifest["sample"][0]["file"])
    assert (info.samplerate, info.subtype) == (48000, "PCM_16")
    assert [p.name for p in tmp_path.iterdir()] == ["default-sfz"]  # no temp folder left
    again = subprocess.run(
        [sys.executable, "-m", "snaresynth.cli", "export-kit", "default", "--out", str(out)],
        capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and len(again.stderr.strip().splitlines()) == 1
