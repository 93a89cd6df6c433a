"""Processes of a test or benchmark: waiting for a condition, stopping a child, and what /proc
says about memory and CPU time."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from snaresynth.testing import HarnessError

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float, what: str,
             proc: subprocess.Popen | None = None, interval: float = 0.1) -> T:
    """The first truthy value of ``predicate()``; raises HarnessError after ``timeout`` seconds,
    or as soon as ``proc`` (the process that should make it true) has exited."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise HarnessError(f"{what}: process exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise HarnessError(f"{what}: not within {timeout:g} s")
        time.sleep(interval)


def until(predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.05) -> bool:
    """Whether ``predicate()`` became true within ``timeout`` (for ``assert until(...)``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM,
                 timeout: float = 10.0) -> float:
    """Send ``sig``, SIGKILL after ``timeout`` s; returns the seconds it took to exit."""
    if proc.poll() is not None:
        return 0.0
    t0 = time.monotonic()
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return time.monotonic() - t0


def proc_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc/PID/task/*/children)."""
    pids = [pid]
    i = 0
    while i < len(pids):
        for task in Path(f"/proc/{pids[i]}/task").glob("*"):
            with contextlib.suppress(OSError):
                pids.extend(int(c) for c in (task / "children").read_text().split())
        i += 1
    return pids


def signal_tree(pid: int, sig: int) -> list[int]:
    """Send ``sig`` to ``pid``'s descendants, then to ``pid``: what a terminal's Ctrl-C does to
    its foreground process group (whose members a test's children do not share with it)."""
    pids = proc_tree(pid)
    for target in reversed(pids):
        with contextlib.suppress(ProcessLookupError):
            os.kill(target, sig)
    return pids


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of one process, in KiB; empty once it is gone."""
    fields: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(":")[0]
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(line.split()[1])
    except OSError:
        pass
    return fields


def rss_kib(pid: int) -> int:
    """VmRSS of a running process, in KiB."""
    rss = memory_kib(pid).get("VmRSS")
    if rss is None:
        raise HarnessError(f"no VmRSS for process {pid}")
    return rss


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (0 once it is gone)."""
    try:
        parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def tensorflow_loaded(pid: int) -> bool:
    """Whether TensorFlow's libraries are mapped into the process."""
    try:
        return "tensorflow" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def signal_other_thread(pid: int, sig: int) -> int:
    """Send ``sig`` to one of ``pid``'s threads other than its main one (``tgkill``), as the
    kernel may do with a signal sent to the process; returns that thread's id."""
    import ctypes

    tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid)
    if not tids:
        raise HarnessError(f"process {pid} has no thread but its main one")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.tgkill(pid, tids[-1], sig) != 0:
        raise HarnessError(f"tgkill({pid}, {tids[-1]}): {os.strerror(ctypes.get_errno())}")
    return tids[-1]
