"""``snaresynth render`` and ``snaresynth models``: offline decoding to WAV, and model listing."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from snaresynth import dsp
from snaresynth.atomic import atomic_path
from snaresynth.errors import ModelFileError, SnareSynthError


def knobs_to_latent(decoder: Any, knobs: np.ndarray) -> np.ndarray:
    """(B, D) knob positions 0..1 -> (B, D) latent vectors across the model's latent range."""
    lo, hi = decoder.latent_range()
    return (lo + np.clip(knobs, 0.0, 1.0) * (hi - lo)).astype(np.float32)


def pad_knobs(knobs: list[float], dim: int) -> np.ndarray:
    """``--knobs`` for a model of ``dim`` dimensions: the ones not given sit at the centre (0.5),
    as a kit made for a smaller model does (``Slot.knobs_for``); more than ``dim`` is an error."""
    if len(knobs) > dim:
        raise SnareSynthError(f"--knobs: {len(knobs)} values given, this model has {dim} "
                              f"latent dimensions (give at most {dim}; missing ones are 0.5)")
    outside = [k for k in knobs if not 0.0 <= k <= 1.0]
    if outside:  # refused, never clamped: as a kit's knobs (docs/controls.md)
        raise SnareSynthError(f"--knobs: values must be 0..1, got {outside[0]:g}")
    return np.asarray(list(knobs) + [0.5] * (dim - len(knobs)), dtype=np.float64)


def write_wav(path: Path, audio: np.ndarray, rate: int) -> None:
    """Write a mono float WAV atomically (a crash never leaves half a file)."""
    import soundfile as sf

    with atomic_path(path) as tmp:
        sf.write(tmp, audio, rate, subtype="FLOAT", format="WAV")


def render_latents(decoder: Any, z: np.ndarray, rate: int | None = None,
                   batch: int = 64) -> tuple[np.ndarray, int]:
    """Decode (B, D) latents in batches, resampled to ``rate`` (default: the model's rate)."""
    out_rate = rate or decoder.sample_rate
    rows = []
    for start in range(0, z.shape[0], batch):
        rows.append(decoder.decode(z[start:start + batch]))
    audio = np.concatenate(rows, axis=0)
    if out_rate != decoder.sample_rate:
        audio = dsp.resample(audio, decoder.sample_rate, out_rate)
    return audio, out_rate


def render_command(model: str | None, knobs: list[float] | None, z: list[float] | None,
                   random: int | None, seed: int, latents: Path | None, out: Path | None,
                   out_dir: Path | None, rate: int | None) -> int:
    from snaresynth.models import registry

    chosen = [name for name, v in (("--knobs", knobs), ("--z", z), ("--random", random),
                                   ("--latents", latents)) if v is not None]
    if len(chosen) > 1:
        raise SnareSynthError(f"give one of --knobs, --z, --random, --latents (got {chosen})")
    decoder = registry.resolve(model)
    dim = decoder.latent_dim
    if latents is not None:
        try:
            zs = np.load(latents, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise SnareSynthError(f"{latents}: cannot read latents: {exc}") from exc
        zs = np.atleast_2d(np.asarray(zs, dtype=np.float32))
        if zs.ndim != 2 or zs.shape[1] != dim:
            raise SnareSynthError(f"{latents}: expected shape (B, {dim}), got {zs.shape}")
    elif z is not None:
        if len(z) != dim:
            raise SnareSynthError(f"--z needs {dim} values for this model, got {len(z)}")
        zs = np.asarray([z], dtype=np.float32)
    elif random is not None:
        rng = np.random.default_rng(seed)
        zs = knobs_to_latent(decoder, rng.uniform(0.0, 1.0, size=(random, dim)))
    else:
        zs = knobs_to_latent(decoder, pad_knobs(knobs or [], dim)[None, :])
    if not np.all(np.isfinite(zs)):
        raise SnareSynthError("latent values must be finite")
    audio, out_rate = render_latents(decoder, zs, rate)
    if zs.shape[0] == 1 and out_dir is None:
        target = out or Path("snare.wav")
        write_wav(target, audio[0], out_rate)
        print(target)
        return 0
    folder = out_dir or Path("renders")
    width = len(str(zs.shape[0] - 1))
    for i, row in enumerate(audio):
        write_wav(folder / f"snare_{i:0{width}d}.wav", row, out_rate)
    print(f"{zs.shape[0]} files in {folder}")
    return 0


def models_command(paths: list[Path], as_json: bool = False) -> int:
    """List model files (default: the bundled ones) with their metadata; no TensorFlow import."""
    from snaresynth.models import registry
    from snaresynth.models.base import read_metadata

    files: list[Path] = []
    for p in paths or [registry.BUNDLED_DIR]:
        files.extend(sorted(p.glob("*.keras")) if p.is_dir() else [p])
    files = [f for f in files if f.name != "listener.keras"]
    rows = []
    errors = 0
    for f in files:
        try:
            meta = read_metadata(f)
        except ModelFileError as exc:
            errors += 1
            print(f"snaresynth models: {exc}", file=sys.stderr)
            continue
        rows.append({"path": str(f), "size_mb": round(f.stat().st_size / 2**20, 3),
                     "default": f.resolve() == registry.DEFAULT_MODEL.resolve(),
                     **json.loads(meta.to_json())})
    if as_json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("no models found" + ("" if paths else
              f" in {registry.BUNDLED_DIR} (serve falls back to an untrained decoder)"))
    else:
        for row in rows:
            mark = "*" if row["default"] else " "
            print(f"{mark} {row['path']}: {row['family']}, {row['latent_dim']} dims, "
                  f"{row['sample_rate']} Hz, {row['size_mb']} MB"
                  + (f" — {row['description']}" if row["description"] else ""))
    return 1 if errors and not rows else 0
