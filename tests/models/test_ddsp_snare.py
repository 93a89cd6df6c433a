"""ddsp_snare family: builds, trains a few steps, fixes its knob space, saves, reloads safely."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from snaresynth.models import ddsp_snare  # noqa: E402
from snaresynth.models.base import ModelMetadata, save_model_file  # noqa: E402
from snaresynth.models.registry import load_model_file  # noqa: E402

RATE, LENGTH = 16000, 16384
SMALL = {"latent_dim": 4, "hidden": 32, "enc_channels": 16, "n_mels": 32, "batch_size": 4,
         "n_bands": 8, "n_modes": 3, "order_probes": 4, "fft_sizes": [1024, 256, 64]}


def _tiny_corpus(n: int = 8, seed: int = 0) -> np.ndarray:
    """Synthetic snare-like hits: a decaying tone plus decaying noise, peak-normalised."""
    rng = np.random.default_rng(seed)
    t = np.arange(LENGTH) / RATE
    rows = []
    for _ in range(n):
        f0, tone_decay, noise_decay = rng.uniform(150, 300), rng.uniform(0.02, 0.1), 0.1
        x = np.sin(2 * np.pi * f0 * t) * np.exp(-t / tone_decay)
        x += rng.uniform(0.3, 1.0) * rng.standard_normal(LENGTH) * np.exp(-t / noise_decay)
        rows.append(x / np.max(np.abs(x)) * 0.999)
    return np.stack(rows).astype(np.float32)


def test_family_contract() -> None:
    assert ddsp_snare.FAMILY == "ddsp_snare"
    config = ddsp_snare.default_config()
    for key in ("latent_dim", "batch_size", "learning_rate"):
        assert key in config


def test_train_fit_knobs_save_reload_decode(tmp_path: Path) -> None:
    config = {**ddsp_snare.default_config(), **SMALL}
    audio = _tiny_corpus()
    trainer = ddsp_snare.build_trainer(config, RATE, LENGTH)
    trainer.compile()  # the training loop's contract: compile() without arguments
    first = None
    for _ in range(4):
        logs = trainer.train_on_batch(audio[:4], return_dict=True)
        first = first or logs
        assert set(logs) >= {"loss", "stft", "kl"}
        assert all(np.isfinite(float(v)) for v in logs.values())

    mean_before = np.asarray(trainer.encoder(audio, training=False)[0])
    recon_before = np.asarray(trainer.decoder(mean_before, training=False))
    lo, hi, prior = ddsp_snare.latent_spec(trainer, audio, config)
    assert prior == "normal" and lo == [-2.0] * 4 and hi == [2.0] * 4
    # the knob space is a re-parametrisation: encode -> decode gives the same sound as before
    knobs = np.asarray(trainer.encoder(audio, training=False)[0])
    recon_after = np.asarray(trainer.decoder(knobs, training=False))
    np.testing.assert_allclose(recon_after, recon_before, atol=2e-3)
    audibility = trainer.knob_report["knob_audibility"]
    assert audibility == sorted(audibility, reverse=True)  # knob 1 = most audible
    with pytest.raises(ValueError, match="already been fitted"):
        ddsp_snare.fit_knob_space(trainer, audio)

    meta = ModelMetadata(family="ddsp_snare", latent_dim=4, sample_rate=RATE,
                         latent_lo=lo, latent_hi=hi, latent_prior=prior)
    path = save_model_file(tmp_path / "m.keras", trainer.decoder, meta, encoder=trainer.encoder)
    loaded = load_model_file(path)  # Keras safe mode
    z = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32) * 3
    out = loaded.decode(z)
    assert out.shape == (3, LENGTH) and out.dtype == np.float32
    assert np.all(np.isfinite(out)) and np.max(np.abs(out)) <= 1.0
    np.testing.assert_allclose(out, np.asarray(trainer.decoder(z)), atol=1e-5)
    np.testing.assert_array_equal(loaded.decode(z), out)  # deterministic
    np.testing.assert_allclose(loaded.encode(audio), knobs, atol=1e-5)


def test_reordering_the_knobs_permutes_the_knob_space_and_nothing_else() -> None:
    """ddsp_snare.reorder_knobs (the refit's --rank-knobs): knob i becomes what knob order[i]
    was, in the decoder and the encoder alike; every sound stays where it was."""
    config = {**ddsp_snare.default_config(), **SMALL}
    audio = _tiny_corpus(4)
    trainer = ddsp_snare.build_trainer(config, RATE, LENGTH)
    ddsp_snare.latent_spec(trainer, audio, config)
    z = np.random.default_rng(2).standard_normal((3, 4)).astype(np.float32)
    before = np.asarray(trainer.decoder(z, training=False))
    encoded = np.asarray(trainer.encoder(audio, training=False)[0])
    order = np.array([2, 0, 3, 1])
    ddsp_snare.reorder_knobs(trainer.decoder, trainer.encoder, order)
    np.testing.assert_allclose(np.asarray(trainer.decoder(z[:, order], training=False)), before,
                               atol=1e-5)
    np.testing.assert_allclose(np.asarray(trainer.encoder(audio, training=False)[0]),
                               encoded[:, order], atol=1e-5)
    mel = ddsp_snare.LogMel(RATE, n_mels=32)
    audibility = ddsp_snare.knob_audibility(trainer.decoder, mel, probes=3)
    assert audibility.shape == (4,) and np.all(audibility >= 0)


def test_fitting_the_synthesiser_per_snare_brings_it_closer(tmp_path: Path) -> None:
    """snaresynth.models.synth_fit (the refit's and the oracle's first step): each snare's own
    parameters, from the network's guess, move towards that snare."""
    from snaresynth.models.synth_fit import decoder_parts, fit_parameters

    config = {**ddsp_snare.default_config(), **SMALL}
    trainer = ddsp_snare.build_trainer(config, RATE, LENGTH)
    meta = ModelMetadata(family="ddsp_snare", latent_dim=4, sample_rate=RATE,
                         latent_lo=[-2.0] * 4, latent_hi=[2.0] * 4, latent_prior="normal",
                         training={"config": config})
    path = save_model_file(tmp_path / "m.keras", trainer.decoder, meta)
    params, synth = decoder_parts(load_model_file(path))
    start = params.predict(np.zeros((2, 4), np.float32), verbose=0)
    losses: list[float] = []
    fitted = fit_parameters(synth, start, _tiny_corpus(2), steps=6, lr=0.05, every=1,
                            report=lambda step, loss, seconds, raw: losses.append(loss))
    assert fitted.shape == start.shape and len(losses) == 6
    assert losses[-1] < losses[0]
