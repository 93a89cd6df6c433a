"""Kits: the schema of a kit and its slots, checked field by field, and its TOML document.

A *kit* maps MIDI notes to *slots*; each slot is one snare sound (a latent position plus level,
tune, decay, pan and choke group); docs/presets.md has the file format. Constructing a ``Slot``
or a ``Kit`` (or ``kit_from_dict``) is the edge for kit data: every problem raises
``PresetError`` naming the field path, e.g. ``slot[1].tune_semitones: must be a number in
-12..12, got "high"``. Pure: no files, no threads.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from snaresynth.control import fields
from snaresynth.control.params import (
    MAX_LATENT_DIM,
    SLOT_ATTR,
    Kind,
    Param,
    from_units,
    parse_param,
    to_units,
)
from snaresynth.control.variation import DEFAULT_VARIANTS, MAX_PLAYED_VARIANTS
from snaresynth.dsp import VELOCITY_CURVES
from snaresynth.errors import PresetError

FORMAT_VERSION = 1
"""The ``format`` key written into every file; a file with a newer format is refused."""

MAX_NAME_CHARS = 64
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}")

_SLOT_REQUIRED = ("name", "notes", "knobs")
_SLOT_FIELDS = (
    *_SLOT_REQUIRED, "level_db", "tune_semitones", "decay", "pan", "choke_group", "variation",
    "variants",
)
_KIT_REQUIRED = ("name", "slot")
_KIT_FIELDS = (
    "format", "name", "description", "morph_targets", "velocity_curve", "velocity_latent",
    "velocity_latent_amount", "midi_channel", "cc", "slot",
)


def default_cc(latent_dims: int = 8) -> dict[int, str]:
    """The default CC map: CC 20.. -> latent/0.., CC 7 level, 10 pan, 74 tune, 75 decay, 1 morph,
    76 variation.

    CC 20..31 are undefined in the MIDI spec, so no controller sends them by accident; at most
    12 latent dimensions get a default CC (20..31), the rest can be bound by MIDI learn.
    """
    cc = {20 + i: f"latent/{i}" for i in range(min(latent_dims, 12))}
    cc.update({7: "level", 10: "pan", 74: "tune", 75: "decay", 1: "morph", 76: "variation"})
    return dict(sorted(cc.items()))


def _cc_key(key: Any, path: str) -> int:
    """A CC number: an int (Python callers) or a decimal TOML key such as "20"."""
    if isinstance(key, str) and re.fullmatch(r"[0-9]{1,3}", key):
        key = int(key)
    if isinstance(key, int) and not isinstance(key, bool) and 0 <= key <= 127:
        return int(key)
    raise fields.fail(f"{path}.{key if isinstance(key, str) else fields.show(key)}",
                "a CC number must be an integer in 0..127")


# --------------------------------------------------------------------------------------------
# dataclasses
# --------------------------------------------------------------------------------------------


@dataclass
class Slot:
    """One sound of a kit. Values are validated on construction (``PresetError``).

    ``knobs`` holds one 0..1 value per latent dimension: 0 and 1 are the ends of the model's
    ``latent_range()`` for that dimension, 0.5 its centre. Mutating a field afterwards is allowed
    (the engine does it when a CC moves); ``save_kit`` validates again before writing.
    """

    name: str
    notes: list[int]
    knobs: list[float]
    level_db: float = 0.0
    tune_semitones: float = 0.0
    decay: float = 1.0
    pan: float = 0.0
    choke_group: int = 0
    variation: float = 0.0  # 0..1: how far each hit's round-robin variant moves the knobs
    variants: int = DEFAULT_VARIANTS  # 1..MAX_PLAYED_VARIANTS points decoded when variation > 0

    def __post_init__(self) -> None:
        checked = _slot_values(
            {f: getattr(self, f) for f in _SLOT_FIELDS}, "slot"
        )
        for key, value in checked.items():
            object.__setattr__(self, key, value)

    def knobs_for(self, latent_dim: int) -> list[float]:
        """The knobs adapted to a model with ``latent_dim`` dimensions.

        A kit made for a smaller model is padded with 0.5 (the centre of each extra dimension);
        one made for a larger model is truncated. The slot itself is not changed, so saving the
        kit keeps the original knobs.
        """
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be at least 1, got {latent_dim}")
        knobs = list(self.knobs[:latent_dim])
        return knobs + [0.5] * (latent_dim - len(knobs))

    def value(self, param: Param) -> float:
        """The knob value of a slot parameter (a latent past ``knobs`` reads the centre)."""
        if param.kind is Kind.LATENT:
            return float(self.knobs[param.index]) if param.index < len(self.knobs) else 0.5
        return from_units(param.kind, getattr(self, SLOT_ATTR[param.kind]))

    def set(self, param: Param, x: float) -> None:
        """Set a slot parameter (not ``morph``) from a knob value; a latent past the end of
        ``knobs`` pads them with the centre."""
        if param.kind is Kind.LATENT:
            if param.index >= len(self.knobs):
                self.knobs.extend([0.5] * (param.index + 1 - len(self.knobs)))
            self.knobs[param.index] = x
        else:
            setattr(self, SLOT_ATTR[param.kind], to_units(param.kind, x))


@dataclass
class Kit:
    """A set of slots plus the controller set-up that goes with them (saved together).

    ``cc`` maps a CC number to a parameter address (``latent/<i>``, ``level``, ``tune``,
    ``decay``, ``pan``, ``morph``; see ``mapping.parse_param``); parameters apply to the slot
    the engine has selected. ``velocity_latent``/``velocity_latent_amount``: harder hits sound
    different: the hardest hit plays the knobs as set, softer ones move the knob of that latent
    dimension back by up to ``amount`` (-1..1); see ``mapping.velocity_knobs``.
    ``midi_channel`` None = omni, else 1..16 (the channel number printed on gear).
    """

    name: str
    slots: list[Slot]
    cc: dict[int, str]
    velocity_curve: str = "linear"
    velocity_latent: int | None = None
    velocity_latent_amount: float = 0.0
    midi_channel: int | None = None
    description: str = ""
    morph_targets: tuple[str, str] | None = None  # the presets the morph control glides between

    def __post_init__(self) -> None:
        if not isinstance(self.slots, list | tuple):
            raise fields.fail("slot", f"must be a list of Slots, got {fields.show(self.slots)}")
        self.slots = list(self.slots)
        for i, slot in enumerate(self.slots):
            if not isinstance(slot, Slot):
                raise fields.fail(f"slot[{i}]", f"must be a Slot, got {type(slot).__name__}")
        _check_kit_fields(self, "")

    def __deepcopy__(self, memo: dict[int, Any]) -> Kit:
        """A snapshot for undo and for readers outside the engine's lock, copying only the
        mutable lists and dict: it runs on every knob move (docs/architecture.md)."""
        new = copy.copy(self)
        new.slots = [copy.copy(slot) for slot in self.slots]
        for slot in new.slots:
            slot.notes = list(slot.notes)
            slot.knobs = list(slot.knobs)
        new.cc = dict(self.cc)
        return new


def _slot_values(raw: Mapping[str, Any], path: str) -> dict[str, Any]:
    """Check every present field of one slot; returns canonical values."""
    out: dict[str, Any] = {}
    p = f"{path}."
    if "name" in raw:
        out["name"] = fields.text(raw["name"], p + "name", MAX_NAME_CHARS)
    if "notes" in raw:
        notes = fields.array(raw["notes"], p + "notes", 0, 128, "MIDI notes 0..127")
        out["notes"] = [fields.integer(n, f"{p}notes[{j}]", 0, 127) for j, n in enumerate(notes)]
        seen: set[int] = set()
        for j, n in enumerate(out["notes"]):
            if n in seen:
                raise fields.fail(f"{p}notes[{j}]", f"note {n} is listed twice")
            seen.add(n)
    if "knobs" in raw:
        knobs = fields.array(raw["knobs"], p + "knobs", 1, MAX_LATENT_DIM, "numbers 0..1")
        out["knobs"] = [fields.number(k, f"{p}knobs[{j}]", 0.0, 1.0) for j, k in enumerate(knobs)]
    if "level_db" in raw:
        out["level_db"] = fields.number(raw["level_db"], p + "level_db", -60.0, 12.0)
    if "tune_semitones" in raw:
        out["tune_semitones"] = fields.number(raw["tune_semitones"], p + "tune_semitones",
                                              -12.0, 12.0)
    if "decay" in raw:
        out["decay"] = fields.number(raw["decay"], p + "decay", 0.0, 1.0)
    if "pan" in raw:
        out["pan"] = fields.number(raw["pan"], p + "pan", -1.0, 1.0)
    if "choke_group" in raw:
        out["choke_group"] = fields.integer(raw["choke_group"], p + "choke_group", 0, 127)
    if "variation" in raw:
        out["variation"] = fields.number(raw["variation"], p + "variation", 0.0, 1.0)
    if "variants" in raw:
        out["variants"] = fields.integer(raw["variants"], p + "variants", 1, MAX_PLAYED_VARIANTS)
    return out


def _cc_values(raw: Any, path: str) -> dict[int, str]:
    table = fields.table(raw, path)
    out: dict[int, str] = {}
    for key, value in table.items():
        cc = _cc_key(key, path)
        if cc in out:
            raise fields.fail(f"{path}.{cc}", "CC number is listed twice")
        if not isinstance(value, str):
            raise fields.fail(f"{path}.{cc}",
                              f"must be a parameter address string, got {fields.show(value)}")
        try:
            parse_param(value)
        except ValueError as exc:
            raise fields.fail(f"{path}.{cc}", str(exc)) from None
        out[cc] = value
    return dict(sorted(out.items()))


def _check_kit_fields(kit: Kit, path: str) -> None:
    """Validate and canonicalise the kit-level fields in place (slots are already Slots)."""
    p = f"{path}." if path else ""
    kit.name = fields.text(kit.name, p + "name", MAX_NAME_CHARS)
    kit.description = fields.text(kit.description, p + "description", 2000, allow_empty=True)
    if kit.morph_targets is not None:
        pair = fields.array(kit.morph_targets, p + "morph_targets", 2, 2, "preset names")
        try:
            kit.morph_targets = (check_name(pair[0]), check_name(pair[1]))
        except PresetError as exc:
            raise fields.fail(p + "morph_targets", str(exc)) from None
    if kit.velocity_curve not in VELOCITY_CURVES:
        raise fields.fail(p + "velocity_curve", f"must be one of {', '.join(VELOCITY_CURVES)}, "
                          f"got {fields.show(kit.velocity_curve)}")
    if kit.velocity_latent is not None:
        kit.velocity_latent = fields.integer(kit.velocity_latent, p + "velocity_latent",
                                       0, MAX_LATENT_DIM - 1)
    kit.velocity_latent_amount = fields.number(kit.velocity_latent_amount,
                                         p + "velocity_latent_amount", -1.0, 1.0)
    if kit.midi_channel is not None:
        kit.midi_channel = fields.integer(kit.midi_channel, p + "midi_channel", 1, 16)
    kit.cc = _cc_values(kit.cc, p + "cc")
    if not 1 <= len(kit.slots) <= 128:
        raise fields.fail(p + "slot", f"a kit needs 1..128 slots, got {len(kit.slots)}")
    owner: dict[int, int] = {}
    for i, slot in enumerate(kit.slots):
        for j, note in enumerate(slot.notes):
            if note in owner:
                other = owner[note]
                raise fields.fail(f"{p}slot[{i}].notes[{j}]",
                            f"note {note} is already used by slot[{other}] "
                            f"({fields.show(kit.slots[other].name)})")
            owner[note] = i


# --------------------------------------------------------------------------------------------
# dict <-> Kit
# --------------------------------------------------------------------------------------------


def kit_to_dict(kit: Kit) -> dict[str, Any]:
    """The TOML document of a kit (plain dicts, lists, str keys); None fields are left out."""
    doc: dict[str, Any] = {"format": FORMAT_VERSION, "name": kit.name}
    if kit.description:
        doc["description"] = kit.description
    if kit.morph_targets is not None:
        doc["morph_targets"] = list(kit.morph_targets)
    doc["velocity_curve"] = kit.velocity_curve
    if kit.velocity_latent is not None:
        doc["velocity_latent"] = kit.velocity_latent
    doc["velocity_latent_amount"] = float(kit.velocity_latent_amount)
    if kit.midi_channel is not None:
        doc["midi_channel"] = kit.midi_channel
    doc["cc"] = {str(cc): param for cc, param in sorted(kit.cc.items())}
    doc["slot"] = [
        {
            "name": s.name,
            "notes": list(s.notes),
            "knobs": [float(k) for k in s.knobs],
            "level_db": float(s.level_db),
            "tune_semitones": float(s.tune_semitones),
            "decay": float(s.decay),
            "pan": float(s.pan),
            "choke_group": s.choke_group,
            "variation": float(s.variation),
            "variants": s.variants,
        }
        for s in kit.slots
    ]
    return doc


def kit_from_dict(data: Any, source: str | None = None) -> Kit:
    """Build a Kit from a parsed TOML document, checking every field.

    Raises ``PresetError`` (and nothing else, whatever ``data`` is) naming ``source`` and the
    field path. An absent ``[cc]`` table means no CC mapping; absent optional fields take the
    dataclass defaults.
    """
    return read_kit_document(data, source, extra=())[0]


def read_kit_document(data: Any, source: str | None,
                   extra: tuple[str, ...]) -> tuple[Kit, dict[str, Any]]:
    try:
        table = fields.table(data, "(document)")
        fields.check_keys(table, "", _KIT_FIELDS + extra, _KIT_REQUIRED + extra)
        if "format" in table:
            fields.integer(table["format"], "format", 1, FORMAT_VERSION)
        raw_slots = fields.array(table["slot"], "slot", 1, 128, "slot tables")
        slots = []
        for i, raw in enumerate(raw_slots):
            path = f"slot[{i}]"
            raw = fields.table(raw, path)
            fields.check_keys(raw, path, _SLOT_FIELDS, _SLOT_REQUIRED)
            slots.append(Slot(**_slot_values(raw, path)))
        kwargs = {
            key: table[key]
            for key in ("name", "description", "morph_targets", "velocity_curve", "velocity_latent",
                        "velocity_latent_amount", "midi_channel")
            if key in table
        }
        kit = Kit(slots=slots, cc=table.get("cc", {}), **kwargs)
        return kit, {key: table[key] for key in extra}
    except PresetError as exc:
        if source is None:
            raise
        raise PresetError(f"{source}: {exc}") from None
    except RecursionError:  # pathological nesting from a fuzzer, never from tomllib
        raise PresetError(f"{source or '(document)'}: nested too deeply") from None


def validate_kit(kit: Kit, source: str | None = None) -> Kit:
    """Check a (possibly mutated) Kit as if it were loaded from a file; returns a fresh copy."""
    return kit_from_dict(kit_to_dict(kit), source)


def check_name(name: Any) -> str:
    """Return ``name`` if it is a safe preset name, else raise ``PresetError``.

    Names arrive from the network (OSC), so the rule is strict: 1..64 characters of letters,
    digits, space, ``_``, ``.`` and ``-``, starting with a letter or digit, not ending in a space
    or dot, no ``..``. Path separators, absolute paths and control characters cannot pass.
    """
    if not isinstance(name, str):
        raise PresetError(f"preset name must be a string, got {fields.show(name)}")
    if (
        not _NAME_RE.fullmatch(name)
        or ".." in name
        or name.endswith((" ", "."))
    ):
        raise PresetError(
            f"invalid preset name {fields.show(name)}: use 1..64 letters, digits, space, '_', "
            "'.', '-', starting with a letter or digit (no '..', no path separators)"
        )
    return name
