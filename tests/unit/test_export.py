"""export/: the renderer plays what the daemon plays, the SFZ maps it sample for sample (read
back by export/sfz_read and linted by sfzlint), the Hydrogen and DrumGizmo files have the
fields their parsers read, and bad input is one line, exit code 2, nothing written."""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from snaresynth import dsp
from snaresynth.cli import main
from snaresynth.control.kit import Kit, Slot, default_cc
from snaresynth.decode.worker import DecodeWorker
from snaresynth.engine.planner import VELOCITY_LAYERS, Rates, layer_of_velocity, slot_requests
from snaresynth.export import command
from snaresynth.export.folder import staged_folder
from snaresynth.export.hydrogen import NAMESPACE, velocity_bounds
from snaresynth.export.render import ExportError, render_kit, velocity_ranges
from snaresynth.export.sfz_read import SfzError, SfzInstrument, parse
from snaresynth.rt.mixer import pan_gains
from tests.conftest import SineDecoder

RATE = 48000


def small_kit(layered: bool = True) -> Kit:
    return Kit(name="tiny", slots=[
        Slot("main", [38, 40], [0.5, 0.5, 0.5, 0.5]),
        Slot("rim", [37], [0.9, 0.1, 0.6, 0.3], level_db=-4, tune_semitones=3, decay=0.3,
             pan=0.4, choke_group=1),
        Slot("low", [41], [0.1, 0.7, 0.3, 0.6], level_db=-2, tune_semitones=-5, pan=-0.5,
             choke_group=1),
    ], cc=default_cc(4), velocity_latent=0 if layered else None, velocity_latent_amount=0.5)


@pytest.fixture(scope="module")
def rendered():
    return render_kit(small_kit(), SineDecoder(4), RATE, 24, variants=3, variation=0.2,
                      source="test", model="sine", command="snaresynth export-kit tiny")


def test_velocity_ranges_are_the_daemons_layers() -> None:
    ranges = velocity_ranges(True)
    assert [r[0] for r in ranges] == list(range(VELOCITY_LAYERS))
    assert ranges[0][1] == 1 and ranges[-1][2] == 127
    for layer, lo, hi in ranges:
        assert all(layer_of_velocity(v / 127) == layer for v in range(lo, hi + 1))
    assert velocity_ranges(False) == [(VELOCITY_LAYERS - 1, 1, 127)]
    # Hydrogen's 0..1 ranges neither overlap nor leave holes at any MIDI velocity
    bounds = [velocity_bounds(lo, hi) for _, lo, hi in ranges]
    for v in range(1, 128):
        assert sum(lo <= v / 127 <= hi for lo, hi in bounds) == 1


def test_variant_zero_is_the_buffer_the_daemon_plays(rendered) -> None:
    kit = small_kit()
    got: dict[object, np.ndarray] = {}
    worker = DecodeWorker(SineDecoder(4), lambda target, buf, req: got.__setitem__(target, buf))
    for index in range(len(kit.slots)):
        for request in slot_requests(kit, index, kit.slots[index].knobs, Rates(16000, RATE)):
            got[request.target] = worker._decode(request)
    for s in rendered.samples:
        if s.variant == 0:
            daemon = next(buf for t, buf in got.items() if (t.slot, t.layer) == (s.slot, s.layer))
            np.testing.assert_array_equal(s.audio, daemon)
    assert len(rendered.samples) == 3 * VELOCITY_LAYERS * 3
    # variants differ from each other within a layer
    first = rendered.layers(0)[0]
    assert not np.allclose(first[0].audio[:2000], first[1].audio[:2000])


