"""``snaresynth dataset build``: sample folders and Hydrogen kits -> one corpus folder.

Sources are collected first (labelled, grouped by kit or folder), then each file is read once,
turned into its aligned window and ``augment`` seeded copies, and the lot is saved with
``save_corpus``. The same file reached twice (kits share samples; Hydrogen instruments reuse
layers) is kept once. Unreadable or silent files are skipped with a warning naming them; a build
that keeps nothing is a ``CorpusError``, never an empty corpus.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from snaresynth.data import augment as aug
from snaresynth.data.corpus import Corpus, save_corpus
from snaresynth.data.hydrogen import DEFAULT_DRUMKITS_DIR, Source, hydrogen_sources
from snaresynth.data.labels import CLASSES, UNKNOWN, classify_path
from snaresynth.data.prepare import DEFAULT_RATE, is_silent, prepare, read_mono
from snaresynth.dsp import LENGTH
from snaresynth.errors import CorpusError

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".aif", ".aiff", ".ogg", ".oga")
LABELS = (*CLASSES, UNKNOWN)


@dataclass
class BuildReport:
    """What a build kept and skipped, for the command line and the tests."""

    path: Path
    counts: dict[str, int]  # items per label, augmented copies included
    sources: int  # distinct source files kept
    skipped: list[str] = field(default_factory=list)  # "file: reason"
    duplicates: int = 0
    fingerprint: str = ""

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def folder_sources(root: str | Path, label: str | None = None) -> list[Source]:
    """Audio files under ``root`` (recursively), labelled by ``label`` or by their names.

    Without an override the file name decides when it names an instrument ("kick_03.wav"),
    otherwise the nearest parent folder that does ("Snares/Bright 01.wav").
    """
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"{root}: no such sample folder")
    sources = []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES):
        if not path.is_file():
            continue
        rel = path.relative_to(root)
        parents = [root.name, *rel.parts[:-1]]
        file_label = label or classify_path([rel.name, *reversed(parents)])
        group = "/".join(parents)
        sources.append(Source(path, file_label, group, path.stem, collection=root.name))
    return sources


def parse_instruments(text: str | None) -> list[str] | None:
    """``"snare,kick"`` -> ["snare", "kick"], checked against the known classes."""
    if text is None:
        return None
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    bad = [name for name in names if name not in LABELS]
    if bad or not names:
        raise ValueError(
            f"unknown instrument class(es) {bad or text!r}; known: {', '.join(LABELS)}"
        )
    return names


def collect_sources(
    folders: Sequence[str | Path] = (),
    hydrogen: str | Path | None = None,
    label: str | None = None,
    instruments: Iterable[str] | None = None,
    soundfonts: Sequence[str | Path] = (),
    render_cache: str | Path | None = None,
) -> list[Source]:
    """All sources the build options name, filtered to ``instruments`` if given."""
    if label is not None and label not in LABELS:
        raise ValueError(f"unknown label {label!r}; known: {', '.join(LABELS)}")
    sources: list[Source] = []
    if hydrogen is not None:
        sources.extend(hydrogen_sources(hydrogen))
    for folder in folders:
        sources.extend(folder_sources(folder, label))
    if soundfonts:
        from snaresynth.data.soundfont import distinct_soundfonts, soundfont_sources

        for sf2 in distinct_soundfonts(soundfonts):
            sources.extend(soundfont_sources(sf2, render_cache or Path("renders-cache")))
    if instruments is not None:
        keep = set(instruments)
        sources = [s for s in sources if s.label in keep]
    return sources


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_corpus(
    out: str | Path,
    folders: Sequence[str | Path] = (),
    hydrogen: str | Path | None = None,
    label: str | None = None,
    instruments: Iterable[str] | None = None,
    rate: int = DEFAULT_RATE,
    length: int = LENGTH,
    augment: int = 0,
    seed: int = 0,
    progress: bool = True,
    soundfonts: Sequence[str | Path] = (),
) -> BuildReport:
    """Build and save a corpus; see the module docstring for what is kept and skipped.

    SoundFont kits are rendered into ``<out>/rendered`` (kept, so a rebuild reuses them).
    """
    if not folders and hydrogen is None and not soundfonts:
        raise CorpusError("nothing to build from: give --from FOLDER, --hydrogen and/or "
                          "--soundfont FILE.sf2")
    if rate < 1000:
        raise ValueError(f"rate must be in Hz (>= 1000), got {rate}")
    if augment < 0:
        raise ValueError(f"augment must be >= 0, got {augment}")
    sources = collect_sources(folders, hydrogen, label, instruments, soundfonts,
                              Path(out) / "rendered")
    if not sources:
        raise CorpusError("no audio files found (check the folders and --instruments)")
    from tqdm import tqdm

    windows: list[np.ndarray] = []
    items: list[dict] = []
    skipped: list[str] = []
    seen: set[str] = set()
    failed: set[str] = set()  # a missing file named by several instruments is reported once
    duplicates = 0
    # disable=None: no bar when stderr is not a terminal (a log file, CI)
    for src in tqdm(sources, desc="corpus", unit="file", disable=None if progress else True):
        if str(src.path) in failed:
            continue
        try:
            sha = _sha256(src.path)
        except OSError as exc:
            failed.add(str(src.path))
            skipped.append(f"{src.path}: {exc.strerror or exc}")
            log.warning("skipping %s: %s", src.path, exc.strerror or exc)
            continue
        if sha in seen:
            duplicates += 1
            continue
        seen.add(sha)
        try:
            audio, file_rate = read_mono(src.path)
        except CorpusError as exc:
            skipped.append(str(exc))
            log.warning("skipping %s", exc)
            continue
        if is_silent(audio):
            skipped.append(f"{src.path}: silent")
            log.warning("skipping %s: silent", src.path)
            continue
        base = {"source": str(src.path), "label": src.label, "sha256": sha,
                "group": src.group, "instrument": src.instrument,
                "collection": src.collection}
        windows.append(prepare(audio, file_rate, rate, length))
        items.append({**base, "augment": None})
        for copy in range(augment):
            params = aug.draw(seed, sha, copy)
            windows.append(aug.apply(audio, file_rate, params, rate, length))
            items.append({**base, "augment": params.to_dict()})
    if not windows:
        raise CorpusError(
            f"no usable audio: all {len(sources)} file(s) were unreadable, silent or duplicates"
        )
    corpus = Corpus(np.stack(windows).astype(np.float32), rate, items)
    path = save_corpus(out, corpus)
    return BuildReport(
        path=path,
        counts=dict(sorted(Counter(corpus.labels).items())),
        sources=sum(1 for item in items if item["augment"] is None),
        skipped=skipped,
        duplicates=duplicates,
        fingerprint=corpus.fingerprint,
    )


def describe(corpus: Corpus) -> dict[str, dict[str, int]]:
    """Items per label, split into originals and augmented copies (``dataset info``)."""
    table: dict[str, dict[str, int]] = {}
    for item in corpus.items:
        row = table.setdefault(str(item.get("label", "")), {"sources": 0, "augmented": 0})
        row["augmented" if item.get("augment") else "sources"] += 1
    return dict(sorted(table.items()))


def build_command(
    out: Path, folders: Sequence[Path], hydrogen: Path | None, label: str | None,
    instruments: str | None, rate: int, augment: int, seed: int,
    soundfonts: Sequence[Path] = (),
) -> int:
    """CLI entry: build, then print items per label and what was skipped."""
    try:
        report = build_corpus(out, folders, hydrogen, label, parse_instruments(instruments),
                              rate=rate, augment=augment, seed=seed, soundfonts=soundfonts)
    except ValueError as exc:
        raise CorpusError(str(exc)) from exc
    print(f"wrote {report.path}: {report.total} items from {report.sources} files "
          f"at {rate} Hz (fingerprint {report.fingerprint})")
    for name, count in report.counts.items():
        print(f"  {name:8s} {count:6d}")
    if report.duplicates:
        print(f"  {report.duplicates} duplicate file(s) kept once")
    if report.skipped:
        print(f"  {len(report.skipped)} file(s) skipped (see warnings)")
    return 0


def info_command(path: Path, as_json: bool = False) -> int:
    """CLI entry: items per label (originals / augmented copies) of a corpus folder."""
    import json

    from snaresynth.data.corpus import load_corpus

    corpus = load_corpus(path)
    table = describe(corpus)
    if as_json:
        print(json.dumps({"path": str(path), "sample_rate": corpus.sample_rate,
                          "fingerprint": corpus.fingerprint, "labels": table}, indent=1))
        return 0
    print(f"{path}: {corpus.audio.shape[0]} items, {corpus.sample_rate} Hz, "
          f"fingerprint {corpus.fingerprint}")
    print(f"  {'label':8s} {'sources':>7s} {'augmented':>9s}")
    for name, row in table.items():
        print(f"  {name:8s} {row['sources']:7d} {row['augmented']:9d}")
    return 0


__all__ = ["BuildReport", "build_command", "build_corpus", "collect_sources", "describe",
           "folder_sources", "info_command", "parse_instruments", "DEFAULT_DRUMKITS_DIR",
           "DEFAULT_RATE"]
