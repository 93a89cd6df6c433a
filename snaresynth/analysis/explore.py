"""``snaresynth explore``: a picture of what two latent knobs do.

A ``steps`` x ``steps`` grid: columns move the first dimension's knob from 0 to 1 (left to
right), rows the second's (bottom to top, like an XY pad); every other dimension sits at the
centre of its range. Each cell is the decoded waveform or its log-mel spectrogram, on shared
scales, so differences between cells are differences in sound, not in plotting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from snaresynth.analysis.features import LOG_FLOOR, MelSettings, log_mel
from snaresynth.errors import SnareSynthError

CELL_INCHES = (1.8, 1.3)  # width, height of one grid cell
MARGIN_INCHES = (1.0, 0.9)  # room for the axis titles and the figure title
DPI = 100
KINDS = ("wave", "spec")


def grid_latents(decoder: Any, dims: tuple[int, int], steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(knob positions (steps,), latents (steps, steps, latent_dim)) with [row=y, col=x]."""
    x_dim, y_dim = dims
    n = int(decoder.latent_dim)
    for dim in dims:
        if not 0 <= dim < n:
            raise ValueError(f"dimension {dim} out of range: the model has {n} (0..{n - 1})")
    if x_dim == y_dim:
        raise ValueError(f"pick two different dimensions, got {x_dim} twice")
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    lo, hi = (np.asarray(a, dtype=np.float32) for a in decoder.latent_range())
    knobs = np.linspace(0.0, 1.0, steps, dtype=np.float32)
    z = np.tile((lo + hi) / 2.0, (steps, steps, 1))
    z[:, :, x_dim] = (lo[x_dim] + knobs * (hi[x_dim] - lo[x_dim]))[None, :]
    z[:, :, y_dim] = (lo[y_dim] + knobs * (hi[y_dim] - lo[y_dim]))[:, None]
    return knobs, z


def _mel_ticks(settings: MelSettings) -> tuple[list[float], list[str]]:
    """A few mel-band positions labelled with their centre frequency in kHz."""
    from snaresynth.analysis.features import _hz_to_mel, _mel_to_hz

    top = settings.sample_rate / 2 if settings.fmax is None else settings.fmax
    edges = _mel_to_hz(np.linspace(_hz_to_mel(settings.fmin), _hz_to_mel(top),
                                   settings.n_mels + 2))
    bands = [0, settings.n_mels // 4, settings.n_mels // 2, 3 * settings.n_mels // 4,
             settings.n_mels - 1]
    return [b + 0.5 for b in bands], [f"{edges[b + 1] / 1000:.1f}" for b in bands]


def figure_size(steps: int) -> tuple[float, float]:
    """Figure size in inches for a grid of ``steps`` x ``steps`` cells."""
    return (CELL_INCHES[0] * steps + MARGIN_INCHES[0], CELL_INCHES[1] * steps + MARGIN_INCHES[1])


def explore_grid(
    decoder: Any, out: str | Path, dims: tuple[int, int] = (0, 1), steps: int = 5,
    kind: str = "wave", title: str = "",
) -> Path:
    """Decode the grid and write it as a PNG of ``figure_size(steps) * DPI`` pixels."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    knobs, z = grid_latents(decoder, dims, steps)
    audio = np.asarray(decoder.decode(z.reshape(steps * steps, -1)), dtype=np.float32)
    audio = audio.reshape(steps, steps, -1)
    rate = int(decoder.sample_rate)
    fig, axes = plt.subplots(steps, steps, figsize=figure_size(steps), sharex=True, sharey=True,
                             squeeze=False)
    if kind == "spec":
        settings = MelSettings(sample_rate=rate)
        spec = log_mel(audio.reshape(steps * steps, -1), settings).reshape(steps, steps, -1,
                                                                           settings.n_mels)
        # a 60 dB window below the loudest cell: quiet models stay visible, scales stay shared
        vmax = float(spec.max())
        vmin = max(float(np.log(LOG_FLOOR)), vmax - float(np.log(1e6)))
        seconds = audio.shape[-1] / rate
        band_ticks, band_labels = _mel_ticks(settings)
    t_ms = np.arange(audio.shape[-1]) * 1000.0 / rate
    for row in range(steps):
        y_index = steps - 1 - row  # top row is knob 1, like an XY pad
        for col in range(steps):
            ax = axes[row, col]
            if kind == "wave":
                ax.plot(t_ms, audio[y_index, col], linewidth=0.5, color="tab:blue")
                ax.set_ylim(-1.05, 1.05)
            else:
                ax.imshow(spec[y_index, col].T, origin="lower", aspect="auto", cmap="magma",
                          vmin=vmin, vmax=vmax, extent=(0.0, seconds * 1000.0, 0, settings.n_mels))
                ax.set_yticks(band_ticks, band_labels)
            ax.tick_params(labelsize=6)
            if row == steps - 1:
                ax.set_xlabel(f"{knobs[col]:.2f}", fontsize=8)
            if col == 0:
                ax.set_ylabel(f"{knobs[y_index]:.2f}", fontsize=8)
    unit = "time in ms" if kind == "wave" else "time in ms, mel bands in kHz"
    fig.supxlabel(f"dim {dims[0]} knob (0..1)  —  cells: {unit}", fontsize=9)
    fig.supylabel(f"dim {dims[1]} knob (0..1)", fontsize=9)
    fig.suptitle(title or f"{decoder.family}: latent dims {dims[0]} x {dims[1]}, "
                 f"other dims at centre", fontsize=10)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    return out


def explore_command(model: str | None, dims: tuple[int, int], steps: int, kind: str,
                    out: Path) -> int:
    """CLI entry: load the model (default: bundled), draw the grid, print where it went."""
    from snaresynth.models.registry import DEFAULT_MODEL, load

    path = Path(model) if model else DEFAULT_MODEL
    decoder = load(path)
    name = "/".join(path.parts[-2:])
    try:
        written = explore_grid(decoder, out, dims, steps, kind, title=f"{name} "
                               f"({decoder.family}): dims {dims[0]} x {dims[1]} ({kind}), "
                               "other dims at centre")
    except ValueError as exc:
        raise SnareSynthError(str(exc)) from exc
    print(written)
    return 0
