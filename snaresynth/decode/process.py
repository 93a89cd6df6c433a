"""Decoding in a child process: the model's Python never takes the daemon's GIL.

Why: a decode thread in the daemon holds the GIL between the hundred-odd numpy operations of a
decode and for the Python around them (resampling, tuning); every Python thread of the daemon
(OSC, MIDI, the web page) waits for it meanwhile. The compiled audio callbacks never take the
GIL, so this costs no audio; the child costs memory and start-up time instead (both measured
by bench/footprint.py, the GIL side by bench/gil.py: docs/performance.md). Neither process
imports TensorFlow: the child loads the model file's numpy inference form.

``ProcessDecodeWorker`` has the interface of ``DecodeWorker`` (``submit`` with
latest-wins per request slot, ``cache``, ``on_ready``, ``stop``, ``wait_idle``, the counters)
but runs the model in a ``spawn``-ed child that loads it from its spec (a model path,
"untrained:FAMILY" or None for the bundled model) — never a pickled model. The child decodes,
resamples, tunes and decay-shapes, and sends the finished float32 buffer back over a pipe.

Threads and processes:
- any thread -> ``submit`` (a dict slot under a condition, as DecodeWorker);
- one client thread in the daemon: takes the newest request, answers it from the cache of
  finished buffers or sends it to the child and blocks on the pipe (without the GIL), then
  publishes through ``on_ready`` (a reference swap);
- the child: one loop, one request at a time, with its own LRU cache of raw model outputs (a
  tune or decay change does not run the model again). If the child dies it is started again
  and the request is counted as a failure: the instrument keeps its previous sound.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from snaresynth.decode.priority import RT_PRIORITY, DecodePriority
from snaresynth.decode.worker import BufferCache, LatestWinsWorker, Request, knobs_to_z
from snaresynth.errors import ModelFileError

log = logging.getLogger(__name__)

START_TIMEOUT_S = 180.0
"""Child start-up: loading the model's inference form takes well under a second; the margin is
for an untrained:FAMILY spec, which Keras builds, on 2 busy cores."""
RAW_CACHE_BYTES = 8 * 2**20
"""The child's cache of raw model outputs (128 sounds): a retune or decay change does not run
the model again. The daemon's cache of finished buffers holds the rest; a decode is ~1 ms."""


@dataclass
class RemoteDecoder:
    """What the daemon knows of the child's model: the Decoder contract minus ``decode``."""

    family: str
    latent_dim: int
    sample_rate: int
    length: int
    lo: list[float]
    hi: list[float]
    description: str = ""
    path: str | None = None
    metadata: Any = field(default=None, repr=False)

    def latent_range(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.lo, dtype=np.float32), np.asarray(self.hi, dtype=np.float32)

    def decode(self, z: np.ndarray) -> np.ndarray:
        raise RuntimeError("this model decodes in the decode process; use the worker")

    def warm_up(self) -> None:
        """Already warmed up in the child."""


