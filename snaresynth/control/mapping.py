"""Controls -> parameters: note -> slot, CC -> parameter, value scaling, MIDI learn, morph,
randomize and undo. Pure: no threads, no I/O, no clock; every method is cheap and may be called
from the MIDI or OSC thread as long as the caller serialises access (the engine does).

Parameter addresses (the same strings in ``Kit.cc``, OSC addresses and MIDI learn):

==============  =============================  ====================================
address         normalized 0..1 knob           value in units (``to_units``)
==============  =============================  ====================================
``latent/<i>``  position across dim i's range  the same 0..1 (the engine maps to z)
``level``       0..1                           -60..+12 dB, linear in dB; 0.8333 = 0 dB
``tune``        0..1                           -12..+12 semitones; 0.5 = 0
``decay``       0..1                           0..1 (1 = the sound's natural decay)
``pan``         0..1                           -1..+1 (left..right); 0.5 = centre
``morph``       0..1                           0..1 (amount for ``morph_knobs``)
==============  =============================  ====================================

MIDI CC values 0..127 map to ``cc / 127`` (127 is exactly 1.0; CC 64 is 0.504, so tune at
CC 64 is +0.09 semitones). OSC floats are clamped to 0..1; NaN and infinities are refused.

Public API (used by engine.py and io/*): ``parse_param``/``format_param``; ``cc_to_unit``,
``unit_to_cc``, ``osc_to_unit``, ``unit_to_osc``, ``to_units``, ``from_units``,
``value_to_cc``, ``value_to_osc``; ``slot_param``/``set_slot_param``; ``velocity_knobs``;
``ControlMap``; ``MidiLearn``/``Binding``; ``morph_knobs``; ``randomize_knobs``; ``History``.

MIDI learn from the controller alone: **CC 119 with a value >= 64** (a button press; CC 119 is
undefined in the MIDI spec) toggles learn for the *last-touched* parameter, i.e. the last one
moved by a bound CC or reported with ``MidiLearn.touch`` (OSC, UI). The next learnable CC that
arrives is bound to it. Pressing CC 119 again cancels. See ``MidiLearn``.
"""

from __future__ import annotations

import copy
import math
import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np

if TYPE_CHECKING:
    from snaresynth.control.presets import Kit, Slot

MAX_LATENT_DIM = 1024
"""The largest latent dimension count a kit or address may refer to."""

PARAMS = ("latent", "level", "tune", "decay", "pan", "morph")
"""Parameter kinds; ``latent`` takes an index (``latent/3``), the others none."""

LEVEL_DB_RANGE = (-60.0, 12.0)
TUNE_SEMITONES_RANGE = (-12.0, 12.0)

LEARN_CC = 119
"""The CC whose press (value >= 64) toggles MIDI learn for the last-touched parameter."""

NOT_LEARNABLE = frozenset({0, 32, 6, 38, 98, 99, 100, 101, *range(120, 128)})
"""CCs never bound by learn: bank select (0/32, sent before program changes), data entry and
(N)RPN (6/38/98..101, sent in bursts by set-up messages) and channel mode messages (120..127)."""

_LATENT_RE = re.compile(r"latent/(0|[1-9][0-9]{0,3})")


# --------------------------------------------------------------------------------------------
# addresses
# --------------------------------------------------------------------------------------------


def parse_param(address: str) -> tuple[str, int | None]:
    """``"latent/3" -> ("latent", 3)``, ``"level" -> ("level", None)``; else ValueError.

    Only the canonical spelling is accepted (no leading slash, no leading zeros), so an
    address round-trips through ``format_param`` unchanged.
    """
    if not isinstance(address, str):
        raise ValueError(f"parameter address must be a string, got {address!r}")
    if address in PARAMS[1:]:
        return address, None
    match = _LATENT_RE.fullmatch(address)
    if match and int(match.group(1)) < MAX_LATENT_DIM:
        return "latent", int(match.group(1))
    shown = address if len(address) <= 40 else address[:37] + "..."
    raise ValueError(
        f"unknown parameter {shown!r}; known: latent/<0..{MAX_LATENT_DIM - 1}>, "
        + ", ".join(PARAMS[1:])
    )


