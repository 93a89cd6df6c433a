"""Tests for control/params.py: the typed parameter every edge parses once, and the one
out-of-range policy for knob values."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snaresynth.control.kit import Kit, Slot
from snaresynth.control.params import (
    MAX_LATENT_DIM,
    Kind,
    Param,
    cc_to_knob,
    from_units,
    knob,
    knob_to_cc,
    latent,
    parse_param,
    slot_params,
    to_units,
)

addresses = st.sampled_from(["level", "tune", "decay", "pan", "morph"]) | st.integers(
    0, MAX_LATENT_DIM - 1).map(lambda i: f"latent/{i}")


@pytest.mark.parametrize(
    ("address", "parsed"),
    [("latent/3", latent(3)), ("latent/0", latent(0)), ("latent/1023", latent(1023)),
     ("level", Param(Kind.LEVEL)), ("tune", Param(Kind.TUNE)), ("decay", Param(Kind.DECAY)),
     ("pan", Param(Kind.PAN)), ("morph", Param(Kind.MORPH))],
)
def test_parse_param(address: str, parsed: Param) -> None:
    assert parse_param(address) == parsed
    assert parsed.address == address == str(parsed)


@pytest.mark.parametrize(
    "address",
    ["", "latent", "latent/", "latent/-1", "latent/03", "latent/1024", "latent/x", "/level",
     "Level", "level ", "volume", "latent/3/4", "latent/3\n", "latent/٣", None, 3],
)
def test_parse_param_rejects_and_names_it(address: Any) -> None:
    with pytest.raises(ValueError) as info:
        parse_param(address)
    assert repr(address)[:20] in str(info.value) or "latent dimension" in str(info.value)


def test_parse_param_knows_the_model_size() -> None:
    assert parse_param("latent/7", latent_dim=8) == latent(7)
    with pytest.raises(ValueError, match=r"latent dimension must be 0\.\.7, got 8"):
        parse_param("latent/8", latent_dim=8)


@given(addresses)
def test_addresses_round_trip(address: str) -> None:
    assert parse_param(address).address == address


def test_knob_values_outside_the_range_are_refused_not_clamped() -> None:
    assert knob(0.25) == 0.25 and knob(0) == 0.0 and knob(1) == 1.0
    for bad, why in ((-0.01, "in 0..1"), (7.5, "in 0..1"), (math.nan, "finite"),
                     (math.inf, "finite"), (True, "number"), ("0.5", "number"), (None, "number")):
        with pytest.raises(ValueError, match=why):
            knob(bad, "value")


@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.text(),
                 st.booleans(), st.none()))
def test_knob_returns_a_knob_value_or_value_error(value: Any) -> None:
    try:
        x = knob(value)
    except ValueError:
        return
    assert 0.0 <= x <= 1.0 and isinstance(x, float)


def test_cc_scaling_endpoints() -> None:
    assert cc_to_knob(0) == 0.0
    assert cc_to_knob(127) == 1.0
    assert cc_to_knob(64) == pytest.approx(0.5039, abs=1e-4)


@given(st.integers(0, 127))
def test_cc_round_trip_is_exact(cc: int) -> None:
    assert knob_to_cc(cc_to_knob(cc)) == cc


@given(st.floats(0.0, 1.0))
def test_knob_to_cc_within_half_a_step(x: float) -> None:
    assert abs(cc_to_knob(knob_to_cc(x)) - x) <= 0.5 / 127 + 1e-12


@pytest.mark.parametrize(
    ("kind", "x", "value"),
    [(Kind.LEVEL, 0.0, -60.0), (Kind.LEVEL, 1.0, 12.0), (Kind.LEVEL, 60 / 72, 0.0),
     (Kind.TUNE, 0.0, -12.0), (Kind.TUNE, 0.5, 0.0), (Kind.TUNE, 1.0, 12.0),
     (Kind.PAN, 0.0, -1.0), (Kind.PAN, 0.5, 0.0), (Kind.PAN, 1.0, 1.0),
     (Kind.DECAY, 0.3, 0.3), (Kind.MORPH, 0.7, 0.7), (Kind.LATENT, 0.9, 0.9)],
)
def test_unit_conversions(kind: Kind, x: float, value: float) -> None:
    assert to_units(kind, x) == pytest.approx(value, abs=1e-12)
    assert from_units(kind, value) == pytest.approx(x, abs=1e-12)


def test_from_units_clamps_for_feedback() -> None:
    assert from_units(Kind.LEVEL, 100.0) == 1.0 and from_units(Kind.PAN, -3.0) == 0.0


@given(addresses, st.floats(0.0, 1.0))
def test_units_round_trip(address: str, x: float) -> None:
    kind = parse_param(address).kind
    assert from_units(kind, to_units(kind, x)) == pytest.approx(x, abs=1e-9)


def test_set_and_read_slot_values() -> None:
    slot = Slot("s", [38], [0.5, 0.5])
    slot.set(Param(Kind.LEVEL), 60 / 72)
    assert slot.level_db == pytest.approx(0.0)
    slot.set(Param(Kind.TUNE), 1.0)
    slot.set(Param(Kind.PAN), 0.0)
    slot.set(Param(Kind.DECAY), 0.25)
    assert (slot.tune_semitones, slot.pan, slot.decay) == (12.0, -1.0, 0.25)
    slot.set(latent(1), 0.9)
    assert slot.knobs == [0.5, 0.9]
    slot.set(latent(3), 1.0)
    assert slot.knobs == [0.5, 0.9, 0.5, 1.0]  # padded with the centre
    assert slot.value(Param(Kind.TUNE)) == 1.0
    assert slot.value(Param(Kind.PAN)) == 0.0
    assert slot.value(latent(1)) == 0.9
    assert slot.value(latent(10)) == 0.5
    assert slot.value(Param(Kind.LEVEL)) == pytest.approx(60 / 72)
    Kit("k", [slot], {})  # still a valid slot


def test_slot_params_lists_every_control_of_a_slot() -> None:
    assert [p.address for p in slot_params(2)] == ["latent/0", "latent/1", "level", "tune",
                                                   "decay", "pan", "variation"]
