"""tf.distribute: every trainer gives the default strategy's losses under MirroredStrategy.

The CPU is split into two logical devices, which must happen before TensorFlow initialises, so
each check runs in a subprocess of its own (a second MirroredStrategy in one process reuses the
first one's collective keys); each uses one thread, so a module fixture runs two at once. Same
global batch, same seed: the batches, the noise draws and the summed gradients are the same
numbers, so losses agree to float rounding (rtol 1e-4; seen: about 1e-7). One family per
trainer: conv_autoencoder is wavegan's generator trained by the autoencoder's trainer, both
checked here. Also: a checkpoint written under mirrored resumes under the default strategy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
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
tmp, job = Path(sys.argv[1]), json.loads(sys.argv[2])
audio = synthetic_snares()
items = [{"source": f"s{i}.wav", "label": "snare"} for i in range(len(audio))]
data = save_corpus(tmp / "corpus", Corpus(audio, 16000, items))
out = []
for run in job["runs"]:
    path = train(TrainSettings(family=job["family"], data=data, out=tmp / run["out"],
                               steps=run["steps"], batch_size=4,
                               checkpoint_every=run.get("every", 0),
                               checkpoint_dir=tmp / run["ckpt"], resume=run.get("resume", False),
                               overrides=job["config"], strategy=run["strategy"]))
    out.append(read_metadata(path).training)
print("RESULT " + json.dumps(out), flush=True)
"""


from test_families import TRAINER_FAMILIES as FAMILIES  # noqa: E402  (this folder is on the path)

MATCH = [{"strategy": s, "out": f"{s}.keras", "ckpt": f"{s}.ckpt", "steps": 3}
         for s in ("default", "mirrored")]
RESUME = [{"strategy": "mirrored", "out": "a.keras", "ckpt": "run.ckpt", "steps": 2, "every": 1},
          {"strategy": "default", "out": "b.keras", "ckpt": "run.ckpt", "steps": 4,
           "resume": True}]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    """Every job's training records, by job name, a subprocess each."""
    from test_families import tiny_config  # pytest puts this folder on the path (no __init__)

    jobs = {f: {"family": f, "runs": MATCH, "config": tiny_config(f)} for f in FAMILIES}
    jobs["resume"] = {"family": "vae", "runs": RESUME, "config": tiny_config("vae")}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}

    def run(name: str) -> list[dict]:
        tmp = tmp_path_factory.mktemp(name)
        proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp), json.dumps(jobs[name])],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        assert proc.returncode == 0 and lines, f"{name}:\n{proc.stderr[-3000:]}"
        return json.loads(lines[-1][len("RESULT "):])

    with ThreadPoolExecutor(2) as pool:  # two cores: two one-thread trainings at a time
        found = dict(zip(jobs, pool.map(run, jobs), strict=True))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_mirrored_matches_default(family: str, results: dict[str, list[dict]]) -> None:
    default, mirrored = results[family]
    assert mirrored["strategy"] == "mirrored" and mirrored["replicas"] == 2
    assert default["losses"].keys() == mirrored["losses"].keys()
    for key, value in default["losses"].items():
        assert mirrored["losses"][key] == pytest.approx(value, rel=RTOL, abs=1e-7), key


@pytest.mark.slow
def test_checkpoint_from_mirrored_resumes_under_default(results: dict[str, list[dict]]) -> None:
    first, resumed = results["resume"]
    assert first["steps"] == 2
    assert resumed["steps"] == 4 and resumed["resumed_from"] == 2
    assert resumed["strategy"] == "default"
    # the KL ramp (kl_warmup 2 in the tiny config) continued from the mirrored run's step
    assert resumed["losses"]["kl_weight"] == pytest.approx(resumed["config"]["kl_weight"])