def format_param(kind: str, index: int | None = None) -> str:
    """The inverse of ``parse_param``."""
    address = f"latent/{index}" if kind == "latent" else kind
    parse_param(address)
    return address


# --------------------------------------------------------------------------------------------
# value scaling
# --------------------------------------------------------------------------------------------


def cc_to_unit(value: int) -> float:
    """MIDI CC value 0..127 -> 0..1 (127 -> exactly 1.0); anything else is a ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 0 <= value <= 127:
        raise ValueError(f"CC value must be an integer in 0..127, got {value!r}")
    return int(value) / 127.0


def unit_to_cc(unit: float) -> int:
    """0..1 -> nearest CC value 0..127 (for controller feedback); clamps, NaN is a ValueError."""
    return round(osc_to_unit(unit) * 127.0)


def osc_to_unit(value: float) -> float:
    """An OSC knob value -> 0..1: ints and floats accepted and clamped; NaN, inf, bools and
    anything non-numeric are a ValueError (bad input must be reported, not played)."""
    return _amount(value, "value")


def unit_to_osc(unit: float) -> float:
    """0..1 -> the float sent back to an OSC controller (clamped)."""
    return osc_to_unit(unit)


def to_units(param: str, unit: float) -> float:
    """A normalized 0..1 knob -> the parameter's value in its own units (see module table)."""
    kind, _ = parse_param(param)
    x = osc_to_unit(unit)
    if kind == "level":
        lo, hi = LEVEL_DB_RANGE
        return lo + (hi - lo) * x
    if kind == "tune":
        lo, hi = TUNE_SEMITONES_RANGE
        return lo + (hi - lo) * x
    if kind == "pan":
        return 2.0 * x - 1.0
    return x  # latent, decay, morph are already 0..1


def from_units(param: str, value: float) -> float:
    """A parameter value in its units -> normalized 0..1 (clamped); the inverse of to_units."""
    kind, _ = parse_param(param)
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{param}: expected a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{param}: expected a finite number, got {v!r}")
    if kind == "level":
        lo, hi = LEVEL_DB_RANGE
        v = (v - lo) / (hi - lo)
    elif kind == "tune":
        lo, hi = TUNE_SEMITONES_RANGE
        v = (v - lo) / (hi - lo)
    elif kind == "pan":
        v = (v + 1.0) / 2.0
    return min(max(v, 0.0), 1.0)


def value_to_cc(param: str, value: float) -> int:
    """Parameter value in units -> CC 0..127 (controller feedback, e.g. motor faders)."""
    return unit_to_cc(from_units(param, value))


def value_to_osc(param: str, value: float) -> float:
    """Parameter value in units -> OSC 0..1 (controller feedback)."""
    return from_units(param, value)


# --------------------------------------------------------------------------------------------
# slots
# --------------------------------------------------------------------------------------------

_SLOT_ATTR = {"level": "level_db", "tune": "tune_semitones", "decay": "decay", "pan": "pan"}


def slot_param(slot: Slot, param: str) -> float:
    """The normalized 0..1 value of ``param`` on ``slot`` (for controller feedback).

    ``latent/<i>`` past the end of ``slot.knobs`` reads 0.5 (see ``Slot.knobs_for``); ``morph``
    is not a property of a slot (the engine holds it), so it is a ValueError here.
    """
    kind, index = parse_param(param)
    if kind == "latent":
        assert index is not None
        return float(slot.knobs[index]) if index < len(slot.knobs) else 0.5
    if kind == "morph":
        raise ValueError("morph is not a slot parameter; the engine keeps the morph amount")
    return from_units(param, getattr(slot, _SLOT_ATTR[kind]))


