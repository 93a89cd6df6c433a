"""The differentiable snare synthesiser and the multi-resolution STFT loss."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from snaresynth.models import losses, synth  # noqa: E402

SPEC = synth.SynthSpec(sample_rate=32000, length=16384)


def _render(raw: np.ndarray, spec: synth.SynthSpec = SPEC) -> np.ndarray:
    noise = {k: tf.constant(v) for k, v in synth.make_noise(spec, seed=0).items()}
    bands = tf.constant(synth.band_matrix(spec))
    return np.asarray(synth.synthesize(tf.constant(raw, tf.float32), spec, noise, bands))


def _raw(batch: int = 3, seed: int = 1, scale: float = 2.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((batch, synth.param_count(SPEC))) * scale).astype(np.float32)


def test_output_shape_finite_bounded() -> None:
    audio = _render(_raw(batch=4, scale=6.0))  # far out in parameter space too
    assert audio.shape == (4, SPEC.length)
    assert np.all(np.isfinite(audio))
    assert np.max(np.abs(audio)) <= SPEC.out_peak + 1e-5
    assert np.all(np.max(np.abs(audio), axis=1) > 0.4)  # never silent: peak >= -6 dB


def test_deterministic() -> None:
    raw = _raw()
    np.testing.assert_array_equal(_render(raw), _render(raw))


def test_parameters_stay_in_physical_ranges() -> None:
    p = synth.bounded_params(tf.constant(_raw(batch=8, scale=50.0)), SPEC)
    for name, size in synth.param_layout(SPEC):
        lo, hi = getattr(SPEC, name)
        values = np.asarray(p[name])
        assert values.shape == (8, size)
        assert np.all(values >= lo - 1e-4 * abs(lo) - 1e-6), name
        assert np.all(values <= hi + 1e-4 * abs(hi) + 1e-6), name


def test_gradients_reach_every_parameter() -> None:
    noise = {k: tf.constant(v) for k, v in synth.make_noise(SPEC).items()}
    bands = tf.constant(synth.band_matrix(SPEC))
    raw = tf.Variable(_raw(batch=2, scale=0.5))
    target = tf.constant(_render(_raw(batch=2, seed=7, scale=0.5)))
    with tf.GradientTape() as tape:
        audio = synth.synthesize(raw, SPEC, noise, bands)
        loss = tf.reduce_mean(losses.multi_resolution_stft_loss(target, audio))
    grad = tape.gradient(loss, raw)
    assert grad is not None
    grad = np.asarray(grad)
    assert np.all(np.isfinite(grad))
    per_param = np.max(np.abs(grad), axis=0)
    dead = [i for i, g in enumerate(per_param) if g == 0.0]
    assert not dead, f"no gradient for raw parameters {dead} of {synth.param_layout(SPEC)}"


def test_parameter_changes_are_continuous() -> None:
    """Halving a parameter step halves the change in sound: no jumps, no dead parameters."""
    base = _raw(batch=1, scale=0.5)
    layout = dict(synth.param_layout(SPEC))
    names = [name for name, _ in synth.param_layout(SPEC)]
    offsets = dict(zip(names, np.cumsum([0] + [layout[n] for n in names[:-1]]), strict=True))
    base[0, int(offsets["click_db"])] = 2.0  # an audible click, so its level is measurable
    for name in ("band_db", "band_decay_s", "f0_hz", "mode_decay_s", "glide", "click_db",
                 "wires_db", "onset_s"):
        index = int(offsets[name])
        raws = np.repeat(base, 3, axis=0)
        raws[1, index] += 0.02
        raws[2, index] += 0.01
        # linear magnitudes: log ones exaggerate sidelobe nulls moving under a small pitch change
        mags = np.asarray(losses.stft_magnitude(tf.constant(_render(raws)), 512))
        full = float(np.mean(np.abs(mags[1] - mags[0])))
        half = float(np.mean(np.abs(mags[2] - mags[0])))
        assert full > 0, f"{name} does not change the sound"
        assert 1.4 < full / half < 2.6, f"{name}: step 0.02 -> {full:.3g}, 0.01 -> {half:.3g}"


def test_band_matrix_columns_sum_to_one() -> None:
    m = synth.band_matrix(SPEC)
    assert m.shape == (SPEC.n_bands, SPEC.n_bins)
    np.testing.assert_allclose(m.sum(axis=0), 1.0, atol=1e-5)


def test_mrstft_zero_for_identical_positive_otherwise() -> None:
    a = tf.constant(_render(_raw(batch=2, seed=3)))
    b = tf.constant(_render(_raw(batch=2, seed=4)))
    same = np.asarray(losses.multi_resolution_stft_loss(a, a))
    diff = np.asarray(losses.multi_resolution_stft_loss(a, b))
    assert same.shape == (2,)
    np.testing.assert_allclose(same, 0.0, atol=1e-6)
    assert np.all(diff > 0.05)


def test_soft_peak_bounds_the_peak_closely() -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((2, SPEC.length)) * np.exp(-np.arange(SPEC.length) / 800.0))
    x = tf.constant(x.astype(np.float32))
    top = np.max(np.abs(np.asarray(x)), axis=1)
    for power, slack_db in ((32, 2.0), (128, 0.6)):
        soft = np.asarray(synth.soft_peak(x, power))[:, 0]
        assert np.all(soft >= top * (1 - 1e-5))
        assert np.all(20 * np.log10(soft / top) < slack_db)
