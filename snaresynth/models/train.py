"""The shared training loop: corpus -> tf.data -> a family's trainer -> checkpoints -> model file.

Family module contract (every module listed in ``registry.FAMILIES`` implements exactly this)::

    FAMILY: str
    def default_config() -> dict[str, Any]
        # every hyperparameter, JSON-serialisable; MUST include "latent_dim", "batch_size" and
        # "learning_rate" (--batch-size / --lr / --latent-dim override these keys, --set any key)
    def build_trainer(config: dict[str, Any], sample_rate: int, length: int) -> keras.Model
        # a keras.Model subclass whose compile() takes NO arguments (optimizers, betas and the
        # learning rate come from ``config``) and whose train_step(batch) gets a (B, length)
        # float32 batch and returns a dict of float losses (keras-io VAE/WGAN-GP style).
        # Attributes: .decoder: keras.Model (B, latent_dim) -> (B, length) in [-1, 1] (saved and
        # served alone); .encoder: keras.Model or None ((B, length) -> mean or [mean, log_var]).
        # Every custom layer the decoder/encoder uses is registered with
        # keras.saving.register_keras_serializable(package="snaresynth") at module import.
    def latent_spec(trainer, audio: np.ndarray, config) -> tuple[list[float], list[float], str]
        # per-dim (lo, hi) a knob spans and the prior "normal" | "uniform" eval draws from

``train`` owns everything else: seeds, the data pipeline, step counting, checkpoints (weights +
optimizer state + step via ``tf.train.CheckpointManager``; any optimizer the trainer holds as an
attribute is tracked), resume, the tqdm bar, TensorBoard scalars and audio previews
(``progress.py``) and the model file. Steps are counted in batches (one ``train_step`` call),
whatever the family does inside it. Under ``--strategy mirrored|multiworker`` (``distribute.py``)
the batch is the global batch, the trainer is built inside ``strategy.scope()`` and only the
chief writes checkpoints and files.
"""

from __future__ import annotations

import json
import logging
import math
import shlex
import shutil
import signal
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from snaresynth.errors import CorpusError, SnareSynthError

log = logging.getLogger(__name__)

RECIPES_DIR = Path(__file__).resolve().parents[2] / "presets" / "training"
REQUIRED_KEYS = ("latent_dim", "batch_size", "learning_rate")
RUN_FILE = "run.json"


class TrainingError(SnareSynthError, ValueError):
    """Bad training input (family, recipe, config key or value, checkpoint state)."""


class TrainingStopped(TrainingError):
    """SIGTERM / SIGINT stopped the run after a checkpoint; ``exit_code`` 128 + the signal."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class TrainSettings:
    """One training run. ``None`` means "the recipe's or the family's default"."""

    family: str | None
    data: Path
    out: Path
    steps: int | None = None  # total batches, counted across resumes
    epochs: int | None = None  # passes over the corpus; steps = epochs * ceil(N / batch_size)
    batch_size: int | None = None
    learning_rate: float | None = None
    seed: int = 0
    checkpoint_every: int = 1000  # batches; 0 = only at the end
    checkpoint_dir: Path | None = None  # default: <out without .keras>.ckpt/
    resume: bool = False
    log_dir: Path | None = None  # default: <checkpoint_dir>/logs
    recipe: str | None = None  # name in presets/training/ or a path to a .toml
    strategy: str | None = None  # default | mirrored | multiworker; None: the recipe's or default
    worker_wait: float | None = None  # multiworker: seconds for every worker to join (None: 600)
    overrides: dict[str, Any] = field(default_factory=dict)  # config key -> value

    def command_line(self) -> str:
        """The canonical ``snaresynth train`` command that reproduces this run."""
        parts = ["snaresynth", "train"]
        for flag, value in (("--family", self.family), ("--recipe", self.recipe),
                            ("--data", self.data), ("--out", self.out), ("--steps", self.steps),
                            ("--epochs", self.epochs), ("--batch-size", self.batch_size),
                            ("--lr", self.learning_rate), ("--seed", self.seed),
                            ("--strategy", self.strategy)):
            if value is not None:
                parts += [flag, str(value)]
        for key, value in sorted(self.overrides.items()):
            parts += ["--set", f"{key}={json.dumps(value)}"]
        if self.resume:
            parts.append("--resume")
        return shlex.join(parts)


# --- recipes and config ------------------------------------------------------------------------

def load_recipe(name: str) -> tuple[str | None, dict[str, Any]]:
    """A recipe is TOML: ``family = "vae"`` plus a ``[config]`` table. Returns (family, config)."""
    raw = _read_recipe(name)
    return raw.get("family"), dict(raw.get("config", {}))


def recipe_strategy(name: str) -> str | None:
    """The recipe's optional ``strategy = "mirrored"`` (the --strategy flag wins over it)."""
    from snaresynth.models.distribute import STRATEGIES

    value = _read_recipe(name).get("strategy")
    if value is not None and value not in STRATEGIES:
        raise TrainingError(f"recipe {name!r}: strategy must be one of {STRATEGIES}, got {value!r}")
    return value


