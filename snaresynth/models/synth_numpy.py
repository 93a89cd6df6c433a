"""The snare synthesiser of ``synth.py`` in numpy, for serving without TensorFlow.

Each function mirrors its TensorFlow twin operation by operation in float32, in the same order
(so the roundings are the same ones): the head's phase reaches thousands of radians, where a
different grouping of one product would move a late sample by more than the 1e-4 the inference
form is held to. The fixed arrays (noise, band matrix, inverse-STFT window) are the ones the
Keras layer holds, exported beside the weights, never regenerated.
"""

from __future__ import annotations

import math

import numpy as np

from snaresynth.models.synth_spec import (
    MEMBRANE_RATIOS,
    SynthSpec,
    click_span,
    param_layout,
    range_table,
)

F32 = np.float32
NOISE_NAMES = ("click_bright", "click_dark", "click_noise", "noise_im", "noise_re")


def _f(value: float) -> np.float32:
    return np.float32(value)


def sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (F32(1.0) / (F32(1.0) + np.exp(-x))).astype(F32, copy=False)


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, F32(0.0))


def db_to_gain(db: np.ndarray) -> np.ndarray:
    return np.power(F32(10.0), db / F32(20.0)).astype(F32, copy=False)


class NumpySynth:
    """``synth.synthesize`` with its constants bound: (B, param_count) -> (B, length)."""

    def __init__(self, spec: SynthSpec, arrays: dict[str, np.ndarray]) -> None:
        self.spec = spec
        self.noise = {name: np.asarray(arrays[name], F32) for name in NOISE_NAMES}
        self.bands = np.asarray(arrays["bands"], F32)  # (n_bands, n_bins)
        self.window = np.asarray(arrays["window"], F32)  # inverse_stft_window_fn(hop)
        lo, lin, geo = range_table(spec)
        self._lo, self._lin, self._geo = lo, lin, geo
        self._is_log = (geo != 0.0).astype(F32)
        self._lin_mask = F32(1.0) - self._is_log
        self._sizes = [size for _, size in param_layout(spec)]
        self._names = [name for name, _ in param_layout(spec)]
        sr = F32(spec.sample_rate)
        self._frame_t = ((np.arange(spec.n_frames, dtype=F32) * F32(spec.hop)
                          + F32(spec.frame_length / 2.0)) / sr)
        self._t = np.arange(spec.length, dtype=F32) / sr
        self._click_t = np.arange(click_span(spec), dtype=F32) / sr
        self._ratios = np.asarray(MEMBRANE_RATIOS[:spec.n_modes], F32)
        shape = (spec.n_frames, spec.n_bins)
        if self.noise["noise_re"].shape != shape or self.bands.shape[1] != spec.n_bins:
            raise ValueError(f"synth arrays do not fit the spec (noise {shape} expected)")

    def params(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        unit = sigmoid(raw)
        values = ((self._lo + unit * self._lin) * self._lin_mask
                  + self._lo * np.exp(unit * self._geo) * self._is_log)
        parts = np.split(values, np.cumsum(self._sizes)[:-1], axis=1)
        return dict(zip(self._names, parts, strict=True))

    def wires(self, p: dict[str, np.ndarray]) -> np.ndarray:
        spec = self.spec
        t = self._frame_t[None, :, None] - p["onset_s"][:, :, None]  # (B, F, 1)
        t_pos = relu(t)
        attack = ((F32(1.0) - np.exp(-t_pos / p["noise_attack_s"][:, :, None]))
                  * sigmoid((t - F32(0.0)) / F32(0.001)))
        level = db_to_gain(p["band_db"])[:, None, :]  # (B, 1, K)
        decay = np.exp(-t_pos / p["band_decay_s"][:, None, :])  # (B, F, K)
        band_env = level * decay * attack
        mag = band_env @ self.bands  # (B, F, bins)
        stft = (mag * self.noise["noise_re"]) + 1j * (mag * self.noise["noise_im"])
        frames = np.fft.irfft(stft.astype(np.complex64), n=spec.frame_length, axis=-1)
        frames = frames.astype(F32, copy=False) * self.window
        return overlap_add(frames, spec.hop)[:, :spec.length]

    def head(self, p: dict[str, np.ndarray]) -> np.ndarray:
        spec = self.spec
        freqs = p["f0_hz"] * self._ratios[None, :] * np.exp(p["mode_detune"])  # (B, M)
        tt = relu(self._t[None, :] - p["onset_s"])  # (B, T)
        g, tau = p["glide"], p["glide_s"]
        warped = tt + g * tau * (F32(1.0) - np.exp(-tt / tau))
        nyquist_ok = sigmoid((_f(0.45 * spec.sample_rate) - freqs * (F32(1.0) + p["glide"]))
                             / F32(200.0))
        with np.errstate(divide="ignore"):
            log_amp = p["mode_db"] * _f(math.log(10.0) / 20.0) + np.log(nyquist_ok + _f(1e-12))
        cycles = _f(2.0 * math.pi) * freqs
        decay = p["mode_decay_s"]
        # one mode at a time through two reused (B, T) buffers: the (B, M, T) temporaries of
        # the TensorFlow form took fresh pages at every decode (half its time); same roundings
        out, wave, env = np.zeros_like(tt), np.empty_like(tt), np.empty_like(tt)
        for m in range(freqs.shape[1]):
            np.multiply(cycles[:, m:m + 1], warped, out=wave)
            np.sin(wave, out=wave)
            np.divide(tt, decay[:, m:m + 1], out=env)
            np.subtract(log_amp[:, m:m + 1], env, out=env)
            np.exp(env, out=env)
            np.multiply(env, wave, out=wave)
            out += wave
        gate = sigmoid((self._t[None, :] - p["onset_s"]) / F32(0.0002))
        return out * gate

    def click(self, p: dict[str, np.ndarray]) -> np.ndarray:
        spec = self.spec
        tilt = p["click_tilt"]
        n = self.noise["click_noise"][None, :]
        src = (n + relu(tilt) * (self.noise["click_bright"][None, :] - n)
               + relu(-tilt) * (self.noise["click_dark"][None, :] - n))
        tt = self._click_t[None, :] - p["onset_s"]
        env = np.exp(-relu(tt) / p["click_decay_s"]) * sigmoid((tt - F32(0.0)) / F32(0.0001))
        out = np.zeros((tilt.shape[0], spec.length), F32)
        out[:, :tt.shape[1]] = src * env
        return out

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        spec = self.spec
        p = self.params(np.asarray(raw, F32))
        w = self.wires(p)
        h = self.head(p)
        c = self.click(p)
        w = w / rms(w)
        h = h / rms(h)
        mix = (db_to_gain(p["wires_db"]) * w + db_to_gain(p["head_db"]) * h
               + db_to_gain(p["click_db"]) * c)
        return (_f(spec.out_peak) * db_to_gain(p["gain_db"]) * mix
                / (soft_peak(mix, spec.peak_power) + _f(1e-6)))



def overlap_add(frames: np.ndarray, hop: int) -> np.ndarray:
    """(B, F, frame_length) -> (B, (F - 1) * hop + frame_length); frame_length % hop == 0."""
    batch, n_frames, length = frames.shape
    if length % hop:
        raise ValueError(f"frame length {length} is not a multiple of the hop {hop}")
    parts = length // hop
    segments = frames.reshape(batch, n_frames, parts, hop)
    out = np.zeros((batch, n_frames + parts - 1, hop), F32)
    for j in range(parts):
        out[:, j:j + n_frames] += segments[:, :, j]
    return out.reshape(batch, -1)


def soft_peak(x: np.ndarray, power: int = 32) -> np.ndarray:
    """``synth.soft_peak``: the L_p norm of each row, >= its peak but smooth."""
    top = np.max(np.abs(x), axis=1, keepdims=True) + _f(1e-12)
    ratio, reached = np.square(x / top), 2
    while reached < power:
        ratio, reached = np.square(ratio), reached * 2
    total = np.sum(ratio, axis=1, keepdims=True, dtype=F32) + _f(1e-30)
    return top * np.power(total, _f(1.0 / reached))


def rms(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(np.square(x), axis=1, keepdims=True, dtype=F32) + _f(1e-8))
