"""Decoding off the audio thread: a latest-wins request slot per target, and an LRU cache.

A knob sweep sends hundreds of latent changes a second; the model needs milliseconds for each.
So requests are never queued: each target (a typed key the engine chooses: a velocity layer of
a kit slot, a prefetch position) has one pending request, a newer one replaces it (counted as
dropped), and the worker always decodes the newest. Decoded buffers are cached by
their quantized latent, so returning to a sound is instant.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from snaresynth import dsp
from snaresynth.decode.priority import RT_PRIORITY, DecodePriority
from snaresynth.models.base import Decoder

log = logging.getLogger(__name__)

KNOB_STEPS = 1024
"""Latent quantization: each dimension's range in 1024 steps (finer than a 7-bit CC's 128)."""


def quantize_knobs(knobs: np.ndarray) -> tuple[int, ...]:
    """Cache key of a knob position (each dimension 0..1, as checked at the edge)."""
    q = np.rint(np.asarray(knobs, dtype=np.float64) * KNOB_STEPS)
    return tuple(int(v) for v in q)


def knobs_to_z(key: tuple[int, ...], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The latent vector a quantized knob position stands for (so cache hits are exact)."""
    frac = np.asarray(key, dtype=np.float32) / KNOB_STEPS
    return (lo + frac * (hi - lo)).astype(np.float32)


class BufferCache:
    """LRU of decoded buffers keyed by quantized latent, bounded in bytes. Thread: decode worker."""

    def __init__(self, max_bytes: int = 64 * 2**20) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple) -> np.ndarray | None:
        buf = self._items.get(key)
        if buf is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return buf

    def put(self, key: tuple, buf: np.ndarray) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self.bytes -= old.nbytes
        self._items[key] = buf
        self.bytes += buf.nbytes
        while self.bytes > self.max_bytes and len(self._items) > 1:
            _, evicted = self._items.popitem(last=False)
            self.bytes -= evicted.nbytes

    def __len__(self) -> int:
        return len(self._items)


PREROLL_S = 0.0005
"""Silence kept before a sound's onset: enough for the attack's first rise, no more."""
ONSET_DB = -50.0
"""The onset is the first sample within this many dB of the peak."""
PLAYBACK_QUALITY = "VHQ"
"""soxr quality of playback buffers. HQ is 0.1-0.25 ms a buffer faster (bench/decode_ab.py) but
made tests/e2e/test_variation.py's plain roll differ hit to hit in 3 of 3 full e2e runs (not
alone); kept at VHQ until that is understood (docs/performance.md)."""


def playback_buffer(raw: np.ndarray, model_rate: int, out_rate: int, tune_semitones: float,
                    decay: float) -> np.ndarray:
    """Model output -> what a voice plays: resampled to the output rate, tuned, its silent
    pre-roll trimmed (as a sampler's sample start), decay-shaped.

    Tuning up by r plays the sound r times faster, i.e. it is resampled to out_rate / r. The
    models are trained on windows that start a few ms before the onset; playing that silence
    would add it to every hit's latency, so playback starts ``PREROLL_S`` before the onset.
    """
    ratio = dsp.semitones_to_ratio(tune_semitones)
    target = out_rate / ratio
    buf = dsp.resample(raw, model_rate, int(round(target)), PLAYBACK_QUALITY) \
        if abs(target - model_rate) > 0.5 else np.asarray(raw, dtype=np.float32).copy()
    start = max(0, dsp.onset_index(buf, ONSET_DB) - int(PREROLL_S * out_rate))
    buf = buf[start:]
    if decay < 1.0:  # at 1 the envelope is all ones
        buf *= dsp.decay_envelope(buf.shape[0], out_rate, decay)
    return np.ascontiguousarray(buf, dtype=np.float32)


@dataclass(frozen=True)
class Request:
    """Decode one sound for ``target`` (whoever asked: the engine's typed key; never crosses a
    process boundary, the rest is plain data that does).

    The worker turns the raw model output (``model_rate`` Hz) into the playback buffer
    (``out_rate`` Hz, tuned, decay-shaped) with ``render``; ``model_rate`` 0 means "the raw
    model output, untouched" (tests).
    """

    target: Hashable
    key: tuple[int, ...]
    tune_semitones: float = 0.0
    decay: float = 1.0
    model_rate: int = 0
    out_rate: int = 0
    tag: object = None

    def render(self, raw: np.ndarray) -> np.ndarray:
        """Raw model output -> playback buffer (pure and fast; run by the worker)."""
        if self.model_rate <= 0:
            return np.asarray(raw, dtype=np.float32)
        return playback_buffer(raw, self.model_rate, self.out_rate, self.tune_semitones,
                               self.decay)

    def render_key(self) -> tuple:
        """Cache key of the rendered buffer (the latent and everything render depends on)."""
        return (self.key, self.tune_semitones, self.decay, self.model_rate, self.out_rate)


class Worker(Protocol):
    """What the engine needs of a decode worker (DecodeWorker, ProcessDecodeWorker)."""

    on_ready: Callable[[Hashable, np.ndarray, Request], None]
    cache: BufferCache
    decodes: int
    dropped: int
    failures: int
    decode_seconds: list[float]

    def start(self) -> None: ...
    def stop(self, timeout: float = 2.0) -> None: ...
    def submit(self, request: Request) -> None: ...
    def idle(self) -> bool: ...
    def wait_idle(self, timeout: float = 10.0) -> bool: ...


