"""ddsp_snare: a VAE whose decoder drives a differentiable snare synthesiser (``synth.py``).

Why this family: the study's four families decode raw samples, and parts of their latent spaces
sound like anything but a snare. Here the decoder is a small MLP from the latent vector to the
bounded parameters of a snare model (wires noise, membrane modes, stick click), so every latent
point is a snare, nearby points sound alike, and one decode costs one inverse STFT plus a few
sinusoids (well under the 5 ms budget).

Pieces (all registered Keras objects, loadable in safe mode, no Lambda layers):

* ``LogMel`` -> conv encoder -> (mean, log_var): a VAE encoder with a small KL weight, so the
  latent space is regular enough to sample from a normal prior.
* ``LatentAffine``: a fixed affine map at the decoder input. Identity while training; afterwards
  ``latent_spec`` sets it to whiten the encoded corpus (so N(0, 1) knob space covers where the real
  snares lie) and to order the knobs by how audibly they change the sound (knob 1 = most audible).
* ``SnareSynth``: raw parameters -> (B, length) audio, holding the fixed noise as weights.
* ``DDSPSnareTrainer``: the keras-io VAE pattern; ``train_step`` returns a dict of losses.
"""

from __future__ import annotations

import logging
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from snaresynth.models import losses, synth
from snaresynth.models.distribute import apply_clipped, replica_slice, scale_loss

FAMILY = "ddsp_snare"
PACKAGE = "snaresynth"

log = logging.getLogger(__name__)


def default_config() -> dict[str, Any]:
    """Hyper-parameters; everything that shapes the model or its training is in here."""
    return {
        "latent_dim": 8,
        "hidden": 192,  # decoder MLP width
        "hidden_layers": 2,
        "enc_channels": 64,
        "n_mels": 64,
        "n_bands": 16,
        "n_modes": 6,
        "noise_seed": 0,
        "beta": 0.01,  # KL weight (sum over latent dims) against the MR-STFT loss
        "fft_sizes": list(losses.DEFAULT_FFT_SIZES),
        "learning_rate": 2e-3,
        "lr_decay_steps": 6000,  # cosine decay to 10 % over this many steps; 0 = constant
        "batch_size": 16,
        "out_peak": 0.999,
        "peak_power": 128,  # L_p norm of the output normaliser (see synth.SynthSpec)
        "order_probes": 32,  # latent points used to rank the knobs by audibility
    }


# --- layers --------------------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package=PACKAGE)
class LogMel(keras.layers.Layer):
    """(B, T) audio -> (B, frames, n_mels) log-mel, the encoder's view of a sound."""

    def __init__(self, sample_rate: int, n_fft: int = 1024, hop: int = 256, n_mels: int = 64,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sample_rate, self.n_fft, self.hop, self.n_mels = sample_rate, n_fft, hop, n_mels
        self._mel = tf.signal.linear_to_mel_weight_matrix(
            n_mels, n_fft // 2 + 1, sample_rate, 40.0, sample_rate / 2.0)

    def call(self, audio: tf.Tensor) -> tf.Tensor:
        spec = tf.abs(tf.signal.stft(audio, self.n_fft, self.hop, pad_end=True))
        return tf.math.log(tf.tensordot(spec, self._mel, 1) + 1e-4)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "sample_rate": self.sample_rate, "n_fft": self.n_fft,
                "hop": self.hop, "n_mels": self.n_mels}


@keras.saving.register_keras_serializable(package=PACKAGE)
class LatentAffine(keras.layers.Layer):
    """z_model = z_knob @ kernel + bias, fixed (non-trainable); identity until ``latent_spec``."""

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        dim = int(input_shape[-1])
        self.kernel = self.add_weight(name="kernel", shape=(dim, dim), trainable=False,
                                      initializer=keras.initializers.Identity())
        self.bias = self.add_weight(name="bias", shape=(dim,), trainable=False,
                                    initializer="zeros")

    def call(self, z: tf.Tensor) -> tf.Tensor:
        return tf.matmul(z, self.kernel) + self.bias


@keras.saving.register_keras_serializable(package=PACKAGE)
class SnareSynth(keras.layers.Layer):
    """(B, param_count) raw parameters -> (B, length) snare via ``synth.synthesize``."""

    def __init__(self, spec: dict[str, Any], noise_seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = synth.SynthSpec.from_dict(spec)
        self.noise_seed = noise_seed
        self._bands = tf.constant(synth.band_matrix(self.spec))

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        noise = synth.make_noise(self.spec, self.noise_seed)
        self._noise_names = sorted(noise)
        self.noise = [
            self.add_weight(name=name, shape=noise[name].shape, trainable=False,
                            initializer=keras.initializers.Constant(noise[name]))
            for name in self._noise_names
        ]

    def call(self, raw: tf.Tensor) -> tf.Tensor:
        noise = {name: tf.convert_to_tensor(w)
                 for name, w in zip(self._noise_names, self.noise, strict=True)}
        return synth.synthesize(raw, self.spec, noise, self._bands)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, int]:
        return (input_shape[0], self.spec.length)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "spec": self.spec.to_dict(),
                "noise_seed": self.noise_seed}


