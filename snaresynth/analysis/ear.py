"""The summary listener ("ear"): a small dense network on level-free summary features, judged
leave-one-kit-out and leave-one-source-out.

Why not the CNN on the log-mel image (listener.py): with 16 kits it learnt the kits' recording
chains more than the instruments (held-out snare recall 0.37-0.61 by seed, docs/models.md).
Here each item is first reduced to ``features.summary_features`` (band shapes per time
segment, envelope, decay times; all relative to the item's own peak), and training copies get
feature-level augmentation of what differs between chains: a spectral tilt, a low or high
shelf, and a room tail (a decayed running sum of the frames' power). It trains in seconds, so
it can be judged honestly: one model per held-out kit (every kit once) and per held-out source
(collection: the Hydrogen kits, each SoundFont file), on original files only.

The layer before the logits is named ``embedding``: ``eval``'s coverage uses it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from snaresynth.analysis.features import MelSettings, log_mel, summary_features
from snaresynth.analysis.listener import (
    ListenerInfo,
    fit_length,
    per_class_accuracy,
    save_listener,
)
from snaresynth.data.labels import CLASSES
from snaresynth.errors import ModelFileError

EMBEDDING = 64
FEATURE_SET = 2  # summary_features with the texture features (features.py)


@dataclass
class EarData:
    """Log-mel features, labels, kits and sources of the items of one or more corpora."""

    mel: np.ndarray  # (N, frames, mels)
    labels: list[str]
    groups: list[str]
    collections: list[str]
    original: np.ndarray  # (N,) bool: not an augmented copy
    fingerprints: list[str]
    sample_rate: int
    length: int


def load_ear_data(paths: list[str | Path], mel: MelSettings | None = None) -> EarData:
    """Every item with a listener class from the corpora ``paths`` (one rate and length)."""
    from snaresynth.data.corpus import load_corpus

    parts, labels, groups, collections, original, prints = [], [], [], [], [], []
    rate = length = 0
    for path in paths:
        corpus = load_corpus(path)
        rate, length = rate or corpus.sample_rate, length or corpus.audio.shape[1]
        keep = [i for i, lab in enumerate(corpus.labels) if lab in CLASSES]
        mel = mel or MelSettings(sample_rate=rate)
        info = ListenerInfo(classes=[], mel=mel.to_dict(), mean=0.0, std=1.0, length=length)
        parts.append(log_mel(fit_length(corpus.audio[keep], corpus.sample_rate, info), mel))
        for i in keep:
            item = corpus.items[i]
            labels.append(corpus.labels[i])
            groups.append(str(item.get("group") or item.get("source", "")))
            collections.append(str(item.get("collection") or Path(path).name))
            original.append(not item.get("augment"))
        prints.append(corpus.fingerprint)
    if not labels:
        raise ModelFileError(f"{', '.join(map(str, paths))}: no items with a listener class")
    return EarData(np.concatenate(parts), labels, groups, collections, np.array(original),
                   prints, rate, length)


def augment_mel(mel: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A recording-chain change per item, in the log-mel domain: tilt, shelf, room tail."""
    b, frames, mels = mel.shape
    pos = np.linspace(-1.0, 1.0, mels)[None, None, :]
    tilt = rng.uniform(-1.4, 1.4, (b, 1, 1)) * pos  # about +-6 dB from band 1 to band 64
    corner = rng.uniform(-0.6, 0.6, (b, 1, 1))
    shelf = rng.uniform(-1.4, 1.4, (b, 1, 1)) / (1.0 + np.exp(-(pos - corner) * 12.0))
    out = mel + tilt + shelf
    room = rng.uniform(0.0, 1.0, b) < 0.5
    if room.any():
        power = np.exp(out[room])
        decay = np.exp(-1.0 / rng.uniform(3.0, 40.0, (int(room.sum()), 1)))  # 24-320 ms
        level = 10.0 ** rng.uniform(-2.5, -1.0, (int(room.sum()), 1))
        tail = np.zeros_like(power)
        acc = np.zeros_like(power[:, 0])
        for t in range(frames):
            acc = acc * decay + power[:, t]
            tail[:, t] = acc
        out[room] = np.log(power + level[:, :, None] * tail + 1e-7)
    return out


def _build(dim: int, n_classes: int, name: str = "listener") -> Any:
    import keras
    from keras import layers

    inputs = keras.Input(shape=(dim,), name="summary")
    x = layers.Dense(128, activation="relu", name="hidden")(inputs)
    x = layers.Dropout(0.3, name="dropout")(x)
    x = layers.Dense(EMBEDDING, activation="relu", name="embedding")(x)
    return keras.Model(inputs, layers.Dense(n_classes, name="logits")(x), name=name)


