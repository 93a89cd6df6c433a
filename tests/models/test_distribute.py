"""tf.distribute: every family gives the default strategy's losses under MirroredStrategy.

The CPU is split into two logical devices, which must happen before TensorFlow initialises, so
each check runs in a subprocess. Same global batch, same seed: the batches, the noise draws and
the summed gradients are the same numbers, so losses agree to float rounding (rtol 1e-4; seen:
about 1e-7). Also: a checkpoint written under mirrored resumes under the default strategy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

ROOT = Path(__file__).resolve().parents[2]
RTOL = 1e-4

SCRIPT = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
from pathlib import Path
from snaresynth.data.corpus import Corpus, save_corpus
from snaresynth.models.base import read_metadata
from snaresynth.models.train import TrainSettings, train
from snaresynth.testing.signals import synthetic_snares
family, tmp, runs = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
config = json.loads(sys.argv[4])
audio = synthetic_snares()
items = [{"source": f"s{i}.wav", "label": "snare"} for i in range(len(audio))]
data = save_corpus(tmp / "corpus", Corpus(audio, 16000, items))
out = []
for run in runs:
    path = train(TrainSettings(family=family, data=data, out=tmp / run["out"], steps=run["steps"],
                               batch_size=4, checkpoint_every=run.get("every", 0),
                               checkpoint_dir=tmp / run["ckpt"], resume=run.get("resume", False),
                               overrides=config, strategy=run["strategy"]))
    out.append(read_metadata(path).training)
print("RESULT " + json.dumps(out))
"""


def run_training(family: str, tmp_path: Path, runs: list[dict]) -> list[dict]:
    from test_families import tiny_config  # pytest puts this folder on the path (no __init__)

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, family, str(tmp_path), json.dumps(runs),
         json.dumps(tiny_config(family))],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


# one family in the quick run (a TensorFlow start per subprocess: ~15-30 s on 2 shared cores)
FAMILIES = ["autoencoder"] + [pytest.param(f, marks=pytest.mark.slow)
                              for f in ("conv_autoencoder", "vae", "ddsp_snare", "wavegan")]


@pytest.mark.parametrize("family", FAMILIES)
def test_mirrored_matches_default(family: str, tmp_path: Path) -> None:
    runs = [{"strategy": s, "out": f"{s}.keras", "ckpt": f"{s}.ckpt", "steps": 3}
            for s in ("default", "mirrored")]
    default, mirrored = run_training(family, tmp_path, runs)
    assert mirrored["strategy"] == "mirrored" and mirrored["replicas"] == 2
    assert default["losses"].keys() == mirrored["losses"].keys()
    for key, value in default["losses"].items():
        assert mirrored["losses"][key] == pytest.approx(value, rel=RTOL, abs=1e-7), key


def test_checkpoint_from_mirrored_resumes_under_default(tmp_path: Path) -> None:
    runs = [{"strategy": "mirrored", "out": "a.keras", "ckpt": "run.ckpt", "steps": 2,
             "every": 1},
            {"strategy": "default", "out": "b.keras", "ckpt": "run.ckpt", "steps": 4,
             "resume": True}]
    first, resumed = run_training("vae", tmp_path, runs)
    assert first["steps"] == 2
    assert resumed["steps"] == 4 and resumed["resumed_from"] == 2
    assert resumed["strategy"] == "default"
    # the KL ramp (kl_warmup 2 in the tiny config) continued from the mirrored run's step
    assert resumed["losses"]["kl_weight"] == pytest.approx(resumed["config"]["kl_weight"])
