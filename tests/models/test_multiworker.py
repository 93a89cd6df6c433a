"""MultiWorkerMirroredStrategy for real: two worker processes on localhost ports.

One pair of processes (TF_CONFIG with two workers, worker 0 the chief) runs, through the CLI
(``snaresynth train --strategy multiworker``), in this order:

1. one family per trainer (not conv_autoencoder: wavegan's generator under the autoencoder's
   trainer, both here), 3 steps, global batch 4: the same losses as the default strategy
   (rtol 1e-4, as for MirroredStrategy; the same batches, noise and summed gradients, so only
   float rounding differs), and only the chief writes checkpoints, logs (with audio previews)
   and model files;
2. the default strategy's 3 steps of each of them, the work split between the two processes
   (``DEFAULT_ON_CHIEF``; collective ops do not change what a default-strategy run computes);
3. a long autoencoder run that the test cuts short by SIGKILLing worker 1 once two checkpoints
   exist: the chief stops with one line naming the checkpoint to --resume from, which resumes
   under the default strategy here.

Everything in one module-scoped fixture: each process pays for TensorFlow's start once. Then,
each with processes of its own (the tiniest autoencoder): SIGTERM to worker 0 of a pair stops
both at the same step with a checkpoint; a worker that never starts ends the other's wait
(``--worker-wait``) with exit code 2; SIGTERM / SIGINT under the default strategy stop after a
checkpoint, and the terminal shows none of TensorFlow's or absl's lines.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

tf = pytest.importorskip("tensorflow")

from test_families import TRAINER_FAMILIES as FAMILIES  # noqa: E402  (this folder is on the path)

from snaresynth.data.corpus import Corpus, save_corpus  # noqa: E402
from snaresynth.models.base import read_metadata  # noqa: E402
from snaresynth.models.distribute import localhost_tf_configs  # noqa: E402
from snaresynth.models.progress import PREVIEWS  # noqa: E402
from snaresynth.models.train import TrainSettings, train  # noqa: E402
from snaresynth.testing.signals import synthetic_snares  # noqa: E402

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# the families whose default-strategy losses the chief computes (worker 1: the others), so the
# two take about equal CPU time (the chief also writes the model files)
DEFAULT_ON_CHIEF = {"autoencoder", "vae", "ddsp_snare"}
RATE, RTOL = 16000, 1e-4
START_S = 600  # phases 1 and 2 must reach the killed run by then (a broken cluster fails)
STOP_S = 120  # the chief must exit this long after worker 1 died, else the test fails (a hang)

WORKER = """
import json, sys
from pathlib import Path
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
from snaresynth.cli import main
tmp, index = Path(sys.argv[1]), int(sys.argv[2])
configs, defaults = json.loads(sys.argv[3]), json.loads(sys.argv[4])
here = tmp / f"w{index}"
def train(family, strategy, out, *flags):
    args = ["train", "--family", family, "--strategy", strategy, "--data", str(tmp / "corpus"),
            "--out", str(out), "--batch-size", "4", "--seed", "0", *flags]
    for key, value in configs[family].items():
        args += ["--set", f"{key}={json.dumps(value)}"]
    rc = main(args)
    if rc:
        sys.exit(rc)
for family in configs:
    train(family, "multiworker", here / "mw" / f"{family}.keras", "--steps", "3",
          "--checkpoint-every", "0")
for family in defaults:
    train(family, "default", here / "default" / f"{family}.keras", "--steps", "3",
          "--checkpoint-every", "0")
train("autoencoder", "multiworker", here / "dead.keras", "--steps", "1000000",
      "--checkpoint-every", "2")
