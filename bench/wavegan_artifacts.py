"""Upsampling artefacts of the WaveGAN generator: transposed convolution vs nearest-neighbour.

The study's WaveGAN snares sounded "bitcrushed". Pons et al. (ICASSP 2021, "Upsampling
artifacts in neural audio synthesis") name two causes, both measured here on generator outputs:

* tonal artefacts: a stride-4 transposed convolution repeats a 4-sample pattern, i.e. puts tones
  at multiples of its *input* rate. Layer L (1 = last) has input rate fs / 4**L, so the output has
  peaks at k * fs / 4**L. ``tone dB`` = power in those FFT bins over the median power of the bins
  around them (10 log10, mean over the bins of that layer; ~0 dB = no tone).
* spectral replicas: upsampling by 4 copies the band below r/2 (r = fs/4 for the last layer)
  mirrored around r/2. ``replica`` = correlation of the detrended log spectrum below r/2 with its
  mirror image (0 = independent, 1 = exact copy), median over outputs.

Both at initialisation and after a short WGAN-GP run on a corpus (synthetic snares unless
--data), medians over --seeds seeds, with the corpus itself as the reference row. This prints
figures; it never passes or fails. Example (about 5 minutes on one core)::

    python bench/wavegan_artifacts.py --seeds 3 --d 4 --steps 40

With ``--models A.keras B.keras`` it trains nothing and measures saved WaveGAN generators
(``snaresynth train --family wavegan``) on ``--samples`` latents drawn from their prior::

    python bench/wavegan_artifacts.py --data corpora/hydrogen --samples 64 \
        --models runs/study/wavegan-transpose.keras runs/study/wavegan-nearest.keras
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from snaresynth.testing.signals import synthetic_snares

LENGTH = 16384
LAYERS = 5


def spectra(audio: np.ndarray) -> np.ndarray:
    """Power spectra (N, LENGTH // 2 + 1) of Hann-windowed one-shots."""
    window = np.hanning(audio.shape[1])
    return np.abs(np.fft.rfft(audio * window, axis=1)) ** 2 + 1e-20


def tone_db(power: np.ndarray, layer: int, half_width: int = 6) -> float:
    """Mean peak-over-neighbourhood (dB) at multiples of layer ``layer``'s input rate."""
    mean = power.mean(axis=0)
    n_bins = mean.shape[0] - 1  # bin n_bins is Nyquist
    spacing = LENGTH // 4**layer  # bins between multiples of fs / 4**layer
    ratios = []
    for b in range(spacing, n_bins - half_width, spacing):
        around = np.r_[mean[b - half_width:b - 1], mean[b + 2:b + half_width + 1]]
        ratios.append(10 * np.log10(mean[b] / np.median(around)))
    return float(np.mean(ratios))


def replica_corr(power: np.ndarray, layer: int = 1, smooth: int = 33) -> float:
    """Median correlation of the detrended log spectrum below r/2 with its mirror about r/2."""
    r = LENGTH // 4**layer  # the layer's input rate in bins (its output rate is 4r)
    logp = np.log(power[:, : r + 1])
    kernel = np.ones(smooth) / smooth
    corrs = []
    for row in logp:
        trend = np.convolve(np.pad(row, smooth // 2, mode="edge"), kernel, mode="valid")
        fine = row - trend
        low, mirror = fine[1 : r // 2], fine[r - 1 : r - r // 2 : -1]
        corrs.append(np.corrcoef(low, mirror)[0, 1])
    return float(np.median(corrs))


def figures(audio: np.ndarray) -> dict[str, float]:
    power = spectra(audio)
    out = {f"L{layer}": tone_db(power, layer) for layer in range(1, LAYERS + 1)}
    out["tone"] = float(np.mean([out[f"L{layer}"] for layer in range(1, LAYERS + 1)]))
    out["replica"] = replica_corr(power)
    return out


VARIANTS = {  # name -> config overrides
    "transpose": {"upsample": "transpose"},
    "transpose+post": {"upsample": "transpose", "post_filter": True},
    "nearest": {"upsample": "nearest"},
    "nearest+post": {"upsample": "nearest", "post_filter": True},
}


def run_variant(name: str, audio: np.ndarray, rate: int, seed: int,
                args: argparse.Namespace) -> tuple[dict[str, float], dict[str, float], float]:
    import keras

    from snaresynth.models import wavegan
    from snaresynth.models.train import make_dataset

    config = {**wavegan.default_config(), **VARIANTS[name], "d": args.d,
              "batch_size": args.batch, "phase_shuffle": args.phase_shuffle}
    keras.utils.set_random_seed(seed)
    trainer = wavegan.build_trainer(config, rate, LENGTH)
    trainer.compile()
    z = np.random.default_rng(1000 + seed).uniform(-1, 1, (args.samples, 100)).astype(np.float32)
    before = figures(np.asarray(trainer.decoder(z, training=False)))
    start = time.monotonic()
    if args.steps:
        trainer.fit(make_dataset(audio, args.batch, seed), steps_per_epoch=args.steps, epochs=1,
                    verbose=0, shuffle=False)
    after = figures(np.asarray(trainer.decoder(z, training=False)))
    return before, after, time.monotonic() - start


def saved_model_figures(path: Path, samples: int) -> dict[str, float]:
    """Figures of a saved generator's outputs at ``samples`` latents drawn from its prior."""
    from snaresynth.models.registry import load_model_file

    decoder = load_model_file(path)
    lo, hi = (np.asarray(v, dtype=np.float32) for v in decoder.latent_range())
    z = np.random.default_rng(0).uniform(lo, hi, (samples, decoder.latent_dim))
    return figures(np.asarray(decoder.decode(z.astype(np.float32))))


def median_row(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.median([r[k] for r in rows])) for k in rows[0]}


def fmt(label: str, row: dict[str, float]) -> str:
    layers = " ".join(f"{row[f'L{i}']:6.1f}" for i in range(1, LAYERS + 1))
    return f"{label:<32} {layers}   {row['tone']:6.1f}   {row['replica']:6.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="corpus folder (default: synthetic snares)")
    parser.add_argument("--rate", type=int, default=16000, help="rate of the synthetic corpus")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--d", type=int, default=4, help="WaveGAN model size")
    parser.add_argument("--steps", type=int, default=40, help="generator steps of the short run")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--phase-shuffle", type=int, default=2)
    parser.add_argument("--samples", type=int, default=16, help="generator outputs measured")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow CPU threads")
    parser.add_argument("--models", type=Path, nargs="+",
                        help="measure these saved generators instead of training")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    if args.data:
        from snaresynth.data.corpus import load_corpus

        corpus = load_corpus(args.data, label="snare")
        audio, rate = corpus.audio, corpus.sample_rate
    else:
        audio, rate = synthetic_snares(64, args.rate, 0), args.rate
    if args.models:
        print(f"WaveGAN upsampling artefacts of saved generators: {args.samples} outputs each, "
              f"corpus {args.data or 'synthetic'} ({len(audio)} @ {rate} Hz)")
    else:
        print(f"WaveGAN upsampling artefacts: d={args.d}, {args.steps} steps of batch "
              f"{args.batch}, phase shuffle {args.phase_shuffle}, {args.samples} outputs, "
              f"median of {args.seeds} seeds, corpus {args.data or 'synthetic'} "
              f"({len(audio)} @ {rate} Hz)")
    print(f"{'':<32} {'tone dB at k*fs/4^L, L = 1..5':<34} {'mean':>6}   replica")
    print(fmt("corpus (reference)", figures(audio)))
    if args.models:
        for path in args.models:
            print(fmt(path.name, saved_model_figures(path, args.samples)), flush=True)
        return
    for name in args.variants.split(","):
        results = [run_variant(name, audio, rate, seed, args) for seed in range(args.seeds)]
        print(fmt(f"{name} init", median_row([r[0] for r in results])))
        seconds = np.median([r[2] for r in results])
        label = f"{name} {args.steps} steps ({seconds:.0f}s)"
        print(fmt(label, median_row([r[1] for r in results])), flush=True)


if __name__ == "__main__":
    main()
