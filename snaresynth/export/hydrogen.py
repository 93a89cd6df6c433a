"""Hydrogen drumkit (drumkit.xml as Hydrogen 1.2 loads it: ``Drumkit::load_from``,
``Instrument::load_from``, ``InstrumentComponent::load_from``, ``InstrumentLayer::load_from``;
element order as in its data/xsd/drumkit.xsd).

One instrument per slot with one component; its layers are the slot's velocity layers x
variants, each with a ``min``/``max`` velocity range (Hydrogen's 0..1 note velocity). With more
than one variant the instrument's ``sampleSelectionAlgo`` is ``ROUND_ROBIN``: Hydrogen cycles
through the layers whose range holds the note's velocity. Level is the instrument ``gain``,
pan ``pan``, a choke group ``muteGroup``; tune and decay are in the samples.
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

from snaresynth import dsp
from snaresynth.export.render import ExportError, Rendered

MAX_LAYERS = 16
"""Layers per instrument component that Hydrogen loads (Preferences' maxLayers default)."""
NAMESPACE = "http://www.hydrogen-music.org/drumkit"


def _el(name: str, value: object, indent: int) -> str:
    text = value if isinstance(value, str) else (
        ("true" if value else "false") if isinstance(value, bool) else f"{value:g}"
        if isinstance(value, float) else str(value))
    return f"{' ' * indent}<{name}>{escape(text)}</{name}>"


def velocity_bounds(lovel: int, hivel: int) -> tuple[float, float]:
    """A MIDI velocity range -> Hydrogen's 0..1 layer range, with no overlap at the edges
    (Hydrogen takes every layer with min <= velocity <= max)."""
    lo = 0.0 if lovel <= 1 else (lovel - 0.5) / 127.0
    hi = 1.0 if hivel >= 127 else (hivel + 0.5) / 127.0 - 1e-6
    return lo, hi


def drumkit_xml(rendered: Rendered) -> str:
    kit = rendered.kit
    per_slot = len({(s.layer, s.variant) for s in rendered.slot_samples(0)})
    if per_slot > MAX_LAYERS:
        raise ExportError(f"Hydrogen loads at most {MAX_LAYERS} layers per instrument; this kit "
                          f"has {per_slot} (velocity layers x variants): export fewer --variants")
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f"<!-- {escape(rendered.describe()).replace('--', '- -')} -->",
           f'<drumkit_info xmlns="{NAMESPACE}">',
           _el("name", kit.name, 1), _el("author", "snaresynth", 1),
           _el("info", (kit.description + "\n\n" if kit.description else "")
               + rendered.describe(), 1),
           _el("license", "undefined license", 1), _el("image", "", 1),
           _el("imageLicense", "undefined license", 1),
           " <componentList>", "  <drumkitComponent>", _el("id", 0, 3), _el("name", "Main", 3),
           _el("volume", 1.0, 3), "  </drumkitComponent>", " </componentList>",
           " <instrumentList>"]
    for index, slot in enumerate(kit.slots):
        algo = "ROUND_ROBIN" if rendered.variants > 1 else "VELOCITY"
        out += ["  <instrument>",
                f"   <!-- knobs {[round(k, 4) for k in slot.knobs]}, notes {slot.notes}, tune "
                f"{slot.tune_semitones:g} st, decay {slot.decay:g} (in the samples) -->"]
        fields: list[tuple[str, object]] = [
            ("id", index), ("name", slot.name), ("volume", 1.0), ("isMuted", False),
            ("isSoloed", False), ("pan", float(slot.pan)), ("pitchOffset", 0.0),
            ("randomPitchFactor", 0.0), ("gain", float(dsp.db_to_gain(slot.level_db))),
            ("applyVelocity", True), ("filterActive", False), ("filterCutoff", 1.0),
            ("filterResonance", 0.0), ("Attack", 0), ("Decay", 0), ("Sustain", 1.0),
            ("Release", 1000), ("muteGroup", slot.choke_group or -1), ("midiOutChannel", -1),
            ("midiOutNote", slot.notes[0] if slot.notes else 36 + index),
            ("isStopNote", False), ("sampleSelectionAlgo", algo), ("isHihat", -1),
            ("lower_cc", 0), ("higher_cc", 127), ("FX1Level", 0.0), ("FX2Level", 0.0),
            ("FX3Level", 0.0), ("FX4Level", 0.0)]
        out += [_el(name, value, 3) for name, value in fields]
        out += ["   <instrumentComponent>", _el("component_id", 0, 4), _el("gain", 1.0, 4)]
        for layer in rendered.layers(index):
            for s in layer:
                lo, hi = velocity_bounds(s.lovel, s.hivel)
                out += ["    <layer>", _el("filename", s.path, 5), _el("min", round(lo, 6), 5),
                        _el("max", round(hi, 6), 5), _el("gain", 1.0, 5), _el("pitch", 0.0, 5),
                        "    </layer>"]
        out += ["   </instrumentComponent>", "  </instrument>"]
    out += [" </instrumentList>", "</drumkit_info>"]
    return "\n".join(out) + "\n"


def write_hydrogen(rendered: Rendered, folder: Path) -> Path:
    path = folder / "drumkit.xml"
    path.write_text(drumkit_xml(rendered), encoding="utf-8")
    return path