"""


@dataclass
class Cluster:
    tmp: Path
    chief_rc: int
    chief_err: str
    latest: str  # the killed run's last checkpoint, as the chief left it


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else "(no output)"


def _checkpoints(folder: Path) -> list[Path]:
    return sorted(folder.glob("ckpt-*.index"))


def _corpus(tmp: Path) -> Path:
    audio = synthetic_snares()
    return save_corpus(tmp / "corpus", Corpus(audio, RATE, [
        {"source": f"s{i}.wav", "label": "snare"} for i in range(len(audio))]))


def _worker_env(tmp: Path, index: int, tf_config: str | None) -> dict[str, str]:
    scratch = tmp / f"scratch{index}"  # TMPDIR: where a non-chief keeps its checkpoints
    scratch.mkdir(exist_ok=True)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TMPDIR": str(scratch)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the CLI's own quiet start is under test
    if tf_config is not None:
        env["TF_CONFIG"] = tf_config
    return env


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    from test_families import tiny_config  # pytest puts this folder on the path (no __init__)

    tmp = tmp_path_factory.mktemp("multiworker")
    _corpus(tmp)
    configs = {family: tiny_config(family) for family in FAMILIES}
    procs, errs = [], []
    for index, tf_config in enumerate(localhost_tf_configs(2)):
        env = {**_worker_env(tmp, index, tf_config), "TF_CPP_MIN_LOG_LEVEL": "2"}
        errs.append(tmp / f"worker{index}.err")
        with open(tmp / f"worker{index}.out", "w") as out, open(errs[-1], "w") as err:
            procs.append(subprocess.Popen(
                [sys.executable, "-c", WORKER, str(tmp), str(index), json.dumps(configs),
                 json.dumps([f for f in configs if (f in DEFAULT_ON_CHIEF) == (index == 0)])],
                cwd=ROOT, env=env, stdout=out, stderr=err))
    try:
        deadline = time.monotonic() + START_S
        while len(_checkpoints(tmp / "w0" / "dead.ckpt")) < 2:
            dead = [i for i, p in enumerate(procs) if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                pytest.fail(f"workers {dead or 'too slow'} before the run to kill:\n"
                            + "\n".join(f"--- worker {i}\n{_tail(e)}" for i, e in enumerate(errs)))
            time.sleep(0.2)
        procs[1].send_signal(signal.SIGKILL)
        try:
            rc = procs[0].wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the chief still runs {STOP_S} s after worker 1 died:\n{_tail(errs[0])}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    latest = tf.train.latest_checkpoint(str(tmp / "w0" / "dead.ckpt"))
    return Cluster(tmp, rc, errs[0].read_text(errors="replace"), latest)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_multiworker_losses_match_default(cluster: Cluster, family: str) -> None:
    mw = read_metadata(cluster.tmp / "w0" / "mw" / f"{family}.keras").training
    worker = 0 if family in DEFAULT_ON_CHIEF else 1
    default = read_metadata(cluster.tmp / f"w{worker}" / "default" / f"{family}.keras").training
    assert mw["strategy"] == "multiworker" and mw["replicas"] == 2 and mw["steps"] == 3
    assert default["strategy"] == "default" and default["replicas"] == 1
    assert mw["losses"].keys() == default["losses"].keys()
    for key, value in default["losses"].items():
        assert mw["losses"][key] == pytest.approx(value, rel=RTOL, abs=1e-7), key


def test_only_the_chief_writes(cluster: Cluster) -> None:
    for family in FAMILIES:
        ckpt = cluster.tmp / "w0" / "mw" / f"{family}.ckpt"
        assert (cluster.tmp / "w0" / "mw" / f"{family}.keras").is_file()
        assert [p.name for p in _checkpoints(ckpt)] == ["ckpt-3.index"]
        assert (ckpt / "run.json").is_file() and list((ckpt / "logs").glob("events.*"))
    assert not (cluster.tmp / "w1" / "mw").exists()  # worker 1 got the same flags
    assert not list((cluster.tmp / "w1").glob("dead.*"))
    # worker 1 saved into scratch folders and removed each; the killed run's could not
    scratch = list((cluster.tmp / "scratch1").glob("snaresynth-worker-1-*"))
    assert len(scratch) == 1 and not list(scratch[0].rglob("*.keras")), scratch


def _summaries(log_dir: Path) -> dict[str, list[tuple[int, object]]]:
    """tag -> [(step, value)] from a log folder's event files (no tensorboard package needed)."""
    from tensorflow.core.util import event_pb2

    found: dict[str, list[tuple[int, object]]] = {}
    for path in log_dir.glob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                found.setdefault(value.tag, []).append((event.step, value))
    return found


