"""Stopping a training run from outside: SIGTERM / SIGINT, and a start-up that never completes.

A ``MultiWorkerMirroredStrategy`` makes TensorFlow's coordination service install its own
SIGTERM handler (``SigtermNotifier`` in ``xla/tsl/distributed_runtime/preemption/
preemption_notifier.cc``: ``std::signal(SIGTERM, ...)`` that only sets a flag for
``PreemptionCheckpointHandler``), so a worker ignored SIGTERM and needed SIGKILL.
``StopSignals`` installs Python handlers again once the strategy exists:

* the signal is noted; the progress callback sees it at the next step boundary, saves a
  checkpoint and stops ``fit`` (under multiworker the request travels inside the next step's
  metric reduction, so every worker stops and saves at the same step; ``distribute.py``);
* a watcher thread (woken through ``signal.set_wakeup_fd``, so even while the main thread is
  inside TensorFlow) ends the process with the one line if that has not happened within
  ``GRACE_S``, at once if training has not started or on a second signal.

``StartupWatch`` ends the process (exit code 2) when the workers in ``TF_CONFIG`` have not all
joined within ``--worker-wait`` seconds, naming those that did not.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

log = logging.getLogger(__name__)

GRACE_S = 20.0  # under Slurm's and Kubernetes' default 30 s between SIGTERM and SIGKILL
WORKER_WAIT_S = 600.0  # default --worker-wait
SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _exit_now(line: str, code: int) -> None:
    """Write the one line and end the process from any thread (the main one may be stuck)."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
    os._exit(code)


class StopSignals:
    """SIGTERM and SIGINT ask the run to stop at the next step boundary (see the module doc)."""

    def __init__(self, ckpt_dir: Path, grace_s: float = GRACE_S) -> None:
        self.ckpt_dir = ckpt_dir
        self.grace_s = grace_s
        self.signum = 0  # the first signal received, 0 = none
        self.latest: str | None = None  # the last checkpoint this run finished writing
        self.training = False  # set at the first step: until then there is nothing to save
        self.workers = False  # multiworker: the message says to start every worker again
        self.cleanups: list[Callable[[], None]] = []  # run on leaving (StartupWatch.joined)
        self._done = threading.Event()
        self._previous: dict[int, Any] = {}
        self._wakeup: tuple[socket.socket, socket.socket] | None = None
        self._old_fd = -1

    @property
    def requested(self) -> bool:
        return self.signum != 0

    def install(self, signals: tuple[int, ...] = SIGNALS) -> None:
        """(Re)install the handlers: again once the strategy exists (TF replaced SIGTERM's)."""
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers belong to the main thread; a train() in a thread has none
        for signum in signals:
            previous = signal.signal(signum, self._handler)
            self._previous.setdefault(signum, previous)
        if self._wakeup is None:
            self._wakeup = socket.socketpair()
            for sock in self._wakeup:
                sock.setblocking(False)
            self._old_fd = signal.set_wakeup_fd(self._wakeup[1].fileno(), warn_on_full_buffer=False)
            threading.Thread(target=self._watch, name="snaresynth-stop", daemon=True).start()

    def __enter__(self) -> StopSignals:
        self.install()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._done.set()
        for cleanup in self.cleanups:
            cleanup()
        if self._wakeup is None:
            return
        signal.set_wakeup_fd(self._old_fd)
        for signum, previous in self._previous.items():
            # TensorFlow's flag-only handler is not restored: SIGTERM kills again after train
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._wakeup[1].close()  # wakes the watcher, which sees _done and returns

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self._note(signum)

    def _note(self, signum: int) -> None:
        if not self.signum:
            self.signum = signum
            log.info("%s: stopping at the next step boundary", signal.Signals(signum).name)

    def message(self, step: int | None = None) -> str:
        """The one line: what stopped the run and which checkpoint to --resume from."""
        what = (f"stopped by {signal.Signals(self.signum).name}" if self.signum else
                "stopped: another worker got SIGTERM or SIGINT")
        at = f" at step {step}" if step is not None else ""
        again = ("start every worker again with the same command and --resume" if self.workers
                 else "run the same command again with --resume")
        where = (f"the last checkpoint, {self.latest}, is intact: {again}" if self.latest else
                 f"this run wrote no checkpoint: --resume continues from the last one in "
                 f"{self.ckpt_dir} if it has one, else start afresh")
        return f"{what}{at}; {where}"

    def _watch(self) -> None:
        import select
        import time

        assert self._wakeup is not None
        reader, seen, deadline = self._wakeup[0], 0, None
        while not self._done.is_set():
            if deadline is None and self.requested and self.training:
                deadline = time.monotonic() + self.grace_s
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([reader], [], [], timeout)
            if self._done.is_set():
                return
            if not ready:  # the grace ran out: the main thread is stuck (a peer, a long save)
                _exit_now(f"snaresynth train: {self.message()} (not stopped within "
                          f"{self.grace_s:g} s)", 128 + self.signum)
            try:
                data = reader.recv(64)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                return
            if not data:
                return
            for signum in data:  # one byte per signal delivered, written by CPython's C handler
                if signum in SIGNALS:
                    self._note(signum)
                    seen += 1
                    if seen > 1 or not self.training:  # a second signal, or no step to save yet
                        _exit_now(f"snaresynth train: {self.message()}", 128 + self.signum)


