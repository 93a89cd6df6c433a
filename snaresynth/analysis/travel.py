"""Figures over the whole knob travel: what a performer reaches, not the middle of a prior.

- snare share of points drawn uniformly over every knob's full range (``uniform_knobs``);
- smoothness along straight lines whose two ends are uniform over the full range: per line the
  largest / median log-mel step, then the median and 90th percentile over lines;
- coverage: improved precision and recall (k-nearest-neighbour manifolds, Kynkäänniemi et
  al., "Improved Precision and Recall Metric for Assessing Generative Models", NeurIPS 2019)
  of a set of sounds against real snares, in the listener's embedding. Precision: the share of
  generated sounds inside the real manifold (the union of balls around each real item reaching
  its k-th nearest real neighbour); recall: the share of real items inside the generated one.

Pure numpy apart from the decoder and the listener that are passed in.
"""

from __future__ import annotations

from typing import Any

import numpy as np

K_NEAREST = 3  # the paper's k
_CHUNK = 512  # rows of a pairwise distance block (bounded memory)


def uniform_knobs(decoder: Any, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, latent_dim) latents with every knob uniform over 0..1, i.e. over its full range."""
    lo, hi = (np.asarray(a, dtype=np.float32) for a in decoder.latent_range())
    return rng.uniform(lo, hi, size=(n, lo.size)).astype(np.float32)


def uniform_lines(decoder: Any, lines: int, steps: int,
                  rng: np.random.Generator) -> np.ndarray:
    """(lines, steps + 1, latent_dim): straight lines between two uniform knob settings."""
    ends = uniform_knobs(decoder, 2 * lines, rng).reshape(lines, 2, -1)
    t = np.linspace(0.0, 1.0, steps + 1, dtype=np.float32)[None, :, None]
    return ends[:, :1, :] + t * (ends[:, 1:, :] - ends[:, :1, :])


def ratio_summary(ratios: np.ndarray) -> tuple[float, float, float]:
    """(median, 90th percentile, flat share) of per-line ratios; flat (NaN) lines left out.

    An infinite ratio (a line that stands still except for a jump) stays infinite: it is the
    worst cliff there is, not something to average away.
    """
    ratios = np.asarray(ratios, dtype=np.float64)
    flat = float(np.mean(np.isnan(ratios))) if ratios.size else float("nan")
    moving = ratios[~np.isnan(ratios)]
    if moving.size == 0:
        return float("nan"), float("nan"), flat
    # method "lower"/"higher" keep an inf out of an interpolation that would give NaN
    median = float(np.percentile(moving, 50, method="lower"))
    p90 = float(np.percentile(moving, 90, method="higher"))
    return median, p90, flat


def pairwise_euclidean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, D) x (M, D) -> (N, M) Euclidean distances, in float64."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    sq = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


def knn_radii(feats: np.ndarray, k: int = K_NEAREST) -> np.ndarray:
    """Distance of each item to its k-th nearest *other* item of the same set: (N,)."""
    feats = np.asarray(feats, dtype=np.float64)
    n = len(feats)
    if n <= k:
        raise ValueError(f"need more than k={k} items for k-NN radii, got {n}")
    radii = np.empty(n)
    for start in range(0, n, _CHUNK):
        d = pairwise_euclidean(feats[start:start + _CHUNK], feats)
        # column k of the sorted row: column 0 is the item itself at distance 0
        radii[start:start + _CHUNK] = np.partition(d, k, axis=1)[:, k]
    return radii


def _inside(queries: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """(Q,) bool: whether each query lies in at least one ball (centre, radius)."""
    out = np.zeros(len(queries), dtype=bool)
    for start in range(0, len(queries), _CHUNK):
        d = pairwise_euclidean(queries[start:start + _CHUNK], centres)
        out[start:start + _CHUNK] = np.any(d <= radii[None, :], axis=1)
    return out


def precision_recall(real: np.ndarray, fake: np.ndarray,
                     k: int = K_NEAREST) -> tuple[float, float]:
    """Improved precision and recall of ``fake`` against ``real`` embeddings (both (N, D)).

    Kynkäänniemi et al. (2019), eq. 1-3: precision = share of fakes within some real item's
    k-NN ball; recall = share of reals within some fake item's k-NN ball. Compare sets of the
    same size: recall grows with the number of fakes.
    """
    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"need (N, D) embeddings of one width, got {real.shape}, {fake.shape}")
    precision = float(np.mean(_inside(fake, real, knn_radii(real, k))))
    recall = float(np.mean(_inside(real, fake, knn_radii(fake, k))))
    return precision, recall


def precision_recall_draws(real: np.ndarray, fake: np.ndarray, n: int,
                           k: int = K_NEAREST) -> np.ndarray:
    """(draws, 2) precision and recall of each of the ``len(fake) // n`` disjoint sets of ``n``
    fakes against ``real``: one set of as many sounds as the reference is a noisy figure."""
    draws = len(fake) // n if n > k else 0
    if draws == 0:
        raise ValueError(f"need at least one set of n={n} > k={k} fakes, got {len(fake)}")
    return np.array([precision_recall(real, fake[i * n:(i + 1) * n], k) for i in range(draws)])


__all__ = ["K_NEAREST", "knn_radii", "pairwise_euclidean", "precision_recall",
           "precision_recall_draws", "ratio_summary", "uniform_knobs", "uniform_lines"]
