"""Training throughput (samples/s) under --strategy default, mirrored and multiworker.

Here (no GPU) ``--replicas N`` splits the CPU into N logical devices, so the figure measures the
tf.distribute overhead, not a speed-up; on a multi-GPU machine pass --gpus to mirror over the
real GPUs. ``--workers N`` starts N processes on localhost ports (TF_CONFIG, worker 0 the chief)
under MultiWorkerMirroredStrategy, each with its share of the CPU cores. The steps are timed
inside one run, after the first (tracing) ones, so process start-up and tracing do not count::

    .venv/bin/python bench/train_scaling.py --family conv_autoencoder --replicas 2 --steps 20
    .venv/bin/python bench/train_scaling.py --family conv_autoencoder --workers 2 --steps 20
    .venv/bin/python bench/train_scaling.py --family wavegan --gpus --steps 50
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WARM = 3  # the first steps trace the step function: not timed

CHILD = """
import json, sys, time
import tensorflow as tf
mode, n, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if threads:  # several workers share this machine's cores
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
if mode == "mirrored" and n > 1:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
from pathlib import Path
import snaresynth.models.progress as progress
from snaresynth.data.corpus import Corpus, save_corpus
from snaresynth.models.train import TrainSettings, train
from snaresynth.testing.signals import synthetic_snares
family, steps, batch, tmp = sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), Path(sys.argv[7])
warm = int(sys.argv[8])
audio = synthetic_snares(64)
data = save_corpus(tmp / "c", Corpus(audio, 16000, [{"source": f"{i}", "label": "snare"}
                                                    for i in range(len(audio))]))
stamps = []  # when each step ended, as the training loop's own callback saw it
make = progress.progress_callback
def timed(*args, **kwargs):
    callback = make(*args, **kwargs)
    step_end = callback.on_train_batch_end
    def on_train_batch_end(batch, logs=None):
        step_end(batch, logs)
        stamps.append(time.perf_counter())
    callback.on_train_batch_end = on_train_batch_end
    return callback
progress.progress_callback = timed
train(TrainSettings(family=family, data=data, out=tmp / "m.keras", steps=warm + steps + 1,
                    batch_size=batch, checkpoint_every=0, strategy=mode))
# steps warm+1 .. warm+steps; the last one also decodes the audio previews, so it is left out
print("RESULT " + json.dumps({"seconds": stamps[warm + steps - 1] - stamps[warm - 1]}))
"""


def measure(mode: str, n: int, args: argparse.Namespace) -> float:
    """Seconds for ``args.steps`` steps (after tracing) in ``n`` replicas or worker processes."""
    workers = n if mode == "multiworker" else 1
    threads = max(1, (os.cpu_count() or 1) // workers) if workers > 1 else 0
    configs: list[str | None] = [None]
    if workers > 1:
        from snaresynth.models.distribute import localhost_tf_configs

        configs = list(localhost_tf_configs(workers))
    with tempfile.TemporaryDirectory() as tmp:
        procs = []
        for index, tf_config in enumerate(configs):
            folder = Path(tmp) / f"w{index}"  # each worker its own disk, as on separate machines
            folder.mkdir()
            env = {**os.environ, **({"TF_CONFIG": tf_config} if tf_config else {})}
            procs.append(subprocess.Popen(
                [sys.executable, "-c", CHILD, mode, str(n), str(threads), args.family,
                 str(args.steps), str(args.batch_size), str(folder), str(WARM)],
                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        outputs = [proc.communicate() for proc in procs]  # the chief's result is the run's
    lines = [x for x in outputs[0][0].splitlines() if x.startswith("RESULT ")]
    if not lines:
        sys.exit("\n".join(err[-3000:] for _, err in outputs))
    return float(json.loads(lines[-1][7:])["seconds"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="conv_autoencoder")
    ap.add_argument("--replicas", type=int, default=2, help="largest replica count to measure")
    ap.add_argument("--workers", type=int, default=0,
                    help="measure 1 process and this many multiworker processes instead")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=16, help="global batch")
    ap.add_argument("--gpus", action="store_true", help="mirror over the real GPUs")
    args = ap.parse_args()
    if args.gpus:
        runs = [("default", 1, "1"), ("mirrored", 0, "all GPUs")]
    elif args.workers:
        runs = [("default", 1, "1"), ("multiworker", args.workers, f"{args.workers} workers")]
    else:
        runs = [("default" if n == 1 else "mirrored", n, str(n))
                for n in range(1, args.replicas + 1)]
    print("| replicas | strategy | global batch | samples/s |\n|---:|---|---:|---:|")
    for mode, n, label in runs:
        rate = args.steps * args.batch_size / measure(mode, n, args)
        print(f"| {label} | {mode} | {args.batch_size} | {rate:.1f} |")


if __name__ == "__main__":
    main()