def recipe_knobs(name: str) -> tuple[str | None, float | None]:
    """The recipe's optional ``knob_map = "ball"`` and ``knob_scale = 1.1``: the knob space the
    model file gets (models/knobmap.py; as ``snaresynth export --knob-map/--knob-scale``)."""
    from snaresynth.models.knobmap import check_knobs

    raw = _read_recipe(name)
    kind, scale = raw.get("knob_map"), raw.get("knob_scale")
    try:
        check_knobs(kind, scale)
    except ValueError as exc:
        raise TrainingError(f"recipe {name!r}: {exc}") from exc
    return kind, None if scale is None else float(scale)


def _read_recipe(name: str) -> dict[str, Any]:
    path = Path(name) if name.endswith(".toml") else RECIPES_DIR / f"{name}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in RECIPES_DIR.glob("*.toml"))
        raise TrainingError(f"unknown training recipe {name!r}; known: {', '.join(known)}")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise TrainingError(f"{path}: not valid TOML: {exc}") from exc
    unknown = sorted(set(raw) - {"family", "description", "config", "strategy", "knob_map",
                                 "knob_scale"})
    if unknown:
        raise TrainingError(f"{path}: unknown recipe field(s) {unknown}")
    config = raw.get("config", {})
    if not isinstance(config, dict):
        raise TrainingError(f"{path}: [config] must be a table")
    return raw


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["kl_weight=0.01", "hidden=[64, 8]"]`` -> dict; values are TOML, else plain strings."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise TrainingError(f"--set expects key=value, got {item!r}")
        try:
            value = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        out[key.strip()] = value
    return out


def resolve_config(defaults: dict[str, Any], *layers: dict[str, Any],
                   family: str = "model") -> dict[str, Any]:
    """Defaults updated by each layer in turn; unknown keys and wrong types are errors."""
    config = dict(defaults)
    for layer in layers:
        for key, value in layer.items():
            if key not in defaults:
                raise TrainingError(
                    f"unknown config key {key!r} for {family}; known: {', '.join(sorted(defaults))}"
                )
            config[key] = _coerce(key, value, defaults[key])
    return config


def _coerce(key: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, list):
        ok = isinstance(value, list)
    elif default is None:
        ok = True
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise TrainingError(
            f"config key {key!r} needs a {type(default).__name__}, got {value!r}"
        )
    return value


# --- helpers the families share ------------------------------------------------------------------

