"""Seeded augmentation: small gain, pitch and timing changes that keep an instrument itself.

A drum sampler plays the same hit slightly louder, detuned and late all the time; copies made
that way teach a model (and the listener) what does *not* change a snare into something else.
Pitch is changed by resampling (the sound gets shorter as it gets higher, as a tape or a
sampler's tune knob does), never more than ``MAX_SEMITONES``. Every copy's parameters go into the
manifest, and a given (seed, source, copy) always gives the same parameters.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np

from snaresynth import dsp
from snaresynth.data.prepare import prepare

MAX_SEMITONES = 1.0
MAX_SHIFT_S = 0.004
MIN_GAIN_DB = -6.0


@dataclass(frozen=True)
class Augment:
    """One copy's changes; stored in the manifest item as a dict."""

    copy: int
    gain_db: float
    semitones: float
    shift_ms: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def draw(seed: int, key: str, copy: int) -> Augment:
    """Parameters for copy ``copy`` of source ``key``; independent of build order and of N."""
    digest = hashlib.sha256(f"{seed}:{key}:{copy}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    return Augment(
        copy=copy,
        gain_db=round(float(rng.uniform(MIN_GAIN_DB, 0.0)), 3),
        semitones=round(float(rng.uniform(-MAX_SEMITONES, MAX_SEMITONES)), 3),
        shift_ms=round(float(rng.uniform(-MAX_SHIFT_S, MAX_SHIFT_S) * 1000.0), 3),
    )


def apply(audio: np.ndarray, rate: int, aug: Augment, target_rate: int, length: int) -> np.ndarray:
    """An augmented window of mono ``audio`` (at ``rate``), built like an original one.

    Pitch: reading the source as if it were recorded at ``rate * ratio`` and resampling to the
    target plays it ``ratio`` times faster. Timing: the onset moves by ``shift_ms`` inside the
    window (pre-roll 3 ms, so an earlier onset is clamped at the window start). Gain is applied
    after peak normalisation, so copies are up to 6 dB quieter than the originals.
    """
    ratio = dsp.semitones_to_ratio(aug.semitones)
    source_rate = max(1, int(round(rate * ratio)))
    window = prepare(audio, source_rate, target_rate, length, shift_s=aug.shift_ms / 1000.0)
    return (window * np.float32(dsp.db_to_gain(aug.gain_db))).astype(np.float32)