def set_slot_param(slot: Slot, param: str, unit: float) -> float:
    """Set ``param`` on ``slot`` from a normalized 0..1 value; returns the value in units.

    ``latent/<i>`` past the end of ``slot.knobs`` pads the knobs with 0.5 up to ``i``. ``unit``
    goes through ``osc_to_unit`` (clamped, NaN/inf refused). ``morph`` is a ValueError.
    """
    kind, index = parse_param(param)
    x = osc_to_unit(unit)
    if kind == "latent":
        assert index is not None
        if index >= len(slot.knobs):
            slot.knobs.extend([0.5] * (index + 1 - len(slot.knobs)))
        slot.knobs[index] = x
        return x
    if kind == "morph":
        raise ValueError("morph is not a slot parameter; the engine keeps the morph amount")
    value = to_units(param, x)
    setattr(slot, _SLOT_ATTR[kind], value)
    return value


def velocity_knobs(knobs: Sequence[float], velocity: float, latent: int | None,
                   amount: float, layers: int = 8) -> list[float]:
    """The knobs a hit of ``velocity`` (0..1) plays, for ``Kit.velocity_latent``/``_amount``.

    The hardest hit plays the knobs as set (the sound a user dials in is the loud one); softer
    hits move ``knobs[latent]`` back by ``amount * (1 - v)``. ``v`` is the velocity rounded up
    to one of ``layers`` steps (layer k of 0..layers-1 plays ``v = (k + 1) / layers``), the
    same layering engine.py decodes, so hits reuse a few cached buffers instead of decoding
    every hit. ``latent`` None or past the end of ``knobs`` returns the knobs unchanged.
    Results are clipped to 0..1.
    """
    if layers < 1:
        raise ValueError(f"layers must be at least 1, got {layers}")
    out = [float(k) for k in knobs]
    if latent is None or not 0 <= latent < len(out):
        return out
    v = max(1, math.ceil(osc_to_unit(velocity) * layers)) / layers
    out[latent] = min(max(out[latent] - float(amount) * (1.0 - v), 0.0), 1.0)
    return out


# --------------------------------------------------------------------------------------------
# the map
# --------------------------------------------------------------------------------------------


class ControlMap:
    """Lookup tables built from a Kit; immutable, so the MIDI thread can read it while the
    engine swaps in a new one (rebuild it whenever the kit or its ``cc`` changes)."""

    def __init__(self, note_slots: Mapping[int, int], cc: Mapping[int, str],
                 channel: int | None = None) -> None:
        for address in cc.values():
            parse_param(address)
        if channel is not None and not 1 <= channel <= 16:
            raise ValueError(f"channel must be None (omni) or 1..16, got {channel!r}")
        self._notes = dict(note_slots)
        self._cc = dict(cc)
        self._param_cc: dict[str, int] = {}
        for number, address in sorted(self._cc.items()):
            self._param_cc.setdefault(address, number)
        self.channel = channel

    @classmethod
    def from_kit(cls, kit: Kit) -> ControlMap:
        notes = {n: i for i, slot in enumerate(kit.slots) for n in slot.notes}
        return cls(notes, kit.cc, kit.midi_channel)

    def note_to_slot(self, note: int) -> int | None:
        """The slot index a MIDI note triggers, or None if no slot listens to it."""
        return self._notes.get(note)

    def cc_to_param(self, cc: int) -> str | None:
        """The parameter address a CC number controls, or None if unbound."""
        return self._cc.get(cc)

    def param_to_cc(self, param: str) -> int | None:
        """The (lowest) CC bound to ``param``, for sending feedback to the controller."""
        return self._param_cc.get(param)

    def accepts(self, channel: int) -> bool:
        """Whether a message on ``channel`` is for this kit.

        ``channel`` is 1..16 as printed on gear and stored in ``Kit.midi_channel``; mido's
        ``msg.channel`` is 0-based, so pass ``msg.channel + 1``. Omni (None) accepts all.
        """
        if isinstance(channel, bool) or not isinstance(channel, int) or not 1 <= channel <= 16:
            raise ValueError(f"MIDI channel must be 1..16, got {channel!r} (mido's is 0..15)")
        return self.channel is None or channel == self.channel