def reconstruction_loss(x: Any, y: Any, spectral_weight: float = 0.0) -> Any:
    """Mean squared error per sample, plus an optional multi-resolution log-STFT distance.

    The spectral term weights quiet high-frequency detail (the snare wires) that MSE ignores.
    """
    import tensorflow as tf

    loss = tf.reduce_mean(tf.square(x - y))
    if spectral_weight > 0:
        spec = 0.0
        for frame in (256, 1024):
            sx = tf.abs(tf.signal.stft(x, frame, frame // 4, pad_end=True))
            sy = tf.abs(tf.signal.stft(y, frame, frame // 4, pad_end=True))
            spec += tf.reduce_mean(tf.abs(tf.math.log(sx + 1e-5) - tf.math.log(sy + 1e-5)))
        loss = loss + spectral_weight * spec
    return loss


def encoder_latent_spec(encoder: Any, audio: np.ndarray, pct: float = 1.0,
                        batch: int = 64) -> tuple[list[float], list[float], str]:
    """Knob ranges of a deterministic encoder: pct..100-pct percentiles of the encoded corpus."""
    means = []
    for start in range(0, len(audio), batch):
        out = encoder(audio[start:start + batch], training=False)
        if isinstance(out, list | tuple):
            out = out[0]
        means.append(np.asarray(out, dtype=np.float64))
    z = np.concatenate(means)
    lo, hi = np.percentile(z, pct, axis=0), np.percentile(z, 100 - pct, axis=0)
    centre, half = (lo + hi) / 2, np.maximum((hi - lo) / 2, 1e-3)  # a dead dim still gets a knob
    return (centre - half).tolist(), (centre + half).tolist(), "uniform"


def make_dataset(audio: np.ndarray, batch_size: int, seed: int) -> Any:
    """Shuffled, endlessly repeated, fixed-size batches (WGAN-GP and BatchNorm like full ones)."""
    import tensorflow as tf

    from snaresynth.models.distribute import distribute_options

    data = tf.constant(audio.astype(np.float32))
    n = len(audio)

    def epoch(e: Any) -> Any:  # a stateless shuffle: the same order under any strategy rewrite
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), e]))
        return tf.data.Dataset.from_tensor_slices(order)

    ds = tf.data.Dataset.range(2**62).flat_map(epoch).map(lambda i: tf.gather(data, i))
    # global batches; fit splits each over the replicas, workers take their shard of elements
    return distribute_options(ds.batch(batch_size, drop_remainder=True).prefetch(2))


# --- the loop ------------------------------------------------------------------------------------

def train(settings: TrainSettings) -> Path:
    """Train one model and write its model file; returns the model file's path.

    SIGTERM / SIGINT stop it at the next step boundary with a checkpoint (``TrainingStopped``).
    """
    from snaresynth.models.quiet import quiet_tensorflow
    from snaresynth.models.stop import StopSignals

    quiet_tensorflow()  # before the families import it: no C++ start-up lines
    with StopSignals(settings.checkpoint_dir or settings.out.with_suffix(".ckpt")) as stop:
        return _train(settings, stop)


