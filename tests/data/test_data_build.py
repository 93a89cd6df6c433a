"""Corpus building from generated kits and folders: alignment, skipping, augmentation, CLI."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from snaresynth import dsp
from snaresynth.cli import main
from snaresynth.data import augment
from snaresynth.data.build import build_corpus, folder_sources, parse_instruments
from snaresynth.data.corpus import load_corpus
from snaresynth.data.hydrogen import find_kits, kit_sources
from snaresynth.data.prepare import FADE_OUT_S, PRE_ROLL_S, align_window, prepare
from snaresynth.dsp import LENGTH
from snaresynth.errors import CorpusError
from tests.data.conftest import drum

RATE = 32000
LEAD = int(round(PRE_ROLL_S * RATE))


def test_kit_sources_label_every_layer(kits: Path) -> None:
    sources = kit_sources(kits / "KitA")
    by_file = {s.path.name: s for s in sources}
    assert by_file["sn_soft.wav"].label == by_file["sn_hard.flac"].label == "snare"
    assert by_file["kick.wav"].label == "kick"
    assert by_file["hat.flac"].label == "hat"
    assert by_file["stick.wav"].label == "other"
    assert by_file["empty.flac"].label == "unknown"
    assert {s.group for s in sources} == {"KitA"}
    assert "Ride" not in {s.instrument for s in sources}  # no layers, nothing to take
    assert [k.name for k in find_kits(kits)] == ["KitA", "KitB"]
    assert find_kits(kits / "KitB") == [kits / "KitB"]


def test_kit_files_outside_the_kit_are_refused(tmp_path: Path, caplog) -> None:
    kit = tmp_path / "Evil"
    kit.mkdir()
    (kit / "drumkit.xml").write_text(
        "<drumkit_info><name>Evil</name><instrument><name>Snare</name>"
        "<layer><filename>../../etc/passwd</filename></layer>"
        "<layer><filename>/etc/passwd</filename></layer></instrument></drumkit_info>")
    with caplog.at_level(logging.WARNING):
        assert kit_sources(kit) == []
    assert "outside the kit" in caplog.text


def test_align_window_puts_the_onset_after_the_pre_roll() -> None:
    hit = drum("snare", RATE, seconds=0.2, lead_s=0.1)
    window = align_window(hit, RATE)
    assert window.shape == (LENGTH,)
    assert dsp.onset_index(window) == LEAD
    assert np.all(window[LEAD + int(0.2 * RATE):] == 0.0)  # padded with silence


def test_align_window_pads_in_front_when_the_file_starts_at_its_onset() -> None:
    hit = drum("kick", RATE, seconds=0.2, lead_s=0.0)
    onset = dsp.onset_index(hit)
    assert 0 < onset < LEAD
    window = align_window(hit, RATE)
    assert dsp.onset_index(window) == LEAD
    start = LEAD - onset
    assert np.all(window[:start] == 0.0)
    np.testing.assert_array_equal(window[start:start + 100], hit[:100])  # attack kept as is


def test_long_sounds_are_cut_with_a_fade_out() -> None:
    tone = np.full(3 * LENGTH, 0.5, dtype=np.float32)
    tone[:1000] = 0.0
    window = align_window(tone, RATE)
    fade = int(FADE_OUT_S * RATE)
    assert window[LEAD + 10] == pytest.approx(0.5)
    assert abs(window[-1]) < 1e-4
    assert np.all(np.diff(window[-fade:]) <= 1e-7)  # monotone down, no click


def test_prepare_resamples_and_peak_normalises() -> None:
    out = prepare(drum("snare", 48000, seconds=0.3) * 0.1, 48000, RATE)
    assert out.dtype == np.float32 and out.shape == (LENGTH,)
    assert float(np.max(np.abs(out))) == pytest.approx(0.999, abs=1e-6)


def test_build_from_hydrogen_kits(kits: Path, tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        report = build_corpus(tmp_path / "c", hydrogen=kits, rate=RATE, progress=False)
    assert report.counts == {"hat": 2, "kick": 2, "other": 2, "snare": 4}
    for bad in ("empty.flac", "missing.wav", "broken.wav"):
        assert bad in caplog.text
    # byte-identical files (the empty and the broken one) are looked at once, the missing
    # file is named once per kit
    assert [sum(bad in line for line in report.skipped)
            for bad in ("empty.flac", "missing.wav", "broken.wav")] == [1, 2, 1]
    corpus = load_corpus(tmp_path / "c")
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert corpus.audio.shape == (10, LENGTH)
    assert manifest["fingerprint"] == corpus.fingerprint == report.fingerprint
    assert manifest["sample_rate"] == RATE and manifest["length"] == LENGTH
    item = corpus.items[0]
    assert set(item) >= {"source", "label", "sha256", "augment", "group"}
    assert item["sha256"] == hashlib.sha256(Path(item["source"]).read_bytes()).hexdigest()
    assert item["augment"] is None
    peaks = np.max(np.abs(corpus.audio), axis=1)
    np.testing.assert_allclose(peaks, 0.999, atol=1e-5)
    assert all(dsp.onset_index(row) == LEAD for row in corpus.audio)


def test_the_same_file_twice_is_kept_once(kits: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "snare.wav").write_bytes((kits / "KitA" / "sn_soft.wav").read_bytes())
    report = build_corpus(tmp_path / "c", folders=[copy], hydrogen=kits / "KitA",
                          progress=False)
    assert report.duplicates == 1
    assert report.counts["snare"] == 2


def test_augmentation_is_seeded_and_recorded(kits: Path, tmp_path: Path) -> None:
    kw = {"hydrogen": kits / "KitA", "instruments": ["snare"], "progress": False, "augment": 3}
    build_corpus(tmp_path / "a", seed=1, **kw)
    build_corpus(tmp_path / "b", seed=1, **kw)
    build_corpus(tmp_path / "c", seed=2, **kw)
    a, b, c = (load_corpus(tmp_path / x) for x in "abc")
    assert a.audio.shape[0] == 2 * (1 + 3)
    np.testing.assert_array_equal(a.audio, b.audio)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    copies = [it["augment"] for it in a.items if it["augment"]]
    assert [cp["copy"] for cp in copies] == [0, 1, 2, 0, 1, 2]
    for cp in copies:
        assert -augment.MAX_SEMITONES <= cp["semitones"] <= augment.MAX_SEMITONES
        assert augment.MIN_GAIN_DB <= cp["gain_db"] <= 0.0
        assert abs(cp["shift_ms"]) <= augment.MAX_SHIFT_S * 1000
    # originals are unchanged by augmentation, copies differ from them
    plain = load_corpus(build_corpus(tmp_path / "p", hydrogen=kits / "KitA",
                                     instruments=["snare"], progress=False).path)
    np.testing.assert_array_equal(a.audio[[0, 4]], plain.audio)
    assert not np.allclose(a.audio[1], a.audio[0])


def test_augment_draw_depends_only_on_seed_key_and_copy() -> None:
    assert augment.draw(0, "abc", 1) == augment.draw(0, "abc", 1)
    assert augment.draw(0, "abc", 1) != augment.draw(0, "abc", 2)
    assert augment.draw(0, "abc", 1) != augment.draw(1, "abc", 1)


def test_pitch_augmentation_changes_the_length_of_the_sound() -> None:
    tone = np.zeros(LENGTH, dtype=np.float32)
    tone[100:4100] = 0.5
    up = augment.apply(tone, RATE, augment.Augment(0, 0.0, 1.0, 0.0), RATE, LENGTH)
    down = augment.apply(tone, RATE, augment.Augment(0, 0.0, -1.0, 0.0), RATE, LENGTH)
    loud_up, loud_down = (int(np.sum(np.abs(x) > 0.25)) for x in (up, down))
    assert loud_up == pytest.approx(4000 / 2 ** (1 / 12), abs=40)
    assert loud_down == pytest.approx(4000 * 2 ** (1 / 12), abs=40)


def test_folder_labels_from_names_and_override(tmp_path: Path) -> None:
    root = tmp_path / "samples"
    for rel in ("Snares/bright 01.wav", "misc/kick_03.flac", "misc/thing.ogg", "x.txt"):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".txt"):
            path.write_text("not audio")
        else:
            sf.write(path, drum("snare", 44100, seconds=0.1), 44100)
    labels = {s.path.name: s.label for s in folder_sources(root)}
    assert labels == {"bright 01.wav": "snare", "kick_03.flac": "kick", "thing.ogg": "unknown"}
    assert {s.label for s in folder_sources(root, label="clap")} == {"clap"}
    report = build_corpus(tmp_path / "c", folders=[root], instruments=["snare", "kick"],
                          progress=False)
    assert report.counts == {"kick": 1, "snare": 1}


def test_nothing_usable_is_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "bad"
    root.mkdir()
    (root / "snare.wav").write_bytes(b"garbage")
    with pytest.raises(CorpusError, match="no usable audio"):
        build_corpus(tmp_path / "c", folders=[root], progress=False)
    with pytest.raises(CorpusError, match="nothing to build"):
        build_corpus(tmp_path / "c", progress=False)
    with pytest.raises(CorpusError, match="no such sample folder"):
        build_corpus(tmp_path / "c", folders=[tmp_path / "nope"], progress=False)
    assert not (tmp_path / "c" / "audio.npy").exists()


def test_parse_instruments() -> None:
    assert parse_instruments("snare, Kick") == ["snare", "kick"]
    assert parse_instruments(None) is None
    with pytest.raises(ValueError, match="unknown instrument"):
        parse_instruments("snare,banjo")


def test_cli_dataset_build_and_info(kits: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "corpus"
    assert main(["-q", "dataset", "build", "--hydrogen", str(kits), "--out", str(out),
                 "--instruments", "snare,kick", "--augment", "1", "--rate", "22050"]) == 0
    text = capsys.readouterr().out
    assert "snare" in text and "22050 Hz" in text
    assert load_corpus(out).sample_rate == 22050
    assert main(["dataset", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["labels"] == {"kick": {"sources": 2, "augmented": 2},
                              "snare": {"sources": 4, "augmented": 4}}
    assert main(["dataset", "build", "--out", str(out)]) == 2  # nothing to build from
    assert main(["dataset", "build", "--hydrogen", str(kits), "--out", str(out),
                 "--instruments", "banjo"]) == 2