# --- networks ------------------------------------------------------------------------------------

def synth_spec(config: dict[str, Any], sample_rate: int, length: int) -> synth.SynthSpec:
    return synth.SynthSpec(sample_rate=int(sample_rate), length=int(length),
                           n_bands=int(config["n_bands"]), n_modes=int(config["n_modes"]),
                           out_peak=float(config["out_peak"]),
                           peak_power=int(config["peak_power"]))


def build_decoder(config: dict[str, Any], sample_rate: int, length: int) -> keras.Model:
    """z (B, latent_dim) -> (B, length) in [-1, 1]: affine, MLP, synthesiser."""
    spec = synth_spec(config, sample_rate, length)
    z = keras.Input(shape=(config["latent_dim"],), name="z")
    h = LatentAffine(name="knobs")(z)
    for i in range(int(config["hidden_layers"])):
        h = keras.layers.Dense(int(config["hidden"]), activation="gelu", name=f"mlp_{i}")(h)
    # small last layer: training starts near the middle of every parameter range
    raw = keras.layers.Dense(synth.param_count(spec), name="synth_params",
                             kernel_initializer=keras.initializers.RandomNormal(stddev=0.01))(h)
    audio = SnareSynth(spec.to_dict(), noise_seed=int(config["noise_seed"]), name="synth")(raw)
    return keras.Model(z, audio, name="ddsp_snare_decoder")


