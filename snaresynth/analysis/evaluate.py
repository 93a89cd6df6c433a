"""``snaresynth eval``: figures that say whether a model is a good snare *instrument*.

Per model (any ``Decoder``; reconstruction only for model files saved with an encoder):

- reconstruction: multi-resolution STFT error of corpus snares through encode -> decode;
- smoothness: along straight latent lines (``steps`` steps between two random points), the
  log-mel distance between consecutive steps; largest / median per line, median over lines.
  ~1 means every knob movement changes the sound by about as much; a jump shows as a large
  ratio. A line where nothing changes at all is 0/0: *flat*, reported as NaN and counted,
  never as a perfect 1, and the span below exposes a model that does not move;
- span: log-mel distance between a line's two ends / median distance between two real snares;
- diversity: mean pairwise log-mel distance of random points / the same for real snares;
- snare share: share of random points the listener hears as snare;
- decode time per single buffer (median, p99) after warm-up, and the model file size;
- over the whole knob travel (``travel.py``): snare share of points uniform over every knob's
  full range, smoothness along lines between uniform ends (median and 90th percentile of the
  per-line ratio), and coverage (improved precision / recall, k = 3) against real snares of
  kits the model was not trained on (``heldout``), in the listener's embedding.

A "real snares" row gives the corpus' own figures where they mean something (its diversity is 1
by definition; the listener's snare share on real snares says how far to trust that column; its
coverage, the training snares against the held-out ones, is the reference a model is read by).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from snaresynth.analysis.features import (
    MelSettings,
    log_mel,
    mel_distance,
    multi_resolution_stft_error,
    pairwise_mel_distances,
)
from snaresynth.analysis.travel import (
    K_NEAREST,
    precision_recall,
    precision_recall_draws,
    ratio_summary,
    uniform_knobs,
    uniform_lines,
)
from snaresynth.errors import CorpusError, ModelFileError

FLAT_EPS = 1e-6  # log-mel distance below which two decodes count as the same sound
MAX_REFERENCE = 200  # real snares used for pairwise reference distances
DECODE_BATCH = 128
MAX_SNARES = 256  # training snares compared with (and the coverage sets' size cap)


@dataclass
class ModelFigures:
    """One table row. ``None``: not applicable; NaN: undefined (e.g. every line flat)."""

    name: str
    family: str = ""
    latent_dim: int | None = None
    reconstruction: float | None = None
    reconstruction_items: int = 0
    reconstruction_on_training_data: bool | None = None
    smoothness: float | None = None
    flat_lines: float | None = None  # share of lines along which the sound never changes
    span: float | None = None
    diversity: float | None = None
    snare_share: float | None = None
    travel_share: float | None = None  # snare share, knobs uniform over their full range
    travel_smooth_median: float | None = None  # line ratio over the full range: median
    travel_smooth_p90: float | None = None  # ... and 90th percentile over lines
    coverage_precision: float | None = None  # vs held-out kits' snares, listener embedding
    coverage_recall: float | None = None
    coverage_items: int = 0  # sounds per set compared (model and training snares alike)
    coverage_draws: int = 0  # disjoint sets of the model's sounds; the figures are their mean
    coverage_precision_range: list[float] | None = None  # [lowest, highest] over the sets
    coverage_recall_range: list[float] | None = None
    decode_ms_median: float | None = None
    decode_ms_p99: float | None = None
    size_mb: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in asdict(self).items()}


@dataclass
class Reference:
    """Figures of the real snares that model figures are divided by."""

    feats: np.ndarray  # (N, frames, mels) log-mel of up to MAX_REFERENCE real snares
    median_distance: float
    mean_distance: float


# --- latent sampling -----------------------------------------------------------------------------

def sample_prior(decoder: Any, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, latent_dim) random points from the model's prior, inside its knob range.

    "normal": a normal centred in the range with the range spanning +-3 sigma (a VAE whose range
    is +-3 gets exactly N(0, 1)), clipped to the range; "uniform": uniform over the range.
    """
    lo, hi = (np.asarray(a, dtype=np.float32) for a in decoder.latent_range())
    prior = getattr(getattr(decoder, "metadata", None), "latent_prior", "normal")
    if prior == "uniform":
        return rng.uniform(lo, hi, size=(n, lo.size)).astype(np.float32)
    centre, sigma = (lo + hi) / 2.0, (hi - lo) / 6.0
    return np.clip(rng.normal(centre, sigma, size=(n, lo.size)), lo, hi).astype(np.float32)


