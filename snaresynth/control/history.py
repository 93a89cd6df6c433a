"""Undo and redo over snapshots of the kit. Pure; the engine serialises access."""

from __future__ import annotations

import copy
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class History(Generic[T]):
    """Bounded undo/redo over snapshots (deep copies) of kit states.

    Call ``push(state)`` once with the initial state and after each user-level change. A knob
    sweep sends many CCs: pass the same ``coalesce`` key (e.g. the parameter address) and
    consecutive pushes with that key replace the newest entry instead of adding one. The oldest
    entries fall off past ``limit``.
    """

    def __init__(self, limit: int = 64) -> None:
        if limit < 2:
            raise ValueError(f"history limit must be at least 2, got {limit}")
        self.limit = limit
        self._past: deque[T] = deque(maxlen=limit)
        self._future: list[T] = []
        self._last_key: str | None = None

    def __len__(self) -> int:
        return len(self._past)

    @property
    def current(self) -> T | None:
        return copy.deepcopy(self._past[-1]) if self._past else None

    def push(self, state: T, coalesce: str | None = None) -> None:
        snapshot = copy.deepcopy(state)
        if coalesce is not None and coalesce == self._last_key and len(self._past) > 1:
            self._past[-1] = snapshot
        else:
            self._past.append(snapshot)
        self._last_key = coalesce
        self._future.clear()

    def undo(self) -> T | None:
        """Step back; returns the previous state (a copy), or None at the oldest one."""
        self._last_key = None
        if len(self._past) < 2:
            return None
        self._future.append(self._past.pop())
        return copy.deepcopy(self._past[-1])

    def redo(self) -> T | None:
        """Step forward again after an undo; None if nothing was undone."""
        self._last_key = None
        if not self._future:
            return None
        self._past.append(self._future.pop())
        return copy.deepcopy(self._past[-1])

