"""Logging that can never stop the instrument: every logger (ours and every library's) goes
through one bounded queue to one writer thread.

A thread that logs only formats and enqueues: it never waits on stderr, however slow or
stuck its reader is (a full queue drops the line and counts it). Each logger gets at most
``PER_SECOND`` lines a second (then one summary line of how many were left out), and each line
is cut to ``MAX_CHARS``, so no input can make the log grow faster than that.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from typing import TextIO

MAX_CHARS = 400
"""Characters of one log line at most (a 30,000-character OSC address is cut)."""
PER_SECOND = 20
"""Lines a second from one logger at most."""
QUEUE_LINES = 4096
"""Lines waiting for the writer at most; more are dropped and counted."""

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Limit(logging.Filter):
    """Per-logger lines-a-second limit; the first line of the next second says how many were
    left out. Runs in the logging thread (counts may be off by one under races: harmless)."""

    def __init__(self, per_second: int) -> None:
        super().__init__()
        self.per_second = per_second
        self._windows: dict[str, tuple[int, int, int]] = {}  # name -> (second, shown, left out)
        self.left_out = 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = int(time.monotonic())
        second, shown, left = self._windows.get(record.name, (now, 0, 0))
        if second != now:
            if left:
                record.msg = f"({left} lines from {record.name} left out) {record.msg}"
            second, shown, left = now, 0, 0
        if shown >= self.per_second:
            self._windows[record.name] = (second, shown, left + 1)
            self.left_out += 1
            return False
        if len(self._windows) > 1024:  # names come from code, but bound it anyway
            self._windows.clear()
        self._windows[record.name] = (second, shown + 1, left)
        return True


class QueueLog(logging.Handler):
    """Formats each record in the logging thread, cut to ``MAX_CHARS``, and hands the line to
    the writer thread without waiting."""

    def __init__(self, stream: TextIO | None = None, per_second: int = PER_SECOND,
                 max_lines: int = QUEUE_LINES) -> None:
        super().__init__()
        self.stream = stream  # None: whatever sys.stderr is when a line is written
        self.limit = _Limit(per_second)
        self.addFilter(self.limit)
        self.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
        self.dropped = 0
        self._queued = 0
        self._written = 0
        self._lines: queue.Queue[str | None] = queue.Queue(max_lines)
        self._writer = threading.Thread(target=self._write, name="snaresynth-log", daemon=True)
        self._writer.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # a bad format string from a library must not raise into its caller
            line = f"{record.levelname} {record.name}: (unformattable log record)"
        if len(line) > MAX_CHARS:
            line = line[:MAX_CHARS - 25] + f"... ({len(line)} chars)"
        try:
            self._lines.put_nowait(line.replace("\n", "\n    "))
            self._queued += 1
        except queue.Full:
            self.dropped += 1

    def _write(self) -> None:
        while (line := self._lines.get()) is not None:
            stream = self.stream or sys.stderr
            try:
                stream.write(line + "\n")
                stream.flush()
            except (OSError, ValueError):  # closed or broken stderr: keep draining
                pass
            self._written += 1

    def flush(self, timeout: float = 1.0) -> None:  # also called by logging at exit
        """Wait (at most ``timeout`` s) until every queued line is written."""
        deadline = time.monotonic() + timeout
        while self._written < self._queued and time.monotonic() < deadline:
            time.sleep(0.001)


def setup(level: int) -> QueueLog:
    """Route the root logger (so every library's logger) through one ``QueueLog`` (once per
    process: a second call only sets the level)."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, QueueLog)), None)
    if handler is None:
        handler = QueueLog()
        root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    return handler