def decode_batched(decoder: Any, z: np.ndarray, batch: int = DECODE_BATCH) -> np.ndarray:
    """Decode many latents in batches (one big batch may not fit; single decodes are slow)."""
    parts = [decoder.decode(z[i:i + batch]) for i in range(0, len(z), batch)]
    return np.concatenate(parts).astype(np.float32)


def _mel(decoder: Any) -> MelSettings:
    return MelSettings(sample_rate=int(decoder.sample_rate))


# --- metrics -------------------------------------------------------------------------------------

def line_ratios(step_distances: np.ndarray) -> np.ndarray:
    """Largest / median consecutive-step distance per line: (lines, steps) -> (lines,).

    Flat lines (no step moves) are NaN; a line that stands still except for jumps is +inf.
    """
    d = np.asarray(step_distances, dtype=np.float64)
    top = d.max(axis=1)
    med = np.median(d, axis=1)
    ratios = np.full(d.shape[0], np.nan)
    moving = top > FLAT_EPS
    with np.errstate(divide="ignore"):
        ratios[moving] = np.where(med[moving] > FLAT_EPS, top[moving] / med[moving], np.inf)
    return ratios


def line_step_ratios(decoder: Any, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(per-line largest / median step, log-mel features) of (lines, steps + 1, dim) latents."""
    lines, points = z.shape[:2]
    audio = decode_batched(decoder, z.reshape(-1, z.shape[-1]))
    feats = log_mel(audio, _mel(decoder))
    feats = feats.reshape(lines, points, *feats.shape[1:])
    steps_d = np.stack([mel_distance(f[:-1], f[1:]) for f in feats])  # (lines, steps)
    return line_ratios(steps_d), feats


def smoothness_and_span(
    decoder: Any, reference: Reference, lines: int = 50, steps: int = 64,
    rng: np.random.Generator | None = None,
) -> tuple[float, float, float]:
    """(smoothness, flat-line share, span) over ``lines`` random straight latent lines."""
    rng = rng or np.random.default_rng(0)
    ends = sample_prior(decoder, 2 * lines, rng).reshape(lines, 2, -1)
    t = np.linspace(0.0, 1.0, steps + 1, dtype=np.float32)[None, :, None]
    z = ends[:, :1, :] + t * (ends[:, 1:, :] - ends[:, :1, :])  # (lines, steps+1, dim)
    ratios, feats = line_step_ratios(decoder, z)
    flat = float(np.mean(np.isnan(ratios)))
    smooth = float(np.nanmedian(ratios)) if flat < 1.0 else float("nan")
    spans = mel_distance(feats[:, 0], feats[:, -1]) / max(reference.median_distance, FLAT_EPS)
    return smooth, flat, float(np.median(spans))


def diversity(feats: np.ndarray, reference: Reference) -> float:
    """Mean pairwise log-mel distance of ``feats`` relative to that of the real snares."""
    mean = float(np.mean(pairwise_mel_distances(feats))) if len(feats) > 1 else 0.0
    return mean / max(reference.mean_distance, FLAT_EPS)


def reference_from_audio(audio: np.ndarray, sample_rate: int,
                         rng: np.random.Generator | None = None) -> Reference:
    """Pairwise figures of (up to ``MAX_REFERENCE``) real snares."""
    rng = rng or np.random.default_rng(0)
    if len(audio) < 2:
        raise ValueError("need at least 2 real snares for reference distances")
    pick = rng.permutation(len(audio))[:MAX_REFERENCE]
    feats = log_mel(audio[np.sort(pick)], MelSettings(sample_rate=sample_rate))
    pairs = pairwise_mel_distances(feats)
    return Reference(feats, float(np.median(pairs)), float(np.mean(pairs)))


def decode_times_ms(decoder: Any, runs: int = 200, warm_up: int = 5,
                    rng: np.random.Generator | None = None) -> tuple[float, float]:
    """(median, p99) wall time of single-buffer decodes, after ``warm_up`` untimed ones."""
    rng = rng or np.random.default_rng(0)
    z = sample_prior(decoder, warm_up + runs, rng)
    for i in range(warm_up):
        decoder.decode(z[i:i + 1])
    times = []
    for i in range(warm_up, warm_up + runs):
        start = time.perf_counter()
        decoder.decode(z[i:i + 1])
        times.append((time.perf_counter() - start) * 1000.0)
    return float(np.median(times)), float(np.percentile(times, 99))


def reconstruction_error(decoder: Any, audio: np.ndarray) -> float:
    """Mean multi-resolution STFT error of ``audio`` through the model's encoder and decoder."""
    parts = []
    for i in range(0, len(audio), DECODE_BATCH):
        target = audio[i:i + DECODE_BATCH]
        parts.append(multi_resolution_stft_error(target, decoder.decode(decoder.encode(target))))
    return float(np.mean(np.concatenate(parts)))


# --- whole evaluation ----------------------------------------------------------------------------

class _References:
    """Real-snare references, one per sample rate (models may differ in rate)."""

    def __init__(self, audio: np.ndarray, sample_rate: int, seed: int) -> None:
        self.audio, self.sample_rate, self.seed = audio, sample_rate, seed
        self._cache: dict[tuple[int, int], tuple[np.ndarray, Reference]] = {}

    def at(self, rate: int, length: int) -> tuple[np.ndarray, Reference]:
        """The real snares at ``rate``, cut or zero-padded to ``length``, and their reference."""
        if (rate, length) not in self._cache:
            from snaresynth import dsp

            audio = self.audio
            if rate != self.sample_rate:
                audio = dsp.resample(audio, self.sample_rate, rate)
            if audio.shape[1] >= length:
                audio = audio[:, :length]
            else:
                audio = np.pad(audio, ((0, 0), (0, length - audio.shape[1])))
            ref = reference_from_audio(audio, rate, np.random.default_rng(self.seed))
            self._cache[(rate, length)] = (audio, ref)
        return self._cache[(rate, length)]


def evaluate_decoder(
    decoder: Any, snares: _References, listener: Any | None = None, name: str = "",
    points: int = 1000, lines: int = 50, steps: int = 64, timing: int = 200, seed: int = 0,
    corpus_fingerprint: str | None = None, heldout: np.ndarray | None = None,
    coverage_items: int = 0,
) -> ModelFigures:
    """All figures of one decoder against the real snares.

    ``heldout``: listener embeddings of real snares from kits the model was not trained on;
    coverage compares the first ``coverage_items`` knob-travel sounds with them.
    """
    rate = int(decoder.sample_rate)
    real, reference = snares.at(rate, int(decoder.length))
    metadata = getattr(decoder, "metadata", None)
    path = getattr(decoder, "path", None)
    figures = ModelFigures(name=name or (Path(path).name if path else decoder.family),
                           family=decoder.family, latent_dim=int(decoder.latent_dim))
    rng = np.random.default_rng(seed)
    if points > 0:
        audio = decode_batched(decoder, sample_prior(decoder, points, rng))
        if listener is not None:
            figures.snare_share = listener.share(audio, rate, "snare")
        figures.diversity = diversity(log_mel(audio[:MAX_REFERENCE], _mel(decoder)), reference)
    if lines > 0 and steps > 0:
        figures.smoothness, figures.flat_lines, figures.span = smoothness_and_span(
            decoder, reference, lines, steps, rng)
    if getattr(decoder, "encoder", None) is not None:
        figures.reconstruction = reconstruction_error(decoder, real)
        figures.reconstruction_items = int(len(real))
        trained_on = getattr(metadata, "corpus_fingerprint", None)
        if trained_on and corpus_fingerprint:
            figures.reconstruction_on_training_data = trained_on == corpus_fingerprint
    travel_figures(decoder, figures, listener, points, lines, steps, seed, heldout,
                   coverage_items)
    if timing > 0:
        figures.decode_ms_median, figures.decode_ms_p99 = decode_times_ms(decoder, timing, rng=rng)
    if path is not None and Path(path).is_file():
        figures.size_mb = Path(path).stat().st_size / 1e6
    return figures


def travel_figures(
    decoder: Any, figures: ModelFigures, listener: Any | None, points: int, lines: int,
    steps: int, seed: int, heldout: np.ndarray | None, coverage_items: int,
) -> None:
    """Fill the knob-travel columns of ``figures`` (their own seeded draws: the figures above
    stay what they were before these columns existed)."""
    rng = np.random.default_rng([seed, 1])
    rate = int(decoder.sample_rate)
    if points > 0 and listener is not None:
        audio = decode_batched(decoder, uniform_knobs(decoder, points, rng))
        figures.travel_share = listener.share(audio, rate, "snare")
        n = min(coverage_items, len(audio))
        if heldout is not None and n > K_NEAREST:
            fake = listener.embed(audio[:n * (len(audio) // n)], rate)
            draws = precision_recall_draws(heldout, fake, n)
            figures.coverage_precision, figures.coverage_recall = map(float, draws.mean(axis=0))
            figures.coverage_precision_range = [float(draws[:, 0].min()), float(draws[:, 0].max())]
            figures.coverage_recall_range = [float(draws[:, 1].min()), float(draws[:, 1].max())]
            figures.coverage_items, figures.coverage_draws = n, len(draws)
    if lines > 0 and steps > 0:
        ratios, _ = line_step_ratios(decoder, uniform_lines(decoder, lines, steps, rng))
        figures.travel_smooth_median, figures.travel_smooth_p90, _ = ratio_summary(ratios)


def _snare_corpus(path: str | Path, what: str) -> Any:
    """The snares of a corpus folder, or a CorpusError naming it and what is wrong."""
    from snaresynth.data.corpus import load_corpus

    full = load_corpus(path)
    if len(full.items) == 0 or full.audio.ndim != 2:
        raise CorpusError(f"{path}: the {what} corpus is empty")
    snares = full.select("snare")
    if snares.audio.shape[0] < 2:
        raise CorpusError(f"{path}: the {what} corpus has {len(full.items)} items but "
                          f"{snares.audio.shape[0]} labelled 'snare'; eval needs at least 2")
    return snares


def heldout_snares(path: str | Path, trained: Any) -> tuple[np.ndarray, int, list[str]]:
    """(audio, rate, kits) of the original snares in ``path`` from kits not in ``trained``.

    A kit counts as trained on when its group name occurs in the training corpus; a file whose
    contents (sha256) occur there is dropped too (kits share samples).
    """
    corpus = _snare_corpus(path, "held-out")
    seen_groups = {str(item.get("group", "")) for item in trained.items}
    seen_sha = {item.get("sha256") for item in trained.items} - {None, "", "0"}
    keep = [i for i, item in enumerate(corpus.items)
            if not item.get("augment") and str(item.get("group", "")) not in seen_groups
            and item.get("sha256") not in seen_sha]
    if len(keep) <= K_NEAREST:
        raise CorpusError(f"{path}: only {len(keep)} original snares from kits outside the "
                          f"training corpus; coverage needs more than {K_NEAREST}")
    kits = sorted({str(corpus.items[i].get("group", "")) for i in keep})
    return corpus.audio[keep], corpus.sample_rate, kits


def snare_listener(path: str | Path | None) -> Any:
    """The listener, refused (ModelFileError naming it) unless it has a 'snare' class."""
    from snaresynth.analysis.listener import BUNDLED_LISTENER, load_listener

    judge = load_listener(path)
    if "snare" not in judge.classes:
        raise ModelFileError(f"{path or BUNDLED_LISTENER}: listener was trained on classes "
                             f"{', '.join(judge.classes)}; eval needs one with a 'snare' class")
    return judge


def evaluate(
    models: list[str | Path], data: str | Path, points: int = 1000, lines: int = 50,
    steps: int = 64, timing: int = 200, listener: str | Path | None = None, seed: int = 0,
    max_snares: int = MAX_SNARES, heldout: str | Path | None = None,
) -> list[ModelFigures]:
    """Figures of every model file plus the "real snares" row, on the corpus' original snares.

    Every input is read and checked before any figure is computed, so bad input fails at once.
    """
    from snaresynth.models.registry import load

    corpus = _snare_corpus(data, "training")  # train records this snare-only fingerprint
    originals = [i for i, item in enumerate(corpus.items) if not item.get("augment")]
    pick = np.sort(np.random.default_rng(seed).permutation(originals)[:max_snares])
    snares = _References(corpus.audio[pick], corpus.sample_rate, seed)
    judge = snare_listener(listener)
    held_emb = None
    if heldout is not None:
        held_audio, held_rate, _ = heldout_snares(heldout, corpus)
        held_emb = judge.embed(held_audio, held_rate)
    decoders = [load(model) for model in models]
    rows = [real_snares_row(snares, judge, held_emb)]
    from tqdm import tqdm

    named = list(zip(decoders, row_names(models), strict=True))
    for decoder, name in tqdm(named, desc="eval", unit="model", disable=None):  # tty only
        rows.append(evaluate_decoder(decoder, snares, judge, name, points, lines,
                                     steps, timing, seed, corpus.fingerprint, held_emb,
                                     len(snares.audio)))
    return rows


def row_names(paths: list[str | Path]) -> list[str]:
    """Shortest unique path tails: a/m.keras and b/m.keras stay so; x/vae.keras -> vae.keras."""
    parts = [Path(p).parts for p in paths]
    names = []
    for mine in parts:
        for depth in range(1, len(mine) + 1):
            tail = mine[-depth:]
            if sum(other[-depth:] == tail for other in parts) == 1 or depth == len(mine):
                names.append("/".join(tail))
                break
    return names


def real_snares_row(snares: _References, listener: Any | None,
                    heldout: np.ndarray | None = None) -> ModelFigures:
    """The reference row: the corpus' own diversity (1 by definition), listener snare share,
    and the coverage of the training snares against the held-out kits' snares."""
    row = ModelFigures(name="real snares", family="corpus", diversity=1.0)
    if listener is not None:
        row.snare_share = listener.share(snares.audio, snares.sample_rate, "snare")
        if heldout is not None and len(snares.audio) > K_NEAREST:
            own = listener.embed(snares.audio, snares.sample_rate)
            row.coverage_precision, row.coverage_recall = precision_recall(heldout, own)
            row.coverage_items, row.coverage_draws = len(snares.audio), 1
    return row


# --- output --------------------------------------------------------------------------------------

COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "model"), ("family", "family"), ("latent_dim", "dims"),
    ("reconstruction", "recon MR-STFT"), ("smoothness", "smoothness"), ("flat_lines", "flat"),
    ("span", "span"), ("diversity", "diversity"), ("snare_share", "snare share"),
    ("decode_ms_median", "decode ms (median)"), ("decode_ms_p99", "decode ms (p99)"),
    ("size_mb", "MB"),
)
TRAVEL_COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "model"), ("family", "family"), ("travel_share", "snare share (uniform knobs)"),
    ("travel_smooth_median", "smoothness median"), ("travel_smooth_p90", "smoothness p90"),
    ("coverage_precision", "coverage precision"), ("coverage_recall", "coverage recall"),
    ("coverage_items", "n"), ("coverage_draws", "sets"),
)


