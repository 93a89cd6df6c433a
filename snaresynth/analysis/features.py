"""Numpy audio features shared by ``eval``, ``explore`` and the listener: STFT, log-mel, distances.

Pure numpy (no TensorFlow, no librosa), so figures are reproducible on any machine and cheap to
test. Magnitudes are scaled by the window sum: a full-scale sine reads about 0.5 at any FFT size,
so distances do not depend on the resolution chosen.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

LOG_FLOOR = 1e-7  # power floor of the log-mel (about -70 dB below a full-scale sine)
MAG_FLOOR = 1e-7
MR_STFT_RESOLUTIONS: tuple[tuple[int, int], ...] = ((2048, 512), (1024, 256), (512, 128))


@dataclass(frozen=True)
class MelSettings:
    """Log-mel analysis settings; stored with the listener so its features can be recomputed."""

    sample_rate: int = 32000
    n_fft: int = 1024
    hop: int = 256
    n_mels: int = 64
    fmin: float = 30.0
    fmax: float | None = None  # None: Nyquist

    def to_dict(self) -> dict:
        return asdict(self)


def _frames(audio: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """(B, T) -> (B, frames, n_fft) zero-padded by n_fft/2 on both sides (centred frames)."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None, :]
    pad = n_fft // 2
    padded = np.pad(audio, ((0, 0), (pad, pad)))
    view = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=-1)
    return view[:, ::hop, :]


@lru_cache(maxsize=16)
def _hann(n_fft: int) -> np.ndarray:
    return np.hanning(n_fft + 1)[:-1].astype(np.float32)  # periodic Hann


def stft_magnitude(audio: np.ndarray, n_fft: int = 1024, hop: int = 256) -> np.ndarray:
    """|STFT| of (B, T) audio -> (B, frames, n_fft//2 + 1) float32, window-sum scaled."""
    window = _hann(n_fft)
    spec = np.fft.rfft(_frames(audio, n_fft, hop) * window, axis=-1)
    # floored far below LOG_FLOOR: fade-out tails would give slow denormal floats (docs/models.md)
    return np.maximum(np.abs(spec) / window.sum(), 1e-15).astype(np.float32)


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


@lru_cache(maxsize=16)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float,
                   fmax: float | None) -> np.ndarray:
    """(n_fft//2 + 1, n_mels) triangular HTK-mel filters, each normalised to unit area."""
    top = sample_rate / 2.0 if fmax is None else min(fmax, sample_rate / 2.0)
    if not 0.0 <= fmin < top:
        raise ValueError(f"need 0 <= fmin < fmax, got fmin={fmin}, fmax={top}")
    freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(top), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lower) / np.maximum(centre - lower, 1e-9)
    falling = (upper - freqs[None, :]) / np.maximum(upper - centre, 1e-9)
    bank = np.maximum(0.0, np.minimum(rising, falling))
    # narrow low filters can fall between FFT bins: give each at least its nearest bin
    empty = bank.sum(axis=1) == 0
    if np.any(empty):
        nearest = np.abs(freqs[None, :] - centre[empty]).argmin(axis=1)
        bank[np.flatnonzero(empty), nearest] = 1.0
    bank /= bank.sum(axis=1, keepdims=True)
    return bank.T.astype(np.float32)


def _mel_range(settings: MelSettings) -> tuple[float, float]:
    top = settings.sample_rate / 2.0 if settings.fmax is None else settings.fmax
    return float(_hz_to_mel(settings.fmin)), float(_hz_to_mel(min(top, settings.sample_rate / 2)))


def mel_band_hz(settings: MelSettings) -> np.ndarray:
    """(n_mels,) the centre frequency of each log-mel band, in Hz."""
    lo, hi = _mel_range(settings)
    return _mel_to_hz(np.linspace(lo, hi, settings.n_mels + 2)[1:-1])


def mel_band_position(hz: np.ndarray, settings: MelSettings) -> np.ndarray:
    """Fractional index of the log-mel band centred at ``hz`` (-1 at fmin, n_mels at the top)."""
    lo, hi = _mel_range(settings)
    return (_hz_to_mel(hz) - lo) / ((hi - lo) / (settings.n_mels + 1)) - 1.0


DEFAULT_MEL = MelSettings()