def _fit(data: EarData, train: np.ndarray, classes: list[str], epochs: int, copies: int,
         seed: int) -> tuple[Any, np.ndarray, np.ndarray]:
    """(model, feature mean, feature std) trained on items ``train`` plus augmented copies."""
    import keras

    rng = np.random.default_rng(seed)
    mels = [data.mel[train]] + [augment_mel(data.mel[train], rng) for _ in range(copies)]
    x = summary_features(np.concatenate(mels), FEATURE_SET)
    y = np.tile(np.array([classes.index(data.labels[i]) for i in train]), copies + 1)
    mean, std = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-3)
    counts = np.bincount(y, minlength=len(classes)).astype(np.float64)
    weights = {i: float(len(y) / (len(classes) * c)) for i, c in enumerate(counts) if c}
    keras.utils.set_random_seed(seed)
    model = _build(x.shape[1], len(classes))
    model.compile(optimizer=keras.optimizers.Adam(2e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit((x - mean) / std, y, batch_size=128, epochs=epochs, class_weight=weights,
              shuffle=True, verbose=0)
    return model, mean, std


def _predict(model: Any, data: EarData, idx: np.ndarray, mean: np.ndarray,
             std: np.ndarray) -> np.ndarray:
    x = (summary_features(data.mel[idx], FEATURE_SET) - mean) / std
    return np.asarray(model.predict(x, batch_size=1024, verbose=0)).argmax(axis=1)


def confusion(true: list[str], pred: list[str], classes: list[str]) -> list[list[int]]:
    """Rows: true class, columns: heard as, in ``classes`` order."""
    matrix = np.zeros((len(classes), len(classes)), dtype=int)
    for t, p in zip(true, pred, strict=True):
        matrix[classes.index(t), classes.index(p)] += 1
    return matrix.tolist()


def cross_validate(data: EarData, by: str, classes: list[str], epochs: int, copies: int,
                   seed: int) -> dict[str, Any]:
    """Hold out each kit (``by="group"``) or source (``"collection"``) once; pooled figures."""
    keys = data.groups if by == "group" else data.collections
    keys_arr = np.asarray(keys)
    true: list[str] = []
    pred: list[str] = []
    from tqdm import tqdm

    folds = tqdm(sorted(set(keys)), desc=f"listener, leave one {'kit' if by == 'group' else by} "
                 "out", unit="fold", disable=None)  # no bar when stderr is not a terminal
    for held in folds:
        test = np.flatnonzero((keys_arr == held) & data.original)
        train = np.flatnonzero(keys_arr != held)
        if len(test) == 0 or len({data.labels[i] for i in train}) < len(classes):
            continue  # a fold that would lose a whole class says nothing about the listener
        model, mean, std = _fit(data, train, classes, epochs, copies, seed)
        true += [data.labels[i] for i in test]
        pred += [classes[j] for j in _predict(model, data, test, mean, std)]
    result = per_class_accuracy(true, pred, classes)
    result["confusion"] = confusion(true, pred, classes)
    result["folds"] = len(set(keys))
    result["items"] = len(true)
    return result


@dataclass
class EarReport:
    path: Path
    kit: dict[str, Any] | None
    source: dict[str, Any] | None
    items: int
    seconds: float


def train_ear(paths: list[str | Path], out: str | Path, epochs: int = 25, copies: int = 2,
              seed: int = 0, validate: bool = True) -> EarReport:
    """Judge leave-one-kit-out and leave-one-source-out, then train on everything and save."""
    start = time.monotonic()
    data = load_ear_data(paths)
    classes = [c for c in CLASSES if c in set(data.labels)]
    kit = source = None
    if validate:
        kit = cross_validate(data, "group", classes, epochs, copies, seed)
        if len(set(data.collections)) > 1:
            source = cross_validate(data, "collection", classes, epochs, copies, seed)
    everything = np.arange(len(data.labels))
    model, mean, std = _fit(data, everything, classes, epochs, copies, seed)
    mel = MelSettings(sample_rate=data.sample_rate)
    accuracy: dict[str, Any] = dict(kit or {})
    accuracy["leave_one_source_out"] = source
    accuracy["heldout_groups"] = ["each kit once (leave-one-kit-out)"]
    accuracy["heldout_items"] = kit["items"] if kit else 0
    seconds = time.monotonic() - start
    info = ListenerInfo(
        classes=classes, mel=mel.to_dict(), mean=0.0, std=1.0, length=data.length,
        accuracy=accuracy, kind="summary", feature_mean=[float(v) for v in mean],
        feature_std=[float(v) for v in std], feature_set=FEATURE_SET,
        training={"corpus_fingerprints": data.fingerprints, "epochs": epochs,
                  "augment_copies": copies, "seed": seed, "items": len(data.labels),
                  "kits": len(set(data.groups)), "sources": sorted(set(data.collections)),
                  "seconds": round(seconds, 1)})
    path = save_listener(out, model, info)
    return EarReport(path, kit, source, len(data.labels), seconds)


def format_confusion(result: dict[str, Any], classes: list[str]) -> str:
    """The confusion matrix as a Markdown table (rows: true class; columns: heard as)."""
    lines = ["| true \\ heard | " + " | ".join(classes) + " | recall | precision |",
             "|---|" + "---:|" * (len(classes) + 2)]
    for cls, row in zip(classes, result["confusion"], strict=True):
        per = result["per_class"][cls]
        rec = "-" if per["accuracy"] is None else f"{per['accuracy']:.2f}"
        prec = "-" if per["precision"] is None else f"{per['precision']:.2f}"
        lines.append(f"| {cls} | " + " | ".join(str(v) for v in row) + f" | {rec} | {prec} |")
    return "\n".join(lines)


__all__ = ["EarData", "EarReport", "augment_mel", "confusion", "cross_validate",
           "format_confusion", "load_ear_data", "train_ear"]