def build_encoder(config: dict[str, Any], sample_rate: int, length: int) -> keras.Model:
    """(B, length) audio -> [mean (knob space), log_var (model space)], each (B, latent_dim)."""
    audio = keras.Input(shape=(length,), name="audio")
    h = LogMel(int(sample_rate), n_mels=int(config["n_mels"]), name="logmel")(audio)
    ch = int(config["enc_channels"])
    for i in range(3):
        h = keras.layers.Conv1D(ch, 5, strides=2, padding="same", activation="gelu",
                                name=f"conv_{i}")(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(128, activation="gelu", name="enc_dense")(h)
    dim = int(config["latent_dim"])
    mean = keras.layers.Dense(dim, name="mean")(h)
    # identity while training; afterwards the inverse of the decoder's "knobs" map, so that
    # encode -> decode round-trips in knob space (eval's reconstruction figures)
    mean = LatentAffine(name="knobs_inverse")(mean)
    log_var = keras.layers.Dense(dim, name="log_var",
                                 kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
                                 bias_initializer=keras.initializers.Constant(-2.0))(h)
    return keras.Model(audio, [mean, log_var], name="ddsp_snare_encoder")


@keras.saving.register_keras_serializable(package=PACKAGE)
class DDSPSnareTrainer(keras.Model):
    """VAE training wrapper: MR-STFT reconstruction + beta * KL; ``.encoder``, ``.decoder``."""

    def __init__(self, config: dict[str, Any], sample_rate: int, length: int,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = {**default_config(), **config}
        self.sample_rate, self.length = int(sample_rate), int(length)
        self.encoder = build_encoder(self.config, sample_rate, length)
        self.decoder = build_decoder(self.config, sample_rate, length)
        self.beta = float(self.config["beta"])
        self.fft_sizes = tuple(int(s) for s in self.config["fft_sizes"])
        # stateless noise keyed by (this, step): the same draws on any strategy and on resume
        self.noise_key = int(np.random.randint(2**31 - 1))
        self._trackers = {name: keras.metrics.Mean(name=name)
                          for name in ("loss", "stft", "kl")}

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return list(self._trackers.values())

    def compile(self, **kwargs: Any) -> None:
        """No arguments needed (train.py's contract): Adam at the config's learning rate."""
        rate: Any = float(self.config["learning_rate"])
        if int(self.config["lr_decay_steps"]) > 0:
            rate = keras.optimizers.schedules.CosineDecay(
                rate, int(self.config["lr_decay_steps"]), alpha=0.1)
        kwargs.setdefault("optimizer", keras.optimizers.Adam(rate))
        super().compile(**kwargs)

    def call(self, audio: tf.Tensor, training: bool = False) -> tf.Tensor:
        mean, _ = self.encoder(audio, training=training)
        return self.decoder(mean, training=training)

    def _compute_losses(self, audio: tf.Tensor, training: bool) -> dict[str, tf.Tensor]:
        audio = tf.cast(audio, tf.float32)
        mean, log_var = self.encoder(audio, training=training)
        log_var = tf.clip_by_value(log_var, -10.0, 4.0)
        eps = self._noise(tf.shape(mean)) if training else tf.zeros_like(mean)
        recon = self.decoder(mean + tf.exp(0.5 * log_var) * eps, training=training)
        stft = tf.reduce_mean(losses.multi_resolution_stft_loss(audio, recon, self.fft_sizes))
        kl = tf.reduce_mean(tf.reduce_sum(
            0.5 * (tf.square(mean) + tf.exp(log_var) - 1.0 - log_var), axis=1))
        return {"loss": stft + self.beta * kl, "stft": stft, "kl": kl}

    def train_step(self, data: Any) -> dict[str, tf.Tensor]:
        audio = data[0] if isinstance(data, tuple | list) else data
        with tf.GradientTape() as tape:
            result = self._compute_losses(audio, training=True)
            scaled = scale_loss(result["loss"])  # inside the tape; replicas' sum is the mean
        weights = self.trainable_weights
        grads = tape.gradient(scaled, weights)
        apply_clipped(self.optimizer, grads, weights, 5.0)
        return self._track(result)

    def _noise(self, shape: tf.Tensor) -> tf.Tensor:
        seed = tf.stack([tf.constant(self.noise_key, tf.int64),
                         tf.cast(self.optimizer.iterations, tf.int64)])
        return replica_slice(
            lambda n: tf.random.stateless_normal(tf.stack([n, shape[1]]), seed=seed), shape[0])

    def test_step(self, data: Any) -> dict[str, tf.Tensor]:
        audio = data[0] if isinstance(data, tuple | list) else data
        return self._track(self._compute_losses(audio, training=False))

    def _track(self, result: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        for name, value in result.items():
            self._trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self._trackers.items()}

    def get_config(self) -> dict[str, Any]:
        return {"config": self.config, "sample_rate": self.sample_rate, "length": self.length,
                "name": self.name}


def build_trainer(config: dict[str, Any], sample_rate: int, length: int) -> keras.Model:
    """A compiled trainer (Adam at ``learning_rate``); ``compile()`` again is harmless."""
    trainer = DDSPSnareTrainer({**default_config(), **config}, sample_rate, length)
    trainer.compile()
    return trainer


# --- after training: knob space ------------------------------------------------------------------

def _logmel_np(layer: LogMel, audio: np.ndarray) -> np.ndarray:
    return np.asarray(layer(tf.constant(audio, dtype=tf.float32)))


def fit_knob_space(trainer: DDSPSnareTrainer, audio: np.ndarray,
                   seed: int = 0) -> dict[str, Any]:
    """Whiten the encoded corpus into N(0, 1) knob space, order knobs by audibility; bake it in.

    The aggregate posterior's covariance (spread of the means + mean posterior variance) is
    factored by PCA, so a standard-normal knob vector lands where real snares were encoded.
    Then each knob is swept -2..+2 sigma at ``order_probes`` random points; the mean log-mel
    change ranks the knobs (knob 1 = most audible). Returns the figures, for the metadata.
    """
    dim = int(trainer.config["latent_dim"])
    if np.any(np.abs(np.asarray(trainer.encoder.get_layer("knobs_inverse").kernel)
                     - np.eye(dim)) > 0):
        raise ValueError("the knob space of this trainer has already been fitted")
    means, log_vars = [], []
    for start in range(0, len(audio), 64):
        m, lv = trainer.encoder(tf.constant(audio[start:start + 64]), training=False)
        means.append(np.asarray(m))
        log_vars.append(np.asarray(lv))
    mean = np.concatenate(means).astype(np.float64)
    var = np.exp(np.clip(np.concatenate(log_vars), -10.0, 4.0)).astype(np.float64)
    centre = mean.mean(axis=0)
    cov = np.cov(mean, rowvar=False).reshape(dim, dim) + np.diag(var.mean(axis=0))
    eigval, eigvec = np.linalg.eigh(cov)
    scale = eigvec * np.sqrt(np.maximum(eigval, 1e-8))[None, :]  # columns: principal axes

    affine = trainer.decoder.get_layer("knobs")
    affine.kernel.assign(scale.T.astype(np.float32))
    affine.bias.assign(centre.astype(np.float32))

    mel = LogMel(trainer.sample_rate, n_mels=int(trainer.config["n_mels"]))
    audibility = knob_audibility(trainer.decoder, mel, int(trainer.config["order_probes"]), seed)
    order = np.argsort(-audibility)
    kernel = scale[:, order].T  # z_model = z_knob @ kernel + centre
    affine.kernel.assign(kernel.astype(np.float32))
    inverse = np.linalg.inv(kernel)  # z_knob = (z_model - centre) @ inverse
    enc_affine = trainer.encoder.get_layer("knobs_inverse")
    enc_affine.kernel.assign(inverse.astype(np.float32))
    enc_affine.bias.assign((-centre @ inverse).astype(np.float32))
    return {"knob_audibility": [round(float(audibility[i]), 4) for i in order],
            "pca_sigma": [round(float(np.sqrt(max(eigval[i], 0.0))), 4) for i in order]}


def knob_audibility(decoder: Any, mel: LogMel, probes: int = 32, seed: int = 0) -> np.ndarray:
    """(D,) mean log-mel change as each knob alone goes -2 .. +2 sigma, at ``probes`` random
    N(0, 1) knob settings of ``decoder`` (a Keras model from knob units to audio)."""
    dim = int(decoder.inputs[0].shape[-1])
    points = np.random.default_rng(seed).standard_normal((probes, dim)).astype(np.float32)
    audibility = np.zeros(dim)
    for i in range(dim):
        lo, hi = points.copy(), points.copy()
        lo[:, i], hi[:, i] = -2.0, 2.0
        a = _logmel_np(mel, np.asarray(decoder(lo, training=False)))
        b = _logmel_np(mel, np.asarray(decoder(hi, training=False)))
        audibility[i] = float(np.mean(np.abs(a - b)))
    return audibility


def reorder_knobs(decoder: Any, encoder: Any | None, order: np.ndarray) -> None:
    """Make knob ``i`` what knob ``order[i]`` was, in the decoder's ``knobs`` map and the
    encoder's ``knobs_inverse`` (in place; knob ranges are the caller's to permute)."""
    affine = decoder.get_layer("knobs")
    affine.kernel.assign(np.asarray(affine.kernel)[order])
    if encoder is not None:
        inverse = encoder.get_layer("knobs_inverse")
        inverse.kernel.assign(np.asarray(inverse.kernel)[:, order])
        inverse.bias.assign(np.asarray(inverse.bias)[order])


def latent_spec(trainer: DDSPSnareTrainer, audio: np.ndarray,
                config: dict[str, Any]) -> tuple[list[float], list[float], str]:
    """Fix the knob space (see ``fit_knob_space``); knobs span +-2 sigma of a normal prior."""
    trainer.knob_report = fit_knob_space(trainer, np.asarray(audio, dtype=np.float32))
    log.info("knob space fitted: %s", trainer.knob_report)
    dim = int(trainer.config["latent_dim"])
    return [-2.0] * dim, [2.0] * dim, "normal"
