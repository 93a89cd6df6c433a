"""From a sample file to one corpus window: mono, model rate, onset-aligned, faded, normalised.

Every window starts ``PRE_ROLL_S`` before the detected onset, so all items hit at the same
sample and a model never has to learn random leading silence. The pre-roll gets a short
fade-in (it may hold the first low-level part of the attack, cut mid-waveform), and the end of
the window a short fade-out, so a sound longer than the window never ends in a click.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from snaresynth import dsp
from snaresynth.dsp import LENGTH
from snaresynth.errors import CorpusError

DEFAULT_RATE = 32000
PRE_ROLL_S = 0.003
FADE_IN_S = 0.001
FADE_OUT_S = 0.010
ONSET_THRESHOLD_DB = -30.0
SILENCE_PEAK = 1e-4  # about -80 dBFS: a layer this quiet is an empty placeholder sample


def read_mono(path: str | Path) -> tuple[np.ndarray, int]:
    """(mono float32 samples, sample rate) of any file libsndfile reads (WAV, FLAC, AIFF, OGG)."""
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        raise CorpusError(f"{path}: unreadable audio file: {exc}") from exc
    if data.shape[0] == 0:
        raise CorpusError(f"{path}: audio file has no samples")
    mono = data.mean(axis=1, dtype=np.float32)
    if not np.all(np.isfinite(mono)):
        raise CorpusError(f"{path}: audio file holds NaN or infinite samples")
    return mono, int(rate)


def align_window(
    audio: np.ndarray,
    rate: int,
    length: int = LENGTH,
    pre_roll_s: float = PRE_ROLL_S,
    shift_s: float = 0.0,
) -> np.ndarray:
    """Cut or zero-pad ``audio`` to ``length`` samples with the onset ``pre_roll_s`` in.

    ``shift_s`` moves the onset later (positive) or earlier within the window; augmentation uses
    it. The result is not yet normalised.
    """
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    onset = dsp.onset_index(audio, ONSET_THRESHOLD_DB)
    lead = max(0, int(round((pre_roll_s + shift_s) * rate)))
    start = onset - lead
    out = np.zeros(length, dtype=np.float32)
    if start >= 0:
        piece = audio[start:start + length]
        out[:piece.size] = piece
    else:  # not enough before the onset: pad with silence so the onset still lands at ``lead``
        piece = audio[:length + start]
        out[-start:-start + piece.size] = piece
    fade_in = min(int(round(FADE_IN_S * rate)), lead, length)
    if fade_in > 0 and start > 0:
        # only audio cut mid-way needs it; a file that starts within the pre-roll keeps its start
        out[:fade_in] *= dsp.fade_out(fade_in)[::-1]
    fade = min(int(round(FADE_OUT_S * rate)), length)
    if fade > 0:
        out[-fade:] *= dsp.fade_out(fade)
    return out


def prepare(
    audio: np.ndarray,
    rate: int,
    target_rate: int = DEFAULT_RATE,
    length: int = LENGTH,
    shift_s: float = 0.0,
) -> np.ndarray:
    """Mono samples at ``rate`` -> one peak-normalised window of ``length`` at ``target_rate``."""
    resampled = dsp.resample(audio, rate, target_rate) if rate != target_rate else audio
    window = align_window(resampled, target_rate, length, shift_s=shift_s)
    return dsp.peak_normalise(window)


def is_silent(audio: np.ndarray) -> bool:
    """True for placeholder layers (Hydrogen's ``emptySample.flac``) and digital silence."""
    return audio.size == 0 or float(np.max(np.abs(audio))) < SILENCE_PEAK
