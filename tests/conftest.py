"""Shared fixtures: a small deterministic numpy decoder (fast, no TensorFlow) and a temp store."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JACK_NO_START_SERVER", "1")


class SineDecoder:
    """A Decoder whose sound is a decaying sine, frequency set by z[0], noise by z[1]:
    distinct latents give distinct, predictable buffers. ``fail`` makes decode raise or
    return NaN, to test fault handling."""

    family = "test-sine"
    sample_rate = 16000
    length = 16384

    def __init__(self, latent_dim: int = 4) -> None:
        self.latent_dim = latent_dim
        self.fail: str | None = None
        self.calls = 0

    def decode(self, z: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.fail == "raise":
            raise RuntimeError("decoder exploded")
        z = np.atleast_2d(np.asarray(z, dtype=np.float32))
        t = np.arange(self.length, dtype=np.float32) / self.sample_rate
        freq = 150.0 + 100.0 * z[:, :1]
        env = np.exp(-t * 12.0)[None, :]
        rng = np.random.default_rng(0)
        noise = rng.standard_normal(self.length).astype(np.float32)[None, :]
        tone = np.sin(2 * np.pi * freq * t[None, :])
        out = 0.6 * env * tone + 0.1 * (1 + z[:, 1:2]) * env * noise
        if self.fail == "nan":
            out[:, 10] = np.nan
        return np.clip(out, -1, 1).astype(np.float32)

    def latent_range(self) -> tuple[np.ndarray, np.ndarray]:
        lo = np.full(self.latent_dim, -2.0, np.float32)
        return lo, -lo


@pytest.fixture
def sine_decoder() -> SineDecoder:
    return SineDecoder()


@pytest.fixture
def preset_store(tmp_path):
    from snaresynth.control.presets import PresetStore

    return PresetStore(user_dir=tmp_path / "user-presets")
