"""control/variation.variant_knobs: seeded, prefix-stable points around a slot's knobs."""

from __future__ import annotations

import pytest

from snaresynth.control.variation import MAX_VARIANTS, slot_seed, variant_knobs


def test_first_variant_is_the_knobs_and_amount_zero_is_todays_sound() -> None:
    knobs = [0.2, 0.5, 0.9]
    assert variant_knobs(knobs, 0.3, 1, 0) == [knobs]
    assert variant_knobs(knobs, 0.0, 4, 7) == [knobs] * 4


def test_seeded_bounded_and_prefix_stable() -> None:
    knobs = [0.0, 0.5, 1.0, 0.95]
    a = variant_knobs(knobs, 0.2, 6, 3)
    assert a == variant_knobs(knobs, 0.2, 6, 3)
    assert variant_knobs(knobs, 0.2, 3, 3) == a[:3]
    assert a != variant_knobs(knobs, 0.2, 6, 4)
    assert len({tuple(p) for p in a}) == 6
    for point in a:
        assert all(0.0 <= k <= 1.0 for k in point)
        assert all(abs(k - c) <= 0.2 + 1e-12 for k, c in zip(point, knobs, strict=True))


@pytest.mark.parametrize("args", [([], 0.1, 2, 0), ([1.5], 0.1, 2, 0), ([0.5], -0.1, 2, 0),
                                  ([0.5], float("nan"), 2, 0), ([0.5], 0.1, 0, 0),
                                  ([0.5], 0.1, MAX_VARIANTS + 1, 0), ([0.5], 0.1, 2, -1),
                                  ([0.5], True, 2, 0)])
def test_bad_arguments(args) -> None:
    with pytest.raises(ValueError):
        variant_knobs(*args)


def test_slots_vary_independently() -> None:
    assert len({slot_seed(0, i) for i in range(128)}) == 128
    assert slot_seed(1, 0) != slot_seed(0, 0)
