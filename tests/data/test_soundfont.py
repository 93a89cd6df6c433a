"""SoundFont drum kits: preset headers, the GM key map, the MIDI file of hits (no rendering)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from snaresynth.data.soundfont import drum_presets, gm_label, hits_midi, read_presets
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


def test_hits_midi_is_a_well_formed_file() -> None:
    data = hits_midi(128, 25, [(38, 100), (36, 90)])
    assert data[:4] == b"MThd" and data[14:18] == b"MTrk"
    length = struct.unpack(">I", data[18:22])[0]
    track = data[22:]
    assert len(track) == length and track.endswith(b"\xff\x2f\x00")
    assert bytes([0xC9, 25]) in track and bytes([0x99, 38, 100]) in track  # drum channel 10
    melodic = hits_midi(0, 3, [(38, 100)])
    assert bytes([0xB0, 0, 0]) in melodic and bytes([0x90, 38, 100]) in melodic
