"""Round-robin variation: seeded knob positions around a slot's latent point.

A sampler repeats one recording per velocity layer (the "machine gun"); a neural instrument can
play a new point near the chosen sound on every hit. ``variant_knobs`` draws those points: the
exporter writes one sample per point, and the engine can decode the same points into its cache.
Pure: no files, no threads, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

MAX_VARIANTS = 16
"""Variants per slot and velocity layer (Hydrogen holds 16 layers per instrument)."""
MAX_PLAYED_VARIANTS = 8
"""Variants per slot the daemon plays (a kit's ``variants``): 128 slots x 4 layers x 8 fit the
engine's buffer table twice over (docs/presets.md)."""
DEFAULT_VARIANTS = 4
"""A slot's ``variants`` when its kit does not say: turning ``variation`` up is then heard."""
SEED = 0
"""The daemon's base seed (``slot_seed(SEED, slot)``): ``export-kit``'s default ``--seed``, so an
exported kit's round robins are the daemon's."""


def variant_knobs(knobs: Sequence[float], amount: float, count: int,
                  seed: int) -> list[list[float]]:
    """``count`` knob positions around ``knobs``: the first is ``knobs`` itself (so a count of 1
    or an amount of 0 plays the sound as set), each other one moves every knob by up to
    ``amount`` (uniform in -amount..+amount), clipped to 0..1.

    The same (knobs, amount, seed) always gives the same points, and a larger ``count`` keeps
    the first ones (variant i does not depend on how many were asked for), so a kit sounds
    the same after a reload and adding variants never changes the existing ones.
    """
    values = [float(k) for k in knobs]
    if not values or not all(math.isfinite(k) and 0.0 <= k <= 1.0 for k in values):
        raise ValueError(f"knobs must be 1 or more numbers in 0..1, got {list(knobs)!r}")
    if isinstance(amount, bool) or not isinstance(amount, int | float) \
            or not math.isfinite(amount) or not 0.0 <= amount <= 1.0:
        raise ValueError(f"variation amount must be a number in 0..1, got {amount!r}")
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_VARIANTS:
        raise ValueError(f"variant count must be an integer in 1..{MAX_VARIANTS}, got {count!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    centre = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    out = [values]
    for _ in range(count - 1):
        step = rng.uniform(-1.0, 1.0, size=centre.shape)  # drawn row by row: prefix-stable
        out.append([float(v) for v in np.clip(centre + amount * step, 0.0, 1.0)])
    return out


def played_count(amount: float, variants: int) -> int:
    """The variants a slot decodes and plays: one (today's sound) when ``amount`` is 0."""
    return 1 if amount <= 0.0 else int(variants)


def slot_seed(base: int, slot: int) -> int:
    """The seed of slot ``slot``'s variants: each slot varies on its own, reproducibly."""
    return (int(base) * 1_000_003 + int(slot)) & 0x7FFF_FFFF