class LatestWinsWorker:
    """The latest-wins request slot and the one thread that serves it; subclasses say how a
    request becomes a playback buffer (``_decode``). DecodeWorker runs the model in this
    process, decode_process.ProcessDecodeWorker in a child.

    ``on_ready(target, buffer, request)`` is called on the worker thread; it should only swap a
    reference. A decode that raises or returns non-finite audio keeps the previous buffer and is
    counted in ``failures`` (with a log line).
    """

    thread_name = "snaresynth-decode"

    def __init__(self, on_ready: Callable[[Hashable, np.ndarray, Request], None],
                 cache: BufferCache | None = None, rt_priority: int = RT_PRIORITY) -> None:
        self.on_ready = on_ready
        self.cache = cache or BufferCache()
        self.priority = DecodePriority(rt_priority)  # realtime while light (decode/priority.py)
        self._lock = threading.Lock()  # the pending slots, _busy, _stop
        # the thread waits on a pipe, not a Condition: os.write releases the submitter's GIL
        # while the realtime thread wakes (a Condition left it waiting, p99 4-5 ms with the
        # cores busy, for a preempted submitter's GIL; docs/performance.md)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        # closed with the worker: a submit after stop must never write to a reused descriptor
        weakref.finalize(self, _close_fds, self._wake_r, self._wake_w)
        self._pending: dict[Hashable, Request] = {}
        self._stop = False
        self._busy = False
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        # counters (worker writes, anyone reads)
        self.decodes = 0
        self.dropped = 0
        self.failures = 0
        self.decode_seconds: list[float] = []  # recent decode times (kept short by subclasses)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._signal_stop()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _signal_stop(self) -> None:
        with self._lock:
            self._stop = True
        self._wake()

    def _wake(self) -> None:
        """One byte into the pipe (outside the lock: the woken thread must not wait for it); a
        full pipe already holds a wake-up."""
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"\0")

    def submit(self, request: Request) -> None:
        """Ask for a sound; replaces an older pending request for the same target. Thread: any."""
        with self._lock:
            if request.target in self._pending:
                self.dropped += 1
            self._pending[request.target] = request
        self._wake()

    def idle(self) -> bool:
        with self._lock:
            return not self._pending and not self._busy

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every submitted request is published (start-up, tests, render)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.idle():
                return True
            time.sleep(0.002)
        return False

    def _decode(self, request: Request) -> np.ndarray:
        raise NotImplementedError

    def _run(self) -> None:
        self.priority.enter()
        while True:
            with self._lock:
                if self._stop:
                    return
                request = self._pending.pop(next(iter(self._pending))) if self._pending else None
                self._busy = request is not None
            if request is None:
                os.read(self._wake_r, 4096)  # without the GIL; several wake-ups drained at once
                continue
            self.priority.before_decode()
            started = time.perf_counter()
            try:
                buffer = self._decode(request)
            except Exception as exc:  # a model fault must never stop the instrument
                self.failures += 1
                log.error("decode failed for %s, keeping the previous sound: %s",
                          request.target, exc)
            else:
                self.on_ready(request.target, buffer, request)
            finally:
                self.priority.after_decode(time.perf_counter() - started)
                with self._lock:
                    self._busy = False


def _close_fds(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


class DecodeWorker(LatestWinsWorker):
    """Runs the model on a thread of this process (tests, ``render``, ``--decode thread``)."""

    def __init__(self, decoder: Decoder, on_ready: Callable[[Hashable, np.ndarray, Request], None],
                 cache: BufferCache | None = None, rt_priority: int = RT_PRIORITY) -> None:
        super().__init__(on_ready, cache, rt_priority)
        self.decoder = decoder
        lo, hi = decoder.latent_range()
        self._lo = np.asarray(lo, dtype=np.float32)
        self._hi = np.asarray(hi, dtype=np.float32)

    def set_decoder(self, decoder: Decoder) -> None:
        """Swap the model (thread: any); the cache is cleared since keys mean other sounds."""
        lo, hi = decoder.latent_range()
        with self._lock:
            self.decoder = decoder
            self._lo = np.asarray(lo, dtype=np.float32)
            self._hi = np.asarray(hi, dtype=np.float32)
            self.cache = BufferCache(self.cache.max_bytes)

    def decode_key(self, key: tuple[int, ...]) -> np.ndarray:
        """Raw model output for a quantized knob position, through the cache. Thread: worker."""
        buf = self.cache.get(key)
        if buf is not None:
            return buf
        z = knobs_to_z(key, self._lo, self._hi)
        t0 = time.perf_counter()
        out = np.asarray(self.decoder.decode(z[None, :]), dtype=np.float32)
        elapsed = time.perf_counter() - t0
        self.decodes += 1
        self.decode_seconds.append(elapsed)
        if len(self.decode_seconds) > 512:
            del self.decode_seconds[:256]
        if out.ndim != 2 or out.shape[0] != 1 or not np.all(np.isfinite(out)):
            raise ValueError(f"decoder returned {out.shape} with non-finite or wrong-shape output")
        buf = out[0]
        self.cache.put(key, buf)
        return buf

    def _decode(self, request: Request) -> np.ndarray:
        return request.render(self.decode_key(request.key))