# --------------------------------------------------------------------------------------------
# MIDI learn
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Binding:
    cc: int
    param: str


class MidiLearn:
    """Bind a controller knob to a parameter by moving it.

    ``arm(param)`` (from OSC/UI), or CC 119 >= 64 for the last-touched parameter; then the next
    learnable CC fed to ``feed_cc`` is bound. A new binding replaces any older binding of the
    same CC and of the same parameter, so each knob does one thing and each parameter has one
    knob. ``bindings`` is the new ``Kit.cc``: ``apply_to(kit)`` stores it so it is saved with the
    kit. The engine should still apply the CC's value after a binding is made (the knob moved).
    """

    def __init__(self, bindings: Mapping[int, str] | None = None,
                 learn_cc: int | None = LEARN_CC) -> None:
        self._bindings: dict[int, str] = {}
        for cc, param in (bindings or {}).items():
            self._bind(cc, param)
        self.learn_cc = learn_cc
        self.armed: str | None = None
        self.last_touched: str | None = None

    @classmethod
    def from_kit(cls, kit: Kit) -> MidiLearn:
        return cls(kit.cc)

    @property
    def bindings(self) -> dict[int, str]:
        return dict(sorted(self._bindings.items()))

    def apply_to(self, kit: Kit) -> None:
        """Write the bindings into ``kit.cc`` (rebuild the ControlMap afterwards)."""
        kit.cc = self.bindings

    def arm(self, param: str) -> None:
        """The next learnable CC binds to ``param`` (ValueError if it is not a parameter)."""
        parse_param(param)
        self.armed = param

    def cancel(self) -> None:
        self.armed = None

    def touch(self, param: str) -> None:
        """Record that ``param`` was just moved (OSC, UI) so CC 119 can arm learn for it."""
        parse_param(param)
        self.last_touched = param

    def consumes(self, cc: int) -> bool:
        """True for the learn CC itself: the engine must not treat it as a control."""
        return self.learn_cc is not None and cc == self.learn_cc

    def feed_cc(self, cc: int, value: int) -> Binding | None:
        """Feed every incoming CC; returns the new Binding when this CC completed a learn."""
        cc_to_unit(value)  # validates the value
        if isinstance(cc, bool) or not isinstance(cc, int) or not 0 <= cc <= 127:
            raise ValueError(f"CC number must be an integer in 0..127, got {cc!r}")
        if self.consumes(cc):
            if value >= 64:
                if self.armed is not None:
                    self.armed = None
                elif self.last_touched is not None:
                    self.armed = self.last_touched
            return None
        if self.armed is None or cc in NOT_LEARNABLE:
            if cc in self._bindings:
                self.last_touched = self._bindings[cc]
            return None
        binding = self._bind(cc, self.armed)
        self.armed = None
        self.last_touched = binding.param
        return binding

    def bind(self, cc: int, param: str) -> Binding:
        """Bind directly (OSC ``/learn``-style or a UI), with the same replacement rule."""
        return self._bind(cc, param)

    def unbind(self, cc: int) -> str | None:
        """Remove the binding of ``cc``; returns the parameter it controlled."""
        return self._bindings.pop(cc, None)

    def _bind(self, cc: int, param: str) -> Binding:
        if isinstance(cc, bool) or not isinstance(cc, int) or not 0 <= cc <= 127:
            raise ValueError(f"CC number must be an integer in 0..127, got {cc!r}")
        parse_param(param)
        for old in [c for c, p in self._bindings.items() if p == param]:
            del self._bindings[old]
        self._bindings[cc] = param
        return Binding(cc, param)