@pytest.mark.parametrize("family", list(FAMILIES))
def test_chief_logs_scalars_and_audio_previews(cluster: Cluster, family: str) -> None:
    summaries = _summaries(cluster.tmp / "w0" / "mw" / f"{family}.ckpt" / "logs")
    losses = read_metadata(cluster.tmp / "w0" / "mw" / f"{family}.keras").training["losses"]
    scalars = {tag for tag, vals in summaries.items()
               if vals[0][1].metadata.plugin_data.plugin_name == "scalars"}
    assert set(losses) <= scalars  # the vae's kl_weight among them
    rates = {"learning_rate/d_optimizer", "learning_rate/g_optimizer"} if family == "wavegan" \
        else {"learning_rate"}  # only optimizers that step (not a GAN's unused Keras default)
    assert {tag for tag in scalars if tag.startswith("learning_rate")} == rates
    expected = {"preview/random"} | ({"preview/reconstruction"} if family != "wavegan" else set())
    audio = {tag for tag, vals in summaries.items()
             if vals[0][1].metadata.plugin_data.plugin_name == "audio"}
    assert audio == expected
    for tag in audio:
        ((step, value),) = summaries[tag]  # checkpoint_every 0: one preview, at the end
        assert step == 3
        rows = tf.make_ndarray(value.tensor)
        assert rows.shape == (PREVIEWS if tag == "preview/random" else 2, 2)
        for wav, _label in rows:
            clip, rate = tf.audio.decode_wav(wav)
            assert int(rate) == RATE and clip.shape == (16384, 1)


def test_dead_worker_stops_the_chief_with_one_line(cluster: Cluster) -> None:
    assert cluster.chief_rc == 2, cluster.chief_err[-3000:]
    assert "Traceback" not in cluster.chief_err, cluster.chief_err[-3000:]
    lines = [x for x in cluster.chief_err.splitlines() if x.startswith("snaresynth train:")]
    assert len(lines) == 1, cluster.chief_err[-3000:]
    assert "a worker stopped or stopped answering" in lines[0]
    assert f"the last checkpoint, {cluster.latest}, is intact" in lines[0], lines[0]
    assert "--resume" in lines[0]


def test_multiworker_checkpoint_resumes_under_default(cluster: Cluster) -> None:
    ckpt = cluster.tmp / "w0" / "dead.ckpt"
    at = int(cluster.latest.rsplit("-", 1)[1])
    assert at >= 2
    out = train(TrainSettings(family="autoencoder", data=cluster.tmp / "corpus",
                              out=cluster.tmp / "resumed.keras", steps=at + 2, batch_size=4,
                              checkpoint_every=0, checkpoint_dir=ckpt, resume=True,
                              strategy="default"))
    resumed = read_metadata(out).training
    assert resumed["resumed_from"] == at and resumed["steps"] == at + 2
    assert resumed["strategy"] == "default" and resumed["replicas"] == 1
    assert resumed["config"]["hidden"] == [8]  # the multiworker run's config, from run.json


STOP_FLAGS = ["--family", "autoencoder", "--set", "hidden=[8]", "--set", "latent_dim=3",
              "--batch-size", "4", "--steps", "1000000", "--checkpoint-every", "2"]


def _train_cli(tmp: Path, index: int, out: Path, strategy: str, tf_config: str | None,
               *flags: str) -> tuple[subprocess.Popen, Path]:
    """``snaresynth train`` in a process of its own; returns it and its stderr's file."""
    err = tmp / f"{out.stem}.{index}.err"
    with open(tmp / f"{out.stem}.{index}.out", "w") as stdout, open(err, "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "snaresynth.cli", "train", "--data", str(tmp / "corpus"),
             "--out", str(out), "--strategy", strategy, *flags],
            cwd=ROOT, env=_worker_env(tmp, index, tf_config), stdout=stdout, stderr=stderr)
    return proc, err


