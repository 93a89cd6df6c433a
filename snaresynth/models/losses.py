"""Multi-resolution STFT loss (as in DDSP / Parallel WaveGAN), in TensorFlow.

Why: sample-wise losses punish a snare whose wires have a different (random) phase although it
sounds the same; magnitude spectrograms at several resolutions compare what is heard, with long
FFTs for the head's pitch and short ones for the attack.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

DEFAULT_FFT_SIZES = (2048, 1024, 512, 256, 128, 64)


def stft_magnitude(audio: tf.Tensor, fft_size: int, hop: int | None = None) -> tf.Tensor:
    """(B, T) -> (B, frames, fft_size // 2 + 1) magnitude, Hann window, 75 % overlap."""
    hop = hop or fft_size // 4
    spec = tf.signal.stft(audio, frame_length=fft_size, frame_step=hop, fft_length=fft_size,
                          window_fn=tf.signal.hann_window, pad_end=True)
    return tf.abs(spec)


def spectral_convergence(target_mag: tf.Tensor, pred_mag: tf.Tensor) -> tf.Tensor:
    """Per-item ||S - S^||_F / ||S||_F: relative error, dominated by the loud parts."""
    num = tf.norm(target_mag - pred_mag, ord="fro", axis=[-2, -1])
    den = tf.norm(target_mag, ord="fro", axis=[-2, -1]) + 1e-7
    return num / den


def log_magnitude_distance(target_mag: tf.Tensor, pred_mag: tf.Tensor,
                           eps: float = 1e-5) -> tf.Tensor:
    """Per-item mean |log S - log S^|: weighs quiet tails and high bands like the ear does."""
    diff = tf.abs(tf.math.log(target_mag + eps) - tf.math.log(pred_mag + eps))
    return tf.reduce_mean(diff, axis=[-2, -1])


def multi_resolution_stft_loss(target: tf.Tensor, pred: tf.Tensor,
                               fft_sizes: Sequence[int] = DEFAULT_FFT_SIZES,
                               log_weight: float = 1.0) -> tf.Tensor:
    """(B, T), (B, T) -> (B,) mean over resolutions of spectral convergence + log magnitude."""
    total = tf.zeros(tf.shape(target)[:1], dtype=tf.float32)
    for size in fft_sizes:
        t_mag = stft_magnitude(target, size)
        p_mag = stft_magnitude(pred, size)
        total += spectral_convergence(t_mag, p_mag) + log_weight * log_magnitude_distance(
            t_mag, p_mag)
    return total / float(len(fft_sizes))
