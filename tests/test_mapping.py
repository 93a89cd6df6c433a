"""Tests for control/mapping.py: addresses, value scaling, the control map, MIDI learn, morph,
randomize and undo."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snaresynth.control.mapping import (
    LEARN_CC,
    MAX_LATENT_DIM,
    NOT_LEARNABLE,
    Binding,
    ControlMap,
    History,
    MidiLearn,
    cc_to_unit,
    format_param,
    from_units,
    morph_knobs,
    osc_to_unit,
    parse_param,
    randomize_knobs,
    set_slot_param,
    slot_param,
    to_units,
    unit_to_cc,
    unit_to_osc,
    value_to_cc,
    value_to_osc,
    velocity_knobs,
)
from snaresynth.control.presets import Kit, Slot, default_cc, kit_to_dict

PARAM_NAMES = ["level", "tune", "decay", "pan", "morph", "latent/0", "latent/7", "latent/1023"]
params = st.sampled_from(PARAM_NAMES) | st.integers(0, MAX_LATENT_DIM - 1).map(
    lambda i: f"latent/{i}"
)


def kit(**overrides: Any) -> Kit:
    fields: dict[str, Any] = {
        "name": "k",
        "slots": [Slot("a", [38, 40], [0.5] * 8), Slot("b", [37], [0.2] * 8)],
        "cc": default_cc(),
    }
    fields.update(overrides)
    return Kit(**fields)


# ---------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    ("address", "parsed"),
    [("latent/3", ("latent", 3)), ("latent/0", ("latent", 0)), ("latent/1023", ("latent", 1023)),
     ("level", ("level", None)), ("tune", ("tune", None)), ("decay", ("decay", None)),
     ("pan", ("pan", None)), ("morph", ("morph", None))],
)
def test_parse_param(address: str, parsed: tuple[str, int | None]) -> None:
    assert parse_param(address) == parsed
    assert format_param(*parsed) == address


@pytest.mark.parametrize(
    "address",
    ["", "latent", "latent/", "latent/-1", "latent/03", "latent/1024", "latent/x", "/level",
     "Level", "level ", "volume", "latent/3/4", "latent/3\n", "latent/٣", None, 3],
)
def test_parse_param_rejects_and_names_it(address: Any) -> None:
    with pytest.raises(ValueError) as info:
        parse_param(address)
    assert repr(address)[:20] in str(info.value) or "string" in str(info.value)


# ---------------------------------------------------------------- scaling


def test_cc_scaling_endpoints() -> None:
    assert cc_to_unit(0) == 0.0
    assert cc_to_unit(127) == 1.0
    assert cc_to_unit(64) == pytest.approx(0.5039, abs=1e-4)
    for bad in (-1, 128, 1.0, True, "7", None):
        with pytest.raises(ValueError):
            cc_to_unit(bad)


def test_osc_values_are_clamped_and_nonfinite_rejected() -> None:
    assert osc_to_unit(0.25) == 0.25
    assert osc_to_unit(-3) == 0.0
    assert osc_to_unit(7.5) == 1.0
    assert osc_to_unit(1) == 1.0
    assert osc_to_unit(np.float32(0.5)) == 0.5
    for bad in (math.nan, math.inf, -math.inf, True, "0.5", None, [0.5]):
        with pytest.raises(ValueError):
            osc_to_unit(bad)
    with pytest.raises(ValueError):
        unit_to_cc(math.nan)


@pytest.mark.parametrize(
    ("param", "unit", "value"),
    [("level", 0.0, -60.0), ("level", 1.0, 12.0), ("level", 60 / 72, 0.0),
     ("tune", 0.0, -12.0), ("tune", 0.5, 0.0), ("tune", 1.0, 12.0),
     ("pan", 0.0, -1.0), ("pan", 0.5, 0.0), ("pan", 1.0, 1.0),
     ("decay", 0.3, 0.3), ("morph", 0.7, 0.7), ("latent/2", 0.9, 0.9)],
)
def test_unit_conversions(param: str, unit: float, value: float) -> None:
    assert to_units(param, unit) == pytest.approx(value, abs=1e-12)
    assert from_units(param, value) == pytest.approx(unit, abs=1e-12)


def test_level_zero_db_is_at_0_8333() -> None:
    assert to_units("level", 0.8333) == pytest.approx(0.0, abs=0.01)


def test_feedback_values() -> None:
    assert value_to_cc("level", 12.0) == 127
    assert value_to_cc("level", -60.0) == 0
    assert value_to_cc("tune", 0.0) in (63, 64)
    assert value_to_cc("level", 100.0) == 127  # out of range clamps
    assert value_to_osc("pan", -1.0) == 0.0
    assert value_to_osc("tune", 12.0) == 1.0
    with pytest.raises(ValueError):
        value_to_osc("level", math.nan)
    with pytest.raises(ValueError):
        from_units("volume", 0.0)


@given(st.integers(0, 127))
def test_cc_round_trip_is_exact(cc: int) -> None:
    assert unit_to_cc(cc_to_unit(cc)) == cc


@given(st.floats(0.0, 1.0))
def test_unit_to_cc_round_trip_within_half_step(x: float) -> None:
    assert abs(cc_to_unit(unit_to_cc(x)) - x) <= 0.5 / 127 + 1e-12
    assert unit_to_osc(osc_to_unit(x)) == x


@given(params, st.floats(0.0, 1.0))
def test_units_round_trip(param: str, x: float) -> None:
    assert from_units(param, to_units(param, x)) == pytest.approx(x, abs=1e-9)
    assert value_to_cc(param, to_units(param, x)) == unit_to_cc(x) or abs(
        value_to_cc(param, to_units(param, x)) - unit_to_cc(x)
    ) <= 1


@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.text(),
                 st.booleans(), st.none()))
def test_osc_to_unit_returns_unit_or_value_error(value: Any) -> None:
    try:
        x = osc_to_unit(value)
    except ValueError:
        return
    assert 0.0 <= x <= 1.0


# ---------------------------------------------------------------- slots


def test_set_and_read_slot_params() -> None:
    slot = Slot("s", [38], [0.5, 0.5])
    assert set_slot_param(slot, "level", 60 / 72) == pytest.approx(0.0)
    assert set_slot_param(slot, "tune", 1.0) == 12.0 and slot.tune_semitones == 12.0
    assert set_slot_param(slot, "pan", 0.0) == -1.0 and slot.pan == -1.0
    assert set_slot_param(slot, "decay", 0.25) == 0.25 and slot.decay == 0.25
    assert set_slot_param(slot, "latent/1", 0.9) == 0.9 and slot.knobs == [0.5, 0.9]
    assert set_slot_param(slot, "latent/3", 2.0) == 1.0 and slot.knobs == [0.5, 0.9, 0.5, 1.0]
    assert slot_param(slot, "tune") == 1.0
    assert slot_param(slot, "pan") == 0.0
    assert slot_param(slot, "latent/1") == 0.9
    assert slot_param(slot, "latent/10") == 0.5
    assert slot_param(slot, "level") == pytest.approx(60 / 72)
    for bad in ("morph", "volume"):
        with pytest.raises(ValueError):
            slot_param(slot, bad)
        with pytest.raises(ValueError):
            set_slot_param(slot, bad, 0.5)
    with pytest.raises(ValueError):
        set_slot_param(slot, "level", math.nan)
    Kit("k", [slot], {})  # still a valid slot


def test_velocity_knobs() -> None:
    knobs = [0.5, 0.2]
    assert velocity_knobs(knobs, 1.0, 0, 0.25) == knobs  # the loudest hit is the dialled sound
    assert velocity_knobs(knobs, 0.0, 0, 0.4, layers=8) == pytest.approx([0.5 - 0.4 * 7 / 8, 0.2])
    assert velocity_knobs(knobs, 0.5, 0, 0.4, layers=2) == pytest.approx([0.3, 0.2])
    assert velocity_knobs(knobs, 0.0, 1, 1.0, layers=8) == [0.5, 0.0]  # clipped
    assert velocity_knobs(knobs, 0.0, 1, -1.0, layers=8) == [0.5, 1.0]
    assert velocity_knobs(knobs, 0.1, None, 0.5) == knobs
    assert velocity_knobs(knobs, 0.1, 5, 0.5) == knobs
    layered = {velocity_knobs(knobs, v / 127, 0, 0.5, layers=4)[0] for v in range(128)}
    assert len(layered) == 4  # a few buffers, not 128
    with pytest.raises(ValueError):
        velocity_knobs(knobs, 0.5, 0, 0.5, layers=0)


# ---------------------------------------------------------------- control map


def test_control_map_from_kit() -> None:
    cmap = ControlMap.from_kit(kit())
    assert cmap.note_to_slot(38) == 0 and cmap.note_to_slot(40) == 0
    assert cmap.note_to_slot(37) == 1
    assert cmap.note_to_slot(36) is None
    assert cmap.cc_to_param(20) == "latent/0"
    assert cmap.cc_to_param(27) == "latent/7"
    assert cmap.cc_to_param(7) == "level"
    assert cmap.cc_to_param(74) == "tune" and cmap.cc_to_param(75) == "decay"
    assert cmap.cc_to_param(1) == "morph"
    assert cmap.cc_to_param(64) is None
    assert cmap.param_to_cc("latent/3") == 23
    assert cmap.param_to_cc("latent/99") is None


def test_param_to_cc_picks_lowest_cc() -> None:
    cmap = ControlMap({}, {30: "level", 7: "level"})
    assert cmap.param_to_cc("level") == 7


def test_channel_filter() -> None:
    omni = ControlMap.from_kit(kit())
    assert all(omni.accepts(c) for c in range(1, 17))
    ten = ControlMap.from_kit(kit(midi_channel=10))
    assert ten.accepts(10)
    assert not ten.accepts(9) and not ten.accepts(1)
    for bad in (0, 17, True, 1.0):
        with pytest.raises(ValueError):
            ten.accepts(bad)
    with pytest.raises(ValueError):
        ControlMap({}, {}, channel=0)
    with pytest.raises(ValueError):
        ControlMap({}, {1: "volume"})


# ---------------------------------------------------------------- MIDI learn


def test_learn_binds_next_cc_and_replaces_old_bindings() -> None:
    learn = MidiLearn({20: "latent/0", 21: "latent/1"})
    assert learn.feed_cc(30, 5) is None  # not armed
    learn.arm("latent/0")
    assert learn.armed == "latent/0"
    assert learn.feed_cc(21, 64) == Binding(21, "latent/0")
    assert learn.armed is None
    # CC 21 now does latent/0 only; latent/0's old CC 20 is freed; latent/1 lost its CC
    assert learn.bindings == {21: "latent/0"}
    assert learn.feed_cc(22, 64) is None  # disarmed after one binding


def test_learn_cancel_and_validation() -> None:
    learn = MidiLearn()
    with pytest.raises(ValueError):
        learn.arm("volume")
    learn.arm("tune")
    learn.cancel()
    assert learn.feed_cc(20, 1) is None
    assert learn.bindings == {}
    with pytest.raises(ValueError):
        learn.feed_cc(128, 0)
    with pytest.raises(ValueError):
        learn.feed_cc(20, 128)


def test_learn_ignores_unlearnable_ccs() -> None:
    learn = MidiLearn()
    learn.arm("decay")
    for cc in (0, 32, 6, 38, 98, 99, 100, 101, 120, 121, 123, 127):
        assert learn.feed_cc(cc, 0) is None
    assert learn.armed == "decay"
    assert learn.feed_cc(75, 10) == Binding(75, "decay")


def test_learn_key_combination_cc119() -> None:
    learn = MidiLearn({7: "level"})
    assert learn.consumes(LEARN_CC) and not learn.consumes(7)
    assert learn.feed_cc(LEARN_CC, 127) is None  # nothing touched yet: nothing to learn
    assert learn.armed is None
    learn.feed_cc(7, 90)  # turning the level knob makes level the last-touched parameter
    assert learn.last_touched == "level"
    assert learn.feed_cc(LEARN_CC, 127) is None
    assert learn.armed == "level"
    assert learn.feed_cc(LEARN_CC, 0) is None  # button release changes nothing
    assert learn.armed == "level"
    assert learn.feed_cc(40, 3) == Binding(40, "level")
    assert learn.bindings == {40: "level"}
    # pressing twice cancels
    learn.touch("pan")
    learn.feed_cc(LEARN_CC, 127)
    assert learn.armed == "pan"
    learn.feed_cc(LEARN_CC, 127)
    assert learn.armed is None


def test_learn_result_goes_into_the_kit() -> None:
    k = kit()
    learn = MidiLearn.from_kit(k)
    learn.arm("tune")
    learn.feed_cc(16, 1)
    learn.apply_to(k)
    assert k.cc[16] == "tune" and 74 not in k.cc
    assert kit_to_dict(k)["cc"]["16"] == "tune"
    assert ControlMap.from_kit(k).cc_to_param(16) == "tune"


def test_learn_cc_can_be_disabled() -> None:
    learn = MidiLearn(learn_cc=None)
    learn.touch("level")
    learn.feed_cc(LEARN_CC, 127)
    assert learn.armed is None


learn_ops = st.lists(
    st.one_of(
        st.tuples(st.just("arm"), params),
        st.tuples(st.just("cancel"), st.none()),
        st.tuples(st.just("touch"), params),
        st.tuples(st.just("cc"), st.tuples(st.integers(0, 127), st.integers(0, 127))),
        st.tuples(st.just("unbind"), st.integers(0, 127)),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(learn_ops)
def test_learn_sequences_keep_bindings_consistent(ops: list[tuple[str, Any]]) -> None:
    learn = MidiLearn()
    for op, arg in ops:
        armed_before = learn.armed
        if op == "arm":
            learn.arm(arg)
        elif op == "cancel":
            learn.cancel()
        elif op == "touch":
            learn.touch(arg)
        elif op == "unbind":
            learn.unbind(arg)
        else:
            cc, value = arg
            binding = learn.feed_cc(cc, value)
            if binding is not None:
                assert armed_before is not None and binding == Binding(cc, armed_before)
                assert cc not in NOT_LEARNABLE and cc != LEARN_CC
                assert learn.armed is None
                assert learn.bindings[cc] == armed_before
        bindings = learn.bindings
        assert len(set(bindings.values())) == len(bindings)  # one CC per parameter
        assert not (set(bindings) & (NOT_LEARNABLE | {LEARN_CC}))
        # every state can be saved in a kit
        Kit("k", [Slot("a", [38], [0.5])], bindings)


# ---------------------------------------------------------------- morph, randomize


def test_morph_endpoints_and_midpoint() -> None:
    a, b = [0.0, 0.2, 1.0], [1.0, 0.4, 0.0]
    assert morph_knobs(a, b, 0.0) == a
    assert morph_knobs(a, b, 1.0) == b
    assert morph_knobs(a, b, 0.5) == pytest.approx([0.5, 0.3, 0.5])
    assert morph_knobs(a, b, 2.0) == b  # clamped
    with pytest.raises(ValueError):
        morph_knobs(a, b[:2], 0.5)
    with pytest.raises(ValueError):
        morph_knobs(a, b, math.nan)


@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=16),
       st.floats(0, 1))
def test_morph_stays_between(pairs: list[tuple[float, float]], t: float) -> None:
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    for x, y, m in zip(a, b, morph_knobs(a, b, t), strict=True):
        assert min(x, y) - 1e-12 <= m <= max(x, y) + 1e-12


def test_randomize_is_seeded_and_bounded() -> None:
    here = [0.5] * 16
    one = randomize_knobs(here, 1.0, np.random.default_rng(7))
    two = randomize_knobs(here, 1.0, np.random.default_rng(7))
    assert one == two and len(one) == 16
    assert randomize_knobs(here, 0.0, np.random.default_rng(1)) == here
    small = randomize_knobs(here, 0.1, 3)
    assert all(abs(s - 0.5) <= 0.1 / 2 + 1e-12 for s in small)
    with pytest.raises(ValueError):
        randomize_knobs(here, math.inf, 1)


def test_randomize_full_amount_covers_the_range() -> None:
    rng = np.random.default_rng(0)
    values = np.array([randomize_knobs([0.0] * 8, 1.0, rng) for _ in range(200)])
    assert values.min() < 0.05 and values.max() > 0.95


@given(st.lists(st.floats(-1, 2), min_size=1, max_size=16), st.floats(0, 1), st.integers(0, 2**32))
def test_randomize_stays_in_unit_cube(current: list[float], amount: float, seed: int) -> None:
    out = randomize_knobs(current, amount, seed)
    assert len(out) == len(current)
    assert all(0.0 <= x <= 1.0 for x in out)
    for c, x in zip(np.clip(current, 0, 1), out, strict=True):
        assert abs(x - c) <= amount + 1e-12


# ---------------------------------------------------------------- undo


def test_history_undo_redo() -> None:
    h: History[Kit] = History(limit=4)
    assert h.undo() is None and h.current is None
    k = kit()
    h.push(k)
    k.slots[0].level_db = -6.0
    h.push(k)
    k.slots[0].level_db = -12.0
    h.push(k)
    assert h.undo().slots[0].level_db == -6.0
    assert h.undo().slots[0].level_db == 0.0
    assert h.undo() is None
    assert h.redo().slots[0].level_db == -6.0
    h.push(kit(name="other"))
    assert h.redo() is None  # a new change forgets the redo branch


def test_history_snapshots_are_copies_and_bounded() -> None:
    h: History[list[int]] = History(limit=3)
    state = [0]
    for i in range(10):
        state[0] = i
        h.push(state)
    assert len(h) == 3
    got = h.undo()
    assert got == [8]
    got.append(99)
    assert h.current == [8]
    assert h.undo() == [7]
    assert h.undo() is None


def test_history_coalesces_a_knob_sweep() -> None:
    h: History[int] = History()
    h.push(0)
    for v in range(1, 50):
        h.push(v, coalesce="latent/0")
    h.push(100, coalesce="level")
    assert len(h) == 3
    assert h.undo() == 49
    assert h.undo() == 0
    with pytest.raises(ValueError):
        History(limit=1)
