"""The snare synthesiser of ``synth.py`` in numpy, for serving without TensorFlow.

Each function mirrors its TensorFlow twin operation by operation in float32, in the same order
(so the roundings are the same ones): the head's phase reaches thousands of radians, where a
different grouping of one product would move a late sample by more than the 1e-4 the inference
form is held to. The fixed arrays (noise, band matrix, inverse-STFT window) are the ones the
Keras layer holds, exported beside the weights, never regenerated.
"""

from __future__ import annotations

import math
import threading

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
HEAD_GATE_S = 0.0002  # the head's onset gate: a sigmoid this many seconds wide


def _f(value: float) -> np.float32:
    return np.float32(value)


def sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (F32(1.0) / (F32(1.0) + np.exp(-x))).astype(F32, copy=False)


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, F32(0.0))


def db_to_gain(db: np.ndarray) -> np.ndarray:
    return np.power(F32(10.0), db / F32(20.0)).astype(F32, copy=False)


class _Work:
    """One batch size's buffers, reused by every decode of that size: a decode allocates only
    its output and a few parameter-sized arrays, so a realtime decoder seldom meets the
    allocator (the wires' complex spectrum alone was 0.5 MB of fresh pages a decode)."""

    def __init__(self, spec: SynthSpec, batch: int) -> None:
        frames, bins, length = spec.n_frames, spec.n_bins, spec.length
        self.mag = np.empty((batch, frames, bins), F32)
        self.stft = np.empty((batch, frames, bins), np.complex64)
        self.frames = np.empty((batch, frames, spec.frame_length), F32)
        self.ola = np.empty((batch, frames + spec.frame_length // spec.hop - 1, spec.hop), F32)
        self.tt, self.warped, self.head, self.wave, self.env = (
            np.empty((batch, length), F32) for _ in range(5))


class NumpySynth:
    """``synth.synthesize`` with its constants bound: (B, param_count) -> (B, length).

    Thread: one instance may decode from several threads; each thread has its own buffers.
    """

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
        # past the latest onset plus 20 gate widths the head's gate is exactly 1.0 in float32
        # (1 / (1 + e^-20) rounds to 1), so it is applied to the samples before that only
        self._gate_n = min(spec.length,
                           int(math.ceil((spec.onset_s[1] + 20 * HEAD_GATE_S) * spec.sample_rate))
                           + 2)
        self._local = threading.local()
        shape = (spec.n_frames, spec.n_bins)
        if self.noise["noise_re"].shape != shape or self.bands.shape[1] != spec.n_bins:
            raise ValueError(f"synth arrays do not fit the spec (noise {shape} expected)")

    def _work(self, batch: int) -> _Work:
        works = self._local.__dict__.setdefault("works", {})
        if batch not in works:
            works.clear()  # one size at a time: the daemon decodes 1, eval and render 64
            works[batch] = _Work(self.spec, batch)
        return works[batch]

    def params(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        unit = sigmoid(raw)
        values = ((self._lo + unit * self._lin) * self._lin_mask
                  + self._lo * np.exp(unit * self._geo) * self._is_log)
        parts = np.split(values, np.cumsum(self._sizes)[:-1], axis=1)
        return dict(zip(self._names, parts, strict=True))

    def wires(self, p: dict[str, np.ndarray], work: _Work | None = None) -> np.ndarray:
        """The wires: band envelopes on fixed random-phase noise, inverse STFT (a work view)."""
        spec = self.spec
        work = work or self._work(p["onset_s"].shape[0])
        t = self._frame_t[None, :, None] - p["onset_s"][:, :, None]  # (B, F, 1)
        t_pos = relu(t)
        attack = ((F32(1.0) - np.exp(-t_pos / p["noise_attack_s"][:, :, None]))
                  * sigmoid((t - F32(0.0)) / F32(0.001)))
        level = db_to_gain(p["band_db"])[:, None, :]  # (B, 1, K)
        decay = np.exp(-t_pos / p["band_decay_s"][:, None, :])  # (B, F, K)
        band_env = level * decay * attack
        mag = np.matmul(band_env, self.bands, out=work.mag)  # (B, F, bins)
        # real and imaginary parts written straight into complex64: the same float32 products
        np.multiply(mag, self.noise["noise_re"], out=work.stft.real)
        np.multiply(mag, self.noise["noise_im"], out=work.stft.imag)
        frames = np.fft.irfft(work.stft, n=spec.frame_length, axis=-1, out=work.frames)
        frames *= self.window
        return overlap_add(frames, spec.hop, work.ola)[:, :spec.length]

    def head(self, p: dict[str, np.ndarray], work: _Work | None = None) -> np.ndarray:
        """The drum head: decaying membrane modes with a pitch glide (a work view)."""
        spec = self.spec
        work = work or self._work(p["onset_s"].shape[0])
        freqs = p["f0_hz"] * self._ratios[None, :] * np.exp(p["mode_detune"])  # (B, M)
        tt = np.subtract(self._t[None, :], p["onset_s"], out=work.tt)
        np.maximum(tt, F32(0.0), out=tt)  # (B, T)
        g, tau = p["glide"], p["glide_s"]
        warped = np.negative(tt, out=work.warped)  # tt + g * tau * (1 - exp(-tt / tau))
        np.divide(warped, tau, out=warped)
        np.exp(warped, out=warped)
        np.subtract(F32(1.0), warped, out=warped)
        np.multiply(g * tau, warped, out=warped)
        np.add(tt, warped, out=warped)
        nyquist_ok = sigmoid((_f(0.45 * spec.sample_rate) - freqs * (F32(1.0) + p["glide"]))
                             / F32(200.0))
        with np.errstate(divide="ignore"):
            log_amp = p["mode_db"] * _f(math.log(10.0) / 20.0) + np.log(nyquist_ok + _f(1e-12))
        cycles = _f(2.0 * math.pi) * freqs
        decay = p["mode_decay_s"]
        # one mode at a time through two reused (B, T) buffers, in the TensorFlow form's order
        out, wave, env = work.head, work.wave, work.env
        out.fill(0.0)
        for m in range(freqs.shape[1]):
            np.multiply(cycles[:, m:m + 1], warped, out=wave)
            np.sin(wave, out=wave)
            np.divide(tt, decay[:, m:m + 1], out=env)
            np.subtract(log_amp[:, m:m + 1], env, out=env)
            np.exp(env, out=env)
            np.multiply(env, wave, out=wave)
            out += wave
        n = self._gate_n
        out[:, :n] *= sigmoid((self._t[None, :n] - p["onset_s"]) / F32(HEAD_GATE_S))
        return out

    def click(self, p: dict[str, np.ndarray]) -> np.ndarray:
        """The stick's click over its own span (B, click span); silent after it."""
        tilt = p["click_tilt"]
        n = self.noise["click_noise"][None, :]
        src = (n + relu(tilt) * (self.noise["click_bright"][None, :] - n)
               + relu(-tilt) * (self.noise["click_dark"][None, :] - n))
        tt = self._click_t[None, :] - p["onset_s"]
        env = np.exp(-relu(tt) / p["click_decay_s"]) * sigmoid((tt - F32(0.0)) / F32(0.0001))
        return src * env

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        spec = self.spec
        p = self.params(np.asarray(raw, F32))
        work = self._work(raw.shape[0])
        w = self.wires(p, work)
        w /= rms(w, work.env)
        h = self.head(p, work)
        h /= rms(h, work.env)
        # a * w + b * h + c * click, the click added over its span only (zero after it)
        mix = np.multiply(db_to_gain(p["wires_db"]), w)
        mix += np.multiply(db_to_gain(p["head_db"]), h, out=work.wave)
        c = self.click(p)
        mix[:, :c.shape[1]] += db_to_gain(p["click_db"]) * c
        norm = soft_peak(mix, spec.peak_power, work.env) + _f(1e-6)
        mix *= _f(spec.out_peak) * db_to_gain(p["gain_db"])
        mix /= norm
        return mix


def overlap_add(frames: np.ndarray, hop: int, out: np.ndarray | None = None) -> np.ndarray:
    """(B, F, frame_length) -> (B, (F - 1) * hop + frame_length); frame_length % hop == 0.

    ``out``, (B, F + frame_length / hop - 1, hop) float32, is reused when given.
    """
    batch, n_frames, length = frames.shape
    if length % hop:
        raise ValueError(f"frame length {length} is not a multiple of the hop {hop}")
    parts = length // hop
    segments = frames.reshape(batch, n_frames, parts, hop)
    if out is None:
        out = np.empty((batch, n_frames + parts - 1, hop), F32)
    out.fill(0.0)
    for j in range(parts):
        out[:, j:j + n_frames] += segments[:, :, j]
    return out.reshape(batch, -1)


def soft_peak(x: np.ndarray, power: int = 32, scratch: np.ndarray | None = None) -> np.ndarray:
    """``synth.soft_peak``: the L_p norm of each row, >= its peak but smooth.

    ``scratch``, an array of x's shape and float32, is overwritten when given.
    """
    top = np.max(np.abs(x), axis=1, keepdims=True) + _f(1e-12)
    ratio = np.divide(x, top, out=scratch)
    np.square(ratio, out=ratio)
    reached = 2
    while reached < power:
        np.square(ratio, out=ratio)
        reached *= 2
    total = np.sum(ratio, axis=1, keepdims=True, dtype=F32) + _f(1e-30)
    return top * np.power(total, _f(1.0 / reached))


def rms(x: np.ndarray, scratch: np.ndarray | None = None) -> np.ndarray:
    """Each row's RMS (+1e-8 inside the root); ``scratch`` (x's shape) is overwritten."""
    squares = np.square(x, out=scratch)
    return np.sqrt(np.mean(squares, axis=1, keepdims=True, dtype=F32) + _f(1e-8))
