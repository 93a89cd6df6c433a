"""The snare synthesiser's sizes, parameter layout and fixed noise: numpy only.

Shared by the TensorFlow synthesiser (``synth.py``, training) and the numpy one
(``synth_numpy.py``, serving), so both read one parameter layout and one set of ranges.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# Bessel-zero ratios of an ideal circular membrane (modes 01, 11, 21, 02, 31, 12, 41, 22):
# the drum head's partials sit near these multiples of its fundamental.
MEMBRANE_RATIOS = (1.0, 1.594, 2.136, 2.296, 2.653, 2.918, 3.156, 3.501)


@dataclass(frozen=True)
class SynthSpec:
    """Sizes and physical parameter ranges; (lo, hi) pairs in the unit named by the field."""

    sample_rate: int = 44100
    length: int = 16384
    frame_length: int = 256  # samples per STFT frame of the wires noise
    hop: int = 64  # samples between frames: the wires envelope's time resolution
    n_bands: int = 16
    n_modes: int = 6
    band_fmin_hz: float = 80.0
    band_db: tuple[float, float] = (-60.0, 0.0)
    band_decay_s: tuple[float, float] = (0.015, 0.6)
    noise_attack_s: tuple[float, float] = (0.0003, 0.01)
    f0_hz: tuple[float, float] = (120.0, 420.0)
    mode_detune: tuple[float, float] = (-0.12, 0.12)  # natural-log frequency ratio
    mode_decay_s: tuple[float, float] = (0.01, 0.5)
    mode_db: tuple[float, float] = (-50.0, 0.0)
    glide: tuple[float, float] = (0.0, 0.6)  # relative pitch excess at the hit
    glide_s: tuple[float, float] = (0.003, 0.06)
    click_decay_s: tuple[float, float] = (0.0003, 0.006)
    click_tilt: tuple[float, float] = (-1.0, 1.0)  # -1 dark ... +1 bright
    wires_db: tuple[float, float] = (-18.0, 0.0)  # group levels; wires never vanish: a snare
    head_db: tuple[float, float] = (-40.0, 0.0)
    click_db: tuple[float, float] = (-40.0, 12.0)  # click peak vs. the unit-RMS wires
    onset_s: tuple[float, float] = (0.0, 0.008)  # corpus: 3 ms pre-roll, +-4 ms augmentation
    gain_db: tuple[float, float] = (-6.0, 0.0)  # output peak below out_peak (corpus gain aug.)
    out_peak: float = 0.999
    # p of the output normaliser's L_p norm (a power of 2): higher sits closer to the true peak
    # (p = 32: about 1 dB below it, p = 128: about 0.3 dB) while staying smooth. 32 is the
    # default for files saved before the field existed.
    peak_power: int = 32

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SynthSpec:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    @property
    def n_frames(self) -> int:
        """STFT frames whose overlap-add covers ``length`` samples."""
        return int(math.ceil((self.length - self.frame_length) / self.hop)) + 1

    @property
    def n_bins(self) -> int:
        return self.frame_length // 2 + 1


def param_layout(spec: SynthSpec) -> list[tuple[str, int]]:
    """Names and sizes of the slices of ``raw``, in order."""
    return [
        ("band_db", spec.n_bands),
        ("band_decay_s", spec.n_bands),
        ("noise_attack_s", 1),
        ("f0_hz", 1),
        ("mode_detune", spec.n_modes),
        ("mode_decay_s", spec.n_modes),
        ("mode_db", spec.n_modes),
        ("glide", 1),
        ("glide_s", 1),
        ("click_decay_s", 1),
        ("click_tilt", 1),
        ("wires_db", 1),
        ("head_db", 1),
        ("click_db", 1),
        ("onset_s", 1),
        ("gain_db", 1),
    ]


LOG_SCALED = {"band_decay_s", "noise_attack_s", "f0_hz", "mode_decay_s", "glide_s",
              "click_decay_s"}
"""Parameters spread geometrically over their range (times and frequencies are heard in ratios)."""


def param_count(spec: SynthSpec) -> int:
    return sum(size for _, size in param_layout(spec))


def range_table(spec: SynthSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per raw value: lo, linear span (hi - lo), log span (log(hi / lo), 0 for linear ones)."""
    lo, lin, geo = [], [], []
    for name, size in param_layout(spec):
        a, b = getattr(spec, name)
        is_log = name in LOG_SCALED
        lo += [a] * size
        lin += [0.0 if is_log else b - a] * size
        geo += [math.log(b / a) if is_log else 0.0] * size
    return (np.asarray(lo, np.float32), np.asarray(lin, np.float32),
            np.asarray(geo, np.float32))


def band_matrix(spec: SynthSpec) -> np.ndarray:
    """(n_bands, n_bins) triangular interpolation from log-spaced band centres to STFT bins.

    Columns sum to 1, so equal band levels give a flat spectrum and the envelope between two
    centres is a straight-line blend (smooth in frequency, no gaps).
    """
    nyquist = spec.sample_rate / 2.0
    centres = np.geomspace(spec.band_fmin_hz, nyquist, spec.n_bands)
    freqs = np.linspace(0.0, nyquist, spec.n_bins)
    log_c = np.log(centres)
    log_f = np.log(np.maximum(freqs, 1.0))
    weights = np.zeros((spec.n_bands, spec.n_bins), dtype=np.float64)
    for j, lf in enumerate(log_f):
        if lf <= log_c[0]:
            weights[0, j] = 1.0
        elif lf >= log_c[-1]:
            weights[-1, j] = 1.0
        else:
            k = int(np.searchsorted(log_c, lf)) - 1
            frac = (lf - log_c[k]) / (log_c[k + 1] - log_c[k])
            weights[k, j] = 1.0 - frac
            weights[k + 1, j] = frac
    return weights.astype(np.float32)


def make_noise(spec: SynthSpec, seed: int = 0) -> dict[str, np.ndarray]:
    """Fixed noise sources: a random-phase STFT (wires) and a time-domain buffer (click).

    Generated once from ``seed`` and stored as model weights by the caller, so decoding never
    draws random numbers and the same latent always gives the same audio.
    """
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0.0, 2.0 * np.pi, size=(spec.n_frames, spec.n_bins))
    click = rng.standard_normal(click_span(spec))
    click /= np.max(np.abs(click))
    # the tilt's two extremes, precomputed: first difference (bright), two-tap mean (dark)
    bright = np.concatenate([click[:1], click[1:] - click[:-1]]) * 0.5
    dark = np.concatenate([click[:1], click[1:] + click[:-1]]) * 0.5
    return {
        "noise_re": np.cos(phase).astype(np.float32),
        "noise_im": np.sin(phase).astype(np.float32),
        "click_noise": click.astype(np.float32),
        "click_bright": bright.astype(np.float32),
        "click_dark": dark.astype(np.float32),
    }


def click_span(spec: SynthSpec) -> int:
    """Samples the click is computed over: latest onset + 10 of the longest decay (-87 dB)."""
    need = (spec.onset_s[1] + 10.0 * spec.click_decay_s[1]) * spec.sample_rate
    return int(min(spec.length, 2 ** math.ceil(math.log2(need))))
