"""A 16-step pattern played by the daemon: a thread that places each step as a timed hit.

The grid lives in output frames, not in wall-clock time: step ``n`` after the start sounds at
``start + round(n * step + swing)`` frames, so onsets are exact to the sample whatever the
thread's wake-ups. Each step is handed to ``engine.trigger(frame=...)`` about ``LOOKAHEAD_S``
before it is due, at its own frame (in either latency mode); only the steps of one look-ahead
window are pending at a time (the mixer's pending list is shared with live hits). Nothing
here runs in the audio callback.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

STEPS = 16
LOOKAHEAD_S = 0.1
TICK_S = 0.01
MAX_SLOTS = 16

Listener = Callable[[str, Any], None]


class Sequencer:
    """Pattern: ``steps[slot][step]`` velocity 0..1 (0 = off). Tempo in bpm (16th-note steps),
    swing 0..1 (odd steps late by up to half a step). Thread-safe setters; one worker thread."""

    def __init__(self, engine: Any, tempo: float = 120.0) -> None:
        self.engine = engine
        self.tempo = tempo
        self.swing = 0.0
        self.steps: list[list[float]] = [[0.0] * STEPS for _ in range(MAX_SLOTS)]
        self.playing = False
        self.hits = 0  # steps handed to the engine
        self.refused = 0  # steps the engine did not play (no buffer, pending list full)
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._anchor_frame = 0  # output frame of step ``_anchor_step``
        self._anchor_step = 0
        self._next_step = 0  # the next step (counted from the anchor) not yet scheduled
        self._stop = threading.Event()
        self._playing = threading.Event()  # the thread sleeps on it while stopped
        self._thread: threading.Thread | None = None

    # --- the pattern (any thread) --------------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {"tempo": self.tempo, "swing": self.swing, "playing": self.playing,
                    "steps": [list(row) for row in self.steps]}

    def set_step(self, slot: int, step: int, velocity: float) -> None:
        if not 0 <= slot < MAX_SLOTS:
            raise ValueError(f"slot must be 0..{MAX_SLOTS - 1}, got {slot}")
        with self._lock:
            self.steps[slot][step] = velocity
        self._tell("/seq/step", [slot, step, velocity])

    def clear(self) -> None:
        with self._lock:
            self.steps = [[0.0] * STEPS for _ in range(MAX_SLOTS)]
        self._tell("/seq/clear", [])

    def set_tempo(self, bpm: float) -> None:
        with self._lock:
            self._reanchor()
            self.tempo = bpm
        self._tell("/seq/tempo", [bpm])

    def set_swing(self, swing: float) -> None:
        with self._lock:
            self.swing = swing
        self._tell("/seq/swing", [swing])

    def play(self, on: bool) -> None:
        with self._lock:
            if on and not self.playing:
                # the first step one look-ahead from now, so it too is placed in advance
                self._anchor_frame = self._frame_now() + round(LOOKAHEAD_S * self._rate())
                self._anchor_step = self._next_step = 0
            self.playing = on
        if on:
            self._playing.set()
        else:
            self._playing.clear()
        self._tell("/seq/play", [1 if on else 0])

    # --- thread --------------------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="snaresynth-sequencer",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._playing.set()
        if self._thread is not None:
            self._thread.join(1.0)

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            self._playing.wait()  # no wake-ups (and no GIL taken) while no pattern plays
            try:
                self._schedule_due()
            except Exception:  # a bad step must not end the pattern thread
                log.exception("sequencer step failed")

    def _schedule_due(self) -> None:
        """Hand the engine every step due within the look-ahead window."""
        while True:
            with self._lock:
                if not self.playing:
                    return
                horizon = self._frame_now() + round(LOOKAHEAD_S * self._rate())
                n = self._next_step
                frame = self._step_frame(n)
                if frame > horizon:
                    return
                self._next_step = n + 1
                row = (self._anchor_step + n) % STEPS
                hits = [(slot, v[row]) for slot, v in enumerate(self.steps) if v[row] > 0.0]
            for slot, velocity in hits:
                if slot >= len(self.engine.kit.slots):
                    continue
                if self.engine.trigger(velocity, slot, frame=frame):
                    self.hits += 1
                else:
                    self.refused += 1

    # --- the frame grid (under _lock) ----------------------------------------------------------
    def _rate(self) -> int:
        return int(self.engine.rate)

    def _step_frames(self) -> float:
        return self._rate() * 60.0 / self.tempo / 4.0

    def _step_frame(self, n: int) -> int:
        """Output frame of the n-th step after the anchor (odd steps of the bar swung)."""
        step = self._step_frames()
        swung = 0.5 * self.swing * step if (self._anchor_step + n) % 2 else 0.0
        return self._anchor_frame + round(n * step + swung)

    def _reanchor(self) -> None:
        """Before a tempo change: the next unscheduled step becomes the anchor, so the steps
        already placed stay where they are and the new tempo counts from there."""
        if not self.playing:
            return
        n = self._next_step
        step = self._step_frames()
        self._anchor_frame += round(n * step)
        self._anchor_step = (self._anchor_step + n) % STEPS
        self._next_step = 0

    def _frame_now(self) -> int:
        frame0, t0, _, _ = self.engine.mixer.clock()
        return int(frame0 + (time.monotonic() - t0) * self._rate())

    def _tell(self, address: str, args: list[Any]) -> None:
        for listener in list(self._listeners):
            try:
                listener(address, args)
            except Exception as exc:  # a broken page must not break the pattern
                log.warning("sequencer listener failed for %s: %s", address, exc)
