"""The summary listener ("ear"): a small dense network on level-free summary features, judged
leave-one-kit-out and leave-one-source-out.

Why not the CNN on the log-mel image (listener.py): with 16 kits it learnt the kits' recording
chains more than the instruments (held-out snare recall 0.37-0.61 by seed, docs/models.md).
Here each item is first reduced to ``features.summary_features`` (band shapes per time
segment, envelope, decay times; all relative to the item's own peak), and training copies get
feature-level augmentation of what differs between chains: a spectral tilt, a low or high
shelf, and a room tail (a decayed running sum of the frames' power), and half of them are
played faster or slower (``repitch_mel``). Three nets from different starts are trained
side by side and their logits averaged (``_build``). It trains in seconds, so
it can be judged honestly: one model per held-out kit (every kit once) and per held-out source
(collection: the Hydrogen kits, each SoundFont file), on original files only.

The layer before each net's logits is named ``embedding``: ``eval``'s coverage uses them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from snaresynth.analysis.features import (
    LOG_FLOOR,
    MelSettings,
    log_mel,
    mel_band_hz,
    mel_band_position,
    summary_features,
)
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
MEMBERS = 3  # dense nets averaged by the listener (``_build``)
REPITCH = 0.5  # share of augmented copies played faster or slower (``repitch_mel``)
BALANCE = 1.0  # class weights: the inverse class frequency to this power (1: balanced)


@dataclass(frozen=True)
class EarRecipe:
    """How a summary listener is trained (every fold and the final fit alike)."""

    epochs: int = 25
    copies: int = 2  # augmented copies of every item (``augment_mel``)
    seed: int = 0
    members: int = MEMBERS
    repitch: float = REPITCH
    balance: float = BALANCE
    features: int = FEATURE_SET  # summary_features' set (features.py)


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
    names: list[str]  # each item's source file, to name what the listener misheard


def load_ear_data(paths: list[str | Path], mel: MelSettings | None = None) -> EarData:
    """Every item with a listener class from the corpora ``paths`` (one rate and length)."""
    from snaresynth.data.corpus import load_corpus

    parts, labels, groups, collections, original, prints, names = [], [], [], [], [], [], []
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
            names.append(str(item.get("source", "")))
        prints.append(corpus.fingerprint)
    if not labels:
        raise ModelFileError(f"{', '.join(map(str, paths))}: no items with a listener class")
    return EarData(np.concatenate(parts), labels, groups, collections, np.array(original),
                   prints, rate, length, names)


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


def _interpolate(values: np.ndarray, index: np.ndarray, axis: int) -> np.ndarray:
    """``values`` read at fractional ``index`` (same shape) along ``axis``, linearly, clamped."""
    low = np.floor(index)
    frac = index - low
    top = values.shape[axis] - 1
    a = np.take_along_axis(values, np.clip(low, 0, top).astype(int), axis=axis)
    b = np.take_along_axis(values, np.clip(low + 1, 0, top).astype(int), axis=axis)
    return a + (b - a) * frac


def repitch_mel(mel: np.ndarray, rng: np.random.Generator, settings: MelSettings,
                share: float = 0.5, low: float = 0.85, high: float = 1.18) -> np.ndarray:
    """A share of the items played faster or slower (frequencies times r, durations over r,
    r from ``low`` to ``high``), in the log-mel domain: kits tune the same drum differently."""
    out = np.array(mel, dtype=np.float32, copy=True)
    pick = np.flatnonzero(rng.uniform(size=len(mel)) < share)
    if len(pick) == 0:
        return out
    _, frames, mels = mel.shape
    rate = np.exp(rng.uniform(np.log(low), np.log(high), len(pick)))[:, None]
    # each band reads the old band at its centre frequency over r
    band = mel_band_position(mel_band_hz(settings)[None, :] / rate, settings)  # (picked, mels)
    part = _interpolate(mel[pick], np.broadcast_to(band[:, None, :], (len(pick), frames, mels)), 2)
    part -= 6.0 * (band > mels - 1)[:, None, :]  # slowed down: nothing above the old top band
    when = np.arange(frames)[None, :] * rate  # (picked, frames)
    part = _interpolate(part, np.broadcast_to(when[:, :, None], part.shape), 1)
    part[np.broadcast_to((when > frames - 1)[:, :, None], part.shape)] = np.log(LOG_FLOOR)
    out[pick] = part
    return out


def _member(dim: int, n_classes: int, name: str) -> Any:
    import keras
    from keras import layers

    inputs = keras.Input(shape=(dim,), name="summary")
    x = layers.Dense(128, activation="relu", name="hidden")(inputs)
    x = layers.Dropout(0.3, name="dropout")(x)
    x = layers.Dense(EMBEDDING, activation="relu", name="embedding")(x)
    return keras.Model(inputs, layers.Dense(n_classes, name="logits")(x), name=name)


def _build(dim: int, n_classes: int, members: int = 1) -> tuple[Any, Any]:
    """(training network, listener network): ``members`` dense nets side by side on one input.

    The training network stacks their logits, (B, members, classes), so each member learns
    alone from its own random start in one ``fit``; the listener averages their logits (a
    held-out kit's answer no longer rests on one start). ``members = 1``: the plain net.
    """
    import keras
    from keras import layers

    if members == 1:
        net = _member(dim, n_classes, "listener")
        return net, net
    inputs = keras.Input(shape=(dim,), name="summary")
    outs = [_member(dim, n_classes, f"member{k}")(inputs) for k in range(members)]
    stacked = layers.Concatenate(axis=1, name="stacked")(
        [layers.Reshape((1, n_classes), name=f"row{k}")(o) for k, o in enumerate(outs)])
    listener = keras.Model(inputs, layers.Average(name="logits_mean")(outs), name="listener")
    return keras.Model(inputs, stacked, name="members"), listener


def ear_features(data: EarData, recipe: EarRecipe) -> np.ndarray:
    """(copies + 1, N, D) summary features of every item and of the recipe's augmented copies
    (``recipe.repitch``: the share of copies also played faster or slower, ``repitch_mel``).

    Computed once per run: a fold only picks its training rows (an item's copies depend on
    the item alone, so no fold sees anything of its held-out kit).
    """
    rng = np.random.default_rng(recipe.seed)
    settings = MelSettings(sample_rate=data.sample_rate)
    repitch = recipe.repitch
    mels = [data.mel] + [augment_mel(repitch_mel(data.mel, rng, settings, repitch) if repitch
                                     else data.mel, rng) for _ in range(recipe.copies)]
    return np.stack([summary_features(m, recipe.features) for m in mels])


def class_weights(labels: np.ndarray, n_classes: int, balance: float) -> np.ndarray:
    """Each label's weight: its class's inverse frequency to ``balance``, with mean 1 (so 1
    gives every class the same total weight, 0 every item the same weight)."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    per_class = np.maximum(counts, 1.0) ** -balance
    return (per_class / np.sum(per_class * counts) * len(labels))[labels]


def _fit(feats: np.ndarray, y: np.ndarray, train: np.ndarray, n_classes: int,
         recipe: EarRecipe) -> tuple[Any, np.ndarray, np.ndarray]:
    """(listener network, feature mean, feature std) trained on rows ``train`` and their
    augmented copies, classes weighted by their inverse frequency to ``recipe.balance``."""
    import keras

    x = feats[:, train].reshape(-1, feats.shape[2])
    labels = np.tile(y[train], feats.shape[0])
    mean, std = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-3)
    weights = class_weights(labels, n_classes, recipe.balance)
    keras.utils.set_random_seed(recipe.seed)
    members = recipe.members
    net, listener = _build(x.shape[1], n_classes, members)
    # many steps per call: the net is so small that Python's per-step overhead dominated
    net.compile(optimizer=keras.optimizers.Adam(2e-3), steps_per_execution=32,
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    if members > 1:
        labels, weights = np.repeat(labels[:, None], members, 1), np.repeat(
            weights[:, None], members, 1)
    net.fit((x - mean) / std, labels, sample_weight=weights, batch_size=128, epochs=recipe.epochs,
            shuffle=True, verbose=0)
    return listener, mean, std


def confusion(true: list[str], pred: list[str], classes: list[str]) -> list[list[int]]:
    """Rows: true class, columns: heard as, in ``classes`` order."""
    matrix = np.zeros((len(classes), len(classes)), dtype=int)
    for t, p in zip(true, pred, strict=True):
        matrix[classes.index(t), classes.index(p)] += 1
    return matrix.tolist()


def cross_validate(data: EarData, by: str, classes: list[str], recipe: EarRecipe,
                   feats: np.ndarray | None = None, limit: int = 0) -> dict[str, Any]:
    """Hold out each kit (``by="group"``) or source (``"collection"``) once; pooled figures.

    ``feats``: ``ear_features`` of ``data`` by the recipe when the caller has them; ``limit``:
    only that many folds, drawn with a fixed seed (a quick screen, not a figure to report).
    """
    feats = ear_features(data, recipe) if feats is None else feats
    y = np.array([classes.index(lab) for lab in data.labels])
    keys = data.groups if by == "group" else data.collections
    keys_arr = np.asarray(keys)
    held_out = sorted(set(keys))
    if limit and limit < len(held_out):
        held_out = sorted(np.random.default_rng(1).choice(held_out, limit, replace=False))
    true: list[str] = []
    pred: list[str] = []
    names: list[str] = []
    from tqdm import tqdm

    folds = tqdm(held_out, desc=f"listener, leave one {'kit' if by == 'group' else by} out",
                 unit="fold", disable=None)  # no bar when stderr is not a terminal
    for held in folds:
        test = np.flatnonzero((keys_arr == held) & data.original)
        train = np.flatnonzero(keys_arr != held)
        if len(test) == 0 or len(set(y[train].tolist())) < len(classes):
            continue  # a fold that would lose a whole class says nothing about the listener
        model, mean, std = _fit(feats, y, train, len(classes), recipe)
        logits = model.predict((feats[0, test] - mean) / std, batch_size=1024, verbose=0)
        true += [data.labels[i] for i in test]
        pred += [classes[j] for j in np.asarray(logits).argmax(axis=1)]
        names += [data.names[i] for i in test]
    result = per_class_accuracy(true, pred, classes)
    result["confusion"] = confusion(true, pred, classes)
    # what it got wrong, item by item: wrong labels show up here before they show in a figure
    result["misheard"] = [(n, t, p) for n, t, p in zip(names, true, pred, strict=True) if t != p]
    result["folds"] = len(held_out)
    result["items"] = len(true)
    return result


@dataclass
class EarReport:
    path: Path
    kit: dict[str, Any] | None
    source: dict[str, Any] | None
    items: int
    seconds: float


def _figures_only(result: dict[str, Any]) -> dict[str, Any]:
    """A cross-validation result without its item-by-item list (the file keeps the figures)."""
    return {k: v for k, v in result.items() if k != "misheard"}


def train_ear(paths: list[str | Path], out: str | Path, recipe: EarRecipe | None = None,
              validate: bool = True, sources: bool = True, limit: int = 0) -> EarReport:
    """Judge leave-one-kit-out and leave-one-source-out, then train on everything and save.

    ``sources``: the source folds too; ``limit``: only that many kit folds (a quick screen).
    """
    recipe = recipe or EarRecipe()
    start = time.monotonic()
    data = load_ear_data(paths)
    classes = [c for c in CLASSES if c in set(data.labels)]
    feats = ear_features(data, recipe)
    kit = source = None
    if validate:
        kit = cross_validate(data, "group", classes, recipe, feats, limit)
        if sources and len(set(data.collections)) > 1:
            source = cross_validate(data, "collection", classes, recipe, feats)
    everything = np.arange(len(data.labels))
    y = np.array([classes.index(lab) for lab in data.labels])
    model, mean, std = _fit(feats, y, everything, len(classes), recipe)
    mel = MelSettings(sample_rate=data.sample_rate)
    accuracy: dict[str, Any] = _figures_only(kit or {})
    accuracy["leave_one_source_out"] = source and _figures_only(source)
    accuracy["heldout_groups"] = ["each kit once (leave-one-kit-out)"]
    accuracy["heldout_items"] = kit["items"] if kit else 0
    seconds = time.monotonic() - start
    info = ListenerInfo(
        classes=classes, mel=mel.to_dict(), mean=0.0, std=1.0, length=data.length,
        accuracy=accuracy, kind="summary", feature_mean=[float(v) for v in mean],
        feature_std=[float(v) for v in std], feature_set=recipe.features,
        training={"corpus_fingerprints": data.fingerprints, "epochs": recipe.epochs,
                  "augment_copies": recipe.copies, "repitch": recipe.repitch,
                  "balance": recipe.balance, "seed": recipe.seed, "items": len(data.labels),
                  "members": recipe.members, "kits": len(set(data.groups)),
                  "sources": sorted(set(data.collections)), "seconds": round(seconds, 1)})
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


__all__ = ["EarData", "EarRecipe", "EarReport", "augment_mel", "class_weights", "confusion",
           "cross_validate", "ear_features", "format_confusion", "load_ear_data", "train_ear"]
