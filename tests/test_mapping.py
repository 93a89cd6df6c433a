"""Tests for control/mapping.py and control/history.py: the control map, MIDI learn, morph,
randomize, undo and redo."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snaresynth.control.history import History
from snaresynth.control.kit import Kit, Slot, default_cc, kit_to_dict
from snaresynth.control.mapping import (
    LEARN_CC,
    NOT_LEARNABLE,
    Binding,
    ControlMap,
    MidiLearn,
    morph_knobs,
    randomize_knobs,
)
from snaresynth.control.params import MAX_LATENT_DIM, parse_param

P = parse_param

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


# ---------------------------------------------------------------- control map


def test_control_map_from_kit() -> None:
    cmap = ControlMap.from_kit(kit())
    assert cmap.note_to_slot(38) == 0 and cmap.note_to_slot(40) == 0
    assert cmap.note_to_slot(37) == 1
    assert cmap.note_to_slot(36) is None
    assert cmap.cc_to_param(20) == P("latent/0")
    assert cmap.cc_to_param(27) == P("latent/7")
    assert cmap.cc_to_param(7) == P("level")
    assert cmap.cc_to_param(74) == P("tune") and cmap.cc_to_param(75) == P("decay")
    assert cmap.cc_to_param(1) == P("morph")
    assert cmap.cc_to_param(64) is None
    assert cmap.param_to_cc(P("latent/3")) == 23
    assert cmap.param_to_cc(P("latent/99")) is None


def test_param_to_cc_picks_lowest_cc() -> None:
    cmap = ControlMap({}, {30: P("level"), 7: P("level")})
    assert cmap.param_to_cc(P("level")) == 7


def test_channel_filter() -> None:
    omni = ControlMap.from_kit(kit())
    assert all(omni.accepts(c) for c in range(1, 17))
    ten = ControlMap.from_kit(kit(midi_channel=10))
    assert ten.accepts(10)
    assert not ten.accepts(9) and not ten.accepts(1)


# ---------------------------------------------------------------- MIDI learn


def test_learn_binds_next_cc_and_replaces_old_bindings() -> None:
    learn = MidiLearn({20: P("latent/0"), 21: P("latent/1")})
    assert learn.feed_cc(30, 5) is None  # not armed
    learn.arm(P("latent/0"))
    assert learn.armed == P("latent/0")
    assert learn.feed_cc(21, 64) == Binding(21, P("latent/0"))
    assert learn.armed is None
    # CC 21 now does latent/0 only; latent/0's old CC 20 is freed; latent/1 lost its CC
    assert learn.kit_cc() == {21: "latent/0"}
    assert learn.feed_cc(22, 64) is None  # disarmed after one binding


def test_learn_cancel() -> None:
    learn = MidiLearn()
    learn.arm(P("tune"))
    learn.cancel()
    assert learn.feed_cc(20, 1) is None
    assert learn.kit_cc() == {}


def test_learn_ignores_unlearnable_ccs() -> None:
    learn = MidiLearn()
    learn.arm(P("decay"))
    for cc in (0, 32, 6, 38, 98, 99, 100, 101, 120, 121, 123, 127):
        assert learn.feed_cc(cc, 0) is None
    assert learn.armed == P("decay")
    assert learn.feed_cc(75, 10) == Binding(75, P("decay"))


def test_learn_key_combination_cc119() -> None:
    learn = MidiLearn({7: P("level")})
    assert learn.consumes(LEARN_CC) and not learn.consumes(7)
    assert learn.feed_cc(LEARN_CC, 127) is None  # nothing touched yet: nothing to learn
    assert learn.armed is None
    learn.feed_cc(7, 90)  # turning the level knob makes level the last-touched parameter
    assert learn.last_touched == P("level")
    assert learn.feed_cc(LEARN_CC, 127) is None
    assert learn.armed == P("level")
    assert learn.feed_cc(LEARN_CC, 0) is None  # button release changes nothing
    assert learn.armed == P("level")
    assert learn.feed_cc(40, 3) == Binding(40, P("level"))
    assert learn.kit_cc() == {40: "level"}
    # pressing twice cancels
    learn.touch(P("pan"))
    learn.feed_cc(LEARN_CC, 127)
    assert learn.armed == P("pan")
    learn.feed_cc(LEARN_CC, 127)
    assert learn.armed is None


def test_learn_result_goes_into_the_kit() -> None:
    k = kit()
    learn = MidiLearn.from_kit(k)
    learn.arm(P("tune"))
    learn.feed_cc(16, 1)
    k.cc = learn.kit_cc()
    assert k.cc[16] == "tune" and 74 not in k.cc
    assert kit_to_dict(k)["cc"]["16"] == "tune"
    assert ControlMap.from_kit(k).cc_to_param(16) == P("tune")


def test_learn_cc_can_be_disabled() -> None:
    learn = MidiLearn(learn_cc=None)
    learn.touch(P("level"))
    learn.feed_cc(LEARN_CC, 127)
    assert learn.armed is None


learn_ops = st.lists(
    st.one_of(
        st.tuples(st.just("arm"), params.map(parse_param)),
        st.tuples(st.just("cancel"), st.none()),
        st.tuples(st.just("touch"), params.map(parse_param)),
        st.tuples(st.just("cc"), st.tuples(st.integers(0, 127), st.integers(0, 127))),
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
        else:
            cc, value = arg
            binding = learn.feed_cc(cc, value)
            if binding is not None:
                assert armed_before is not None and binding == Binding(cc, armed_before)
                assert cc not in NOT_LEARNABLE and cc != LEARN_CC
                assert learn.armed is None
                assert learn.kit_cc()[cc] == armed_before.address
        bindings = learn.kit_cc()
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
    with pytest.raises(ValueError):
        morph_knobs(a, b[:2], 0.5)


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
