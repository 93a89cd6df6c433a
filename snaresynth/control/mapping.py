"""Controls -> parameters: note -> slot, CC -> parameter, MIDI learn, morph and randomize.

Pure: no threads, no I/O, no clock. Every value here has passed its edge (``params``): MIDI
bytes are 0..127 by construction, knob values are 0..1, addresses are ``Param``s.

MIDI learn from the controller alone: **CC 119 with a value >= 64** (a button press; CC 119 is
undefined in the MIDI spec) toggles learn for the *last-touched* parameter, i.e. the last one
moved by a bound CC or reported with ``MidiLearn.touch`` (OSC, the browser). The next learnable
CC that arrives is bound to it; pressing CC 119 again cancels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from snaresynth.control.params import Param, parse_param

if TYPE_CHECKING:
    from snaresynth.control.kit import Kit

LEARN_CC = 119
"""The CC whose press (value >= 64) toggles MIDI learn for the last-touched parameter."""

NOT_LEARNABLE = frozenset({0, 32, 6, 38, 98, 99, 100, 101, *range(120, 128)})
"""CCs never bound by learn: bank select (0/32, sent before program changes), data entry and
(N)RPN (6/38/98..101, sent in bursts by set-up messages) and channel mode messages (120..127)."""


class ControlMap:
    """Lookup tables built from a Kit; immutable, so the MIDI thread can read it while the
    engine swaps in a new one (rebuilt whenever the kit or its ``cc`` changes)."""

    def __init__(self, note_slots: Mapping[int, int], cc: Mapping[int, Param],
                 channel: int | None = None) -> None:
        self._notes = dict(note_slots)
        self._cc = dict(cc)
        self._param_cc: dict[Param, int] = {}
        for number, param in sorted(self._cc.items()):
            self._param_cc.setdefault(param, number)
        self.channel = channel

    @classmethod
    def from_kit(cls, kit: Kit) -> ControlMap:
        """``kit.cc``'s addresses were checked when the kit was built; parsed here once."""
        notes = {n: i for i, slot in enumerate(kit.slots) for n in slot.notes}
        return cls(notes, {cc: parse_param(a) for cc, a in kit.cc.items()}, kit.midi_channel)

    def note_to_slot(self, note: int) -> int | None:
        """The slot index a MIDI note triggers, or None if no slot listens to it."""
        return self._notes.get(note)

    def cc_to_param(self, cc: int) -> Param | None:
        """The parameter a CC number controls, or None if unbound."""
        return self._cc.get(cc)

    def param_to_cc(self, param: Param) -> int | None:
        """The (lowest) CC bound to ``param``, for sending feedback to the controller."""
        return self._param_cc.get(param)

    def accepts(self, channel: int) -> bool:
        """Whether a message on ``channel`` (1..16, as printed on gear) is for this kit."""
        return self.channel is None or channel == self.channel


@dataclass(frozen=True)
class Binding:
    cc: int
    param: Param


class MidiLearn:
    """Bind a controller knob to a parameter by moving it.

    ``arm(param)`` (from OSC or the browser), or CC 119 >= 64 for the last-touched parameter;
    then the next learnable CC fed to ``feed_cc`` is bound. A new binding replaces any older one
    of the same CC and of the same parameter, so each knob does one thing and each parameter has
    one knob. ``kit_cc()`` is the new ``Kit.cc``, saved with the kit. The CC's value still
    applies after a binding is made (the knob moved).
    """

    def __init__(self, bindings: Mapping[int, Param] | None = None,
                 learn_cc: int | None = LEARN_CC) -> None:
        self._bindings: dict[int, Param] = {}
        for cc, param in (bindings or {}).items():
            self._bind(cc, param)
        self.learn_cc = learn_cc
        self.armed: Param | None = None
        self.last_touched: Param | None = None

    @classmethod
    def from_kit(cls, kit: Kit) -> MidiLearn:
        return cls({cc: parse_param(a) for cc, a in kit.cc.items()})

    def kit_cc(self) -> dict[int, str]:
        """The bindings as ``Kit.cc`` stores them."""
        return {cc: p.address for cc, p in sorted(self._bindings.items())}

    def arm(self, param: Param) -> None:
        self.armed = param

    def cancel(self) -> None:
        self.armed = None

    def touch(self, param: Param) -> None:
        """Record that ``param`` was just moved (OSC, browser) so CC 119 can arm learn for it."""
        self.last_touched = param

    def consumes(self, cc: int) -> bool:
        """True for the learn CC itself: it is not a control."""
        return self.learn_cc is not None and cc == self.learn_cc

    def feed_cc(self, cc: int, value: int) -> Binding | None:
        """Feed every incoming CC; returns the new Binding when this CC completed a learn."""
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

    def _bind(self, cc: int, param: Param) -> Binding:
        for old in [c for c, p in self._bindings.items() if p == param]:
            del self._bindings[old]
        self._bindings[cc] = param
        return Binding(cc, param)


def morph_knobs(a: Sequence[float], b: Sequence[float], amount: float) -> list[float]:
    """Blend two knob vectors linearly: amount 0 -> exactly ``a``, 1 -> exactly ``b``
    (adapt both with ``Slot.knobs_for(latent_dim)`` first)."""
    if len(a) != len(b):
        raise ValueError(f"cannot morph {len(a)} knobs into {len(b)}")
    t = amount
    return [min(max((1.0 - t) * x + t * y, 0.0), 1.0) for x, y in zip(a, b, strict=True)]


def randomize_knobs(current: Sequence[float], amount: float,
                    rng: np.random.Generator | int | None) -> list[float]:
    """Move toward a uniformly random point by ``amount`` (0..1).

    amount 1 lands anywhere (uniform over the knob cube); a small amount is a step of at most
    ``amount`` per knob around the current point, so repeated small steps wander. ``rng`` is a
    numpy Generator (or a seed) so performances are reproducible.
    """
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    here = np.clip(np.asarray(current, dtype=np.float64), 0.0, 1.0)
    target = gen.uniform(0.0, 1.0, size=here.shape)
    out = target if amount >= 1.0 else here + amount * (target - here)
    return [float(x) for x in np.clip(out, 0.0, 1.0)]
