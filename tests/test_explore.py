"""explore: the latent grid values and the PNG it writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from snaresynth.analysis.explore import DPI, explore_grid, figure_size, grid_latents


@pytest.mark.parametrize("kind", ["wave", "spec"])
def test_explore_writes_a_png_of_the_right_size(sine_decoder, tmp_path: Path, kind: str) -> None:
    import matplotlib.image

    out = explore_grid(sine_decoder, tmp_path / "sub" / "grid.png", dims=(0, 1), steps=3,
                       kind=kind)
    image = matplotlib.image.imread(out)
    width, height = figure_size(3)
    assert image.shape[:2] == (round(height * DPI), round(width * DPI))
    assert image[..., :3].std() > 0.05  # something is drawn


def test_grid_latents_span_the_knobs_with_other_dims_centred(sine_decoder) -> None:
    knobs, z = grid_latents(sine_decoder, (2, 0), 4)
    assert knobs.tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1])
    lo, hi = sine_decoder.latent_range()
    assert z.shape == (4, 4, 4)
    np.testing.assert_allclose(z[:, :, 2], np.tile(np.linspace(lo[2], hi[2], 4), (4, 1)))
    np.testing.assert_allclose(z[:, :, 0], np.tile(np.linspace(lo[0], hi[0], 4), (4, 1)).T)
    np.testing.assert_allclose(z[:, :, [1, 3]], 0.0)


def test_bad_arguments(sine_decoder, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="out of range"):
        grid_latents(sine_decoder, (0, 4), 3)
    with pytest.raises(ValueError, match="different"):
        grid_latents(sine_decoder, (1, 1), 3)
    with pytest.raises(ValueError, match="kind"):
        explore_grid(sine_decoder, tmp_path / "x.png", kind="video")


def test_cli_explore_on_a_model_file(tmp_path: Path, capsys) -> None:
    import keras

    from snaresynth.cli import main
    from snaresynth.models.autoencoder import build_decoder
    from snaresynth.models.base import LENGTH, ModelMetadata, save_model_file

    keras.utils.set_random_seed(0)
    meta = ModelMetadata(family="autoencoder", latent_dim=3, sample_rate=32000,
                         latent_lo=[-1.0] * 3, latent_hi=[1.0] * 3)
    path = save_model_file(tmp_path / "ae.keras", build_decoder(3, [8], LENGTH, "relu"), meta)
    out = tmp_path / "grid.png"
    assert main(["explore", "--model", str(path), "--dims", "2", "1", "--steps", "2",
                 "--kind", "spec", "--out", str(out)]) == 0
    assert out.is_file() and str(out) in capsys.readouterr().out
    assert main(["explore", "--model", str(path), "--dims", "0", "3", "--out", str(out)]) == 2
