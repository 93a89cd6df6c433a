"""The listener: a small Keras classifier that says which instrument a one-shot sounds like.

``eval`` uses it to ask "does this model make snares?" (the share of random latent points heard
as snare). It is trained on a labelled corpus (the Hydrogen kits, all instruments, augmented)
from log-mel features (``features.log_mel``), standardised with a mean and std stored beside the
weights, with classes weighted by their inverse frequency. The network is an ensemble: three
small CNNs trained from different seeds, logits averaged (``build_ensemble``). Accuracy is
measured on whole held-out *kits* (groups), never on augmented copies of training files, so the
figure says how it does on drums it has not heard; per class it reports recall ("accuracy")
and precision, and the ensemble's members alone. docs/models.md has the figures and the
variants tried.

File format: a Keras ``.keras`` archive plus a ``listener.json`` entry (classes, feature
settings, standardisation, held-out accuracy, training record). Loaded in safe mode.
"""

from __future__ import annotations

import json
import logging
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from snaresynth import dsp
from snaresynth.analysis.features import FEATURE_SETS, MelSettings, log_mel, summary_features
from snaresynth.data.labels import CLASSES
from snaresynth.errors import ModelFileError
from snaresynth.models.archive import open_archive, read_member
from snaresynth.models.base import LENGTH, save_keras_archive

log = logging.getLogger(__name__)

INFO_ENTRY = "listener.json"
BUNDLED_LISTENER = Path(__file__).resolve().parents[1] / "bundled" / "listener.keras"


@dataclass
class ListenerInfo:
    """Everything needed to recompute the listener's input and to judge its answers."""

    classes: list[str]
    mel: dict[str, Any]
    mean: float
    std: float
    length: int = LENGTH
    accuracy: dict[str, Any] = field(default_factory=dict)  # held-out: overall, per class, groups
    training: dict[str, Any] = field(default_factory=dict)
    kind: str = "cnn"  # "cnn": the log-mel image; "summary": features.summary_features (ear.py)
    feature_mean: list[float] = field(default_factory=list)  # per summary feature
    feature_std: list[float] = field(default_factory=list)
    feature_set: int = 1  # summary_features' set: 1 before the texture features, 2 with them

    @property
    def mel_settings(self) -> MelSettings:
        return MelSettings(**self.mel)


