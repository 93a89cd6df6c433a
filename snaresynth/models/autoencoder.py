"""Dense autoencoder: the study's "small autoencoders" (waveform -> few dims -> waveform).

Fully connected layers see the whole 16384-sample window at once; with few hidden units they
learn a handful of average snare shapes, which is what makes their latent knobs easy to read.
``AutoencoderTrainer`` (the reconstruction train step) is shared with ``conv_autoencoder``.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from snaresynth.models.distribute import scale_loss
from snaresynth.models.train import encoder_latent_spec, reconstruction_loss

FAMILY = "autoencoder"


def default_config() -> dict[str, Any]:
    """Every hyperparameter of the family (JSON-serialisable)."""
    return {
        "latent_dim": 8,
        "hidden": [256, 64],  # encoder layer widths; the decoder mirrors them
        "activation": "relu",
        "batch_size": 32,
        "learning_rate": 1e-3,
        "spectral_weight": 0.0,  # weight of the multi-resolution log-STFT term (0 = plain MSE)
    }


def build_encoder(length: int, hidden: list[int], latent_dim: int,
                  activation: str) -> keras.Model:
    x_in = keras.Input(shape=(length,), name="audio")
    x = x_in
    for i, width in enumerate(hidden):
        x = keras.layers.Dense(int(width), activation=activation, name=f"enc_dense{i}")(x)
    z = keras.layers.Dense(latent_dim, name="z")(x)
    return keras.Model(x_in, z, name="encoder")


def build_decoder(latent_dim: int, hidden: list[int], length: int,
                  activation: str) -> keras.Model:
    z_in = keras.Input(shape=(latent_dim,), name="z")
    x = z_in
    for i, width in enumerate(reversed(hidden)):
        x = keras.layers.Dense(int(width), activation=activation, name=f"dec_dense{i}")(x)
    audio = keras.layers.Dense(length, activation="tanh", name="audio")(x)
    return keras.Model(z_in, audio, name="decoder")


class AutoencoderTrainer(keras.Model):
    """Encoder + decoder trained on reconstruction; never saved itself (only its two halves)."""

    def __init__(self, encoder: keras.Model, decoder: keras.Model, learning_rate: float,
                 spectral_weight: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.learning_rate = float(learning_rate)
        self.spectral_weight = float(spectral_weight)
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def compile(self, **kwargs: Any) -> None:  # the contract: no arguments needed
        kwargs.setdefault("optimizer", keras.optimizers.Adam(self.learning_rate))
        super().compile(**kwargs)

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self.loss_tracker]

    def call(self, x: Any, training: bool = False) -> Any:
        return self.decoder(self.encoder(x, training=training), training=training)

    def train_step(self, x: Any) -> dict[str, Any]:
        with tf.GradientTape() as tape:
            y = self(x, training=True)
            loss = reconstruction_loss(x, y, self.spectral_weight)
            scaled = scale_loss(loss)  # inside the tape; replicas' gradients are summed
        weights = self.trainable_weights
        grads = tape.gradient(scaled, weights)
        self.optimizer.apply_gradients(zip(grads, weights, strict=True))
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}


def build_trainer(config: dict[str, Any], sample_rate: int, length: int) -> AutoencoderTrainer:
    hidden = [int(w) for w in config["hidden"]]
    if not hidden or min(hidden) < 1:
        raise ValueError(f"hidden must list positive layer widths, got {config['hidden']}")
    latent_dim = int(config["latent_dim"])
    encoder = build_encoder(length, hidden, latent_dim, config["activation"])
    decoder = build_decoder(latent_dim, hidden, length, config["activation"])
    return AutoencoderTrainer(encoder, decoder, config["learning_rate"],
                              config["spectral_weight"])


def latent_spec(trainer: keras.Model, audio: np.ndarray,
                config: dict[str, Any]) -> tuple[list[float], list[float], str]:
    """Knobs span the 1st..99th percentile of the encoded corpus; eval draws uniformly there."""
    return encoder_latent_spec(trainer.encoder, audio)
