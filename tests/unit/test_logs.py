"""snaresynth.logs: no logging thread ever waits on stderr, and the volume stays bounded."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time

from snaresynth.logs import MAX_CHARS, PER_SECOND, QueueLog


class _Stuck:
    """A stderr whose reader never reads: every write blocks until released."""

    def __init__(self) -> None:
        import threading

        self.release = threading.Event()
        self.lines: list[str] = []

    def write(self, text: str) -> None:
        self.release.wait()
        self.lines.append(text)

    def flush(self) -> None:
        pass


def _logger(handler: logging.Handler, name: str) -> logging.Logger:
    log = logging.getLogger(name)
    log.propagate = False
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    return log


def test_a_stuck_stderr_never_blocks_the_logging_thread() -> None:
    stuck = _Stuck()
    handler = QueueLog(stuck, per_second=10**9, max_lines=100)
    log = _logger(handler, "test.stuck")
    t0 = time.monotonic()
    for i in range(5000):
        log.warning("line %d", i)
    assert time.monotonic() - t0 < 5.0  # nothing waited on the stuck reader
    assert handler.dropped >= 5000 - 101  # the queue holds 100 (+1 being written)
    stuck.release.set()
    handler.flush(5.0)
    assert 1 <= len(stuck.lines) <= 101


def test_lines_are_bounded_per_logger_and_cut(capsys) -> None:
    handler = QueueLog()
    log = _logger(handler, "test.flood")
    for _ in range(PER_SECOND * 50):
        log.warning("unknown type tag %s", "x" * 30_000)
    handler.flush(5.0)
    lines = capsys.readouterr().err.splitlines()
    assert 1 <= len(lines) <= 2 * PER_SECOND  # at most two one-second windows
    assert all(len(line) <= MAX_CHARS for line in lines)
    assert handler.limit.left_out >= PER_SECOND * 48


def test_a_library_flooding_the_root_logger_is_bounded_and_the_daemon_stops_on_sigterm(
        tmp_path) -> None:
    """python-osc logs one warning per unknown type tag through the root logger: with stderr
    a pipe nobody reads, the process must still answer SIGTERM at once."""
    script = textwrap.dedent("""
        import logging, signal, sys, time
        from snaresynth import logs
        logs.setup(logging.INFO)
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
        print("flooding", flush=True, file=sys.stdout)
        while True:
            logging.warning("unknown type tag %s", "y" * 30_000)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"flooding\n"
        time.sleep(1.5)  # far more than a 64 KiB pipe's worth of lines was logged by now
        proc.terminate()
        assert proc.wait(timeout=5) == 0
    finally:
        proc.kill()
    lines = (proc.stderr.read() if proc.stderr else b"").splitlines()
    assert 1 <= len(lines) <= 4 * PER_SECOND  # ~1.5 s of a flood: a few one-second windows
    assert all(len(line) <= MAX_CHARS for line in lines)
