"""``snaresynth serve`` as a subprocess: started with given arguments, ready when it prints its
ready line (whose OSC URL gives the port, so ``--osc-port 0`` works), stopped with SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from snaresynth.testing import HarnessError
from snaresynth.testing.procs import stop_process

READY_PREFIX = "snaresynth ready:"
READY_TIMEOUT_S = 180.0  # TensorFlow start-up on two busy shared cores
_OSC_URL = re.compile(r"OSC osc\.udp://[\d.]+:(\d+)")


def osc_port_of(ready_line: str) -> int:
    """The OSC port named in the daemon's ready line."""
    match = _OSC_URL.search(ready_line)
    if match is None:
        raise HarnessError(f"no OSC URL in the ready line: {ready_line!r}")
    return int(match.group(1))


def daemon_env(home: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a daemon whose user presets live under ``home`` (never the user's own),
    with TensorFlow's start-up chatter off and unbuffered output (the ready line comes at once)."""
    return dict(os.environ if base is None else base, SNARESYNTH_PRESET_DIR=str(home / "presets"),
                TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")


def serve_args(home: Path, *extra: str) -> list[str]:
    """Arguments for a daemon on any free OSC port whose state file lives under ``home``."""
    return ["--osc-port", "0", "--state-file", str(home / "state.toml"), *extra]


class Daemon:
    """A running ``snaresynth serve ARGS``; a reader thread collects its output lines.

    The constructor returns once the ready line is out (or raises HarnessError with the output);
    ``stop`` signals it and says how long it took to exit.
    """

    def __init__(self, args: Sequence[str], env: Mapping[str, str] | None = None,
                 timeout: float = READY_TIMEOUT_S, cwd: Path | None = None,
                 wait_ready: bool = True) -> None:
        """``wait_ready=False``: return at once (a test that signals it during start-up reads
        ``lines`` meanwhile); ``osc_port`` is then 0."""
        self.args = list(args)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "snaresynth.cli", "serve", *self.args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None, cwd=cwd, text=True)
        self.lines: list[str] = []
        self.ready_line = ""
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, name="daemon-output", daemon=True)
        self._reader.start()
        self.osc_port = 0
        if not wait_ready:
            return
        if not self._ready.wait(timeout) or not self.ready_line:
            self.stop()
            raise HarnessError(f"daemon not ready within {timeout:g} s:\n{self.tail(60)}")
        self.osc_port = osc_port_of(self.ready_line)

    @classmethod
    def in_home(cls, home: Path, *extra: str, env: Mapping[str, str] | None = None,
                timeout: float = READY_TIMEOUT_S, wait_ready: bool = True) -> Daemon:
        """A daemon with its presets and state under ``home`` and any free OSC port."""
        home.mkdir(parents=True, exist_ok=True)
        return cls(serve_args(home, *extra), daemon_env(home, env), timeout,
                   wait_ready=wait_ready)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if not self.ready_line and line.startswith(READY_PREFIX):
                self.ready_line = line
                self._ready.set()
        self._ready.set()  # it exited: nobody waits the full timeout for a line that won't come

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def output(self) -> str:
        return "".join(self.lines)

    def tail(self, lines: int = 30) -> str:
        return "".join(self.lines[-lines:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> float:
        """Signal the daemon (SIGKILL after ``timeout`` s); the seconds it took to exit."""
        took = stop_process(self.proc, sig, timeout)
        self._reader.join(2.0)  # its last lines (the saved state, the goodbye) are in output()
        return took

    close = stop

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