# --------------------------------------------------------------------------------------------
# morph, randomize
# --------------------------------------------------------------------------------------------


def _amount(amount: float, what: str) -> float:
    if isinstance(amount, bool) or not isinstance(amount, int | float | np.integer | np.floating):
        raise ValueError(f"{what} must be a number 0..1, got {amount!r}")
    x = float(amount)
    if not math.isfinite(x):
        raise ValueError(f"{what} must be a finite number 0..1, got {x!r}")
    return min(max(x, 0.0), 1.0)


def morph_knobs(a: Sequence[float], b: Sequence[float], amount: float) -> list[float]:
    """Blend two knob vectors linearly: amount 0 -> exactly ``a``, 1 -> exactly ``b``.

    ``amount`` is clamped to 0..1; different lengths are a ValueError (adapt both with
    ``Slot.knobs_for(latent_dim)`` first).
    """
    if len(a) != len(b):
        raise ValueError(f"cannot morph {len(a)} knobs into {len(b)}")
    t = _amount(amount, "morph amount")
    return [min(max((1.0 - t) * x + t * y, 0.0), 1.0) for x, y in zip(a, b, strict=True)]


def randomize_knobs(current: Sequence[float], amount: float,
                    rng: np.random.Generator | int | None) -> list[float]:
    """Move toward a uniformly random point by ``amount`` (0..1, clamped).

    amount 1 lands anywhere (uniform over the knob cube); a small amount is a step of at most
    ``amount`` per knob around the current point, so repeated small steps wander. Results stay
    in 0..1. ``rng`` is a numpy Generator (or a seed) so performances are reproducible.
    """
    t = _amount(amount, "randomize amount")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    here = np.clip(np.asarray(current, dtype=np.float64), 0.0, 1.0)
    target = gen.uniform(0.0, 1.0, size=here.shape)
    out = target if t >= 1.0 else here + t * (target - here)
    return [float(x) for x in np.clip(out, 0.0, 1.0)]


# --------------------------------------------------------------------------------------------
# undo
# --------------------------------------------------------------------------------------------

T = TypeVar("T")


class History(Generic[T]):
    """Bounded undo/redo over snapshots (deep copies) of kit states.

    Call ``push(state)`` once with the initial state and after each user-level change. A knob
    sweep sends many CCs: pass the same ``coalesce`` key (e.g. the parameter address) and
    consecutive pushes with that key replace the newest entry instead of adding one. The oldest
    entries fall off past ``limit``.
    """

    def __init__(self, limit: int = 64) -> None:
        if limit < 2:
            raise ValueError(f"history limit must be at least 2, got {limit}")
        self.limit = limit
        self._past: deque[T] = deque(maxlen=limit)
        self._future: list[T] = []
        self._last_key: str | None = None

    def __len__(self) -> int:
        return len(self._past)

    @property
    def current(self) -> T | None:
        return copy.deepcopy(self._past[-1]) if self._past else None

    def push(self, state: T, coalesce: str | None = None) -> None:
        snapshot = copy.deepcopy(state)
        if coalesce is not None and coalesce == self._last_key and len(self._past) > 1:
            self._past[-1] = snapshot
        else:
            self._past.append(snapshot)
        self._last_key = coalesce
        self._future.clear()

    def undo(self) -> T | None:
        """Step back; returns the previous state (a copy), or None at the oldest one."""
        self._last_key = None
        if len(self._past) < 2:
            return None
        self._future.append(self._past.pop())
        return copy.deepcopy(self._past[-1])

    def redo(self) -> T | None:
        """Step forward again after an undo; None if nothing was undone."""
        self._last_key = None
        if not self._future:
            return None
        self._past.append(self._future.pop())
        return copy.deepcopy(self._past[-1])

    def clear(self, states: Iterable[T] = ()) -> None:
        self._past.clear()
        self._future.clear()
        self._last_key = None
        for state in states:
            self._past.append(copy.deepcopy(state))
