"""Variational autoencoder (the study's VAE A/B/C = kl_weight 0.01 / 0.001 / 0.0001).

keras-io VAE style: the encoder (the conv_autoencoder encoder with two heads) outputs
``[z_mean, z_log_var]``; a ``Sampling`` layer draws z in the trainer; the decoder is the WaveGAN
generator and is saved and served alone. Loss per batch::

    reconstruction = mean squared error per sample (+ spectral_weight * log-STFT distance)
    kl             = mean over the batch of sum over latent dims of KL(q(z|x) || N(0, 1))
    loss           = reconstruction + kl_weight_at(step) * kl

``kl_weight_at`` ramps the KL weight linearly from 0 to ``kl_weight`` over the first
``kl_warmup`` batches, so the decoder learns to use z before the prior pulls it in; the step is
the optimizer's iteration count, which checkpoints keep, so a resumed run continues the ramp.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from snaresynth.models.conv_autoencoder import conv_encoder_body
from snaresynth.models.distribute import replica_slice, scale_loss
from snaresynth.models.train import reconstruction_loss
from snaresynth.models.wavegan import UPSAMPLE_MODES, build_generator

FAMILY = "vae"
KNOB_SIGMAS = 2.0  # knobs span +-2 standard deviations of the N(0, 1) prior


def default_config() -> dict[str, Any]:
    """Every hyperparameter of the family; the default kl_weight is the study's VAE B."""
    return {
        "latent_dim": 16,
        "d": 8,
        "kernel_size": 25,
        "upsample": "nearest",
        "kl_weight": 0.001,
        "kl_warmup": 30000,  # batches over which the KL weight ramps up from 0
        "batch_size": 16,
        "learning_rate": 3e-4,
        "spectral_weight": 0.0,
    }


def kl_weight_at(step: Any, kl_weight: float, kl_warmup: int) -> Any:
    """KL weight after ``step`` batches: linear ramp 0 -> kl_weight over kl_warmup, then flat."""
    if kl_warmup <= 0:
        return keras.ops.convert_to_tensor(float(kl_weight), "float32")
    ramp = keras.ops.minimum(1.0, keras.ops.cast(step, "float32") / float(kl_warmup))
    return float(kl_weight) * ramp


def kl_divergence(z_mean: Any, z_log_var: Any) -> Any:
    """KL(N(mean, exp(log_var)) || N(0, 1)), summed over dims, averaged over the batch."""
    kl = -0.5 * (1.0 + z_log_var - tf.square(z_mean) - tf.exp(z_log_var))
    return tf.reduce_mean(tf.reduce_sum(kl, axis=1))


@keras.saving.register_keras_serializable(package="snaresynth")
class Sampling(keras.layers.Layer):
    """z = mean + exp(log_var / 2) * eps, eps ~ N(0, 1) (the reparameterisation trick)."""

    def __init__(self, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs: Any) -> Any:
        z_mean, z_log_var = inputs
        dim = keras.ops.shape(z_mean)[1]
        # drawn for the global batch, this replica's rows kept: independent across replicas
        eps = replica_slice(lambda n: keras.random.normal((n, dim), seed=self.seed_generator),
                            keras.ops.shape(z_mean)[0])
        return z_mean + keras.ops.exp(0.5 * z_log_var) * eps

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape[0]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "seed": self.seed}


def build_encoder(length: int, d: int, kernel: int, latent_dim: int) -> keras.Model:
    """(B, length) -> [z_mean, z_log_var]."""
    x_in = keras.Input(shape=(length,), name="audio")
    h = conv_encoder_body(x_in, length, d, kernel)
    z_mean = keras.layers.Dense(latent_dim, name="z_mean")(h)
    z_log_var = keras.layers.Dense(latent_dim, name="z_log_var")(h)
    return keras.Model(x_in, [z_mean, z_log_var], name="encoder")


class VAETrainer(keras.Model):
    """Encoder, sampler and decoder; train_step returns loss, reconstruction, kl, kl_weight."""

    def __init__(self, encoder: keras.Model, decoder: keras.Model, config: dict[str, Any],
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.sampling = Sampling(name="sampling")
        self.learning_rate = float(config["learning_rate"])
        self.kl_weight = float(config["kl_weight"])
        self.kl_warmup = int(config["kl_warmup"])
        self.spectral_weight = float(config["spectral_weight"])
        self.trackers = {k: keras.metrics.Mean(name=k)
                         for k in ("loss", "reconstruction", "kl", "kl_weight")}

    def compile(self, **kwargs: Any) -> None:  # the contract: no arguments needed
        kwargs.setdefault("optimizer", keras.optimizers.Adam(self.learning_rate))
        super().compile(**kwargs)

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return list(self.trackers.values())

    def call(self, x: Any, training: bool = False) -> Any:
        z_mean, z_log_var = self.encoder(x, training=training)
        z = self.sampling([z_mean, z_log_var]) if training else z_mean
        return self.decoder(z, training=training)

    def train_step(self, x: Any) -> dict[str, Any]:
        weight = kl_weight_at(self.optimizer.iterations, self.kl_weight, self.kl_warmup)
        with tf.GradientTape() as tape:
            z_mean, z_log_var = self.encoder(x, training=True)
            y = self.decoder(self.sampling([z_mean, z_log_var]), training=True)
            reconstruction = reconstruction_loss(x, y, self.spectral_weight)
            kl = kl_divergence(z_mean, z_log_var)
            loss = reconstruction + weight * kl
            scaled = scale_loss(loss)  # inside the tape; replicas' gradients are summed
        weights = self.trainable_weights
        grads = tape.gradient(scaled, weights)
        self.optimizer.apply_gradients(zip(grads, weights, strict=True))
        for key, value in (("loss", loss), ("reconstruction", reconstruction), ("kl", kl),
                           ("kl_weight", weight)):
            self.trackers[key].update_state(value)
        return {k: t.result() for k, t in self.trackers.items()}


def build_trainer(config: dict[str, Any], sample_rate: int, length: int) -> VAETrainer:
    if config["upsample"] not in UPSAMPLE_MODES:
        raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {config['upsample']!r}")
    if config["kl_weight"] < 0 or config["kl_warmup"] < 0:
        raise ValueError("kl_weight and kl_warmup must be >= 0")
    d, kernel, latent_dim = int(config["d"]), int(config["kernel_size"]), int(config["latent_dim"])
    encoder = build_encoder(length, d, kernel, latent_dim)
    decoder = build_generator(latent_dim, d, length, config["upsample"], kernel,
                              activation="leaky_relu")
    return VAETrainer(encoder, decoder, config)


def latent_spec(trainer: keras.Model, audio: np.ndarray,
                config: dict[str, Any]) -> tuple[list[float], list[float], str]:
    """Knobs span +-2 sigma of the N(0, 1) prior; eval draws from the prior itself."""
    dim = int(config["latent_dim"])
    return [-KNOB_SIGMAS] * dim, [KNOB_SIGMAS] * dim, "normal"