def _stop_after_checkpoint(procs: list[subprocess.Popen], errs: list[Path], ckpt: Path,
                           signum: int) -> list[int]:
    """Signal the first process once ``ckpt`` holds a checkpoint; every exit code."""
    try:
        deadline = time.monotonic() + START_S
        while not _checkpoints(ckpt):
            if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
                pytest.fail("no checkpoint to stop after:\n" + "\n".join(map(_tail, errs)))
            time.sleep(0.1)
        procs[0].send_signal(signum)
        try:
            return [p.wait(timeout=STOP_S) for p in procs]
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {STOP_S} s after the signal:\n"
                        + "\n".join(map(_tail, errs)))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def _one_line(err: Path) -> str:
    text = err.read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]
    lines = [x for x in text.splitlines() if x.startswith("snaresynth train:")]
    assert len(lines) == 1, text[-3000:]
    return lines[0]


def _resumes(tmp: Path, ckpt: Path, line: str) -> None:
    """The checkpoint the line names is the last one there, and it resumes."""
    named = line.split("the last checkpoint, ", 1)[1].split(", is intact", 1)[0]
    assert named == tf.train.latest_checkpoint(str(ckpt)), line
    at = int(named.rsplit("-", 1)[1])
    out = train(TrainSettings(family="autoencoder", data=tmp / "corpus", out=tmp / "again.keras",
                              steps=at + 1, batch_size=4, checkpoint_every=0,
                              checkpoint_dir=ckpt, resume=True, strategy="default"))
    assert read_metadata(out).training["resumed_from"] == at


def test_sigterm_stops_every_worker_after_a_checkpoint(tmp_path: Path) -> None:
    _corpus(tmp_path)
    out = tmp_path / "term.keras"
    started = [_train_cli(tmp_path, i, out, "multiworker", config, *STOP_FLAGS)
               for i, config in enumerate(localhost_tf_configs(2))]
    procs, errs = [p for p, _ in started], [e for _, e in started]
    codes = _stop_after_checkpoint(procs, errs, out.with_suffix(".ckpt"), signal.SIGTERM)
    assert codes == [128 + signal.SIGTERM, 2], [_tail(e) for e in errs]
    chief, other = _one_line(errs[0]), _one_line(errs[1])
    assert "stopped by SIGTERM at step" in chief and "start every worker again" in chief
    assert "another worker got SIGTERM or SIGINT" in other
    assert chief.split(" at step ")[1].split(";")[0] == other.split(" at step ")[1].split(";")[0]
    _resumes(tmp_path, out.with_suffix(".ckpt"), chief)


def test_a_worker_that_never_starts_ends_the_wait(tmp_path: Path) -> None:
    _corpus(tmp_path)
    configs = localhost_tf_configs(2)
    port = json.loads(configs[1])["cluster"]["worker"][1]
    proc, err = _train_cli(tmp_path, 0, tmp_path / "alone.keras", "multiworker", configs[0],
                           *STOP_FLAGS, "--worker-wait", "3")
    try:
        assert proc.wait(timeout=STOP_S) == 2, _tail(err)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    line = _one_line(err)
    assert "did not all join within 3 s (--worker-wait)" in line
    assert f"worker 1 ({port}, nothing listens there)" in line


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_default_strategy_quietly(tmp_path: Path, signum: int) -> None:
    _corpus(tmp_path)
    out = tmp_path / "one.keras"
    proc, err = _train_cli(tmp_path, 0, out, "default", None, *STOP_FLAGS)
    assert _stop_after_checkpoint([proc], [err], out.with_suffix(".ckpt"), signum) == [128 + signum]
    line = _one_line(err)
    assert f"stopped by {signal.Signals(signum).name} at step" in line
    assert "run the same command again with --resume" in line
    text = err.read_text()
    for noise in ("absl", "oneDNN", "InitializeLog", "cpu_feature_guard", "tensorflow"):
        assert noise not in text, text
    lines = [x.split(" ", 1)[-1] for x in text.splitlines()]  # without the time
    assert len(lines) == len(set(lines)), text
    _resumes(tmp_path, out.with_suffix(".ckpt"), line)