def _cell(figures: ModelFigures, key: str) -> str:
    value = getattr(figures, key)
    # a set count of 0 is "not measured"; a measured precision or recall of 0.00 is a figure
    if value is None or (key in ("coverage_items", "coverage_draws") and not value):
        return "-"
    if key == "smoothness" and isinstance(value, float) and math.isnan(value):
        return "flat"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf"
        if key == "travel_share":  # one decimal: 0.946 must not print as the 95 % target
            return f"{100 * value:.1f}%"
        if key in ("snare_share", "flat_lines"):
            return f"{100 * value:.0f}%"
        text = f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"
        spread = getattr(figures, f"{key}_range", None) if key.startswith("coverage") else None
        if spread and figures.coverage_draws > 1:
            text += f" ({spread[0]:.2f}-{spread[1]:.2f})"
        if key == "reconstruction" and figures.reconstruction_on_training_data:
            text += "*"
        return text
    return str(value)


def format_table(rows: list[ModelFigures], markdown: bool = False,
                 columns: tuple[tuple[str, str], ...] = COLUMNS) -> str:
    """A plain-text (aligned) or Markdown table, one row per model."""
    header = [title for _, title in columns]
    body = [[_cell(row, key) for key, _ in columns] for row in rows]
    notes = []
    if columns is COLUMNS and any(row.reconstruction_on_training_data for row in rows):
        notes.append("* reconstruction measured on the corpus the model was trained on")
    if markdown:
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines + ([""] + notes if notes else []))
    widths = [max(len(h), *(len(cells[i]) for cells in body)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) for cells in body]
    return "\n".join(lines + notes)


