"""tf.distribute for the training loop: strategies, per-replica loss scaling, replica noise.

Keras 3's ``fit`` runs a family's ``train_step`` once per replica, each on its slice of the
global batch, and the optimizers all-reduce gradients by SUM (``keras/src/backend/tensorflow/
optimizer.py``). The tf.distribute guide's rule for custom steps follows: a loss that is a mean
over the per-replica batch is divided by the number of replicas before its gradient is taken
(``scale_loss``), so the summed gradient is the gradient of the mean over the global batch; the
unscaled value is what gets reported (``fit`` averages the replicas' metrics).

Random draws (VAE noise, WaveGAN z, gradient-penalty mixes, phase shuffles) use seed generators
whose state is mirrored, so every replica would draw the *same* numbers. ``replica_slice`` draws
for the global batch and keeps this replica's rows: replicas get independent noise, and a run
draws the very numbers it would draw on one device (which the strategy tests rely on).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

STRATEGIES = ("default", "mirrored", "multiworker")
# A collective that waits longer than this on a peer fails instead of hanging the run.
WORKER_TIMEOUT_S = 300.0
# The metric that carries a worker's stop request to every worker (never reported as a loss).
STOP_KEY = "_stop"
# One MultiWorkerMirroredStrategy per process: collectives are configured once, at start-up.
_multiworker: Any = None


def make_strategy(name: str, devices: list[str] | None = None,
                  timeout_s: float = WORKER_TIMEOUT_S) -> Any:
    """The tf.distribute strategy for ``--strategy``; multiworker reads ``TF_CONFIG``."""
    import tensorflow as tf

    from snaresynth.models.train import TrainingError

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices)
    if name == "multiworker":
        raw = os.environ.get("TF_CONFIG")
        if not raw:
            raise TrainingError("--strategy multiworker needs TF_CONFIG (cluster and task) set "
                                "by your launcher; see docs/models.md, Training at scale")
        try:
            json.loads(raw)
        except json.JSONDecodeError as exc:
            raise TrainingError(f"TF_CONFIG is not JSON: {exc}") from exc
        global _multiworker
        if _multiworker is None:
            options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_s)
            _multiworker = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        return _multiworker
    raise TrainingError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")


def worker_errors() -> tuple[type[Exception], ...]:
    """For ``except``: evaluated only when an exception arrives, so no TensorFlow import here."""
    import tensorflow as tf

    # What a dead or silent peer raises: the coordination service's missed heartbeats
    # (Unavailable, ~10 s after the peer died), a collective's timeout (DeadlineExceeded), and
    # the cancellations they cause in the ops around them.
    return (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
            tf.errors.CancelledError, tf.errors.AbortedError)


def worker_failure(strategy_name: str, step: int, ckpt_dir: Any, latest: str | None,
                   exc: Exception) -> Exception:
    """The TrainingError for a peer that died or stopped answering, naming what to resume."""
    from snaresynth.models.train import TrainingError

    where = (f"the last checkpoint, {latest}, is intact: start every worker again with the same "
             "command and --resume" if latest else
             f"resume from the chief's last checkpoint in {ckpt_dir} (start every worker again "
             "with the same command and --resume), or start afresh if it has none")
    return TrainingError(f"--strategy {strategy_name}: a worker stopped or stopped answering at "
                         f"step {step} ({type(exc).__name__}); {where}")


def is_chief(strategy: Any) -> bool:
    """True where this process writes checkpoints, run.json, logs and the model file."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def is_multi_worker(strategy: Any) -> bool:
    """True for a MultiWorkerMirroredStrategy whose cluster has more than one worker."""
    extended = getattr(strategy, "extended", None)
    check = getattr(extended, "_in_multi_worker_mode", None)
    return bool(check and check())


def reducible_metrics(trainer: Any, strategy: Any, stop_flag: Any = None) -> None:
    """Hand ``fit`` each metric with shape (1,) instead of a scalar, across workers only.

    Keras 3 reduces a multi-worker run's per-replica metrics with ``strategy.reduce(MEAN, v,
    axis=0)``, which rejects scalars (tensorflow/tensorflow#72388); a (1,) vector reduces to
    the mean over the replicas, as one machine's replicas do. ``stop_flag`` (a local variable,
    1 once this worker got SIGTERM/SIGINT) rides along as ``STOP_KEY``: every worker gets the
    same mean after the same step, so all stop there together (``stop.py``).
    """
    import tensorflow as tf

    if not is_multi_worker(strategy):
        return
    step = trainer.train_step

    def train_step(data: Any) -> dict[str, Any]:
        out = {k: tf.reshape(v, [1]) for k, v in step(data).items()}
        if stop_flag is not None:
            out[STOP_KEY] = tf.reshape(stop_flag.read_value(), [1])
        return out

    trainer.train_step = train_step


def worker_id(strategy: Any) -> str:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return "0"
    return f"{resolver.task_type}-{resolver.task_id}"


def num_replicas() -> int:
    """Replicas in sync of the strategy in scope (1 outside any)."""
    import tensorflow as tf

    return int(tf.distribute.get_strategy().num_replicas_in_sync)


def scale_loss(loss: Any) -> Any:
    """A per-replica mean loss, divided so that the all-reduced (summed) gradient is the mean."""
    replicas = num_replicas()
    return loss if replicas == 1 else loss * (1.0 / replicas)


def replica_slice(draw: Callable[[Any], Any], local_batch: Any) -> Any:
    """``draw(global_batch)`` (leading dimension the batch), cut down to this replica's rows."""
    import tensorflow as tf

    replicas = num_replicas()
    if replicas == 1:
        return draw(local_batch)
    ctx = tf.distribute.get_replica_context()
    full = draw(local_batch * replicas)
    start = tf.cast(ctx.replica_id_in_sync_group, tf.int32) * tf.cast(local_batch, tf.int32)
    return full[start:start + local_batch]


def apply_clipped(optimizer: Any, grads: list[Any], weights: list[Any], clipnorm: float) -> None:
    """Clip by the norm of the *global* gradient, then apply (one replica alone: plain clip).

    Clipping each replica's partial gradient would clip a different vector; the sum is taken
    here, clipped, and handed on divided by the replica count since the optimizer sums again.
    """
    import tensorflow as tf

    replicas = num_replicas()
    if replicas > 1:
        grads = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)
    grads, _ = tf.clip_by_global_norm(grads, clipnorm)
    if replicas > 1:
        grads = [g * (1.0 / replicas) for g in grads]
    optimizer.apply_gradients(zip(grads, weights, strict=True))


def distribute_options(ds: Any) -> Any:
    """Shard by element across workers: a small in-memory corpus has no files to shard by."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def localhost_tf_configs(workers: int) -> list[str]:
    """``TF_CONFIG`` for each of ``workers`` processes on this machine (worker 0 is the chief).

    The ports are free when chosen; another program could take one before the workers bind it.
    """
    import socket
    from contextlib import ExitStack

    with ExitStack() as stack:  # all held open at once, so the OS picks distinct free ports
        socks = [stack.enter_context(socket.socket()) for _ in range(workers)]
        for sock in socks:
            sock.bind(("localhost", 0))
        ports = [sock.getsockname()[1] for sock in socks]
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
            for i in range(workers)]
