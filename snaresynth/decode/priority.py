"""The decode thread's scheduling: realtime while it is light, ordinary while it is flooded.

A knob turn must be heard within a few milliseconds even when every core is busy with another
program; under Linux's ordinary scheduler a 1.5 ms decode then waits behind the other program
for one or more time slices (p99 10-80 ms measured, docs/performance.md). So the thread that
decodes asks for ``SCHED_FIFO`` at priority 1: above every ordinary thread, below every JACK
thread (JACK's own run at 10 and above), so the audio callback is never kept waiting by it.

A realtime thread that never sleeps would starve the ordinary threads of its core (OSC, MIDI,
the page), so a governor keeps a decayed share of the time it is busy: above ``budget`` it
drops back to the ordinary scheduler, and below half of that it climbs back. Without the
permission (no ``rtprio`` limit, not root) it says so once and decodes at normal priority.

Thread: ``enter``, ``before_decode`` and ``after_decode`` run on the decoding thread itself
(``sched_setscheduler(0)`` changes the calling thread only).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

RT_PRIORITY = 1  # the lowest realtime priority: below JACK's threads
BUDGET = 0.5  # busy share (decayed over WINDOW_S) above which the thread goes ordinary
WINDOW_S = 0.25


def _set_realtime(priority: int) -> None:
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))


def _set_ordinary(priority: int) -> None:
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


class DecodePriority:
    """Realtime scheduling for the calling thread, governed by its own busy share."""

    def __init__(self, priority: int = RT_PRIORITY, budget: float = BUDGET,
                 window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic,
                 set_realtime: Callable[[int], None] = _set_realtime,
                 set_ordinary: Callable[[int], None] = _set_ordinary) -> None:
        self.priority = priority
        self.budget = budget
        self.window_s = window_s
        self._clock = clock
        self._set_realtime = set_realtime
        self._set_ordinary = set_ordinary
        self.available = False  # the permission was there at ``enter``
        self.realtime = False  # what the thread runs under now
        self.share = 0.0  # decayed busy share, 0..~1
        self.demotions = 0  # times the budget sent the thread back to ordinary
        self._last = clock()

    def enter(self) -> bool:
        """Ask for realtime scheduling (0 = off); False when it is not allowed here."""
        if self.priority <= 0 or not hasattr(os, "SCHED_FIFO"):
            return False
        try:
            self._set_realtime(self.priority)
        except (PermissionError, OSError) as exc:
            log.info("decoding at normal priority: realtime scheduling is not allowed here (%s;"
                     " an rtprio limit, as JACK users have, allows it)", exc)
            return False
        self.available = self.realtime = True
        self._last = self._clock()
        return True

    def _decay(self) -> None:
        now = self._clock()
        self.share *= math.exp(-max(now - self._last, 0.0) / self.window_s)
        self._last = now

    def before_decode(self) -> None:
        """Back to realtime once the share has fallen below half the budget."""
        if not self.available or self.realtime:
            return
        self._decay()
        if self.share < self.budget / 2:
            self._switch(True)

    def after_decode(self, busy_s: float) -> None:
        """Fold one decode's time into the share; over the budget, go ordinary."""
        if not self.available:
            return
        self._decay()
        self.share += busy_s / self.window_s
        if self.realtime and self.share > self.budget:
            self._switch(False)
            self.demotions += 1

    def _switch(self, realtime: bool) -> None:
        try:
            if realtime:
                self._set_realtime(self.priority)
            else:
                self._set_ordinary(0)
        except (PermissionError, OSError) as exc:  # a limit lowered under us: stay ordinary
            log.info("decode priority unchanged: %s", exc)
            self.available = False
            realtime = False
        self.realtime = realtime

__all__ = ["BUDGET", "RT_PRIORITY", "DecodePriority"]