def eval_command(models: list[str], data: Path, points: int, lines: int, steps: int,
                 timing: int, listener: Path | None, seed: int, as_json: bool,
                 markdown: bool, heldout: Path | None = None) -> int:
    """CLI entry: evaluate and print a table (or JSON)."""
    import json

    from snaresynth.analysis.listener import BUNDLED_LISTENER, read_listener_info

    rows = evaluate(models, data, points, lines, steps, timing, listener, seed,
                    heldout=heldout)
    if as_json:
        print(json.dumps([row.to_dict() for row in rows], indent=1))
        return 0
    print(format_table(rows, markdown=markdown))
    print(("\n" if markdown else "\n") + "Over the whole knob travel (every knob uniform over "
          f"its full range; smoothness over {lines} lines of {steps} steps; coverage k = "
          f"{K_NEAREST} against snares of kits not in {data}"
          + (f", from {heldout}; a model's coverage is the mean (lowest-highest) over disjoint "
             "sets of its sounds, each as large as the real-snares set" if heldout
             else ": give --heldout CORPUS") + "):"
          + ("\n" if markdown else ""))
    print(format_table(rows, markdown=markdown, columns=TRAVEL_COLUMNS))
    judge = Path(listener or BUNDLED_LISTENER)
    info = read_listener_info(judge)
    held = info.accuracy.get("per_class", {}).get("snare", {}).get("accuracy")
    overall = info.accuracy.get("overall")
    if held is not None and overall is not None:
        print(("\n" if markdown else "")
              + f"snare share: listener {judge.name} hears {held:.0%} of snares from held-out "
              f"kits as snare ({overall:.0%} of all instruments right); the real-snares row "
              "is its share on the corpus' own snares, a reference rather than a ceiling")
    return 0
