"""A ddsp_snare decoder's synthesiser set per snare: each snare's own parameters, fitted.

What the network would have to give to reproduce each snare, as far as its synthesiser can:
Adam on the training loss (the multi-resolution STFT) over the unbounded parameters, from the
network's own guess. ``bench/synth_oracle.py`` judges what such settings reach,
``bench/refit_decoder.py`` teaches them to the network. Needs the train extra (TensorFlow).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np


def decoder_parts(decoder: Any) -> tuple[Any, Callable[[Any], Any]]:
    """(the network up to the synthesiser's parameters, the synthesiser) of a Keras ddsp_snare
    decoder (``registry.load(path, runtime="keras")``): knob points -> parameters -> audio."""
    import keras
    import tensorflow as tf

    from snaresynth.models import synth as synthesiser

    params = keras.Model(decoder.model.inputs, decoder.model.get_layer("synth_params").output)
    layer = decoder.model.get_layer("synth")
    noise = {n: tf.convert_to_tensor(w) for n, w in zip(layer._noise_names, layer.noise,
                                                         strict=True)}

    def synth(raw: Any) -> Any:
        return synthesiser.synthesize(raw, layer.spec, noise, layer._bands)

    return params, synth


Report = Callable[[int, float, float, np.ndarray], None]  # step, loss, seconds, parameters


def fit_parameters(synth: Callable[[Any], Any], start: np.ndarray, audio: np.ndarray,
                   steps: int, lr: float = 0.05, every: int = 50,
                   report: Report | None = None) -> np.ndarray:
    """(N, P) unbounded parameters fitted to ``audio`` (N, length), all snares in one batch,
    from ``start``; ``report`` every ``every`` steps and at the last, with the loss before
    that step's update and the parameters after it."""
    import keras
    import tensorflow as tf

    from snaresynth.models import losses

    raw = tf.Variable(np.asarray(start, np.float32))
    target = tf.constant(np.asarray(audio, np.float32))
    optimizer = keras.optimizers.Adam(lr)

    @tf.function
    def step() -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(losses.multi_resolution_stft_loss(target, synth(raw)))
        optimizer.apply_gradients(zip(tape.gradient(loss, [raw]), [raw], strict=True))
        return loss

    began = time.monotonic()
    for i in range(1, steps + 1):
        loss = float(step())
        if report is not None and (i % every == 0 or i == steps):
            report(i, loss, time.monotonic() - began, raw.numpy())
    return raw.numpy()
