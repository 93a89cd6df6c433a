"""What a training run shows while it runs: the tqdm bar, TensorBoard scalars, audio previews.

``progress_callback`` is the ``fit`` callback of ``train.train``: it counts steps, stops at the
total, checkpoints every N batches and logs, into ``<checkpoint_dir>/logs`` on the chief (a
scratch folder, removed at the end, on other workers):

* scalars every ``min(100, N)`` steps: every loss the family reports (the VAE's ``kl_weight``
  among them) and ``learning_rate`` (``learning_rate/<optimizer>`` for a GAN's two);
* audio previews at each checkpoint and at the end: ``preview/random`` decodes ``PREVIEWS``
  latents drawn once from fixed seeds, so the same clips can be compared across steps;
  ``preview/reconstruction`` is one corpus item and its reconstruction (encoder families).

Summaries are written with ``tf.summary.write`` and the plugins' metadata built here, so the
tensorboard package is needed only to look at them, not to train.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

PREVIEWS = 3  # random-latent clips per preview
PREVIEW_SEED = 1234  # fixed: the same latents at every preview of a run, and of its resumes
ENCODED_ITEMS = 32  # corpus items encoded to place the random latents of an encoder family
# AudioPluginData(version=0, encoding=WAV), serialised (tensorboard/plugins/audio/plugin_data.proto)
AUDIO_PLUGIN_CONTENT = b"\x10\x0b"


def scalar_metadata() -> Any:
    """What ``tf.summary.scalar`` writes, without needing the tensorboard package installed."""
    from tensorflow.core.framework import summary_pb2

    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
        data_class=summary_pb2.DATA_CLASS_SCALAR,
    )


def audio_metadata() -> Any:
    """What ``tf.summary.audio`` writes: a [k, 2] string tensor of (WAV bytes, label) rows."""
    from tensorflow.core.framework import summary_pb2

    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="audio",
                                                           content=AUDIO_PLUGIN_CONTENT),
        data_class=summary_pb2.DATA_CLASS_BLOB_SEQUENCE,
    )


class Previews:
    """Decoded clips for TensorBoard: fixed-seed random latents and one reconstruction."""

    def __init__(self, trainer: Any, family: Any, audio: np.ndarray, config: dict[str, Any],
                 sample_rate: int) -> None:
        self.trainer = trainer
        self.sample_rate = sample_rate
        self.encoder = getattr(trainer, "encoder", None)
        self.items = np.asarray(audio[:ENCODED_ITEMS], dtype=np.float32)
        dim = int(config["latent_dim"])
        rng = np.random.default_rng(PREVIEW_SEED)
        self.eps = rng.standard_normal((PREVIEWS, dim)).astype(np.float32)
        self.unit = rng.uniform(0.0, 1.0, (PREVIEWS, dim)).astype(np.float32)
        self.prior: tuple[np.ndarray, np.ndarray, str] | None = None
        if self.encoder is None:  # no encoder: the family's prior, which needs no corpus
            lo, hi, prior = family.latent_spec(trainer, self.items, config)
            self.prior = (np.asarray(lo, np.float32), np.asarray(hi, np.float32), prior)

    def _encode(self, x: np.ndarray) -> np.ndarray:
        out = self.encoder(x, training=False)
        return np.asarray(out[0] if isinstance(out, list | tuple) else out, dtype=np.float32)

    def latents(self) -> np.ndarray:
        """The random latents now: a Gaussian fitted to the encoded items, else the prior."""
        if self.prior is not None:
            lo, hi, prior = self.prior
            return self.eps if prior == "normal" else lo + (hi - lo) * self.unit
        z = self._encode(self.items)  # an autoencoder's latent scale moves while it trains
        return z.mean(axis=0) + np.maximum(z.std(axis=0), 1e-3) * self.eps

    def write(self, step: int) -> None:
        """Decode and write the previews at ``step`` into the default summary writer."""
        import tensorflow as tf

        decoder = self.trainer.decoder
        clips = np.asarray(decoder(self.latents(), training=False), dtype=np.float32)
        labels = [f"z{i} (seed {PREVIEW_SEED})" for i in range(len(clips))]
        tf.summary.write("preview/random", self._tensor(clips, labels), step=step,
                         metadata=audio_metadata())
        if self.encoder is not None:
            item = self.items[:1]
            again = np.asarray(decoder(self._encode(item), training=False), dtype=np.float32)
            tf.summary.write("preview/reconstruction",
                             self._tensor(np.concatenate([item, again]),
                                          ["corpus item 0", "its reconstruction"]),
                             step=step, metadata=audio_metadata())

    def _tensor(self, clips: np.ndarray, labels: list[str]) -> Any:
        import tensorflow as tf

        clips = np.clip(np.nan_to_num(clips), -1.0, 1.0)[..., None]  # [k, t, 1] mono
        wavs = [tf.audio.encode_wav(tf.constant(c), self.sample_rate) for c in clips]
        return tf.stack([tf.stack(wavs), tf.constant(labels)], axis=1)


def progress_callback(step: Any, seconds: Any, total: int, manager: Any, every: int,
                      log_dir: Path, optimizers: dict[str, Any], previews: Previews | None,
                      chief: bool = True, stop: Any = None, stop_flag: Any = None) -> Any:
    """The fit callback; a factory so that importing this module does not import Keras.

    ``stop`` (``stop.StopSignals``): a signal stops ``fit`` at the next step boundary after a
    checkpoint; with ``stop_flag`` (multiworker) the request goes through the next step's
    metrics first, so every worker saves and stops at the same step.
    """
    import keras
    import tensorflow as tf
    from tqdm import tqdm

    from snaresynth.models.distribute import STOP_KEY
    from snaresynth.models.train import TrainingError

    class Progress(keras.callbacks.Callback):
        """Counts steps, stops at the total, checkpoints, logs TensorBoard, draws a bar."""

        def __init__(self) -> None:
            super().__init__()
            self.log_every = max(1, min(100, every or 100))
            self.writer = tf.summary.create_file_writer(str(log_dir))
            self.bar = tqdm(total=total, initial=int(step.numpy()), unit="step",
                            disable=None if chief else True, dynamic_ncols=True)
            self.last_losses: dict[str, float] = {}
            self._seconds_before = float(seconds.numpy())  # earlier runs of a resumed training
            self._start = time.monotonic()
            self.stopped_at: int | None = None  # the step a signal stopped the run at

        def elapsed_seconds(self) -> float:
            """Training time over every run so far (checkpoints carry it across --resume)."""
            return self._seconds_before + time.monotonic() - self._start

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            n = int(step.assign_add(1).numpy())
            logs = dict(logs or {})
            any_worker_stops = float(np.asarray(logs.pop(STOP_KEY, 0.0)).item()) > 0
            losses = {k: float(np.asarray(v).item()) for k, v in logs.items()}
            self.last_losses = losses
            bad = [k for k, v in losses.items() if not math.isfinite(v)]
            if bad:
                raise TrainingError(f"training diverged at step {n}: {bad} not finite ({losses})")
            self.bar.update(1)
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in losses.items()}, refresh=False)
            if n % self.log_every == 0 or n == total:
                self._scalars(n, losses)
            if every and n % every == 0:
                self._save(n)
                log.info("step %d/%d checkpoint %s %s", n, total, manager.latest_checkpoint,
                         losses)
            if previews is not None and ((every and n % every == 0) or n >= total):
                with self.writer.as_default(step=n):
                    previews.write(n)
            if n >= total:
                self.model.stop_training = True
            elif stop is not None:
                self._maybe_stop(n, any_worker_stops)

        def _save(self, n: int) -> None:
            seconds.assign(self.elapsed_seconds())
            manager.save(checkpoint_number=n)  # collective under multiworker: all at this step
            if stop is not None:  # what a signal's message names (on a worker: the chief's)
                stop.latest = (manager.latest_checkpoint if chief
                               else str(Path(stop.ckpt_dir) / f"ckpt-{n}"))

        def _maybe_stop(self, n: int, any_worker_stops: bool) -> None:
            stop.training = True
            if stop_flag is None:
                asked = stop.requested
            else:  # this step's flag reached every worker: all stop here
                asked = any_worker_stops
                if stop.requested and float(stop_flag.numpy()) == 0.0:
                    stop_flag.assign(1.0)  # read by the next step on this worker
            if not asked:
                return
            if not (stop.latest or "").endswith(f"-{n}"):
                self._save(n)
            self.stopped_at = n
            self.model.stop_training = True

        def _scalars(self, n: int, losses: dict[str, float]) -> None:
            # a GAN's trainer also holds Keras's default optimizer, which never steps
            active = {name.removeprefix("opt").strip("_"): opt
                      for name, opt in optimizers.items() if int(np.asarray(opt.iterations)) > 0}
            rates = {("learning_rate" if len(active) == 1 else f"learning_rate/{name}"):
                     float(np.asarray(opt.learning_rate)) for name, opt in active.items()}
            with self.writer.as_default(step=n):
                for key, value in {**losses, **rates}.items():
                    tf.summary.write(key, tf.constant(value, tf.float32),
                                     metadata=scalar_metadata())

        def close(self) -> None:
            self.bar.close()
            self.writer.flush()

    return Progress()
