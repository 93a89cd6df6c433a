"""Training throughput (samples/s) under --strategy default and mirrored on N replicas.

Here (no GPU) the CPU is split into N logical devices, so the figure measures the tf.distribute
overhead, not a speed-up; on a multi-GPU machine pass --gpus to mirror over the real GPUs::

    .venv/bin/python bench/train_scaling.py --family conv_autoencoder --replicas 2 --steps 20
    .venv/bin/python bench/train_scaling.py --family wavegan --gpus --steps 50
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, sys, time
import tensorflow as tf
n, gpus = int(sys.argv[1]), sys.argv[2] == "1"
if not gpus and n > 1:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
from pathlib import Path
from snaresynth.data.corpus import Corpus, save_corpus
from snaresynth.models.train import TrainSettings, train
from snaresynth.testing.signals import synthetic_snares
family, steps, batch, tmp = sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), Path(sys.argv[6])
audio = synthetic_snares(64)
data = save_corpus(tmp / "c", Corpus(audio, 16000, [{"source": f"{i}", "label": "snare"}
                                                    for i in range(len(audio))]))
strategy = "default" if n == 1 and not gpus else "mirrored"
times = {}
for total in (2, 2 + steps):  # the first steps pay for tracing: timed apart, subtracted
    t = time.perf_counter()
    train(TrainSettings(family=family, data=data, out=tmp / f"m{total}.keras", steps=total,
                        batch_size=batch, checkpoint_every=0, strategy=strategy))
    times[total] = time.perf_counter() - t
print("RESULT " + json.dumps({"seconds": times[2 + steps] - times[2], "strategy": strategy}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="conv_autoencoder")
    ap.add_argument("--replicas", type=int, default=2, help="largest replica count to measure")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=16, help="global batch")
    ap.add_argument("--gpus", action="store_true", help="mirror over the real GPUs")
    args = ap.parse_args()
    print("| replicas | strategy | global batch | samples/s |\n|---:|---|---:|---:|")
    for n in ([1, 0] if args.gpus else range(1, args.replicas + 1)):
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, str(max(n, 1)), "1" if args.gpus and n == 0
                 else "0", args.family, str(args.steps), str(args.batch_size), tmp],
                cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True)
            lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if not lines:
                sys.exit(proc.stderr[-3000:])
            res = json.loads(lines[-1][7:])
            rate = args.steps * args.batch_size / res["seconds"]
            label = "all GPUs" if n == 0 else str(n)
            print(f"| {label} | {res['strategy']} | {args.batch_size} | {rate:.1f} |")


if __name__ == "__main__":
    main()