class ProcessDecodeWorker(LatestWinsWorker):
    """DecodeWorker's interface with the model in a spawned child process."""

    thread_name = "snaresynth-decode-client"

    def __init__(self, model_spec: str | None,
                 on_ready: Callable[[int, np.ndarray, Request], None] | None = None,
                 cache: BufferCache | None = None, threads: int = 0, nice: int = 0,
                 rt_priority: int = RT_PRIORITY) -> None:
        """``rt_priority``: SCHED_FIFO priority of the child's decode loop and of the client
        thread here (0 = ordinary scheduling; decode/priority.py)."""
        # the cache holds finished playback buffers, by Request.render_key
        super().__init__(on_ready or (lambda slot, buf, req: None), cache, rt_priority)
        self.model_spec = model_spec
        self.threads = threads  # TensorFlow intra/inter-op threads in the child (0 = its default)
        self.nice = nice  # added to the child's nice value: decoding yields the CPU to the daemon
        self._ctx = mp.get_context("spawn")
        self._proc: Any = None
        self._conn: Connection | None = None
        self.decoder: RemoteDecoder | None = None
        self.restarts = 0

    # --- lifecycle (main thread) ---------------------------------------------------------------
    def load(self, timeout: float = START_TIMEOUT_S) -> RemoteDecoder:
        """Start the child, load and warm up the model there; returns its description."""
        if self.decoder is None:
            self.decoder = self._spawn(timeout)
        return self.decoder

    def start(self) -> None:
        self.load()
        super().start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop within about half a second: the child holds no state, so it is not waited for
        beyond that (its TensorFlow teardown can take seconds on a busy machine)."""
        self._signal_stop()
        self._close_child(min(timeout, 0.5))
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _decode(self, request: Request) -> np.ndarray:
        key = request.render_key()
        buffer = self.cache.get(key)
        if buffer is not None:
            return buffer
        assert self.decoder is not None
        lo, hi = self.decoder.latent_range()
        z = knobs_to_z(request.key, lo, hi)
        message = (request.key, z, request.tune_semitones, request.decay, request.model_rate,
                   request.out_rate)
        try:
            assert self._conn is not None
            self._conn.send(message)
            reply = self._conn.recv()
        except (EOFError, OSError, BrokenPipeError) as exc:
            if self._stop:
                raise RuntimeError("decode process stopped") from exc
            self._restart()
            raise RuntimeError(f"decode process died ({exc!r}); restarted it") from exc
        status, payload, model_s = reply
        if status != "ok":
            raise RuntimeError(payload)
        if model_s is None:  # the child's raw cache had it: no model run
            self.cache.misses -= 1
            self.cache.hits += 1
        else:
            self.decodes += 1
            self.decode_seconds.append(model_s)
            if len(self.decode_seconds) > 512:
                del self.decode_seconds[:256]
        buffer = np.frombuffer(payload, dtype=np.float32)
        self.cache.put(key, buffer)
        return buffer

    # --- the child process ---------------------------------------------------------------------
    def _spawn(self, timeout: float) -> RemoteDecoder:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=child_main, name="snaresynth-decoder",
                                 args=(child, self.model_spec, self.cache.max_bytes,
                                       self.threads, self.nice, self.priority.priority),
                                 daemon=True)
        # spawned with SIGINT blocked (the mask survives exec): a Ctrl-C to the process group
        # while the child starts, before child_main ignores it, is no KeyboardInterrupt trace;
        # this process still gets it, through another thread or when the mask is restored.
        # The resource tracker first: starting it unblocks SIGINT
        resource_tracker.ensure_running()
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            proc.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        child.close()
        if not parent.poll(timeout):
            proc.kill()
            raise RuntimeError(f"decode process did not load the model within {timeout:.0f} s")
        try:
            status, payload = parent.recv()
        except EOFError as exc:
            proc.join(1.0)
            raise RuntimeError(f"decode process exited ({proc.exitcode}) while loading the "
                               f"model {self.model_spec!r}") from exc
        if status != "ready":
            proc.join(1.0)
            # the child's own words name the file and what is wrong with it (one line, exit 2)
            raise ModelFileError(str(payload).split(": ", 1)[-1])
        self._proc, self._conn = proc, parent
        return RemoteDecoder(**payload)

    def _restart(self) -> None:
        self._close_child(1.0)
        self.restarts += 1
        self._spawn(START_TIMEOUT_S)

    def _close_child(self, timeout: float) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            with contextlib.suppress(OSError, BrokenPipeError, ValueError):
                conn.send(None)
        if proc is not None:
            proc.join(timeout)
            if proc.is_alive():
                proc.kill()
                proc.join(1.0)
        if conn is not None:
            conn.close()


def child_main(conn: Connection, spec: str | None, cache_bytes: int, threads: int,
               nice: int = 0, rt_priority: int = RT_PRIORITY) -> None:
    """The decode process: load the model, say "ready", then answer requests until None/EOF."""
    if nice:
        os.nice(nice)
    # Ctrl-C reaches the whole process group: the daemon stops this child through the pipe
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from snaresynth.decode.worker import playback_buffer
    from snaresynth.models import registry

    try:
        if threads > 0:
            limit_blas_threads(threads)
        decoder = registry.resolve(spec, runtime="inference")
        decoder.warm_up()
        gc.freeze()  # the model's arrays: no full-collection pauses between decodes
        lo, hi = decoder.latent_range()
        metadata = getattr(decoder, "metadata", None)
        conn.send(("ready", {
            "family": decoder.family, "latent_dim": int(decoder.latent_dim),
            "sample_rate": int(decoder.sample_rate), "length": int(decoder.length),
            "lo": [float(v) for v in lo], "hi": [float(v) for v in hi],
            "description": getattr(metadata, "description", "") or "",
            "path": str(getattr(decoder, "path", None) or "") or None}))
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    raw_cache = BufferCache(min(cache_bytes, RAW_CACHE_BYTES))
    # realtime while light, as the thread form (decode/priority.py); 0 = ordinary
    priority = DecodePriority(rt_priority)
    priority.enter()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            os._exit(0)  # nothing to save: skip the interpreter's teardown
        key, z, tune, decay, model_rate, out_rate = message
        priority.before_decode()
        started = time.perf_counter()
        try:
            raw = raw_cache.get(key)
            model_s = None
            if raw is None:
                t0 = time.perf_counter()
                out = np.asarray(decoder.decode(z[None, :]), dtype=np.float32)
                model_s = time.perf_counter() - t0
                if out.ndim != 2 or out.shape[0] != 1 or not np.all(np.isfinite(out)):
                    raise ValueError(f"decoder returned {out.shape} with non-finite or "
                                     "wrong-shape output")
                raw = out[0]
                raw_cache.put(key, raw)
            buf = raw if model_rate <= 0 else playback_buffer(raw, model_rate, out_rate, tune,
                                                               decay)
            conn.send(("ok", np.ascontiguousarray(buf, dtype=np.float32).tobytes(), model_s))
        except Exception as exc:  # answered, counted by the daemon; the child keeps serving
            conn.send(("error", f"{type(exc).__name__}: {exc}", None))
        priority.after_decode(time.perf_counter() - started)


def limit_blas_threads(threads: int) -> bool:
    """Ask numpy's OpenBLAS for at most ``threads`` threads (best effort; False if not found)."""
    import ctypes

    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return False
    libraries = {line.split()[-1] for line in maps.splitlines() if "openblas" in line.lower()}
    for path in sorted(libraries):
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_",
                     "openblas_set_num_threads"):
            setter = getattr(lib, name, None)
            if setter is not None:
                setter(int(threads))
                return True
    return False
