"""Train the summary listener and print its leave-one-kit-out and leave-one-source-out figures.

    snaresynth dataset build --hydrogen --out corpora/hydrogen
    snaresynth dataset build --soundfont /usr/share/sounds/sf2/*.sf2 --out corpora/soundfonts
    .venv/bin/python bench/listener_cv.py --data corpora/hydrogen corpora/soundfonts \
        --out runs/listener.keras

Prints Markdown (per-class recall / precision and the confusion matrices) for docs/models.md.
``--quick N`` screens a variant on N kit folds (drawn with a fixed seed) without the source
folds; the figures to report are the full run's.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    from snaresynth.analysis.ear import (
        BALANCE,
        FEATURE_SET,
        MEMBERS,
        REPITCH,
        EarRecipe,
        format_confusion,
        train_ear,
    )
    from snaresynth.analysis.features import FEATURE_SETS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--copies", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--members", type=int, default=MEMBERS, help="nets averaged by the listener")
    p.add_argument("--repitch", type=float, default=REPITCH,
                   help="share of augmented copies played faster or slower")
    p.add_argument("--balance", type=float, default=BALANCE,
                   help="class weights: the inverse class frequency to this power (1: balanced, "
                        "0: none)")
    p.add_argument("--features", type=int, default=FEATURE_SET, choices=FEATURE_SETS,
                   help="summary feature set (3: with the re-attack features)")
    p.add_argument("--quick", type=int, default=0, metavar="N",
                   help="only N kit folds and no source folds (a screen, not a figure)")
    args = p.parse_args()
    recipe = EarRecipe(epochs=args.epochs, copies=args.copies, seed=args.seed,
                       members=args.members, repitch=args.repitch, balance=args.balance,
                       features=args.features)
    report = train_ear(args.data, args.out, recipe, sources=not args.quick, limit=args.quick)
    print(f"wrote {report.path} ({report.path.stat().st_size / 1e3:.0f} kB) from "
          f"{report.items} items in {report.seconds:.0f} s")
    for title, result in (("leave-one-kit-out", report.kit),
                          ("leave-one-source-out", report.source)):
        if not result:
            continue
        classes = list(result["per_class"])
        print(f"\n{title}: {result['folds']} folds, {result['items']} held-out files, "
              f"overall {result['overall']:.2f}, balanced {result['balanced']:.2f}\n")
        print(format_confusion(result, classes))
        wrong = [m for m in result["misheard"] if "snare" in m[1:]]
        print(f"\n{title}: the {len(wrong)} snares missed and false snares (file, true, heard)\n")
        for name, true, heard in sorted(wrong, key=lambda m: (m[2] != "snare", m[0])):
            print(f"- {true} heard as {heard}: {name}")


if __name__ == "__main__":
    main()
