"""WaveGAN-shaped convolutional autoencoder (the study's second family).

Encoder: five conv1d layers (kernel 25, stride 4; channels d, 2d, 4d, 8d, 16d), each followed by
LeakyReLU(0.2), then one dense layer to the latent. Decoder: the mirror image, i.e. the WaveGAN
generator (``wavegan.build_generator``) with LeakyReLU, so the ``upsample`` fix for the
"bitcrushed" artefacts applies here too. Trained on reconstruction (``AutoencoderTrainer``).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from snaresynth.models.autoencoder import AutoencoderTrainer
from snaresynth.models.train import encoder_latent_spec
from snaresynth.models.wavegan import N_UPSAMPLE, UPSAMPLE_MODES, UPSAMPLE_STRIDE, build_generator

FAMILY = "conv_autoencoder"


def default_config() -> dict[str, Any]:
    """Every hyperparameter of the family (JSON-serialisable)."""
    return {
        "latent_dim": 16,
        "d": 8,  # model size: channels d..16d, as WaveGAN's
        "kernel_size": 25,
        "upsample": "nearest",  # "transpose" (WaveGAN paper) | "nearest" (no checkerboard tones)
        "batch_size": 16,
        "learning_rate": 3e-4,
        "spectral_weight": 0.0,
    }


def conv_encoder_body(x_in: Any, length: int, d: int, kernel: int) -> Any:
    """(B, length) -> flattened features of five strided conv1d + LeakyReLU(0.2) layers."""
    x = keras.layers.Reshape((length, 1), name="to_channels")(x_in)
    for i in range(N_UPSAMPLE):
        x = keras.layers.Conv1D(d * 2**i, kernel, strides=UPSAMPLE_STRIDE, padding="same",
                                name=f"down{i}")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"down{i}_act")(x)
    return keras.layers.Flatten(name="flatten")(x)


def build_encoder(length: int, d: int, kernel: int, latent_dim: int) -> keras.Model:
    x_in = keras.Input(shape=(length,), name="audio")
    z = keras.layers.Dense(latent_dim, name="z")(conv_encoder_body(x_in, length, d, kernel))
    return keras.Model(x_in, z, name="encoder")


def build_trainer(config: dict[str, Any], sample_rate: int, length: int) -> AutoencoderTrainer:
    if config["upsample"] not in UPSAMPLE_MODES:
        raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {config['upsample']!r}")
    d, kernel, latent_dim = int(config["d"]), int(config["kernel_size"]), int(config["latent_dim"])
    if d < 1:
        raise ValueError(f"d must be >= 1, got {d}")
    encoder = build_encoder(length, d, kernel, latent_dim)
    decoder = build_generator(latent_dim, d, length, config["upsample"], kernel,
                              activation="leaky_relu")
    return AutoencoderTrainer(encoder, decoder, config["learning_rate"],
                              config["spectral_weight"])


def latent_spec(trainer: keras.Model, audio: np.ndarray,
                config: dict[str, Any]) -> tuple[list[float], list[float], str]:
    """Knobs span the 1st..99th percentile of the encoded corpus; eval draws uniformly there."""
    return encoder_latent_spec(trainer.encoder, audio)
