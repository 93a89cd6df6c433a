"""The knob map (models/knobmap.py): the cube squashed onto its inscribed ellipsoid."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from snaresynth.models.knobmap import from_network, to_network

DIM = 5
LO = np.array([-2.0, -3.0, 0.0, -1.0, 10.0])
HI = np.array([2.0, 3.0, 1.0, 5.0, 12.0])
unit_rows = arrays(np.float64, (4, DIM), elements=st.floats(0.0, 1.0))


def _knobs(unit: np.ndarray) -> np.ndarray:
    return (LO + unit * (HI - LO)).astype(np.float32)


@given(unit_rows)
@settings(max_examples=200, deadline=None)
def test_ball_stays_inside_the_inscribed_ellipsoid_and_round_trips(unit: np.ndarray) -> None:
    z = _knobs(unit)
    out = to_network(z, LO, HI, "ball")
    centre, half = (LO + HI) / 2, (HI - LO) / 2
    radius = np.linalg.norm((out - centre) / half, axis=1)
    assert np.all(radius <= 1.0 + 1e-5)
    # the cube's own shell index (largest |unit| about the centre) is the ellipsoid radius
    np.testing.assert_allclose(radius, np.abs(2 * unit - 1).max(axis=1), atol=1e-5)
    np.testing.assert_allclose(from_network(out, LO, HI, "ball"), z, atol=1e-4)


def test_a_single_knob_reaches_its_whole_range_and_the_centre_stays() -> None:
    centre = (LO + HI) / 2
    for i in range(DIM):
        for edge in (LO[i], HI[i]):
            z = centre.copy()
            z[i] = edge
            out = to_network(z[None, :].astype(np.float32), LO, HI, "ball")[0]
            np.testing.assert_allclose(out, z, atol=1e-5)
    np.testing.assert_allclose(to_network(centre[None, :], LO, HI, "ball")[0], centre)


def test_the_all_edges_corner_is_pulled_in_to_the_ellipsoid() -> None:
    corner = HI[None, :].astype(np.float32)
    out = to_network(corner, LO, HI, "ball")[0]
    centre, half = (LO + HI) / 2, (HI - LO) / 2
    np.testing.assert_allclose((out - centre) / half, np.full(DIM, 1 / np.sqrt(DIM)), atol=1e-6)


def test_lines_through_the_centre_stay_straight() -> None:
    direction = np.array([0.3, -0.9, 0.5, 0.1, -0.2])
    t = np.linspace(-1.0, 1.0, 21)[:, None]
    centre, half = (LO + HI) / 2, (HI - LO) / 2
    out = to_network((centre + t * direction * half).astype(np.float32), LO, HI, "ball")
    steps = np.diff(out, axis=0)
    np.testing.assert_allclose(steps, np.broadcast_to(steps[0], steps.shape), atol=1e-5)


def test_cube_is_the_identity() -> None:
    z = _knobs(np.random.default_rng(0).uniform(size=(8, DIM)))
    assert to_network(z, LO, HI, "cube") is z
    assert from_network(z, LO, HI, "cube") is z
