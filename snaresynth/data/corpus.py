"""The on-disk training corpus: aligned 16384-sample windows plus a manifest and a fingerprint.

Layout of a corpus folder::

    audio.npy       (N, 16384) float32, mono, onset-aligned, peak-normalised
    manifest.json   {"sample_rate", "length", "fingerprint", "items": [{"source", "label",
                     "sha256", "augment"}, ...]}

``label`` is the instrument class ("snare", "kick", "hat", "tom", "cymbal", "clap", ...); model
training uses the snares, the listener classifier uses all of them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from snaresynth.atomic import atomic_path, atomic_write_text
from snaresynth.errors import CorpusError


@dataclass
class Corpus:
    audio: np.ndarray  # (N, length) float32
    sample_rate: int
    items: list[dict[str, Any]] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return [str(item.get("label", "")) for item in self.items]

    @property
    def fingerprint(self) -> str:
        return corpus_fingerprint(self.audio, self.sample_rate)

    def select(self, label: str) -> Corpus:
        """The sub-corpus of one instrument class."""
        keep = [i for i, lab in enumerate(self.labels) if lab == label]
        return Corpus(self.audio[keep], self.sample_rate, [self.items[i] for i in keep])


def corpus_fingerprint(audio: np.ndarray, sample_rate: int) -> str:
    digest = hashlib.sha256()
    digest.update(str(int(sample_rate)).encode())
    digest.update(np.ascontiguousarray(audio, dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]


def save_corpus(path: str | Path, corpus: Corpus) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    audio = np.ascontiguousarray(corpus.audio, dtype=np.float32)
    if audio.ndim != 2 or len(corpus.items) != audio.shape[0]:
        raise CorpusError(
            f"corpus needs one manifest item per row: {audio.shape} vs {len(corpus.items)} items"
        )
    with atomic_path(path / "audio.npy") as tmp, open(tmp, "wb") as fh:
        np.save(fh, audio)
    manifest = {
        "sample_rate": int(corpus.sample_rate),
        "length": int(audio.shape[1]),
        "fingerprint": corpus_fingerprint(audio, corpus.sample_rate),
        "items": corpus.items,
    }
    atomic_write_text(path / "manifest.json", json.dumps(manifest, indent=1))
    return path


def load_corpus(path: str | Path, label: str | None = None) -> Corpus:
    """Load a corpus folder; with ``label``, only that instrument class."""
    path = Path(path)
    try:
        manifest = json.loads((path / "manifest.json").read_text())
        audio = np.load(path / "audio.npy", allow_pickle=False)
    except FileNotFoundError as exc:
        missing = Path(exc.filename).name
        raise CorpusError(f"{path}: not a corpus folder (missing {missing})") from exc
    except (ValueError, json.JSONDecodeError) as exc:
        raise CorpusError(f"{path}: corrupt corpus: {exc}") from exc
    items = manifest.get("items", [])
    if audio.ndim != 2 or audio.shape[0] != len(items):
        raise CorpusError(f"{path}: audio.npy {audio.shape} does not match {len(items)} items")
    corpus = Corpus(audio.astype(np.float32, copy=False), int(manifest["sample_rate"]), items)
    if label is not None:
        corpus = corpus.select(label)
        if corpus.audio.shape[0] == 0:
            raise CorpusError(f"{path}: no items labelled {label!r}")
    return corpus
