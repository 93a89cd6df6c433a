"""Pure signal functions: resampling, fades, velocity curves, gain and normalisation.

No threads, no I/O. Everything takes and returns float32 numpy arrays.
"""

from __future__ import annotations

import math

import numpy as np

LENGTH = 16384
"""Samples in every one-shot the models produce and the corpora hold."""

VELOCITY_CURVES = ("linear", "soft", "hard", "fixed")


def resample(audio: np.ndarray, from_rate: int, to_rate: int, quality: str = "VHQ") -> np.ndarray:
    """Sample-rate conversion (libsoxr) along the last axis; ``quality`` is soxr's ("VHQ":
    28-bit, "HQ": 20-bit and faster; playback's is ``decode.worker.PLAYBACK_QUALITY``)."""
    audio = np.asarray(audio, dtype=np.float32)
    if from_rate == to_rate:
        return audio.copy()
    import soxr

    if audio.ndim == 1:
        return soxr.resample(audio, from_rate, to_rate, quality=quality).astype(np.float32)
    rows = [soxr.resample(row, from_rate, to_rate, quality=quality) for row in audio]
    return np.stack(rows).astype(np.float32)


def db_to_gain(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def gain_to_db(gain: float) -> float:
    return float(20.0 * math.log10(max(gain, 1e-12)))


def semitones_to_ratio(semitones: float) -> float:
    return float(2.0 ** (semitones / 12.0))


def velocity_gain(velocity: float, curve: str = "linear") -> float:
    """Map a normalised velocity 0..1 to a linear gain 0..1 through a named curve.

    linear: gain = v^2 (velocity is heard roughly linearly in loudness, about -40 dB at v=0.1);
    soft: gain = v (quiet hits louder); hard: gain = v^3; fixed: always 1.
    """
    v = min(max(float(velocity), 0.0), 1.0)
    if curve == "linear":
        return v * v
    if curve == "soft":
        return v
    if curve == "hard":
        return v * v * v
    if curve == "fixed":
        return 1.0 if v > 0.0 else 0.0
    raise ValueError(f"unknown velocity curve {curve!r}; known: {', '.join(VELOCITY_CURVES)}")


def fade_out(frames: int) -> np.ndarray:
    """A raised-cosine fade from 1 to 0 over ``frames`` frames (used to steal voices click-free)."""
    if frames <= 0:
        return np.zeros(0, dtype=np.float32)
    t = np.arange(frames, dtype=np.float32) / frames
    return (0.5 * (1.0 + np.cos(np.pi * t))).astype(np.float32)


def decay_envelope(length: int, rate: int, decay: float) -> np.ndarray:
    """Amplitude envelope for the ``decay`` control (0..1; 1 = the sound's own decay).

    Below 1 an exponential fade shortens the tail: the -60 dB time goes from the full buffer
    (decay=1) down to 20 ms (decay=0).
    """
    decay = min(max(float(decay), 0.0), 1.0)
    if decay >= 1.0:
        return np.ones(length, dtype=np.float32)
    full_s = length / rate
    t60 = 0.02 * (full_s / 0.02) ** decay
    t = np.arange(length, dtype=np.float32) / rate
    return np.exp(-6.907755 * t / t60).astype(np.float32)


def peak_normalise(audio: np.ndarray, peak: float = 0.999) -> np.ndarray:
    """Scale so the largest absolute sample is ``peak``; silence stays silence."""
    audio = np.asarray(audio, dtype=np.float32)
    top = float(np.max(np.abs(audio))) if audio.size else 0.0
    if top <= 1e-9:
        return audio.copy()
    return (audio * (peak / top)).astype(np.float32)


def onset_index(audio: np.ndarray, threshold_db: float = -30.0) -> int:
    """First sample whose magnitude is within ``threshold_db`` of the peak (a simple onset)."""
    mag = np.abs(np.asarray(audio, dtype=np.float32))
    top = float(mag.max()) if mag.size else 0.0
    if top <= 1e-9:
        return 0
    hits = np.flatnonzero(mag >= top * 10.0 ** (threshold_db / 20.0))
    return int(hits[0]) if hits.size else 0