class StartupWatch:
    """Ends the process (exit code 2) unless ``joined()`` comes within ``wait_s`` seconds.

    While MultiWorkerMirroredStrategy waits for its peers, TensorFlow holds the GIL: no Python
    thread or signal handler runs. So a child process keeps the time; when it runs out, it writes
    the line naming the absent workers and sends SIGINT, whose handler until ``joined()`` is
    libc's ``_exit`` (called with the signal's number: exit code 2, and Ctrl-C ends the wait).
    """

    def __init__(self, wait_s: float, strategy_name: str) -> None:
        self._child: Any = None
        if wait_s <= 0 or threading.current_thread() is not threading.main_thread():
            return
        import ctypes
        import subprocess

        libc = ctypes.CDLL(None)
        libc.signal.restype = ctypes.c_void_p
        libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
        libc.signal(int(signal.SIGINT), ctypes.cast(libc._exit, ctypes.c_void_p))
        self._child = subprocess.Popen(
            [sys.executable, "-m", "snaresynth.models.stop", str(os.getpid()), str(wait_s),
             strategy_name], stdin=subprocess.PIPE)

    def joined(self) -> None:
        if self._child is None:
            return
        self._child.stdin.close()  # the watchdog reads EOF and exits
        self._child.wait()
        self._child = None
        signal.signal(signal.SIGINT, signal.getsignal(signal.SIGINT))  # Python's handler again


def _watchdog(parent: int, wait_s: float, strategy_name: str) -> int:
    """The child of ``StartupWatch``: EOF on stdin in time, or the line and SIGINT to ``parent``."""
    import select

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, whose _exit ends it
    ready, _, _ = select.select([sys.stdin], [], [], wait_s)
    if ready:
        return 0
    missing = ", ".join(absent_workers()) or "(TF_CONFIG names no other worker)"
    sys.stderr.write(f"snaresynth train: --strategy {strategy_name}: the workers did not all join "
                     f"within {wait_s:g} s (--worker-wait); not joined: {missing}; start each "
                     "with the same command and its own TF_CONFIG\n")
    sys.stderr.flush()
    os.kill(parent, signal.SIGINT)
    return 0


def absent_workers(tf_config: str | None = None, timeout_s: float = 2.0) -> list[str]:
    """The other tasks in ``TF_CONFIG`` as "worker 1 (host:port, nothing listens)" and the like."""
    try:
        config = json.loads(tf_config if tf_config is not None else os.environ["TF_CONFIG"])
        me = (config["task"]["type"], int(config["task"]["index"]))
        cluster = config["cluster"]
    except (KeyError, TypeError, ValueError):
        return []
    found = []
    for job, addresses in cluster.items():
        for index, address in enumerate(addresses):
            if (job, index) == me:
                continue
            host, _, port = address.rpartition(":")
            try:
                socket.create_connection((host, int(port)), timeout=timeout_s).close()
                state = "up but not joined"
            except (OSError, ValueError):
                state = "nothing listens there"
            found.append(f"{job} {index} ({address}, {state})")
    return found


if __name__ == "__main__":
    sys.exit(_watchdog(int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]))
