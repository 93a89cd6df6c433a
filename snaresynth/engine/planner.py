"""Decode planning: which sounds a change of the kit asks the decode worker for.

Every slot has ``VELOCITY_LAYERS`` sounds when velocity also moves a latent dimension (as a
sampler's velocity layers), else one (the top layer), each in ``variants`` round-robin variants
when the slot's ``variation`` is above 0 (``control.variation.variant_knobs``, seeded as the
export is, so the daemon and an exported kit play the same points). A moving knob also asks
for the next ``PREFETCH_STEPS`` positions in its direction of travel, so a full-speed sweep
finds them in the cache. Requests carry typed targets (``Layer``, ``Prefetch``); pure functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from snaresynth.control.kit import Kit
from snaresynth.control.mapping import morph_knobs
from snaresynth.control.params import Kind, Param
from snaresynth.control.variation import SEED, played_count, slot_seed, variant_knobs
from snaresynth.decode.worker import Request, quantize_knobs

VELOCITY_LAYERS = 4
"""Decoded sounds per slot when velocity also moves a latent dimension."""

PREFETCH_STEPS = 3
"""Positions decoded ahead of a moving knob, so the decode worker keeps up with a sweep."""


@dataclass(frozen=True, slots=True)
class Layer:
    """The sound of velocity layer ``layer`` of kit slot ``slot``, round-robin ``variant``
    (0: the knobs as set): published when decoded."""

    slot: int
    layer: int
    variant: int = 0


@dataclass(frozen=True, slots=True)
class Prefetch:
    """A position ``ahead`` steps along a sweep: decoded into the cache, never published."""

    ahead: int


@dataclass(frozen=True)
class Rates:
    model: int  # the decoder's sample rate, Hz
    out: int  # the output's, Hz


def velocity_knobs(knobs: Sequence[float], layer: int, latent: int, amount: float) -> list[float]:
    """The knobs velocity layer ``layer`` plays: the top layer plays the knobs as set (the
    sound a user dials in is the loud one), softer ones move ``knobs[latent]`` back by
    ``amount * (1 - (layer + 1) / VELOCITY_LAYERS)``, clipped to 0..1."""
    out = [float(k) for k in knobs]
    v = (layer + 1) / VELOCITY_LAYERS
    out[latent] = min(max(out[latent] - amount * (1.0 - v), 0.0), 1.0)
    return out


def layer_of_velocity(velocity: float) -> int:
    """The layer a hit of ``velocity`` (0..1] falls in."""
    return min(VELOCITY_LAYERS - 1, max(0, math.ceil(velocity * VELOCITY_LAYERS) - 1))


def variant_count(kit: Kit, index: int) -> int:
    """The round-robin variants slot ``index`` plays (1: variation off)."""
    spec = kit.slots[index]
    return played_count(spec.variation, spec.variants)


def slot_requests(kit: Kit, index: int, knobs: Sequence[float], rates: Rates) -> list[Request]:
    """Every velocity layer x variant of slot ``index`` (one layer without
    ``velocity_latent``): variant 0 of every layer first, the top layer first, since a hit
    without layering or variation plays it; then the other variants, layer by layer."""
    spec = kit.slots[index]
    dim = kit.velocity_latent
    top = VELOCITY_LAYERS - 1
    points = variant_knobs(knobs, spec.variation, variant_count(kit, index),
                           slot_seed(SEED, index))
    out = []
    for variant, point in enumerate(points):
        if dim is None or dim >= len(point):
            layers = [(top, list(point))]
        else:
            layers = [(layer, velocity_knobs(point, layer, dim, kit.velocity_latent_amount))
                      for layer in range(top, -1, -1)]
        out.extend(Request(Layer(index, layer, variant), quantize_knobs(k),
                           float(spec.tune_semitones), float(spec.decay), rates.model, rates.out)
                   for layer, k in layers)
    return out


def prefetch_requests(kit: Kit, index: int, knobs: Sequence[float], param: Param, value: float,
                      step: float, morph_ends: tuple[list[float], list[float]] | None,
                      rates: Rates) -> list[Request]:
    """The next ``PREFETCH_STEPS`` positions of a latent or morph sweep moving by ``step``."""
    spec = kit.slots[index]
    out = []
    for ahead in range(1, PREFETCH_STEPS + 1):
        target = min(max(value + ahead * step, 0.0), 1.0)
        if param.kind is Kind.MORPH:
            if morph_ends is None:
                break
            position = morph_knobs(*morph_ends, target)
        else:
            position = list(knobs)
            position[param.index] = target
        out.append(Request(Prefetch(ahead), quantize_knobs(position),
                           float(spec.tune_semitones), float(spec.decay), rates.model,
                           rates.out))
        if target in (0.0, 1.0):
            break
    return out
