"""Where over the knob travel a model stops sounding like a snare, and what a per-knob quantile map
would change.

    .venv/bin/python bench/travel_misses.py --model snaresynth/bundled/default.keras \
        --data corpora/mix --heldout corpora/soundfonts [--draws 0 1 2] [--alpha 0 0.3 0.6]

Decodes ``snaresynth eval``'s own uniform knob draws (the same seeds give the same points) and
prints what the listener hears the non-snares as, and the non-snare share per quartile of every
knob and of the distance from the centre. ``--alpha`` then bends every knob towards the
quantiles of the training snares' encoded knob values (0: the straight knob, 1: the snares'
marginal distribution, a per-knob learned map) and prints the share and coverage under it.
"""

from __future__ import annotations

import argparse
import collections
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

QUANTILES = 33  # knots of each knob's quantile map
POINTS = 1000  # eval's default


def main() -> None:
    from snaresynth.analysis.evaluate import (
        MAX_SNARES,
        _snare_corpus,
        decode_batched,
        heldout_snares,
        snare_listener,
    )
    from snaresynth.analysis.travel import precision_recall_draws, uniform_knobs
    from snaresynth.models.registry import load

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, help="the model's training corpus")
    p.add_argument("--heldout", type=Path, required=True)
    p.add_argument("--listener", type=Path, default=None)
    p.add_argument("--draws", type=int, nargs="+", default=[0, 1, 2], help="eval --seed values")
    p.add_argument("--alpha", type=float, nargs="*", default=[])
    args = p.parse_args()

    decoder = load(args.model)
    judge = snare_listener(args.listener)
    rate = int(decoder.sample_rate)
    corpus = _snare_corpus(args.data, "training")
    held, held_rate, _ = heldout_snares(args.heldout, corpus)
    held_emb = judge.embed(held, held_rate)
    # eval's set size: its training snares, originals only, at most MAX_SNARES of them
    n = min(sum(not item.get("augment") for item in corpus.items), MAX_SNARES)
    lo, hi = (np.asarray(a, dtype=np.float64) for a in decoder.latent_range())
    snares = np.clip(decoder.encode(corpus.audio), lo, hi)
    qs = np.linspace(0.0, 1.0, QUANTILES)
    knots = np.quantile(snares, qs, axis=0)

    units, heard = [], []
    for seed in args.draws:
        z = uniform_knobs(decoder, POINTS, np.random.default_rng([seed, 1])).astype(np.float64)
        units.append((z - lo) / (hi - lo))
        heard += judge.classify(decode_batched(decoder, z.astype(np.float32)), rate)
        for alpha in args.alpha:
            bent = np.stack([np.interp(units[-1][:, d], qs, knots[:, d])
                             for d in range(lo.size)], axis=1)
            audio = decode_batched(decoder, ((1 - alpha) * z + alpha * bent).astype(np.float32))
            fake = judge.embed(audio[:n * (POINTS // n)], rate)
            precision, recall = precision_recall_draws(held_emb, fake, n).mean(axis=0)
            print(f"draw {seed}, alpha {alpha:g}: snare share "
                  f"{judge.share(audio, rate, 'snare'):.3f}, coverage P {precision:.2f} "
                  f"R {recall:.2f}", flush=True)
    u = np.concatenate(units)
    miss = np.array(heard) != "snare"
    print(f"\n{int(miss.sum())} of {len(miss)} knob settings heard as something else: "
          + ", ".join(f"{k} {v}" for k, v in collections.Counter(
              np.array(heard)[miss].tolist()).most_common()))
    print("\n| knob | non-snares, quartile 1 | 2 | 3 | 4 |\n|---|---:|---:|---:|---:|")
    for d in range(lo.size):
        quarter = np.minimum((u[:, d] * 4).astype(int), 3)
        print(f"| {d + 1} | " + " | ".join(f"{miss[quarter == q].mean():.3f}" for q in range(4))
              + " |")
    radius = np.linalg.norm(u - 0.5, axis=1)
    ring = np.digitize(radius, np.quantile(radius, [0.25, 0.5, 0.75]))
    print("| distance from the centre | " + " | ".join(f"{miss[ring == q].mean():.3f}"
                                                     for q in range(4)) + " |")


if __name__ == "__main__":
    main()
