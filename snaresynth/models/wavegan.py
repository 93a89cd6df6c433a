"""WaveGAN (Donahue, McAuley & Puckette, ICLR 2019) trained with WGAN-GP.

Generator: z (100 dims, uniform in [-1, 1]) -> dense -> (16, 16d) -> five x4 upsampling
convolutions (kernel 25; channels 8d, 4d, 2d, d, 1) with ReLU -> tanh -> 16384 samples.
Discriminator: the mirror image, strided conv1d + LeakyReLU(0.2) + phase shuffle.

The study's WaveGAN snares sounded "bitcrushed"; its known causes are options here.
``upsample = "transpose"`` is the paper's; ``"nearest"`` (nearest-neighbour upsampling then a
convolution, Pons et al., ICASSP 2021) is the default because it has no checkerboard tones
(``bench/wavegan_artifacts.py`` measures them; the figures are in docs/models.md).
``post_filter`` adds the paper's learned 512-tap filter (starting as the identity) and
``phase_shuffle`` sets the critic's shuffle (paper: 2 samples).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from snaresynth.models.distribute import num_replicas, replica_slice, scale_loss

FAMILY = "wavegan"
UPSAMPLE_STRIDE = 4
N_UPSAMPLE = 5
UPSAMPLE_MODES = ("transpose", "nearest")


def default_config() -> dict[str, Any]:
    """Every hyperparameter of the family (paper values except ``d``, which is CPU-sized)."""
    return {
        "latent_dim": 100,
        "d": 16,  # model size; the paper's 64 is too slow on CPUs
        "kernel_size": 25,
        "upsample": "nearest",  # "transpose" (paper) | "nearest" (no checkerboard tones)
        "post_filter": False,  # learned post-processing filter on the generator output
        "post_filter_taps": 512,
        "phase_shuffle": 2,  # samples; 0 disables
        "n_critic": 5,  # critic updates per generator update
        "gp_weight": 10.0,
        "batch_size": 64,
        "learning_rate": 1e-4,
        "beta_1": 0.5,
        "beta_2": 0.9,
    }


@keras.saving.register_keras_serializable(package="snaresynth")
class PhaseShuffle(keras.layers.Layer):
    """Shift each example by a random -rad..rad samples (reflect-padded) while training.

    Stops the critic from judging a fake by the exact phase of upsampling artefacts.
    """

    def __init__(self, rad: int = 2, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rad = int(rad)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x: Any, training: bool = False) -> Any:
        if not training or self.rad == 0:
            return x
        batch, steps = tf.shape(x)[0], tf.shape(x)[1]
        shifts = replica_slice(  # independent shifts per replica, as on one device
            lambda n: keras.random.randint((n,), 0, 2 * self.rad + 1, seed=self.seed_generator),
            batch)
        padded = tf.pad(x, [[0, 0], [self.rad, self.rad], [0, 0]], mode="REFLECT")
        index = tf.cast(shifts, tf.int32)[:, None] + tf.range(steps)[None, :]
        return tf.gather(padded, index, batch_dims=1)

    def compute_output_shape(self, input_shape: tuple[Any, ...]) -> tuple[Any, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rad": self.rad, "seed": self.seed}


def upsample_block(x: Any, channels: int, kernel: int, mode: str, name: str) -> Any:
    """One x4 upsampling convolution: transposed conv, or nearest-neighbour repeat + conv."""
    if mode == "transpose":
        return keras.layers.Conv1DTranspose(channels, kernel, strides=UPSAMPLE_STRIDE,
                                            padding="same", name=name)(x)
    if mode == "nearest":
        x = keras.layers.UpSampling1D(UPSAMPLE_STRIDE, name=f"{name}_nn")(x)
        return keras.layers.Conv1D(channels, kernel, padding="same", name=name)(x)
    raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {mode!r}")


def first_length(length: int) -> int:
    """Time steps after the dense layer; ``length`` must be a multiple of 4**5 (16384 -> 16)."""
    factor = UPSAMPLE_STRIDE**N_UPSAMPLE
    if length % factor:
        raise ValueError(f"WaveGAN needs a length divisible by {factor}, got {length}")
    return length // factor


def build_generator(latent_dim: int, d: int, length: int, upsample: str = "transpose",
                    kernel: int = 25, post_filter_taps: int = 0,
                    activation: str = "relu", name: str = "decoder") -> keras.Model:
    """z (B, latent_dim) -> (B, length) in [-1, 1]. Also the conv_autoencoder/vae decoder."""
    steps = first_length(length)
    z_in = keras.Input(shape=(latent_dim,), name="z")
    x = keras.layers.Dense(steps * 16 * d, name="project")(z_in)
    x = keras.layers.Reshape((steps, 16 * d), name="project_reshape")(x)
    x = keras.layers.Activation(activation, name="project_act")(x)
    channels = [8 * d, 4 * d, 2 * d, d, 1]
    for i, ch in enumerate(channels):
        x = upsample_block(x, ch, kernel, upsample, name=f"up{i}")
        if i < len(channels) - 1:
            x = _activation(activation, f"up{i}_act")(x)
    if post_filter_taps:
        post = keras.layers.Conv1D(1, post_filter_taps, padding="same", use_bias=False,
                                   name="post_filter")
        x = post(x)
        identity = np.zeros((post_filter_taps, 1, 1), dtype=np.float32)
        identity[post_filter_taps // 2 - (1 - post_filter_taps % 2), 0, 0] = 1.0
        post.kernel.assign(identity)  # starts transparent; learns to remove what it should
    x = keras.layers.Activation("tanh", name="tanh")(x)
    audio = keras.layers.Reshape((length,), name="audio")(x)
    return keras.Model(z_in, audio, name=name)


def build_discriminator(d: int, length: int, kernel: int = 25, phase_shuffle: int = 2,
                        seed: int | None = None) -> keras.Model:
    """(B, length) -> (B, 1) critic score: strided convs, LeakyReLU(0.2), phase shuffle."""
    x_in = keras.Input(shape=(length,), name="audio")
    x = keras.layers.Reshape((length, 1), name="to_channels")(x_in)
    channels = [d, 2 * d, 4 * d, 8 * d, 16 * d]
    for i, ch in enumerate(channels):
        x = keras.layers.Conv1D(ch, kernel, strides=UPSAMPLE_STRIDE, padding="same",
                                name=f"down{i}")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"down{i}_act")(x)
        if phase_shuffle and i < len(channels) - 1:
            x = PhaseShuffle(phase_shuffle, seed=None if seed is None else seed + i,
                             name=f"down{i}_shuffle")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    score = keras.layers.Dense(1, name="score")(x)
    return keras.Model(x_in, score, name="discriminator")


def _activation(name: str, layer_name: str) -> keras.layers.Layer:
    if name == "leaky_relu":
        return keras.layers.LeakyReLU(0.2, name=layer_name)
    return keras.layers.Activation(name, name=layer_name)


class WaveGANTrainer(keras.Model):
    """WGAN-GP as in keras-io's wgan_gp example: two Adams, n_critic critic steps per batch.

    The critic steps of one ``train_step`` reuse the batch's real examples (keras-io style), so
    one step = one generator update = one batch of the data pipeline.
    """

    def __init__(self, generator: keras.Model, discriminator: keras.Model,
                 config: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.decoder = generator
        self.discriminator = discriminator
        self.encoder = None
        self.latent_dim = int(config["latent_dim"])
        self.n_critic = int(config["n_critic"])
        self.gp_weight = float(config["gp_weight"])
        self.adam = (float(config["learning_rate"]), float(config["beta_1"]),
                     float(config["beta_2"]))
        self.z_seed = keras.random.SeedGenerator(None)
        self.trackers = {k: keras.metrics.Mean(name=k) for k in ("d_loss", "g_loss", "gp")}
        # its parts are built; unbuilt, fit under a strategy would trace call() on audio
        self.built = True

    def compile(self, **kwargs: Any) -> None:  # the contract: no arguments needed
        lr, b1, b2 = self.adam
        super().compile(**kwargs)
        self.d_optimizer = keras.optimizers.Adam(lr, beta_1=b1, beta_2=b2)
        self.g_optimizer = keras.optimizers.Adam(lr, beta_1=b1, beta_2=b2)
        # built now: the critic loop is a graph while-loop, where variables cannot be created
        self.d_optimizer.build(self.discriminator.trainable_weights)
        self.g_optimizer.build(self.decoder.trainable_weights)

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return list(self.trackers.values())

    def call(self, z: Any, training: bool = False) -> Any:
        return self.decoder(z, training=training)

    def sample_z(self, batch: Any) -> Any:
        return replica_slice(  # independent z per replica, as on one device
            lambda n: keras.random.uniform((n, self.latent_dim), -1.0, 1.0, seed=self.z_seed),
            batch)

    def gradient_penalty(self, real: Any, fake: Any) -> Any:
        """Mean (|grad D(x_hat)| - 1)^2 on random points between real and fake examples."""
        alpha = replica_slice(lambda n: keras.random.uniform((n, 1), seed=self.z_seed),
                              tf.shape(real)[0])
        mixed = real + alpha * (fake - real)
        with tf.GradientTape() as tape:
            tape.watch(mixed)
            score = self.discriminator(mixed, training=True)
        grads = tape.gradient(score, mixed)
        norm = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=1) + 1e-12)
        return tf.reduce_mean(tf.square(norm - 1.0))

    def critic_step(self, real: Any) -> tuple[Any, Any]:
        """One critic update: Wasserstein estimate + gradient penalty. Returns (d_loss, gp)."""
        d_vars = self.discriminator.trainable_weights
        z = self.sample_z(tf.shape(real)[0])
        with tf.GradientTape() as tape:
            fake = self.decoder(z, training=True)
            wasserstein = (tf.reduce_mean(self.discriminator(fake, training=True))
                           - tf.reduce_mean(self.discriminator(real, training=True)))
            gp = self.gradient_penalty(real, fake)
            d_loss = wasserstein + self.gp_weight * gp
            scaled = scale_loss(d_loss)  # inside the tape; replicas' gradients are summed
        grads = tape.gradient(scaled, d_vars)
        self.d_optimizer.apply_gradients(zip(grads, d_vars, strict=True))
        return d_loss, gp

    def train_step(self, real: Any) -> dict[str, Any]:
        # a graph while-loop: unrolled, n_critic double-backprop passes are slow to optimise
        def body(i: Any, d_loss: Any, gp: Any) -> tuple[Any, Any, Any]:
            d_loss, gp = self.critic_step(real)
            return i + 1, d_loss, gp

        zero = tf.constant(0.0)
        if num_replicas() == 1:
            _, d_loss, gp = tf.while_loop(lambda i, *_: i < self.n_critic, body,
                                          (tf.constant(0), zero, zero))
        else:  # a while-loop cannot hold the gradients' cross-replica sum (a merge_call)
            d_loss, gp = zero, zero
            for _ in range(self.n_critic):
                d_loss, gp = self.critic_step(real)
        g_vars = self.decoder.trainable_weights
        z = self.sample_z(tf.shape(real)[0])
        with tf.GradientTape() as tape:
            g_loss = -tf.reduce_mean(self.discriminator(self.decoder(z, training=True),
                                                        training=True))
            scaled = scale_loss(g_loss)
        grads = tape.gradient(scaled, g_vars)
        self.g_optimizer.apply_gradients(zip(grads, g_vars, strict=True))
        for key, value in (("d_loss", d_loss), ("g_loss", g_loss), ("gp", gp)):
            self.trackers[key].update_state(value)
        return {k: t.result() for k, t in self.trackers.items()}


def build_trainer(config: dict[str, Any], sample_rate: int, length: int) -> WaveGANTrainer:
    if config["upsample"] not in UPSAMPLE_MODES:
        raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {config['upsample']!r}")
    d = int(config["d"])
    if d < 1:
        raise ValueError(f"d must be >= 1, got {d}")
    generator = build_generator(
        int(config["latent_dim"]), d, length, config["upsample"], int(config["kernel_size"]),
        int(config["post_filter_taps"]) if config["post_filter"] else 0,
    )
    discriminator = build_discriminator(d, length, int(config["kernel_size"]),
                                        int(config["phase_shuffle"]))
    return WaveGANTrainer(generator, discriminator, config)


def latent_spec(trainer: keras.Model, audio: np.ndarray,
                config: dict[str, Any]) -> tuple[list[float], list[float], str]:
    """The generator was trained on z uniform in [-1, 1]: knobs span exactly that."""
    dim = int(config["latent_dim"])
    return [-1.0] * dim, [1.0] * dim, "uniform"