def test_sfz_plays_back_as_the_daemon_mixes(rendered, tmp_path: Path) -> None:
    out = command.write_export(rendered, "sfz", tmp_path / "kit")
    assert out.name == "tiny.sfz"
    inst = SfzInstrument(out)
    assert inst.rate == RATE
    kit = rendered.kit
    wav = {s.path: sf.read(tmp_path / "kit" / s.path, dtype="float32")[0]
           for s in rendered.samples}
    events, expected_hits = [], []
    frame = 0
    for note, slot in ((38, 0), (40, 0), (37, 1), (41, 2)):
        for velocity in (10, 45, 70, 100, 127, 127, 127, 127):
            events.append((frame, note, velocity))
            expected_hits.append((frame, slot, velocity))
            frame += 70000  # longer than any sample (the -5 st one is 65610): no overlap
    counters: dict[tuple[int, int, int], int] = {}
    expected = np.zeros((frame, 2), dtype=np.float64)
    for start, slot, velocity in expected_hits:
        layer = layer_of_velocity(velocity / 127)
        note = next(n for f, n, v in events if f == start)
        n = counters.get((note, slot, layer), 0)
        counters[(note, slot, layer)] = n + 1
        s = rendered.layers(slot)[layer][n % rendered.variants]
        gain = dsp.velocity_gain(velocity / 127, kit.velocity_curve) * dsp.db_to_gain(
            kit.slots[slot].level_db)
        left, right = pan_gains(kit.slots[slot].pan)
        audio = wav[s.path].astype(np.float64) * gain
        expected[start:start + audio.size, 0] += audio * left
        expected[start:start + audio.size, 1] += audio * right
    np.testing.assert_allclose(inst.render(events, frame), expected, atol=2e-6)


def test_sfz_choke_group_stops_the_other_slot(rendered, tmp_path: Path) -> None:
    inst = SfzInstrument(command.write_export(rendered, "sfz", tmp_path / "kit"))
    out = inst.render([(0, 37, 127), (1000, 41, 127)], 20000)
    alone = SfzInstrument(tmp_path / "kit" / "tiny.sfz").render([(0, 37, 127)], 20000)
    np.testing.assert_allclose(out[:1000], alone[:1000], atol=1e-7)
    rim_only = alone[1000:2000]
    assert np.abs(rim_only).max() > 1e-4  # the rim still rings where the low one cuts it
    low = SfzInstrument(tmp_path / "kit" / "tiny.sfz").render([(1000, 41, 127)], 20000)
    np.testing.assert_allclose(out[1000:], low[1000:], atol=1e-7)


def test_sfz_reader_refuses_what_it_cannot_play() -> None:
    with pytest.raises(SfzError, match="unsupported opcode"):
        parse("<region> sample=a.wav cutoff=100")
    with pytest.raises(SfzError, match="unsupported header"):
        parse("<curve> v000=0")
    regions = parse("<global> volume=-3 <group> key=c4 // x\n<region> sample=a b.wav lovel=9")
    assert regions == [{"volume": "-3", "key": "c4", "sample": "a b.wav", "lovel": "9"}]


@pytest.mark.skipif(shutil.which("sfzlint") is None and not Path(".venv/bin/sfzlint").exists(),
                    reason="sfzlint is not installed (pip install -e .[test])")
