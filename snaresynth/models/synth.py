"""A differentiable snare-drum synthesiser: pure TensorFlow functions, no Keras state.

Why a synthesiser and not raw samples: a decoder that outputs the *parameters* of a physically
plausible snare can only ever produce a snare, wherever it lands in latent space, and small latent
moves give small parameter moves (sigmoid-bounded), so the latent space is smooth by construction.

The sound is the sum of three parts, all ``length`` samples at ``sample_rate`` Hz:

* **wires** — filtered noise. The noise is fixed (a seeded random-phase STFT, stored by the caller
  as weights), so decoding is deterministic. Its magnitude is a per-band envelope: every one of
  ``n_bands`` log-spaced bands has its own level (dB) and exponential decay time (s), under one
  shared attack; band envelopes are spread over the STFT bins by triangular interpolation and the
  result is turned back to audio with one inverse STFT (overlap-add).
* **head** — ``n_modes`` damped sinusoids at the circular-membrane mode ratios times a
  fundamental, each with a small learned detune, decay (s) and level, plus a short downward pitch
  glide (the head's tension drop just after the hit). The phase is integrated analytically.
* **click** — the stick's transient: fixed noise, tilted bright/dark, decaying within milliseconds.

Every parameter comes from an unbounded vector ``raw`` of ``param_count(spec)`` values through a
sigmoid mapped to a physical range (``SynthSpec``). The output is peak-normalised to
``out_peak`` times a gain of at most 0 dB.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from snaresynth.models.synth_spec import (  # noqa: F401  (re-exported)
    LOG_SCALED,
    MEMBRANE_RATIOS,
    SynthSpec,
    band_matrix,
    click_span,
    make_noise,
    param_count,
    param_layout,
    range_table,
)


def bounded_params(raw: tf.Tensor, spec: SynthSpec) -> dict[str, tf.Tensor]:
    """(B, param_count) unbounded -> dict of (B, size) physical values inside their ranges.

    One sigmoid over the whole vector, then linear or geometric spreading per value: a handful
    of ops instead of a few per parameter, which matters for a one-buffer decode.
    """
    lo, lin, geo = range_table(spec)
    unit = tf.sigmoid(raw)
    is_log = (geo != 0.0).astype(np.float32)
    values = (lo + unit * lin) * (1.0 - is_log) + lo * tf.exp(unit * geo) * is_log
    layout = param_layout(spec)
    parts = tf.split(values, [size for _, size in layout], axis=1)
    return {name: part for (name, _), part in zip(layout, parts, strict=True)}


def db_to_gain(db: tf.Tensor) -> tf.Tensor:
    return tf.pow(10.0, db / 20.0)


def _time_gate(t: tf.Tensor, onset: tf.Tensor, width_s: float) -> tf.Tensor:
    """Soft step at the onset: 0 before, 1 after, differentiable in the onset time."""
    return tf.sigmoid((t - onset) / width_s)


def wires(p: dict[str, tf.Tensor], spec: SynthSpec, noise_re: tf.Tensor, noise_im: tf.Tensor,
          bands: tf.Tensor) -> tf.Tensor:
    """Filtered noise: per-band level and decay, shared attack; one inverse STFT. -> (B, length)."""
    frame_t = (tf.range(spec.n_frames, dtype=tf.float32) * spec.hop
               + spec.frame_length / 2.0) / spec.sample_rate  # frame centres, s
    t = frame_t[None, :, None] - p["onset_s"][:, :, None]  # (B, F, 1)
    t_pos = tf.nn.relu(t)
    attack = (1.0 - tf.exp(-t_pos / p["noise_attack_s"][:, :, None])) * _time_gate(t, 0.0, 0.001)
    level = db_to_gain(p["band_db"])[:, None, :]  # (B, 1, K)
    decay = tf.exp(-t_pos / p["band_decay_s"][:, None, :])  # (B, F, K)
    band_env = level * decay * attack  # (B, F, K)
    mag = tf.einsum("bfk,kn->bfn", band_env, bands)  # (B, F, bins)
    stft = tf.complex(mag * noise_re, mag * noise_im)
    audio = tf.signal.inverse_stft(
        stft, frame_length=spec.frame_length, frame_step=spec.hop, fft_length=spec.frame_length,
        window_fn=tf.signal.inverse_stft_window_fn(spec.hop),
    )
    return audio[:, :spec.length]


def head(p: dict[str, tf.Tensor], spec: SynthSpec, t: tf.Tensor) -> tf.Tensor:
    """Damped membrane modes with a pitch glide, analytic phase. t: (length,) s -> (B, length)."""
    ratios = tf.constant(MEMBRANE_RATIOS[:spec.n_modes], dtype=tf.float32)
    freqs = p["f0_hz"] * ratios[None, :] * tf.exp(p["mode_detune"])  # (B, M)
    tt = tf.nn.relu(t[None, None, :] - p["onset_s"][:, :, None])  # (B, 1, T)
    g, tau = p["glide"][:, :, None], p["glide_s"][:, :, None]
    # instantaneous f = f_m (1 + g exp(-t/tau))  =>  phase = 2 pi f_m (t + g tau (1 - exp(-t/tau)))
    warped = tt + g * tau * (1.0 - tf.exp(-tt / tau))  # (B, 1, T)
    phase = 2.0 * math.pi * freqs[:, :, None] * warped  # (B, M, T)
    # silence modes that would alias (with a soft edge, so gradients stay finite)
    nyquist_ok = tf.sigmoid((0.45 * spec.sample_rate - freqs * (1.0 + p["glide"])) / 200.0)
    log_amp = p["mode_db"] * (math.log(10.0) / 20.0) + tf.math.log(nyquist_ok + 1e-12)  # (B, M)
    # level folded into the exponent: one (B, M, T) exp and one product per mode sample
    env = tf.exp(log_amp[:, :, None] - tt / p["mode_decay_s"][:, :, None])  # (B, M, T)
    gate = _time_gate(t[None, :], p["onset_s"], 0.0002)  # (B, T)
    return tf.reduce_sum(env * tf.sin(phase), axis=1) * gate


def click(p: dict[str, tf.Tensor], spec: SynthSpec, noise: dict[str, tf.Tensor]) -> tf.Tensor:
    """Stick transient: fixed noise tilted dark..bright, fast decay; only its first samples."""
    span = click_span(spec)
    tilt = p["click_tilt"]  # (B, 1) in [-1, 1]
    n = noise["click_noise"][None, :]
    src = (n + tf.nn.relu(tilt) * (noise["click_bright"][None, :] - n)
           + tf.nn.relu(-tilt) * (noise["click_dark"][None, :] - n))
    tt = tf.range(span, dtype=tf.float32)[None, :] / spec.sample_rate - p["onset_s"]
    env = tf.exp(-tf.nn.relu(tt) / p["click_decay_s"]) * _time_gate(tt, 0.0, 0.0001)
    return tf.pad(src * env, [[0, 0], [0, spec.length - span]])


def synthesize(raw: tf.Tensor, spec: SynthSpec, noise: dict[str, tf.Tensor],
               bands: tf.Tensor) -> tf.Tensor:
    """(B, param_count) unbounded parameters -> (B, length) snare, peak <= ``out_peak``."""
    p = bounded_params(raw, spec)
    t = tf.range(spec.length, dtype=tf.float32) / spec.sample_rate
    w = wires(p, spec, noise["noise_re"], noise["noise_im"], bands)
    h = head(p, spec, t)
    c = click(p, spec, noise)
    # wires and head are normalised to unit RMS before mixing, so the group levels mean what
    # they say whatever the band/mode levels are; the click already has unit peak
    w = w / _rms(w)
    h = h / _rms(h)
    mix = (db_to_gain(p["wires_db"]) * w + db_to_gain(p["head_db"]) * h
           + db_to_gain(p["click_db"]) * c)
    return spec.out_peak * db_to_gain(p["gain_db"]) * mix / (soft_peak(mix, spec.peak_power)
                                                              + 1e-6)


def soft_peak(x: tf.Tensor, power: int = 32) -> tf.Tensor:
    """(B, T) -> (B, 1) L_p norm of the samples: >= the true peak, but smooth.

    A hard max switches between samples as a parameter moves, which puts kinks into the latent
    lines (a jump in step size along the line); the p-norm blends them. Dividing by it keeps
    every sample within [-1, 1]. Computed relative to the (constant) max for float safety; the
    norm is scale-invariant in that constant, so its gradient is exact.
    """
    top = tf.stop_gradient(tf.reduce_max(tf.abs(x), axis=1, keepdims=True)) + 1e-12
    ratio, reached = tf.square(x / top), 2
    while reached < power:  # |r|^p by repeated squaring: cheaper than pow() per sample
        ratio, reached = tf.square(ratio), reached * 2
    return top * tf.pow(tf.reduce_sum(ratio, axis=1, keepdims=True) + 1e-30, 1.0 / reached)


def _rms(x: tf.Tensor) -> tf.Tensor:
    return tf.sqrt(tf.reduce_mean(tf.square(x), axis=1, keepdims=True) + 1e-8)
