"""SoundFont drum kits: preset headers, the GM key map, the MIDI file of hits (no rendering)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from snaresynth.data.soundfont import (
    distinct_soundfonts,
    drum_presets,
    gm_label,
    hits_midi,
    kit_label,
    read_presets,
)
from snaresynth.errors import CorpusError


def _chunk(cid: bytes, data: bytes) -> bytes:
    return cid + struct.pack("<I", len(data)) + data + (b"\0" if len(data) & 1 else b"")


def _sf2(path: Path, presets: list[tuple[str, int, int]]) -> Path:
    records = b"".join(name.encode().ljust(20, b"\0") + struct.pack("<HHHIII", prog, bank, 0,
                                                                      0, 0, 0)
                       for name, bank, prog in [*presets, ("EOP", 0, 0)])
    info = _chunk(b"LIST", b"INFO" + _chunk(b"ifil", struct.pack("<HH", 2, 1)))
    sdta = _chunk(b"LIST", b"sdta" + _chunk(b"smpl", b"\0" * 7))
    pdta = _chunk(b"LIST", b"pdta" + _chunk(b"phdr", records) + _chunk(b"pbag", b"\0" * 4))
    path.write_bytes(_chunk(b"RIFF", b"sfbk" + info + sdta + pdta))
    return path


def test_presets_and_drum_kits(tmp_path: Path) -> None:
    gm = _sf2(tmp_path / "gm.sf2", [("Piano", 0, 0), ("Standard", 128, 0),
                                     ("Standard 2", 128, 2), ("TR 808", 128, 25)])
    assert ("Piano", 0, 0) in read_presets(gm)
    # bank 128 only, and a numbered variant of a kit that is there is left out
    assert drum_presets(gm) == [("Standard", 128, 0), ("TR 808", 128, 25)]
    # sets whose keys are not the GM map: GS's SFX set, MuseScore's marching percussion
    odd = _sf2(tmp_path / "odd.sf2", [("Standard", 128, 0), ("Orchestra", 128, 48),
                                       ("SFX", 128, 56), ("Marching Snare", 128, 56),
                                       ("Marching Tenor", 128, 96), ("CM-64/32 Set", 128, 127)])
    assert [p[2] for p in drum_presets(odd)] == [0, 48, 127]
    kit = _sf2(tmp_path / "kit.sf2", [("Black_Pearl_4pc", 0, 0)])
    assert drum_presets(kit) == [("Black_Pearl_4pc", 0, 0)]  # a drum-only file: all presets
    (tmp_path / "x.sf2").write_bytes(b"RIFF\0\0\0\0WAVE")
    with pytest.raises(CorpusError, match="not a SoundFont"):
        read_presets(tmp_path / "x.sf2")
    with pytest.raises(CorpusError, match="cannot read"):
        read_presets(tmp_path / "missing.sf2")


def test_gm_key_map() -> None:
    assert gm_label(38) == gm_label(40) == "snare"
    assert gm_label(37) == "other"  # side stick is not a snare hit
    assert (gm_label(36), gm_label(42), gm_label(45), gm_label(49), gm_label(39)) == (
        "kick", "hat", "tom", "cymbal", "clap")
    assert gm_label(70) == "other" and gm_label(20) == "unknown"


def test_the_gs_sets_exceptions_to_the_gm_map() -> None:
    assert kit_label(128, 0, 42) == "hat" and kit_label(128, 0, 39) == "clap"
    # Orchestra: timpani on 41-53, concert snares still on 38 and 40
    assert {kit_label(128, 48, n) for n in range(41, 54)} == {"other"}
    assert kit_label(128, 48, 38) == kit_label(128, 48, 40) == "snare"
    assert kit_label(128, 48, 57) == "cymbal"
    assert kit_label(128, 40, 39) == "snare"  # the Brush set's brush slap
    assert kit_label(0, 48, 42) == "hat"  # a drum-only file (bank 0): the plain GM map


def test_hits_midi_is_a_well_formed_file() -> None:
    data = hits_midi(128, 25, [(38, 100), (36, 90)])
    assert data[:4] == b"MThd" and data[14:18] == b"MTrk"
    length = struct.unpack(">I", data[18:22])[0]
    track = data[22:]
    assert len(track) == length and track.endswith(b"\xff\x2f\x00")
    assert bytes([0xC9, 25]) in track and bytes([0x99, 38, 100]) in track  # drum channel 10
    melodic = hits_midi(0, 3, [(38, 100)])
    assert bytes([0xB0, 0, 0]) in melodic and bytes([0x90, 38, 100]) in melodic


def test_a_soundfont_named_twice_is_taken_once_by_its_own_name(tmp_path: Path) -> None:
    real = _sf2(tmp_path / "MuseScore_General.sf2", [("Standard", 128, 0)])
    other = _sf2(tmp_path / "TimGM6mb.sf2", [("Standard", 128, 0)])  # same bytes, its own file
    link = tmp_path / "default-GM.sf2"  # what Debian's alternatives make
    link.symlink_to(real)
    missing = tmp_path / "gone.sf2"
    # the link first, as a shell's glob may sort it: the kits still get the bank's own name
    assert distinct_soundfonts([link, other, real, missing, link]) == [
        real.resolve(), other.resolve(), missing]