class Listener:
    """A loaded listener. Thread: any non-audio thread (it runs TensorFlow)."""

    def __init__(self, model: Any, info: ListenerInfo, path: Path | None = None) -> None:
        self.model = model
        self.info = info
        self.path = path
        self._embedder: Any = None

    @property
    def classes(self) -> list[str]:
        return list(self.info.classes)

    def features(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """(B, T) audio at ``sample_rate`` -> the network's standardised input: (B, frames,
        n_mels, 1) for the CNN, (B, D) for the summary listener."""
        feats = log_mel(fit_length(audio, sample_rate, self.info), self.info.mel_settings)
        if self.info.kind == "summary":
            mean = np.asarray(self.info.feature_mean, dtype=np.float32)
            std = np.asarray(self.info.feature_std, dtype=np.float32)
            return ((summary_features(feats, self.info.feature_set) - mean) / std
                    ).astype(np.float32)
        return standardise(feats, self.info.mean, self.info.std)

    def probabilities(self, audio: np.ndarray, sample_rate: int, batch: int = 256) -> np.ndarray:
        """(B, n_classes) class probabilities."""
        feats = self.features(audio, sample_rate)
        logits = self.model.predict(feats, batch_size=batch, verbose=0)
        return _softmax(np.asarray(logits, dtype=np.float64)).astype(np.float32)

    def embed(self, audio: np.ndarray, sample_rate: int, batch: int = 256) -> np.ndarray:
        """(B, D) the listener's embedding: the layer before its class logits.

        A layer named ``embedding`` if the network has one; for an ensemble every member's
        (``embedding``, or the CNN's global-average-pooled features), side by side.
        """
        if self._embedder is None:
            self._embedder = _embedding_model(self.model)
        feats = self.features(audio, sample_rate)
        out = self._embedder.predict(feats, batch_size=batch, verbose=0)
        return np.asarray(out, dtype=np.float32).reshape(len(feats), -1)

    def classify(self, audio: np.ndarray, sample_rate: int) -> list[str]:
        probs = self.probabilities(audio, sample_rate)
        return [self.info.classes[i] for i in probs.argmax(axis=1)]

    def share(self, audio: np.ndarray, sample_rate: int, label: str = "snare") -> float:
        """Fraction of the items heard as ``label``."""
        if label not in self.info.classes:
            raise ValueError(f"listener has no class {label!r}; it knows {self.info.classes}")
        answers = self.classify(audio, sample_rate)
        return float(np.mean([a == label for a in answers])) if answers else float("nan")


def _embedding_model(model: Any) -> Any:
    """A Keras model from the listener's input to its embedding layer(s)."""
    import keras

    names = {layer.name for layer in model.layers}
    if "embedding" in names:
        return keras.Model(model.inputs, model.get_layer("embedding").output)
    if "gap" in names:
        return keras.Model(model.inputs, model.get_layer("gap").output)
    members = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if not members:
        raise ModelFileError("listener network has no embedding layer (no 'embedding' or 'gap')")
    inner = []
    for m in members:  # the CNN's members pool into "gap", the summary listener's ear.py nets
        names = {layer.name for layer in m.layers}
        inner.append(keras.Model(m.inputs, m.get_layer(
            "embedding" if "embedding" in names else "gap").output))
    outs = [sub(model.inputs[0]) for sub in inner]
    joined = outs[0] if len(outs) == 1 else keras.layers.Concatenate()(outs)
    return keras.Model(model.inputs, joined)


def fit_length(audio: np.ndarray, sample_rate: int, info: ListenerInfo) -> np.ndarray:
    """Resample to the listener's rate and cut or zero-pad to its length."""
    audio = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    rate = int(info.mel["sample_rate"])
    if sample_rate != rate:
        audio = dsp.resample(audio, sample_rate, rate)
    if audio.shape[1] >= info.length:
        return audio[:, :info.length]
    return np.pad(audio, ((0, 0), (0, info.length - audio.shape[1])))


def standardise(feats: np.ndarray, mean: float, std: float) -> np.ndarray:
    return ((feats - mean) / max(std, 1e-6)).astype(np.float32)[..., None]


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def build_model(frames: int, n_mels: int, n_classes: int, width: int = 16,
                name: str = "listener") -> Any:
    """A four-block CNN over the log-mel image -> logits."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(frames, n_mels, 1), name="log_mel")
    x = inputs
    for i, mult in enumerate((1, 2, 3, 4)):
        x = layers.Conv2D(width * mult, 3, padding="same", activation="relu", name=f"conv{i}")(x)
        if i < 3:
            x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(0.3, name="dropout")(x)
    outputs = layers.Dense(n_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def build_ensemble(frames: int, n_mels: int, n_classes: int, width: int = 16,
                   members: int = 3) -> Any:
    """``members`` CNNs (``build_model``) side by side on one input; logits averaged.

    Kits differ more than the items of one kit, so one network's answer on an unheard kit
    depends a lot on its random start; averaging independently trained members removes most of
    that luck. ``members = 1`` is the plain CNN.
    """
    import keras
    from keras import layers

    if members == 1:
        return build_model(frames, n_mels, n_classes, width)
    inputs = keras.Input(shape=(frames, n_mels, 1), name="log_mel")
    outs = [build_model(frames, n_mels, n_classes, width, name=f"member{k}")(inputs)
            for k in range(members)]
    return keras.Model(inputs, layers.Average(name="logits_mean")(outs), name="listener")


def save_listener(path: str | Path, model: Any, info: ListenerInfo) -> Path:
    """Write model + ``listener.json`` atomically to one ``.keras`` file."""
    return save_keras_archive(
        path, model, {INFO_ENTRY: json.dumps(asdict(info), indent=1, sort_keys=True)},
        what="listener")


def read_listener_info(path: str | Path) -> ListenerInfo:
    """The metadata of a listener file, without TensorFlow."""
    path = Path(path)
    try:
        with open_archive(path) as archive:  # sizes checked before anything is inflated
            raw = json.loads(read_member(archive, INFO_ENTRY).decode("utf-8"))
        # files keep the flag of an input normalisation this version no longer computes
        if raw.pop("level_norm", False):
            raise ModelFileError(f"{path}: made with per-item level normalisation, which this "
                                 "version of snaresynth does not compute")
        info = ListenerInfo(**raw)
        if info.kind not in ("cnn", "summary"):
            raise ModelFileError(f"{path}: unknown listener kind {info.kind!r}")
        if info.feature_set not in FEATURE_SETS:
            raise ModelFileError(f"{path}: unknown summary feature set {info.feature_set!r}")
        return info
    except FileNotFoundError as exc:
        raise ModelFileError(f"{path}: no such listener file") from exc
    except KeyError as exc:
        raise ModelFileError(f"{path}: not a snaresynth listener (no {INFO_ENTRY})") from exc
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, json.JSONDecodeError,
            TypeError, AttributeError) as exc:
        raise ModelFileError(f"{path}: corrupt listener file: {exc}") from exc


def load_listener(path: str | Path | None = None) -> Listener:
    """Load a listener (default: the bundled one) in Keras safe mode."""
    path = Path(path) if path is not None else BUNDLED_LISTENER
    info = read_listener_info(path)
    import keras

    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for bad files; all mean "unloadable"
        raise ModelFileError(f"{path}: cannot load listener: {type(exc).__name__}: {exc}") from exc
    return Listener(model, info, path)


# --- training ------------------------------------------------------------------------------------

@dataclass
class TrainReport:
    path: Path
    accuracy: dict[str, Any]
    train_items: int
    test_items: int
    seconds: float


def split_by_group(
    groups: list[str], labels: list[str], holdout: float = 0.25, seed: int = 0,
    tries: int = 500,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(train indices, test indices, held-out groups): whole groups (kits) go to one side.

    Tries seeded group orders and keeps the first whose held-out side has at least a
    ``holdout`` share of the items and every class present on both sides (so per-class
    accuracy means something); falls back to the best-covering order tried.
    """
    groups_arr = np.asarray(groups)
    labels_arr = np.asarray(labels)
    names = sorted(set(groups))
    if len(names) < 2:
        raise ValueError(f"need at least 2 groups (kits/folders) to hold one out, got {names}")
    classes = set(labels)
    rng = np.random.default_rng(seed)
    best: tuple[int, list[str]] | None = None
    for _ in range(tries):
        order = list(rng.permutation(names))
        chosen: list[str] = []
        for name in order[:-1]:
            chosen.append(name)
            if np.isin(groups_arr, chosen).mean() >= holdout:
                break
        test_mask = np.isin(groups_arr, chosen)
        covered = len(set(labels_arr[test_mask]) & set(labels_arr[~test_mask]))
        if best is None or covered > best[0]:
            best = (covered, chosen)
        if covered == len(classes):
            break
    assert best is not None
    test_mask = np.isin(groups_arr, best[1])
    return np.flatnonzero(~test_mask), np.flatnonzero(test_mask), sorted(best[1])


def per_class_accuracy(true: list[str], pred: list[str], classes: list[str]) -> dict[str, Any]:
    """{"overall", "balanced", "per_class": {cls: {"accuracy", "n", "precision"}}}.

    ``accuracy`` is the class's recall (None if n=0); ``precision`` the share of items heard as
    the class that are it (None if nothing was heard as it): a listener that calls too much a
    snare would flatter every model's snare share.
    """
    true_arr, pred_arr = np.asarray(true), np.asarray(pred)
    per: dict[str, dict[str, Any]] = {}
    for cls in classes:
        mask = true_arr == cls
        n = int(mask.sum())
        heard = pred_arr == cls
        per[cls] = {"accuracy": float((pred_arr[mask] == cls).mean()) if n else None, "n": n,
                    "precision": float((true_arr[heard] == cls).mean()) if heard.any() else None}
    present = [v["accuracy"] for v in per.values() if v["accuracy"] is not None]
    return {
        "overall": float((true_arr == pred_arr).mean()) if true_arr.size else None,
        "balanced": float(np.mean(present)) if present else None,
        "per_class": per,
    }


def train_listener(
    data: str | Path,
    out: str | Path,
    epochs: int = 30,
    batch_size: int = 64,
    seed: int = 0,
    holdout: float = 0.25,
    mel: MelSettings | None = None,
    width: int = 16,
    members: int = 3,
) -> TrainReport:
    """Train on every labelled class of the corpus, hold out whole kits, save with metadata."""
    import time

    import keras

    from snaresynth.data.corpus import load_corpus

    start = time.monotonic()
    corpus = load_corpus(data)
    keep = [i for i, lab in enumerate(corpus.labels) if lab in CLASSES]
    if not keep:
        raise ModelFileError(f"{data}: no items labelled with a listener class {CLASSES}")
    items = [corpus.items[i] for i in keep]
    labels = [corpus.labels[i] for i in keep]
    classes = [c for c in CLASSES if c in set(labels)]
    groups = [str(it.get("group") or it.get("source", "")) for it in items]
    train_idx, test_idx, held_groups = split_by_group(groups, labels, holdout, seed)
    mel = mel or MelSettings(sample_rate=corpus.sample_rate)
    info = ListenerInfo(classes=classes, mel=mel.to_dict(), mean=0.0, std=1.0,
                        length=corpus.audio.shape[1])
    raw = log_mel(fit_length(corpus.audio[keep], corpus.sample_rate, info), mel)
    info.mean, info.std = float(raw[train_idx].mean()), float(raw[train_idx].std())
    feats = standardise(raw, info.mean, info.std)
    target = np.array([classes.index(lab) for lab in labels], dtype=np.int32)

    counts = np.bincount(target[train_idx], minlength=len(classes)).astype(np.float64)
    weights = {i: float(len(train_idx) / (len(classes) * c)) for i, c in enumerate(counts) if c}
    # held-out figures on original files only: augmented copies would flatter the score
    test_orig = [i for i in test_idx if not items[i].get("augment")]
    trained, member_figures = [], []
    from tqdm import tqdm

    # each member from its own seed (start weights, batch order); a bar on a terminal only
    for k in tqdm(range(members), desc="listener", unit="member", disable=None):
        keras.utils.set_random_seed(seed + k)
        member = build_model(feats.shape[1], feats.shape[2], len(classes), width)
        member.compile(optimizer=keras.optimizers.Adam(1e-3),
                       loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        member.fit(feats[train_idx], target[train_idx], batch_size=batch_size, epochs=epochs,
                   class_weight=weights, shuffle=True, verbose=0)
        trained.append(member.get_weights())
        member_pred = member.predict(feats[test_orig], batch_size=256, verbose=0).argmax(axis=1)
        member_figures.append(per_class_accuracy([labels[i] for i in test_orig],
                                                 [classes[j] for j in member_pred], classes))
    # ship weights only: a fresh (uncompiled) copy keeps the optimizer state out of the file
    model = build_ensemble(feats.shape[1], feats.shape[2], len(classes), width, members)
    model.set_weights([w for member_weights in trained for w in member_weights])

    pred = model.predict(feats[test_orig], batch_size=256, verbose=0).argmax(axis=1)
    accuracy = per_class_accuracy([labels[i] for i in test_orig],
                                  [classes[p] for p in pred], classes)
    accuracy["heldout_groups"] = held_groups
    accuracy["heldout_items"] = len(test_orig)
    if members > 1:  # each member alone, to show what averaging bought
        accuracy["members"] = [{"overall": f["overall"], "balanced": f["balanced"],
                                "snare": f["per_class"]["snare"]["accuracy"]
                                if "snare" in f["per_class"] else None}
                               for f in member_figures]
    seconds = time.monotonic() - start
    info.accuracy = accuracy
    info.training = {"corpus_fingerprint": corpus.fingerprint, "epochs": epochs,
                     "batch_size": batch_size, "seed": seed, "holdout": holdout, "width": width,
                     "members": members, "train_items": len(train_idx),
                     "seconds": round(seconds, 1)}
    path = save_listener(out, model, info)
    return TrainReport(path, accuracy, len(train_idx), len(test_orig), seconds)


def format_accuracy(accuracy: dict[str, Any]) -> str:
    """Held-out accuracy as a small text table."""
    lines = [f"held-out kits: {', '.join(accuracy.get('heldout_groups', []))}",
             f"{'class':8s} {'n':>4s} {'accuracy':>8s} {'precision':>9s}"]
    for cls, row in accuracy["per_class"].items():
        acc = "n/a" if row["accuracy"] is None else f"{row['accuracy']:.2f}"
        prec = "n/a" if row.get("precision") is None else f"{row['precision']:.2f}"
        lines.append(f"{cls:8s} {row['n']:4d} {acc:>8s} {prec:>9s}")
    overall, balanced = accuracy.get("overall"), accuracy.get("balanced")
    if overall is not None:
        lines.append(f"{'overall':8s} {accuracy.get('heldout_items', 0):4d} {overall:8.2f}")
    if balanced is not None:
        lines.append(f"{'balanced':8s} {'':4s} {balanced:8.2f}")
    return "\n".join(lines)


def listener_train_command(data: Path | list[Path], out: Path, epochs: int | None, seed: int,
                           holdout: float, kind: str = "summary") -> int:
    """CLI entry: train, save, print held-out accuracy per class.

    ``summary`` (the default, ear.py): every kit and every source held out once; ``cnn``: the
    older log-mel CNN with one held-out split of kits, on one corpus.
    """
    paths = data if isinstance(data, list) else [data]
    if kind == "summary":
        from snaresynth.analysis.ear import EarRecipe, format_confusion, train_ear

        ear = train_ear(paths, out, EarRecipe(epochs=epochs or 25, seed=seed))
        print(f"wrote {ear.path} ({ear.path.stat().st_size / 1e6:.2f} MB) from {ear.items} "
              f"items, {ear.seconds:.0f} s")
        for title, result in (("leave-one-kit-out", ear.kit), ("leave-one-source-out",
                                                               ear.source)):
            if result:
                print(f"{title} ({result['folds']} folds, {result['items']} files):")
                print(format_confusion(result, list(result["per_class"])))
        return 0
    if len(paths) != 1:
        raise ModelFileError("the cnn listener trains on one corpus folder")
    data = paths[0]
    epochs = epochs or 30
    report = train_listener(data, out, epochs=epochs, seed=seed, holdout=holdout)
    print(f"wrote {report.path} ({report.path.stat().st_size / 1e6:.2f} MB): "
          f"{report.train_items} training items, {report.test_items} held-out files, "
          f"{report.seconds:.0f} s")
    print(format_accuracy(report.accuracy))
    return 0


def listener_info_command(path: Path | None, as_json: bool = False) -> int:
    """CLI entry: show a listener's classes, feature settings and held-out accuracy."""
    info = read_listener_info(path or BUNDLED_LISTENER)
    if as_json:
        print(json.dumps(asdict(info), indent=1, sort_keys=True))
        return 0
    print(f"{path or BUNDLED_LISTENER}: classes {', '.join(info.classes)}; log-mel {info.mel}")
    if info.accuracy:
        print(format_accuracy(info.accuracy))
    return 0


__all__ = ["BUNDLED_LISTENER", "CLASSES", "Listener", "ListenerInfo",
           "build_model", "fit_length", "format_accuracy",
           "listener_info_command", "listener_train_command", "load_listener",
           "per_class_accuracy", "read_listener_info", "save_listener", "split_by_group",
           "standardise", "train_listener"]
