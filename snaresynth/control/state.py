"""The control state of the instrument: the kit, undo/redo history, MIDI learn, the selected
slot and the morph pair, and every change a performer can make to them.

Pure and single-threaded: the engine holds its lock around every call and does the rest
(decoding, the note table, telling listeners). Values arrive checked by their edge
(``params``); what depends on the state itself (does slot 5 exist in this kit?) is checked
here, as a ``ValueError`` naming it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np

from snaresynth import dsp
from snaresynth.control.history import History
from snaresynth.control.kit import Kit
from snaresynth.control.mapping import Binding, ControlMap, MidiLearn, morph_knobs, randomize_knobs
from snaresynth.control.params import Kind, Param, slot_params
from snaresynth.control.variation import MAX_PLAYED_VARIANTS


class ControlState:
    def __init__(self, kit: Kit, latent_dim: int, selected: int = 0) -> None:
        self.latent_dim = latent_dim
        self.kit = copy.deepcopy(kit)
        self.controls = ControlMap.from_kit(self.kit)
        self.learn = MidiLearn.from_kit(self.kit)
        self.history: History[Kit] = History()
        self.history.push(self.kit)
        self.selected = min(max(selected, 0), len(self.kit.slots) - 1)
        self.morph_pair: tuple[Kit, Kit] | None = None
        self._last: dict[tuple[int, Param], float] = {}  # for the direction of a sweep

    # --- reading -------------------------------------------------------------------------------
    def slot_index(self, slot: int | None) -> int:
        """``slot`` (None: the selected one) if the kit has it, else ValueError."""
        index = self.selected if slot is None else slot
        if not 0 <= index < len(self.kit.slots):
            raise ValueError(f"slot must be 0..{len(self.kit.slots) - 1}, got {index}")
        return index

    def knobs(self, index: int) -> list[float]:
        return self.kit.slots[index].knobs_for(self.latent_dim)

    def values(self, slot: int | None = None) -> dict[Param, float]:
        """Every parameter of a slot as a knob value (controller feedback)."""
        spec = self.kit.slots[self.slot_index(slot)]
        return {p: spec.value(p) for p in slot_params(self.latent_dim)}

    def morph_ends(self, index: int) -> tuple[list[float], list[float]] | None:
        """The knobs of slot ``index`` in the two morph targets (None: no targets chosen)."""
        if self.morph_pair is None:
            return None
        a, b = (k.slots[min(index, len(k.slots) - 1)].knobs_for(self.latent_dim)
                for k in self.morph_pair)
        return a, b

    # --- changes (each returns what the engine needs to follow up) -----------------------------
    def set_param(self, param: Param, x: float, slot: int | None) -> tuple[int, float | None]:
        """Set one parameter; returns the slot index and the previous value set through this
        call (None if none), so the engine can prefetch in the direction of a sweep."""
        index = self.slot_index(slot)
        if param.kind is Kind.MORPH:
            ends = self.morph_ends(index)
            if ends is None:
                raise ValueError("no morph targets: send /snaresynth/morph/targets A B first")
            self.kit.slots[index].knobs = morph_knobs(*ends, x)
        else:
            self.kit.slots[index].set(param, x)
        self.learn.touch(param)
        self.history.push(self.kit, coalesce=f"{index}:{param.address}")
        previous = self._last.get((index, param))
        self._last[(index, param)] = x
        return index, previous

    def set_knobs(self, knobs: Sequence[float], slot: int | None) -> int:
        index = self.slot_index(slot)
        self.kit.slots[index].knobs = [float(k) for k in knobs]
        self.history.push(self.kit)
        return index

    def set_velocity(self, curve: str | None, latent: int | None, amount: float | None) -> None:
        """``latent`` -1 switches velocity layering off."""
        if curve is not None:
            if curve not in dsp.VELOCITY_CURVES:
                raise ValueError(f"velocity curve must be one of "
                                 f"{', '.join(dsp.VELOCITY_CURVES)}, got {curve!r}")
            self.kit.velocity_curve = curve
        if latent is not None:
            if not -1 <= latent < self.latent_dim:
                raise ValueError(f"velocity latent must be -1..{self.latent_dim - 1}, "
                                 f"got {latent}")
            self.kit.velocity_latent = None if latent < 0 else latent
        if amount is not None:
            if not -1.0 <= amount <= 1.0:
                raise ValueError(f"velocity amount must be in -1..1, got {amount:g}")
            self.kit.velocity_latent_amount = amount
        self.history.push(self.kit)

    def set_variants(self, count: int, slot: int | None) -> int:
        """How many round-robin variants slot ``slot`` plays (1..MAX_PLAYED_VARIANTS)."""
        if not 1 <= count <= MAX_PLAYED_VARIANTS:
            raise ValueError(f"variants must be 1..{MAX_PLAYED_VARIANTS}, got {count}")
        index = self.slot_index(slot)
        self.kit.slots[index].variants = int(count)
        self.history.push(self.kit, coalesce=f"{index}:variants")
        return index

    def randomize(self, amount: float, seed: int, slot: int | None) -> int:
        index = self.slot_index(slot)
        self.kit.slots[index].knobs = randomize_knobs(self.knobs(index), amount,
                                                      np.random.default_rng(seed))
        self.history.push(self.kit)
        return index

    def undo(self) -> bool:
        return self._restore(self.history.undo())

    def redo(self) -> bool:
        return self._restore(self.history.redo())

    def load(self, kit: Kit) -> None:
        """Switch kits (an undoable step)."""
        self._set_kit(copy.deepcopy(kit))
        self.history.push(self.kit)

    def select(self, slot: int) -> int:
        self.selected = self.slot_index(slot)
        return self.selected

    def feed_cc(self, cc: int, value: int) -> Binding | None:
        """MIDI learn sees every CC first; a new binding becomes part of the kit."""
        binding = self.learn.feed_cc(cc, value)
        if binding is not None:
            self.kit.cc = self.learn.kit_cc()
            self.controls = ControlMap.from_kit(self.kit)
        return binding

    def snapshot(self) -> tuple[Kit, int]:
        """A copy of the kit and the selected slot, for readers outside the lock."""
        return copy.deepcopy(self.kit), self.selected

    # --- internals -----------------------------------------------------------------------------
    def _restore(self, kit: Kit | None) -> bool:
        if kit is None:
            return False
        self._set_kit(kit)
        return True

    def _set_kit(self, kit: Kit) -> None:
        self.kit = kit
        self.controls = ControlMap.from_kit(kit)
        self.learn = MidiLearn.from_kit(kit)
        self.selected = min(self.selected, len(kit.slots) - 1)
