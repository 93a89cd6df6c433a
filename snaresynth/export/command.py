"""``snaresynth export-kit``: a kit (preset name, kit file or the daemon's state file) -> a new
folder with its samples and one sampler format, written atomically (``folder.staged_folder``).
Every format also gets ``export.toml``: the command, the model, the kit and every sample's
slot, velocity range, variant and knobs."""

from __future__ import annotations

import dataclasses
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomli_w

from snaresynth.control.kit import Kit
from snaresynth.control.presets import PresetStore, default_state_path, load_kit, load_state
from snaresynth.engine.planner import VELOCITY_LAYERS
from snaresynth.export.drumgizmo import write_drumgizmo
from snaresynth.export.folder import check_target, staged_folder
from snaresynth.export.hydrogen import MAX_LAYERS, write_hydrogen
from snaresynth.export.render import ExportError, Rendered, render_kit, slug, write_wav
from snaresynth.export.sfz import write_sfz

WRITERS: dict[str, Callable[[Rendered, Path], Path | None]] = {
    "sfz": write_sfz,
    "hydrogen": write_hydrogen,
    "drumgizmo": write_drumgizmo,
    "wav": lambda rendered, folder: None,
}
FORMATS = tuple(WRITERS)
MANIFEST = "export.toml"


def resolve_kit(spec: str, store: PresetStore | None = None) -> tuple[Kit, str]:
    """KIT -> (kit, where it came from): ``state`` is the daemon's state file, an existing path
    (or a name ending in .toml) a kit file, anything else a preset name."""
    if spec == "state":
        path = default_state_path()
        return load_state(path)[0], f"state file {path}"
    path = Path(spec)
    if path.suffix == ".toml" or path.exists():
        return load_kit(path), f"kit file {path}"
    store = store or PresetStore()
    return store.load(spec), f"preset {spec!r} ({store.path(spec)})"


def manifest(rendered: Rendered, fmt: str) -> dict[str, Any]:
    doc = {"format": fmt, **rendered.metadata()}
    doc["sample"] = [{"file": s.path, "slot": s.slot, "slot_name": rendered.kit.slots[s.slot].name,
                      "notes": list(rendered.kit.slots[s.slot].notes), "layer": s.layer,
                      "lovel": s.lovel, "hivel": s.hivel, "variant": s.variant,
                      "knobs": list(s.knobs)} for s in rendered.samples]
    return doc


def write_export(rendered: Rendered, fmt: str, out: Path, force: bool = False) -> Path:
    """Write ``rendered`` as ``fmt`` into the new folder ``out`` (atomically); returns the main
    file (the .sfz, drumkit.xml, or the folder for wav)."""
    if fmt not in WRITERS:
        raise ExportError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    if fmt == "hydrogen":  # Hydrogen keeps only a layer's file name: samples beside the xml
        rendered = dataclasses.replace(rendered, samples=[
            dataclasses.replace(s, path=Path(s.path).name) for s in rendered.samples])
    with staged_folder(out, force) as tmp:
        if fmt != "hydrogen":
            (tmp / "samples").mkdir()
        for s in rendered.samples:
            write_wav(tmp / s.path, s.audio, rendered.rate, rendered.bits)
        (tmp / MANIFEST).write_text(tomli_w.dumps(manifest(rendered, fmt)), encoding="utf-8")
        main = WRITERS[fmt](rendered, tmp)
        name = main.name if main is not None else None
    return out / name if name else out


def export_kit_command(kit: str, fmt: str, out: Path | None, rate: int, bits: int,
                       model: str | None, variants: int, variation: float, seed: int,
                       force: bool, argv: list[str] | None = None) -> int:
    from snaresynth.models import registry

    if fmt not in WRITERS:  # checked before anything is read or decoded
        raise ExportError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    spec, source = resolve_kit(kit)
    target = out or Path(f"{slug(spec.name)}-{fmt}")
    check_target(target, force)
    layered = spec.velocity_latent is not None
    if fmt == "hydrogen" and variants * (VELOCITY_LAYERS if layered else 1) > MAX_LAYERS:
        raise ExportError(f"Hydrogen loads at most {MAX_LAYERS} layers per instrument: "
                          f"--variants {variants} x {VELOCITY_LAYERS} velocity layers is too many")
    decoder = registry.resolve(model, runtime="inference")
    described = getattr(getattr(decoder, "metadata", None), "family", None) or \
        getattr(decoder, "family", type(decoder).__name__)
    command = shlex.join(["snaresynth", *(argv if argv is not None else sys.argv[1:])])
    rendered = render_kit(spec, decoder, rate, bits, variants, variation, seed, source=source,
                          model=f"{described} ({model or 'bundled default'})", command=command)
    main = write_export(rendered, fmt, target, force)
    print(f"{main}: {len(rendered.samples)} samples, {len(spec.slots)} slots ({fmt})")
    return 0
