"""Parameters: the one typed value every input turns its message into, once, at its edge.

An edge (OSC, MIDI, a preset file, the browser) calls ``ParamSpace.parse`` on an address and
``knob`` on a value; past the edge, a ``Param`` and a knob value in 0..1 are trusted.

==============  =============================  ====================================
address         knob 0..1                      value in its own unit (``to_units``)
==============  =============================  ====================================
``latent/<i>``  position across dim i's range  the same 0..1 (the decoder maps it to z)
``level``       0..1                           -60..+12 dB, linear in dB; 0.8333 = 0 dB
``tune``        0..1                           -12..+12 semitones; 0.5 = 0
``decay``       0..1                           0..1 (1 = the sound's natural decay)
``pan``         0..1                           -1..+1 (left..right); 0.5 = centre
``morph``       0..1                           0..1 between the two morph targets
``variation``   0..1                           0..1: how far round-robin variants move each knob
==============  =============================  ====================================

The out-of-range policy (docs/controls.md): a knob value outside 0..1, NaN, an infinity or a
non-number is refused with a ``ValueError`` naming it, never clamped; MIDI CC values 0..127 map
to ``cc / 127`` and cannot be out of range.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass

MAX_LATENT_DIM = 1024
"""The largest latent dimension count a kit or address may refer to."""

LEVEL_DB_RANGE = (-60.0, 12.0)
TUNE_SEMITONES_RANGE = (-12.0, 12.0)


class Kind(enum.StrEnum):
    LATENT = "latent"
    LEVEL = "level"
    TUNE = "tune"
    DECAY = "decay"
    PAN = "pan"
    MORPH = "morph"
    VARIATION = "variation"


SLOT_KINDS = (Kind.LEVEL, Kind.TUNE, Kind.DECAY, Kind.PAN, Kind.VARIATION)
"""The parameters of a slot besides its latent knobs (``morph`` belongs to the kit)."""

SLOT_ATTR = {Kind.LEVEL: "level_db", Kind.TUNE: "tune_semitones", Kind.DECAY: "decay",
             Kind.PAN: "pan", Kind.VARIATION: "variation"}
"""The ``Slot`` field each slot parameter is stored in, in its own unit."""
_LATENT_RE = re.compile(r"latent/(0|[1-9][0-9]{0,3})")


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter: its kind, and for ``latent`` the dimension."""

    kind: Kind
    index: int = 0

    @property
    def address(self) -> str:
        """The canonical address (``latent/3``, ``level``): in kits, OSC and MIDI learn."""
        return f"latent/{self.index}" if self.kind is Kind.LATENT else self.kind.value

    def __str__(self) -> str:
        return self.address


MORPH = Param(Kind.MORPH)


def latent(index: int) -> Param:
    return Param(Kind.LATENT, index)


def parse_param(address: object, latent_dim: int = MAX_LATENT_DIM) -> Param:
    """``"latent/3" -> Param(LATENT, 3)``, ``"level" -> Param(LEVEL)``; else ValueError.

    Only the canonical spelling (no leading slash, no leading zeros), so addresses round-trip.
    """
    if isinstance(address, str):
        if address in _KINDS:
            return Param(_KINDS[address])
        match = _LATENT_RE.fullmatch(address)
        if match and int(match.group(1)) < latent_dim:
            return latent(int(match.group(1)))
        if match:
            raise ValueError(f"latent dimension must be 0..{latent_dim - 1}, "
                             f"got {int(match.group(1))}")
    shown = address if not isinstance(address, str) or len(address) <= 40 \
        else address[:37] + "..."
    raise ValueError(f"unknown parameter {shown!r}; known: latent/<0..{latent_dim - 1}>, "
                     + ", ".join(k.value for k in Kind if k is not Kind.LATENT))


_KINDS = {k.value: k for k in Kind if k is not Kind.LATENT}


def slot_params(latent_dim: int) -> list[Param]:
    """Every parameter of a slot, in the order controllers list them."""
    return [latent(i) for i in range(latent_dim)] + [Param(k) for k in SLOT_KINDS]


# --------------------------------------------------------------------------------------------
# values
# --------------------------------------------------------------------------------------------


def number(value: object, what: str) -> float:
    """A finite number (ints accepted; bools, NaN and infinities refused)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} must be a number, got {type(value).__name__}")
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"{what} must be finite, got {x}")
    return x


def knob(value: object, what: str = "value") -> float:
    """The edge check of a knob value: a number in 0..1, else ValueError (never clamped)."""
    x = number(value, what)
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"{what} must be in 0..1, got {x:g}")
    return x


def cc_to_knob(value: int) -> float:
    """MIDI CC value 0..127 -> 0..1 (127 is exactly 1.0)."""
    return value / 127.0


def knob_to_cc(x: float) -> int:
    """0..1 -> the nearest CC value (controller feedback)."""
    return round(x * 127.0)


def to_units(kind: Kind, x: float) -> float:
    """A knob 0..1 -> the parameter's value in its own unit (see the module table)."""
    if kind is Kind.LEVEL:
        lo, hi = LEVEL_DB_RANGE
        return lo + (hi - lo) * x
    if kind is Kind.TUNE:
        lo, hi = TUNE_SEMITONES_RANGE
        return lo + (hi - lo) * x
    if kind is Kind.PAN:
        return 2.0 * x - 1.0
    return x


def from_units(kind: Kind, value: float) -> float:
    """A value in the parameter's unit -> knob 0..1 (clamped); the inverse of ``to_units``."""
    if kind in (Kind.LEVEL, Kind.TUNE):
        lo, hi = LEVEL_DB_RANGE if kind is Kind.LEVEL else TUNE_SEMITONES_RANGE
        value = (value - lo) / (hi - lo)
    elif kind is Kind.PAN:
        value = (value + 1.0) / 2.0
    return min(max(float(value), 0.0), 1.0)
