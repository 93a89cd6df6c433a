"""The model's knob map: where the knob cube lands in the decoder's latent space.

Every knob runs 0..1 over its dimension's ``latent_lo..latent_hi`` (the engine, the kit files and
the analysis all make that straight line). A model file may then bend the cube before the
decoder sees it (``ModelMetadata.knob_map``):

* ``"cube"``: no bend; the corner where every knob is at an edge is the corner of the box, far
  outside where a normal prior (and the training data) puts its mass in 8 dimensions.
* ``"ball"``: the cube is squashed onto the ellipsoid inscribed in the box. A single knob still
  reaches its dimension's full range, the centre and every straight line through it stay
  straight, but no corner reaches beyond the ellipsoid: the knob edges are the edges of the
  snare world, not beyond it (measured in docs/models.md, "Over the whole knob travel").

Pure numpy: it runs in the decode worker (and in ``KerasDecoder``) on (B, latent_dim) rows.
"""

from __future__ import annotations

import numpy as np

KNOB_MAPS = ("cube", "ball")
MAX_SCALE = 4.0  # a knob range scaled further than this is surely a typo
_EPS = 1e-12


def check_knobs(kind: object = None, scale: object = None) -> None:
    """ValueError naming what is wrong with a knob map or a knob-range scale (None: not given)."""
    if kind is not None and kind not in KNOB_MAPS:
        raise ValueError(f"knob_map must be one of {', '.join(KNOB_MAPS)}, got {kind!r}")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, int | float)
                              or not 0.0 < scale <= MAX_SCALE):
        raise ValueError(f"knob scale must be in (0, {MAX_SCALE:g}], got {scale!r}")


def _unit(z: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                   np.ndarray]:
    centre = (lo + hi) / 2.0
    half = np.maximum((hi - lo) / 2.0, _EPS)
    return (z - centre) / half, centre, half


def to_network(z: np.ndarray, lo: np.ndarray, hi: np.ndarray, kind: str) -> np.ndarray:
    """(B, D) knob-space latents (inside lo..hi) -> the decoder network's input."""
    if kind == "cube":
        return z
    u, centre, half = _unit(np.asarray(z, dtype=np.float64), lo, hi)
    box = np.abs(u).max(axis=-1, keepdims=True)  # which cube shell the point is on
    ball = np.linalg.norm(u, axis=-1, keepdims=True)
    scale = np.where(ball > _EPS, box / np.maximum(ball, _EPS), 1.0)
    return (centre + half * u * scale).astype(np.float32)


def from_network(z: np.ndarray, lo: np.ndarray, hi: np.ndarray, kind: str) -> np.ndarray:
    """The inverse of ``to_network`` (an encoder's output back to knob space)."""
    if kind == "cube":
        return z
    v, centre, half = _unit(np.asarray(z, dtype=np.float64), lo, hi)
    box = np.abs(v).max(axis=-1, keepdims=True)
    ball = np.linalg.norm(v, axis=-1, keepdims=True)
    scale = np.where(box > _EPS, ball / np.maximum(box, _EPS), 1.0)
    return (centre + half * v * scale).astype(np.float32)


__all__ = ["KNOB_MAPS", "MAX_SCALE", "check_knobs", "from_network", "to_network"]
