"""``snaresynth render --knobs``: fewer knobs than the model has dimensions are padded with the
centre (0.5), as kits are; more is one clear line and exit code 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from snaresynth.analysis.render import pad_knobs
from snaresynth.cli import main
from snaresynth.errors import SnareSynthError


def test_missing_knobs_sit_at_the_centre() -> None:
    assert pad_knobs([0.2, 0.8], 5).tolist() == [0.2, 0.8, 0.5, 0.5, 0.5]
    assert pad_knobs([], 3).tolist() == [0.5, 0.5, 0.5]
    assert pad_knobs([0.0, 1.0], 2).tolist() == [0.0, 1.0]


def test_too_many_knobs_name_the_model_size() -> None:
    with pytest.raises(SnareSynthError, match="3 values given, this model has 2 latent"):
        pad_knobs([0.1, 0.2, 0.3], 2)


def test_a_knob_outside_0_1_is_refused() -> None:
    with pytest.raises(SnareSynthError, match="0..1, got 1.5"):
        pad_knobs([0.5, 1.5], 4)


def test_render_pads_like_a_kit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    short, full = tmp_path / "short.wav", tmp_path / "full.wav"
    assert main(["render", "--knobs", "0.2,0.8", "--out", str(short)]) == 0
    assert main(["render", "--knobs", "0.2,0.8" + ",0.5" * 6, "--out", str(full)]) == 0
    np.testing.assert_array_equal(sf.read(short)[0], sf.read(full)[0])  # bundled: 8 dims


def test_render_with_too_many_knobs_is_one_line(capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    assert main(["render", "--knobs", ",".join(["0.5"] * 9), "--out",
                 str(tmp_path / "x.wav")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "9 values given, this model has 8" in err[0], err
    assert not (tmp_path / "x.wav").exists()