def log_mel(audio: np.ndarray, settings: MelSettings = DEFAULT_MEL, chunk: int = 128) -> np.ndarray:
    """(B, T) -> (B, frames, n_mels) natural-log mel power (floored at ``LOG_FLOOR``).

    Works through ``chunk`` items at a time: the framed spectrum of a whole corpus at once
    would need gigabytes.
    """
    audio = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    bank = mel_filterbank(settings.sample_rate, settings.n_fft, settings.n_mels, settings.fmin,
                          settings.fmax)
    out = []
    for start in range(0, audio.shape[0], chunk):
        power = stft_magnitude(audio[start:start + chunk], settings.n_fft, settings.hop) ** 2
        out.append(np.log(power @ bank + LOG_FLOOR).astype(np.float32))
    if not out:
        frames = audio.shape[1] // settings.hop + 1
        return np.zeros((0, frames, settings.n_mels), dtype=np.float32)
    return np.concatenate(out)


def mel_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute log-mel difference per item: (B, F, M) x (B, F, M) -> (B,). 0 iff equal."""
    return np.mean(np.abs(np.asarray(a) - np.asarray(b)), axis=(-2, -1))


def pairwise_mel_distances(feats: np.ndarray, chunk: int = 64) -> np.ndarray:
    """Distances of all unordered pairs of (N, F, M) features -> (N*(N-1)/2,) in row order."""
    flat = np.asarray(feats, dtype=np.float32).reshape(len(feats), -1)
    n = flat.shape[0]
    out = []
    for start in range(0, n, chunk):
        block = flat[start:start + chunk]
        dist = np.mean(np.abs(block[:, None, :] - flat[None, :, :]), axis=-1)  # (chunk, N)
        for row in range(block.shape[0]):
            i = start + row
            out.append(dist[row, i + 1:])
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def multi_resolution_stft_error(
    target: np.ndarray,
    estimate: np.ndarray,
    resolutions: tuple[tuple[int, int], ...] = MR_STFT_RESOLUTIONS,
) -> np.ndarray:
    """Per-item multi-resolution STFT error (spectral convergence + log-magnitude L1), averaged
    over resolutions as in Parallel WaveGAN; 0 for identical signals. (B, T) x (B, T) -> (B,)."""
    target = np.atleast_2d(np.asarray(target, dtype=np.float32))
    estimate = np.atleast_2d(np.asarray(estimate, dtype=np.float32))
    if target.shape != estimate.shape:
        raise ValueError(f"shapes differ: {target.shape} vs {estimate.shape}")
    total = np.zeros(target.shape[0], dtype=np.float64)
    for n_fft, hop in resolutions:
        mag_t = stft_magnitude(target, n_fft, hop)
        mag_e = stft_magnitude(estimate, n_fft, hop)
        diff = np.sqrt(np.sum((mag_t - mag_e) ** 2, axis=(1, 2)))
        norm = np.sqrt(np.sum(mag_t**2, axis=(1, 2)))
        convergence = diff / np.maximum(norm, MAG_FLOOR)
        log_l1 = np.mean(np.abs(np.log(mag_t + MAG_FLOOR) - np.log(mag_e + MAG_FLOOR)),
                         axis=(1, 2))
        total += convergence + log_l1
    return (total / len(resolutions)).astype(np.float32)


# time segments (in frames of the 1024/256 log-mel at 32 kHz: 8 ms) the summary pools over
SUMMARY_SEGMENTS: tuple[tuple[int, int], ...] = ((0, 3), (3, 8), (8, 20), (20, 40), (40, 65))
SUMMARY_BANDS = 16


# 1: spectrum and envelope; 2: plus texture (``texture_features``); 3: plus re-attacks
# (``attack_features``)
FEATURE_SETS = (1, 2, 3)
TEXTURE_SEGMENTS: tuple[tuple[int, int], ...] = ((1, 8), (8, 24), (24, 60))


def band_levels(feats: np.ndarray) -> np.ndarray:
    """(B, frames, n_mels) log-mel -> (B, frames, SUMMARY_BANDS) log power of grouped mels."""
    mels = feats.shape[2]
    if mels < SUMMARY_BANDS:
        return feats
    return np.logaddexp.reduceat(feats, np.linspace(0, mels, SUMMARY_BANDS + 1).astype(int)[:-1],
                                 axis=2)


def texture_features(feats: np.ndarray, bands: np.ndarray | None = None) -> np.ndarray:
    """(B, frames, n_mels) log-mel -> (B, 49) how rough and how tonal the sound is.

    Wire noise makes each band's level flicker from frame to frame while a tom's or a kick's
    modes decay smoothly: per time segment, the mean |second difference in time| of the 16
    band levels (in log units, so level-free down to the log-mel floor). And a tonal body shows
    as narrow peaks of the mel profile over 24-320 ms: the spread of the profile around its own
    5-band moving mean (what they change: docs/models.md, "Feature set 2"). ``bands``: this
    log-mel's ``band_levels`` when the caller has them already.
    """
    feats = np.asarray(feats, dtype=np.float64)
    bands = band_levels(feats) if bands is None else bands
    flicker = np.abs(bands[:, 2:] - 2.0 * bands[:, 1:-1] + bands[:, :-2])  # (B, frames-2, bands)
    out = []
    for lo, hi in TEXTURE_SEGMENTS:
        lo, hi = min(lo, flicker.shape[1] - 1), max(min(hi, flicker.shape[1]), 1)
        out.append(np.log(flicker[:, lo:max(hi, lo + 1)].mean(axis=1) + 1e-3))
    profile = np.log(np.exp(feats[:, 3:40]).mean(axis=1) + 1e-12)  # (B, mels)
    kernel = np.ones(5) / 5.0
    smooth = np.stack([np.convolve(row, kernel, mode="same") for row in profile])
    out.append((profile - smooth)[:, 2:-2].std(axis=1, keepdims=True))
    return np.concatenate(out, axis=1)


def attack_features(frame_level: np.ndarray) -> np.ndarray:
    """(B, frames) frame level (ln power, 0 at the peak) -> (B, 3) how often the sound strikes.

    One hit decays after its peak, a roll or a flam strikes again: from 3 frames (24 ms) after
    the peak on, the largest rise of the level over 2 frames, and the share of frames where it
    rises by more than 6 dB; and the largest rise anywhere before 8 frames past the peak, which
    a flam's grace note or a rim click's ring shows. In ln power / 16 (the envelope's units);
    level-free as far as the troughs between strokes stay above the log-mel floor.
    """
    b, frames = frame_level.shape
    level = np.maximum(frame_level, -16.0)  # floored like the envelope: no rise out of silence
    rise = np.zeros((b, frames))
    rise[:, 2:] = level[:, 2:] - level[:, :-2]
    after = np.arange(frames)[None, :] - frame_level.argmax(axis=1)[:, None]
    late = np.where(after >= 3, rise, 0.0)
    early = np.where((after >= 1) & (after < 8), rise, 0.0)
    strikes = (late > np.log(4.0)).sum(axis=1) / frames
    return np.stack([late.max(axis=1) / 16.0, strikes, early.max(axis=1) / 16.0], axis=1)


def summary_features(feats: np.ndarray, feature_set: int = 1) -> np.ndarray:
    """(B, frames, n_mels) log-mel -> (B, D) level-free summary of spectrum and envelope.

    Every figure is relative to the item's own loudest bin or frame, so a different gain (a
    constant offset in log power) moves none of them, down to the log-mel floor. Per time
    segment: the band profile (``SUMMARY_BANDS`` bands) minus the segment's own mean (the
    spectral shape), the segment level against the peak frame, the centroid and the spread
    over bands; then the frame-level envelope every 4 frames and the times it takes to fall 20
    and 40 dB.
    """
    feats = np.asarray(feats, dtype=np.float64)
    b, frames, mels = feats.shape
    bands = band_levels(feats)
    frame_level = np.log(np.exp(feats).sum(axis=2) + 1e-12)  # (B, frames)
    frame_level = frame_level - frame_level.max(axis=1, keepdims=True)
    idx = np.arange(bands.shape[2], dtype=np.float64)
    out = []
    for lo, hi in SUMMARY_SEGMENTS:
        lo, hi = min(lo, frames - 1), max(min(hi, frames), min(lo, frames - 1) + 1)
        seg = np.log(np.exp(bands[:, lo:hi]).mean(axis=1) + 1e-12)  # (B, bands)
        shape = seg - seg.mean(axis=1, keepdims=True)
        weights = np.exp(seg - seg.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        centroid = (weights * idx).sum(axis=1, keepdims=True)
        spread = np.sqrt((weights * (idx - centroid) ** 2).sum(axis=1, keepdims=True))
        level = np.log(np.exp(frame_level[:, lo:hi]).mean(axis=1, keepdims=True) + 1e-12)
        out += [shape, level, centroid / len(idx), spread / len(idx)]
    envelope = np.maximum(frame_level[:, ::4], -16.0) / 16.0  # ln power, floored ~70 dB down
    peak = frame_level.argmax(axis=1)
    decays = []
    for drop in (np.log(100.0), np.log(10000.0)):  # 20 dB and 40 dB in power
        below = (frame_level < -drop) & (np.arange(frames)[None, :] > peak[:, None])
        first = np.where(below.any(axis=1), below.argmax(axis=1), frames)
        decays.append(((first - peak) / frames)[:, None])
    out += [envelope, *decays]
    if feature_set >= 2:
        out.append(texture_features(feats, bands))
    if feature_set >= 3:
        out.append(attack_features(frame_level))
    return np.concatenate(out, axis=1).astype(np.float32)