def test_sfzlint_accepts_the_sfz(rendered, tmp_path: Path) -> None:
    out = command.write_export(rendered, "sfz", tmp_path / "kit")
    lint = shutil.which("sfzlint") or ".venv/bin/sfzlint"
    result = subprocess.run([lint, str(out)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout


def test_hydrogen_drumkit_xml(rendered, tmp_path: Path) -> None:
    out = command.write_export(rendered, "hydrogen", tmp_path / "kit")
    root = ET.parse(out).getroot()
    ns = {"h": NAMESPACE}
    assert root.tag == f"{{{NAMESPACE}}}drumkit_info"
    instruments = root.findall("h:instrumentList/h:instrument", ns)
    assert [i.findtext("h:name", namespaces=ns) for i in instruments] == ["main", "rim", "low"]
    rim = instruments[1]
    assert rim.findtext("h:muteGroup", namespaces=ns) == "1"
    assert rim.findtext("h:sampleSelectionAlgo", namespaces=ns) == "ROUND_ROBIN"
    assert float(rim.findtext("h:gain", namespaces=ns)) == pytest.approx(dsp.db_to_gain(-4))
    layers = rim.findall("h:instrumentComponent/h:layer", ns)
    assert len(layers) == VELOCITY_LAYERS * 3
    for layer in layers:  # Hydrogen keeps only the file name: samples lie beside drumkit.xml
        assert (tmp_path / "kit" / layer.findtext("h:filename", namespaces=ns)).is_file()
    assert "snaresynth export-kit tiny" in root.findtext("h:info", namespaces=ns)


def test_hydrogen_refuses_more_than_16_layers(tmp_path: Path) -> None:
    big = render_kit(small_kit(), SineDecoder(4), RATE, 16, variants=5, variation=0.1)
    with pytest.raises(ExportError, match="at most 16 layers"):
        command.write_export(big, "hydrogen", tmp_path / "kit")
    assert list(tmp_path.iterdir()) == []


def test_drumgizmo_kit(rendered, tmp_path: Path) -> None:
    out = command.write_export(rendered, "drumgizmo", tmp_path / "kit")
    root = ET.parse(out).getroot()
    assert root.get("samplerate") == str(RATE)
    refs = root.findall("instruments/instrument")
    assert [r.get("group") for r in refs] == [None, "choke1", "choke1"]
    for ref in refs:
        inst = ET.parse(tmp_path / "kit" / ref.get("file")).getroot()
        assert inst.get("version") == "2.0" and inst.get("name") == ref.get("name")
        powers = sorted({float(s.get("power")) for s in inst.findall("samples/sample")})
        assert powers == [1.0, 2.0, 3.0, 4.0]
        for audiofile in inst.findall("samples/sample/audiofile"):
            assert (tmp_path / "kit" / "instruments" / audiofile.get("file")).resolve().is_file()
    midimap = ET.parse(tmp_path / "kit" / "midimap.xml").getroot()
    assert sorted(int(m.get("note")) for m in midimap) == [37, 38, 40, 41]


def test_unlayered_kit_has_one_layer(tmp_path: Path) -> None:
    r = render_kit(small_kit(layered=False), SineDecoder(4), RATE, 16)
    assert {(s.layer, s.lovel, s.hivel) for s in r.samples} == {(VELOCITY_LAYERS - 1, 1, 127)}
    assert len(r.samples) == 3


def test_staged_folder_leaves_nothing_on_failure(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), staged_folder(tmp_path / "kit") as tmp:
        (tmp / "half.wav").write_bytes(b"x")
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "kit").mkdir()
    (tmp_path / "kit" / "old").write_text("old")
    with pytest.raises(ExportError, match="already exists"), staged_folder(tmp_path / "kit"):
        pass
    with staged_folder(tmp_path / "kit", force=True) as tmp:
        (tmp / "new").write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["kit"]
    assert [p.name for p in (tmp_path / "kit").iterdir()] == ["new"]


# --- the command line: one line on stderr, exit code 2, nothing written ----------------------

def _run(capsys, *args: str) -> tuple[int, list[str]]:
    code = main(["export-kit", *args])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def test_unknown_kit(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SNARESYNTH_PRESET_DIR", str(tmp_path / "presets"))
    code, err = _run(capsys, "no-such-kit", "--out", str(tmp_path / "out"))
    assert code == 2 and len(err) == 1 and "no preset named" in err[0]
    code, err = _run(capsys, str(tmp_path / "missing.toml"), "--out", str(tmp_path / "out"))
    assert code == 2 and len(err) == 1 and "cannot read" in err[0]
    assert not (tmp_path / "out").exists()


def test_unknown_format(capsys, tmp_path: Path) -> None:
    code, err = _run(capsys, "default", "--format", "akai", "--out", str(tmp_path / "out"))
    assert code == 2 and len(err) == 1 and "unknown format 'akai'" in err[0]
    assert not (tmp_path / "out").exists()


def test_existing_target(capsys, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep")
    code, err = _run(capsys, "default", "--out", str(tmp_path / "out"))
    assert code == 2 and len(err) == 1 and "already exists (use --force" in err[0]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["mine.txt"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder(capsys, tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        code, err = _run(capsys, "default", "--out", str(folder / "out"))
    finally:
        folder.chmod(0o755)
    assert code == 2 and len(err) == 1 and "cannot write here" in err[0]
    assert list(folder.iterdir()) == []


def test_read_only_folder_as_root(capsys, tmp_path: Path, monkeypatch) -> None:
    """Root ignores permissions, so the refusal is shown by a failing temporary folder (EROFS)."""
    from snaresynth.export import folder

    def refuse(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(folder, "temp_dir", refuse)
    code, err = _run(capsys, "default", "--out", str(tmp_path / "out"), "--model",
                     "default")
    assert code == 2 and len(err) == 1 and "Read-only file system" in err[0]
    assert list(tmp_path.iterdir()) == []
