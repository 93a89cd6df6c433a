"""One private JACK server for tests and benchmarks: ``jackd -n NAME -d dummy -r RATE -p PERIOD``.

Ready is asked on the server's socket, not with a libjack client: a failed ``jack_client_open``
would upset libjack in this process (see ``snaresynth.io.supervisor``). jackd's output goes to a
log file that ``log_text`` and ``late_clients`` read (its xrun lines say whose cycle ran late).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import MutableMapping
from pathlib import Path

from snaresynth.io.supervisor import jack_server_running
from snaresynth.testing import HarnessError
from snaresynth.testing.procs import stop_process

RATE = 48000
_LATE_CLIENT = re.compile(
    r"client = (\S+) was not finished, state = (\w+)|client (\S+) (finished after) current")


class JackServer:
    """A jackd of our own with the dummy driver; ``with JackServer(...) as server`` starts it.

    ``kill`` is SIGKILL (a crash) and ``start`` may follow it: a killed jackd keeps its slot in
    libjack's registry (8 servers at most) until a server of the same name starts again, so a
    test restarts under the same name and a benchmark reuses its names from run to run.
    """

    def __init__(self, name: str | None = None, *, rate: int = RATE, period: int = 256) -> None:
        self.base_name = name or f"snaresynth-{os.getpid()}-{period}"
        self.name = self.base_name
        self.rate = rate
        self.period = period
        self.proc: subprocess.Popen[bytes] | None = None
        fd, path = tempfile.mkstemp(prefix="snaresynth-jackd-", suffix=".log")
        os.close(fd)
        self.log_path = Path(path)

    def start(self, timeout: float = 10.0, attempts: int = 1) -> JackServer:
        """Start jackd and wait until it takes clients; with ``attempts`` > 1 a jackd that exits
        at start is tried again under NAME-1, NAME-2 (it now and then does while other servers
        start theirs)."""
        jackd = shutil.which("jackd")
        if jackd is None:
            raise HarnessError("jackd not found (Debian package jackd2; `make test` installs it)")
        for attempt in range(attempts):
            if attempt:
                self.name = f"{self.base_name}-{attempt}"
            with open(self.log_path, "ab") as log:  # O_APPEND: reading never moves its writes
                self.proc = subprocess.Popen(
                    [jackd, "-n", self.name, "-d", "dummy", "-r", str(self.rate), "-p",
                     str(self.period)], stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT)
            deadline = time.monotonic() + timeout
            while not jack_server_running(self.name):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            else:
                time.sleep(0.2)  # the socket is up a moment before the engine runs cycles
                if self.proc.poll() is None:
                    return self
            stop_process(self.proc)
            if attempt + 1 < attempts:
                time.sleep(1.0)
        raise HarnessError(f"jackd -n {self.name} did not start: {self.log_text()[-500:]}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, SIGKILL after ``timeout`` s."""
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM, timeout)

    def close(self) -> None:
        """Stop it and remove its log."""
        self.stop()
        self.log_path.unlink(missing_ok=True)

    def log_text(self) -> str:
        """Everything jackd printed so far (every start of this server)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def late_clients(self, since: int = 0) -> dict[str, int]:
        """Which clients jackd found unfinished at the end of a cycle, counted per "NAME STATE",
        from character ``since`` of its log on. JACK counts xruns server-wide; these lines say
        whose cycle ran late: ``Running`` was still in its callback, ``Triggered`` was woken but
        had not run yet (waiting for a core, or for a client before it)."""
        counts: dict[str, int] = {}
        for match in _LATE_CLIENT.finditer(self.log_text()[since:]):
            key = f"{match.group(1)} {match.group(2)}" if match.group(1) else \
                f"{match.group(3)} finished late"
            counts[key] = counts.get(key, 0) + 1
        return counts

    def env(self, base: MutableMapping[str, str] | None = None) -> dict[str, str]:
        """Environment for a child that should use this server (and never start another)."""
        return dict(os.environ if base is None else base, JACK_DEFAULT_SERVER=self.name,
                    JACK_NO_START_SERVER="1")

    def export(self, environ: MutableMapping[str, str] | None = None) -> None:
        """Make this server the default of this process and its children (libjack reads these
        variables at each client open)."""
        target = os.environ if environ is None else environ
        target["JACK_DEFAULT_SERVER"] = self.name
        target["JACK_NO_START_SERVER"] = "1"

    def __enter__(self) -> JackServer:
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bench_server(period: int, rate: int = RATE) -> JackServer:
    """A started server for a benchmark: one name per period (so a crashed run's registry slot
    is taken back by the next run), tried three times."""
    return JackServer(f"snaresynth-bench-{period}", rate=rate, period=period).start(attempts=3)
