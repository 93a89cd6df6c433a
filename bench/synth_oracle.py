"""Is the synthesiser or the network the limit of coverage? Fit the synthesiser to each snare.

    .venv/bin/python bench/synth_oracle.py [--model runs/ddsp-mix.keras] [--data corpora/mix] \
        [--heldout corpora/soundfonts] [--steps 200] [--every 100]

A ddsp_snare model's network maps a latent to the synthesiser's parameters. Here the
network's parameters for each training snare (its encoding, decoded) are only the start:
Adam then fits every snare's parameters on their own to that snare (the training loss, the
multi-resolution STFT), all snares in one batch. Every ``--every`` steps it prints the loss
and the coverage (improved precision / recall, k = 3, in the bundled listener's embedding)
of the fitted sounds against the held-out kits' snares, beside the originals' own coverage.
If the fitted sounds cover far more than the model's reconstructions, the synthesiser can
make those snares and the network is what does not reach them. A figure, never pass/fail;
it needs the train extra (TensorFlow).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=Path("runs/ddsp-mix.keras"),
                   help="a ddsp_snare model file with its encoder")
    p.add_argument("--data", type=Path, default=Path("corpora/mix"),
                   help="the model's training corpus (its snares are fitted)")
    p.add_argument("--heldout", type=Path, default=Path("corpora/soundfonts"))
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.05)
    args = p.parse_args()

    from snaresynth.analysis.evaluate import heldout_snares
    from snaresynth.analysis.listener import load_listener
    from snaresynth.analysis.travel import precision_recall
    from snaresynth.data.corpus import load_corpus
    from snaresynth.models import registry
    from snaresynth.models.knobmap import to_network
    from snaresynth.models.synth_fit import decoder_parts, fit_parameters

    decoder = registry.load(args.model, runtime="keras")
    corpus = load_corpus(args.data, label="snare")
    audio = corpus.audio[:, :decoder.length].astype(np.float32)
    lo, hi = (np.asarray(v, np.float32) for v in decoder.latent_range())
    z = to_network(decoder.encode(audio), lo, hi, decoder.metadata.knob_map)
    params, synth = decoder_parts(decoder)
    start = params.predict(z, verbose=0)

    held, rate, kits = heldout_snares(args.heldout, load_corpus(args.data))
    listener = load_listener(None)
    real = listener.embed(held, rate)

    def coverage(sounds: np.ndarray) -> str:
        precision, recall = precision_recall(real, listener.embed(sounds, decoder.sample_rate))
        share = listener.share(sounds, decoder.sample_rate)
        return f"coverage P {precision:.2f} / R {recall:.2f}, snare share {share:.0%}"

    print(f"{len(audio)} snares of {args.data} fitted; {len(held)} held-out snares from "
          f"{len(kits)} kits of {args.heldout}")
    print(f"the originals: {coverage(audio)}")
    print(f"the model's reconstructions: {coverage(synth(start).numpy())}", flush=True)

    def report(step: int, loss: float, seconds: float, raw: np.ndarray) -> None:
        print(f"fitted, step {step}: MR-STFT {loss:.3f}, {coverage(synth(raw).numpy())} "
              f"({seconds:.0f} s)", flush=True)

    fit_parameters(synth, start, audio, args.steps, args.lr, args.every, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