def _train(settings: TrainSettings, stop: Any) -> Path:
    from snaresynth.data.corpus import load_corpus
    from snaresynth.models import registry

    recipe_family, recipe_config = load_recipe(settings.recipe) if settings.recipe else (None, {})
    family_name = settings.family or recipe_family
    if family_name is None:
        raise TrainingError("give --family or a --recipe that names one")
    if recipe_family and settings.family and recipe_family != settings.family:
        raise TrainingError(f"recipe {settings.recipe!r} is for {recipe_family}, not {family_name}")
    try:
        family = registry.get_family(family_name)
    except ValueError as exc:
        raise TrainingError(str(exc)) from exc
    if Path(settings.out).suffix != ".keras":
        raise TrainingError(f"--out must end in .keras, got {settings.out}")
    flags = {k: v for k, v in (("batch_size", settings.batch_size),
                               ("learning_rate", settings.learning_rate)) if v is not None}
    ckpt_dir = settings.checkpoint_dir or settings.out.with_suffix(".ckpt")
    saved = _read_run(ckpt_dir) if settings.resume else None
    if saved and saved["family"] != family_name:
        raise TrainingError(f"{ckpt_dir} holds a {saved['family']} run, not {family_name}")
    base = saved["config"] if saved else {}
    config = resolve_config(family.default_config(), base, recipe_config, settings.overrides,
                            flags, family=family_name)
    for key in REQUIRED_KEYS:
        if key not in config:
            raise TrainingError(f"family {family_name} has no {key!r} in default_config()")

    try:
        corpus = load_corpus(settings.data, label="snare")
    except OSError as exc:
        raise CorpusError(f"{settings.data}: cannot read corpus: {exc}") from exc
    audio = corpus.audio
    batch_size = int(config["batch_size"])
    steps_per_epoch = math.ceil(len(audio) / batch_size)
    if settings.steps is not None and settings.epochs is not None:
        raise TrainingError("give --steps or --epochs, not both")
    total = settings.steps if settings.steps is not None else (
        settings.epochs * steps_per_epoch if settings.epochs is not None else None)
    if total is None or total < 1:
        raise TrainingError("give --steps N or --epochs N (N >= 1)")

    import keras
    import tensorflow as tf

    from snaresynth.models import distribute

    strategy_name = settings.strategy or (
        recipe_strategy(settings.recipe) if settings.recipe else None) or "default"
    knob_map, knob_scale = recipe_knobs(settings.recipe) if settings.recipe else (None, None)
    from snaresynth.models.stop import WORKER_WAIT_S, StartupWatch

    watch = StartupWatch(settings.worker_wait if settings.worker_wait is not None else
                         WORKER_WAIT_S, strategy_name) if strategy_name == "multiworker" else None
    if watch is not None:
        stop.cleanups.append(watch.joined)  # an error before the first step disarms it too
    strategy = distribute.make_strategy(strategy_name)
    # again: the coordination service replaced SIGTERM's handler (SIGINT's is the watch's)
    stop.install((signal.SIGTERM,))
    replicas = int(strategy.num_replicas_in_sync)
    if batch_size % replicas:
        raise TrainingError(f"batch_size {batch_size} must be a multiple of the {replicas} "
                            f"replicas of --strategy {strategy_name} (it is the global batch)")
    chief = distribute.is_chief(strategy)
    keras.utils.set_random_seed(settings.seed)
    with strategy.scope():  # variables mirrored on every replica, optimizers built for them
        try:  # under multiworker, each variable's first value is broadcast from the chief
            trainer = family.build_trainer(config, corpus.sample_rate, audio.shape[1])
        except ValueError as exc:  # a config value the family cannot build (upsample="cubic")
            raise TrainingError(f"{family_name}: {exc}") from exc
        except distribute.worker_errors() as exc:
            raise distribute.worker_failure(strategy_name, 0, ckpt_dir, None, exc) from exc
        trainer.compile()
    if watch is not None:  # the initial values came from the chief: every worker is there
        watch.joined()
    multi = distribute.is_multi_worker(strategy)
    stop_flag = tf.Variable(0.0, trainable=False, name="stop") if multi else None
    stop.workers = multi
    distribute.reducible_metrics(trainer, strategy, stop_flag)
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="seconds")
    # Keras 3 models expose no checkpoint children of their own, so every variable (weights,
    # BatchNorm statistics, RNG states) is listed explicitly; optimizers bring their slots.
    checkpoint = tf.train.Checkpoint(variables=list(trainer.variables), step=step,
                                     seconds=seconds, **_optimizers(trainer))
    # non-chief workers take part in saving (it can be collective) but into a scratch folder
    write_dir = ckpt_dir if chief else Path(tempfile.mkdtemp(
        prefix=f"snaresynth-{distribute.worker_id(strategy)}-"))
    manager = tf.train.CheckpointManager(checkpoint, str(write_dir), max_to_keep=3,
                                         checkpoint_name="ckpt")
    latest_here = tf.train.latest_checkpoint(str(ckpt_dir))
    if saved and saved.get("corpus_fingerprint") != corpus.fingerprint:
        log.warning("resuming on a different corpus than the checkpointed run was trained on")
    if settings.resume:
        if latest_here is None:
            raise TrainingError(f"--resume: no checkpoint in {ckpt_dir}")
        try:  # checkpoints hold plain values: any strategy restores any other's
            checkpoint.restore(latest_here)
        except (ValueError, AssertionError, tf.errors.OpError) as exc:
            raise TrainingError(f"cannot resume from {latest_here}: {exc}") from exc
        log.info("resuming %s from step %d", family_name, int(step))
    elif latest_here is not None:
        raise TrainingError(f"{ckpt_dir} already holds checkpoints: pass --resume to continue "
                            "that run, or give another --checkpoint-dir")
    resumed_from = int(step.numpy())
    if chief:
        _write_run(ckpt_dir, {"family": family_name, "config": config,
                              "corpus_fingerprint": corpus.fingerprint})

    log_dir = (settings.log_dir or ckpt_dir / "logs") if chief else write_dir / "logs"
    from snaresynth.models.progress import Previews, progress_callback

    try:  # every worker decodes the previews (only the chief's land in its logs)
        previews = Previews(trainer, family, audio, config, corpus.sample_rate)
        progress = progress_callback(step, seconds, total, manager, settings.checkpoint_every,
                                     log_dir, _optimizers(trainer), previews, chief, stop,
                                     stop_flag)
        try:
            if resumed_from < total:
                dataset = make_dataset(audio, batch_size, settings.seed + resumed_from)
                initial_epoch = resumed_from // steps_per_epoch
                epochs = initial_epoch + math.ceil((total - resumed_from) / steps_per_epoch) + 1
                trainer.fit(dataset, epochs=epochs, initial_epoch=initial_epoch,
                            steps_per_epoch=steps_per_epoch, callbacks=[progress], verbose=0,
                            shuffle=False)
        finally:
            progress.close()
        if progress.stopped_at is not None:
            if not chief:
                shutil.rmtree(write_dir, ignore_errors=True)
            raise TrainingStopped(stop.message(progress.stopped_at),
                                  128 + stop.signum if stop.requested else 2)
        seconds.assign(progress.elapsed_seconds())
        latest = manager.latest_checkpoint
        if latest is None or not latest.endswith(f"-{int(step)}"):
            manager.save(checkpoint_number=int(step))  # collective under multiworker
    except distribute.worker_errors() as exc:
        if not chief:
            shutil.rmtree(write_dir, ignore_errors=True)
        latest = tf.train.latest_checkpoint(str(ckpt_dir)) if chief else None
        raise distribute.worker_failure(strategy_name, int(step), ckpt_dir, latest,
                                        exc) from exc

    if not chief:  # the chief writes the one model file; a worker's scratch goes
        shutil.rmtree(write_dir, ignore_errors=True)
        return settings.out
    lo, hi, prior = family.latent_spec(trainer, audio, config)
    from snaresynth import __version__
    from snaresynth.models.base import ModelMetadata, save_model_file

    metadata = ModelMetadata(
        family=family_name, latent_dim=int(config["latent_dim"]),
        sample_rate=corpus.sample_rate, latent_lo=[float(v) for v in lo],
        latent_hi=[float(v) for v in hi], length=int(audio.shape[1]), latent_prior=prior,
        corpus_fingerprint=corpus.fingerprint, snaresynth_version=__version__,
        training={"config": config, "command": settings.command_line(), "steps": int(step),
                  "resumed_from": resumed_from, "seconds": round(float(seconds.numpy()), 2),
                  "losses": progress.last_losses, "seed": settings.seed,
                  "corpus_items": len(audio), "strategy": strategy_name, "replicas": replicas},
    )
    if knob_map is not None or knob_scale is not None:
        from snaresynth.models.export import with_knobs

        metadata = with_knobs(metadata, knob_map, knob_scale)
    return save_model_file(settings.out, trainer.decoder, metadata,
                           encoder=getattr(trainer, "encoder", None))


def _optimizers(trainer: Any) -> dict[str, Any]:
    """Every optimizer the trainer holds as an attribute, so checkpoints keep their state."""
    import keras

    found = {}
    for name, value in vars(trainer).items():
        if isinstance(value, keras.optimizers.Optimizer) and not name.startswith("__"):
            found[f"opt{name}"] = value
    return found


def _read_run(ckpt_dir: Path) -> dict[str, Any] | None:
    path = ckpt_dir / RUN_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TrainingError(f"{path}: corrupt run file: {exc}") from exc


def _write_run(ckpt_dir: Path, run: dict[str, Any]) -> None:
    """The resolved config beside the checkpoints (as DDSP does): resume rebuilds the same net."""
    from snaresynth.atomic import atomic_write_text

    ckpt_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(ckpt_dir / RUN_FILE, json.dumps(run, indent=1, sort_keys=True))
