"""The shared renderer of every export format: a kit -> one playback buffer per slot x velocity
layer x variant, decoded and shaped exactly as the daemon does (``knobs_to_z`` of the quantized
knobs, then ``playback_buffer``: resampled, tuned, pre-roll trimmed, decay-shaped). Level, pan
and velocity gain are left to the sampler (opcodes), as the daemon's mixer applies them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from snaresynth.control.kit import Kit, kit_to_dict
from snaresynth.control.variation import slot_seed, variant_knobs
from snaresynth.decode.worker import KNOB_STEPS, knobs_to_z, playback_buffer, quantize_knobs
from snaresynth.engine.planner import VELOCITY_LAYERS, layer_of_velocity, velocity_knobs
from snaresynth.errors import SnareSynthError

BITS = (16, 24)
"""PCM sample widths written (the subtype soundfile is given)."""


class ExportError(SnareSynthError):
    """An export cannot be made: bad options, an existing target, a folder that cannot be
    written."""


@dataclass(frozen=True)
class Sample:
    """One exported sound: slot ``slot``'s velocity ``layer`` (played for MIDI velocities
    ``lovel..hivel``), round-robin ``variant``; ``path`` is relative to the export folder."""

    slot: int
    layer: int
    variant: int
    lovel: int
    hivel: int
    knobs: tuple[float, ...]
    path: str
    audio: np.ndarray = field(repr=False, compare=False)


@dataclass
class Rendered:
    """Everything a format writer needs: the kit, where it came from, and its samples."""

    kit: Kit
    source: str  # what KIT named: a preset name, a file, the state file
    model: str  # the model's description (family, file)
    rate: int
    bits: int
    variants: int
    variation: float
    seed: int
    command: str
    samples: list[Sample]

    @property
    def layered(self) -> bool:
        return len({s.layer for s in self.samples}) > 1

    def slot_samples(self, slot: int) -> list[Sample]:
        return [s for s in self.samples if s.slot == slot]

    def layers(self, slot: int) -> list[list[Sample]]:
        """Slot ``slot``'s samples grouped by velocity layer (softest first), variants in order."""
        by_layer: dict[int, list[Sample]] = {}
        for s in self.slot_samples(slot):
            by_layer.setdefault(s.layer, []).append(s)
        return [sorted(v, key=lambda s: s.variant) for _, v in sorted(by_layer.items())]

    def metadata(self) -> dict[str, Any]:
        """What every format records: the command, the model, the options, the kit itself."""
        return {"command": self.command, "model": self.model, "source": self.source,
                "rate": self.rate, "bits": self.bits, "variants": self.variants,
                "variation": self.variation, "seed": self.seed, "kit": kit_to_dict(self.kit)}

    def describe(self) -> str:
        """One paragraph for a format's free-text field (Hydrogen info, DrumGizmo notes)."""
        return (f"Exported by snaresynth from kit {self.kit.name!r} ({self.source}) with model "
                f"{self.model}: {self.rate} Hz, {self.bits}-bit, {self.variants} variant(s) per "
                f"layer, variation {self.variation:g}, seed {self.seed}. Command: {self.command}")


def velocity_ranges(layered: bool) -> list[tuple[int, int, int]]:
    """(layer, lovel, hivel) of every layer a kit plays, in MIDI velocities 1..127: the daemon's
    own rounding (``layer_of_velocity(v / 127)``), so a sampler picks the same layer it does."""
    if not layered:
        return [(VELOCITY_LAYERS - 1, 1, 127)]
    bounds: dict[int, list[int]] = {}
    for v in range(1, 128):
        bounds.setdefault(layer_of_velocity(v / 127.0), []).append(v)
    return [(layer, min(vs), max(vs)) for layer, vs in sorted(bounds.items())]


def slug(text: str) -> str:
    """A file-name-safe form of a slot or kit name (ASCII letters, digits, ``_`` and ``-``)."""
    out = re.sub(r"[^a-z0-9-]+", "_", text.lower()).strip("_")
    return out or "slot"


def sample_path(index: int, name: str, layer: int, variant: int) -> str:
    return f"samples/{index + 1:02d}_{slug(name)}_v{layer + 1}_rr{variant + 1}.wav"


def plan(kit: Kit, latent_dim: int, variants: int, variation: float,
         seed: int) -> list[tuple[int, int, int, int, int, list[float]]]:
    """(slot, layer, variant, lovel, hivel, knobs) of every sound to render: the slot's variant
    points first (``variant_knobs``), then each moved by velocity as the planner does."""
    out = []
    dim = kit.velocity_latent
    layered = dim is not None and dim < latent_dim
    for index, slot in enumerate(kit.slots):
        points = variant_knobs(slot.knobs_for(latent_dim), variation, variants,
                               slot_seed(seed, index))
        for layer, lovel, hivel in velocity_ranges(layered):
            for variant, point in enumerate(points):
                knobs = (velocity_knobs(point, layer, dim, kit.velocity_latent_amount)
                         if layered and dim is not None else list(point))
                out.append((index, layer, variant, lovel, hivel, knobs))
    return out


def render_kit(kit: Kit, decoder: Any, rate: int, bits: int, variants: int = 1,
               variation: float = 0.0, seed: int = 0, source: str = "",
               model: str = "", command: str = "", batch: int = 64) -> Rendered:
    """Decode every slot x layer x variant of ``kit`` with ``decoder`` at output ``rate``."""
    if bits not in BITS:
        raise ExportError(f"--bits must be one of {', '.join(map(str, BITS))}, got {bits}")
    if not 8000 <= rate <= 192000:
        raise ExportError(f"--rate must be 8000..192000 Hz, got {rate}")
    try:
        todo = plan(kit, int(decoder.latent_dim), variants, variation, seed)
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    lo, hi = (np.asarray(v, dtype=np.float32) for v in decoder.latent_range())
    keys = [quantize_knobs(np.asarray(k)) for *_, k in todo]
    raw = _decode(decoder, [knobs_to_z(key, lo, hi) for key in keys], batch)
    samples = []
    for (index, layer, variant, lovel, hivel, _), key, audio in zip(todo, keys, raw, strict=True):
        spec = kit.slots[index]
        buf = playback_buffer(audio, int(decoder.sample_rate), rate, float(spec.tune_semitones),
                              float(spec.decay))
        samples.append(Sample(index, layer, variant, lovel, hivel,
                              tuple(k / KNOB_STEPS for k in key),
                              sample_path(index, spec.name, layer, variant), buf))
    return Rendered(kit, source, model, rate, bits, variants, float(variation), seed, command,
                    samples)


def _decode(decoder: Any, zs: Sequence[np.ndarray], batch: int) -> list[np.ndarray]:
    rows: list[np.ndarray] = []
    for start in range(0, len(zs), batch):
        out = np.asarray(decoder.decode(np.stack(zs[start:start + batch])), dtype=np.float32)
        if out.ndim != 2 or not np.all(np.isfinite(out)):
            raise ExportError(f"the model returned {out.shape} with non-finite or wrong-shape "
                              "output")
        rows.extend(out)
    return rows


def write_wav(path: Any, audio: np.ndarray, rate: int, bits: int) -> None:
    """A mono PCM WAV (16 or 24 bit), clipped to full scale; the folder is staged, so a plain
    write suffices (the whole folder appears at once)."""
    import soundfile as sf

    sf.write(str(path), np.clip(audio, -1.0, 1.0), rate, subtype=f"PCM_{bits}", format="WAV")
