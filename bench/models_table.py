"""The models table of docs/models.md, made by one command.

    .venv/bin/python bench/models_table.py [--train] [--data corpora/mix] [--runs runs/study-mix]

With ``--train`` it first trains every study model that is not there yet (the exact
``snaresynth train`` commands below; an interrupted run resumes from its checkpoint), one at a
time. Then it runs ``snaresynth eval --markdown`` on the bundled default model and every study
model present, judged against the snares of ``--heldout`` kits none of them heard, and writes
both of eval's tables, the date, the machine and the commands into docs/models.md between the
``models-table`` marker comments. The corpora (the bundled model's own, and the SoundFont kits):

    snaresynth dataset build --hydrogen --soundfont /usr/share/sounds/sf2/FluidR3_GM.sf2 \
        /usr/share/sounds/sf2/TimGM6mb.sf2 --instruments snare --out corpora/mix
    snaresynth dataset build --soundfont /usr/share/sounds/sf2/*.sf2 --out corpora/soundfonts

The step counts are sized for about 4-8 minutes per model on 2 shared CPU cores (the WaveGANs
about 30 minutes each); they are far shorter than the study's 700 epochs, and the table says so.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "models.md"
DEFAULT_MODEL = Path("snaresynth/bundled/default.keras")
START = "<!-- models-table:start (written by bench/models_table.py; do not edit by hand) -->"
END = "<!-- models-table:end -->"

# name -> (training arguments, steps). Model files are <runs>/<name>.keras.
STUDY: dict[str, tuple[list[str], int]] = {
    "autoencoder": (["--family", "autoencoder"], 2000),
    "conv_autoencoder": (["--family", "conv_autoencoder"], 800),
    # d = 8 (the recipe's 16 and the paper's 64 are too slow here: ~3 s a step at d = 8)
    "wavegan-nearest": (["--recipe", "wavegan-nearest", "--d", "8"], 600),
    "vae-a": (["--recipe", "vae-a"], 800),
    "vae-b": (["--recipe", "vae-b"], 800),
    "vae-c": (["--recipe", "vae-c"], 800),
    # the recipes' KL warm-up (30000 batches) is far longer than these runs, so the KL weight
    # never gets past 3% of its value; this set ramps it over the first third of the run
    "vae-a-warmup": (["--recipe", "vae-a", "--kl-warmup", "267"], 800),
    "vae-b-warmup": (["--recipe", "vae-b", "--kl-warmup", "267"], 800),
    "vae-c-warmup": (["--recipe", "vae-c", "--kl-warmup", "267"], 800),
    # A and C again, 3000 batches with the full KL weight from batch 1000 on
    "vae-a-long": (["--recipe", "vae-a", "--kl-warmup", "1000"], 3000),
    "vae-c-long": (["--recipe", "vae-c", "--kl-warmup", "1000"], 3000),
    "wavegan-transpose": (["--recipe", "wavegan-nearest", "--d", "8",
                           "--set", 'upsample="transpose"'], 600),
}


def train_command(name: str, data: Path, runs: Path) -> list[str]:
    args, steps = STUDY[name]
    out = runs / f"{name}.keras"
    return ["snaresynth", "train", *args, "--data", str(data), "--out", str(out),
            "--steps", str(steps), "--seed", "0", "--checkpoint-every", "100",
            "--checkpoint-dir", str(runs / f"{name}.ckpt")]


def _snaresynth() -> list[str]:
    return [sys.executable, "-m", "snaresynth.cli"]


def train_missing(data: Path, runs: Path, only: list[str] | None) -> None:
    runs.mkdir(parents=True, exist_ok=True)
    for name in only or list(STUDY):
        out = runs / f"{name}.keras"
        if out.is_file():
            print(f"[models_table] {out} present, not retrained", flush=True)
            continue
        cmd = train_command(name, data, runs)
        if (runs / f"{name}.ckpt").is_dir():
            cmd.append("--resume")
        print(f"[models_table] {shlex.join(cmd)}", flush=True)
        start = time.monotonic()
        with open(runs / f"{name}.log", "w", encoding="utf-8") as logf:
            subprocess.run(_snaresynth() + cmd[1:], cwd=ROOT, stdout=logf,
                           stderr=subprocess.STDOUT, check=True)
        print(f"[models_table] {name}: {time.monotonic() - start:.0f} s", flush=True)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu}, {cores} cores, {platform.system()} {platform.release()}, "
            f"load average {load:.1f} at the start (the cores are shared with other work)")


def write_table(data: Path, runs: Path, heldout: Path | None, extra_args: list[str]) -> str:
    models = [DEFAULT_MODEL] + [runs / f"{n}.keras" for n in STUDY
                                 if (runs / f"{n}.keras").is_file()]
    held = ["--heldout", str(heldout)] if heldout else []
    cmd = ["snaresynth", "eval", "--markdown", "--data", str(data), *held, *extra_args,
           "--model", *map(str, models)]
    print(f"[models_table] {shlex.join(cmd)}", flush=True)
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    where = machine()
    start = time.monotonic()
    done = subprocess.run(_snaresynth() + cmd[1:], cwd=ROOT, capture_output=True, text=True,
                          check=True)
    seconds = time.monotonic() - start
    table = done.stdout.strip()
    block = "\n".join([
        START,
        f"Measured {when} on {where}; eval took {seconds:.0f} s.",
        "",
        "```sh",
        shlex.join(cmd),
        "```",
        "",
        table,
        END,
    ])
    text = DOC.read_text(encoding="utf-8") if DOC.is_file() else f"# Models\n\n{START}\n{END}\n"
    if START not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(head + block + tail, encoding="utf-8")
    print(table)
    print(f"[models_table] wrote {DOC.relative_to(ROOT)}", flush=True)
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path("corpora/mix"),
                   help="the training corpus (the bundled model's)")
    p.add_argument("--heldout", type=Path, default=Path("corpora/soundfonts"),
                   help="kits for the coverage figures (those not in --data are used)")
    p.add_argument("--runs", type=Path, default=Path("runs/study-mix"))
    p.add_argument("--train", action="store_true", help="train missing study models first")
    p.add_argument("--only", nargs="+", choices=list(STUDY), help="train only these")
    p.add_argument("--no-table", action="store_true", help="train only, write no table")
    p.add_argument("--commands", action="store_true", help="print the training commands")
    p.add_argument("--eval-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for snaresynth eval (repeatable)")
    args = p.parse_args(argv)
    if args.commands:
        for name in STUDY:
            print(shlex.join(train_command(name, args.data, args.runs)))
        return 0
    if args.train:
        train_missing(args.data, args.runs, args.only)
    if not args.no_table:
        write_table(args.data, args.runs, args.heldout, args.eval_arg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
