"""Test signals and reading what a synth played (pure numpy): a synthetic snare corpus, onsets,
and whether a hit is shaped like a drum."""

from __future__ import annotations

import numpy as np

from snaresynth.dsp import LENGTH


def synthetic_snares(n: int = 16, rate: int = 16000, seed: int = 0,
                     length: int = LENGTH) -> np.ndarray:
    """(n, length) float32 snare-like one-shots: a noise burst with exponential decay plus a
    damped sine (the drum head), each normalised to a 0.95 peak. A stand-in corpus, so training
    and artefact measurements run without downloading one."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / rate
    rows = []
    for _ in range(n):
        noise = rng.standard_normal(length) * np.exp(-t * rng.uniform(15, 40))
        head = np.sin(2 * np.pi * rng.uniform(150, 300) * t) * np.exp(-t * rng.uniform(20, 60))
        x = rng.uniform(0.3, 1.0) * noise + head
        rows.append(0.95 * x / np.max(np.abs(x)))
    return np.stack(rows).astype(np.float32)


def onsets(mono: np.ndarray, threshold: float = 1e-3, min_silence: int = 2400) -> list[int]:
    """Sample indices where sound starts after at least ``min_silence`` quiet samples."""
    loud = np.flatnonzero(np.abs(mono) > threshold)
    if loud.size == 0:
        return []
    starts = [int(loud[0])]
    gaps = np.flatnonzero(np.diff(loud) > min_silence)
    starts.extend(int(loud[i + 1]) for i in gaps)
    return starts


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def is_snare_shaped(hit: np.ndarray, rate: int) -> tuple[bool, str]:
    """A drum hit: reaches its peak within 30 ms of the onset, then decays (the 150–250 ms
    window is well below the first 50 ms), and is broadband (not a single sine). Returns the
    verdict and the figures behind it."""
    ms = rate // 1000
    peak_at = int(np.argmax(np.abs(hit[: 200 * ms])))
    early = rms(hit[: 50 * ms])
    late = rms(hit[150 * ms: 250 * ms])
    spectrum = np.abs(np.fft.rfft(hit[: 100 * ms]))
    top = np.sort(spectrum)[::-1]
    tonal = top[0] / (np.sum(top[: spectrum.size // 4]) + 1e-12)
    ok = peak_at <= 30 * ms and late < 0.5 * early and early > 1e-3 and tonal < 0.2
    return ok, (f"peak at {peak_at / ms:.1f} ms, rms 0-50 ms {early:.4f}, 150-250 ms {late:.4f}, "
                f"strongest bin share {tonal:.3f}")
