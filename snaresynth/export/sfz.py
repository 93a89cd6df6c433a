"""SFZ instrument: one ``<group>`` per slot (level, pan, choke group, round-robin length), one
``<region>`` per note x velocity layer x variant. Velocity layers are ``lovel``/``hivel`` ranges
(the daemon's own layer boundaries), round robins ``seq_length``/``seq_position``, choke groups
``group``/``off_by``, the kit's velocity curve ``amp_velcurve_N`` at every velocity. Tune and
decay are in the samples (rendered as the daemon plays them), so no ``tune`` opcode is set.
"""

from __future__ import annotations

from pathlib import Path

from snaresynth import dsp
from snaresynth.export.render import Rendered


def _comment(text: str) -> list[str]:
    return [f"// {line}" for line in text.splitlines() or [""]]


def sfz_text(rendered: Rendered) -> str:
    """The whole .sfz file; sample paths are relative to the file (the export folder)."""
    kit = rendered.kit
    lines = _comment(f"snaresynth kit {kit.name!r}" + (f": {kit.description}"
                                                        if kit.description else ""))
    lines += _comment(f"model: {rendered.model}")
    lines += _comment(f"command: {rendered.command}")
    lines += _comment(f"source: {rendered.source}; {rendered.rate} Hz, {rendered.bits}-bit; "
                      f"{rendered.variants} variant(s), variation {rendered.variation:g}, seed "
                      f"{rendered.seed}; velocity curve {kit.velocity_curve}; tune and decay "
                      "are rendered into the samples")
    lines += ["", "<control>", "", "<global>", "loop_mode=one_shot", "pitch_keytrack=0",
              "amp_veltrack=100"]
    # the kit's velocity curve at every velocity: the sampler's gain is then the daemon's
    lines += [f"amp_velcurve_{v}={dsp.velocity_gain(v / 127.0, kit.velocity_curve):.6f}"
              for v in range(1, 128)]
    for index, slot in enumerate(kit.slots):
        layers = rendered.layers(index)
        lines += [""] + _comment(f"slot {index + 1} {slot.name!r}: notes {slot.notes}, knobs "
                                 f"{[round(k, 4) for k in slot.knobs]}, tune "
                                 f"{slot.tune_semitones:g} st, decay {slot.decay:g}")
        lines += ["<group>", f"volume={slot.level_db:g}", f"pan={slot.pan * 100:g}"]
        if slot.choke_group:
            lines += [f"group={slot.choke_group}", f"off_by={slot.choke_group}"]
        if rendered.variants > 1:
            lines.append(f"seq_length={rendered.variants}")
        for note in slot.notes:
            for layer in layers:
                for s in layer:
                    region = (f"<region> sample={s.path} key={note} lovel={s.lovel} "
                              f"hivel={s.hivel}")
                    if rendered.variants > 1:
                        region += f" seq_position={s.variant + 1}"
                    lines.append(region)
    return "\n".join(lines) + "\n"


def write_sfz(rendered: Rendered, folder: Path) -> Path:
    from snaresynth.export.render import slug

    path = folder / f"{slug(rendered.kit.name)}.sfz"
    path.write_text(sfz_text(rendered), encoding="utf-8")
    return path
