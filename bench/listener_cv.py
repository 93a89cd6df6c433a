"""Train the summary listener and print its leave-one-kit-out and leave-one-source-out figures.

    snaresynth dataset build --hydrogen --out corpora/hydrogen
    snaresynth dataset build --soundfont /usr/share/sounds/sf2/*.sf2 --out corpora/soundfonts
    .venv/bin/python bench/listener_cv.py --data corpora/hydrogen corpora/soundfonts \
        --out runs/listener.keras

Prints Markdown (per-class recall / precision and the confusion matrices) for docs/models.md.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    from snaresynth.analysis.ear import format_confusion, train_ear

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--copies", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    report = train_ear(args.data, args.out, args.epochs, args.copies, args.seed)
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


if __name__ == "__main__":
    main()
