"""The command line a user meets, through real processes: a quiet start (only the daemon's own
lines, library messages in the log), Ctrl-C and SIGTERM to the whole process group with no
traceback (decode in a process and in a thread, after and during start-up), ``--audio list`` /
``--midi-in list``, and a device that is not there refused before the model loads, with the
names that are there (exit code 2)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from snaresynth.testing.daemon import Daemon, daemon_env, serve_args
from snaresynth.testing.jackd import JackServer
from snaresynth.testing.midi import MidiSender
from snaresynth.testing.procs import proc_tree, signal_other_thread, signal_tree, wait_for

pytestmark = pytest.mark.e2e

NO_JACK = dict(os.environ, JACK_DEFAULT_SERVER="snaresynth-nosuch")
OWN_LINE = re.compile(r"^(\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR) snaresynth[\w.]*: "
                      r"|snaresynth (ready: |serve: ))")


def _foreign(lines: list[str]) -> list[str]:
    """Lines that are not the daemon's own: its log records, its ready line, its errors."""
    return [line for line in lines if line.strip() and not OWN_LINE.match(line)]


def _serve(home: Path, *extra: str, env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
    """``snaresynth serve`` run to its end (the commands here exit by themselves)."""
    return subprocess.run([sys.executable, "-m", "snaresynth.cli", "serve",
                           *serve_args(home, *extra)], env=daemon_env(home, env),
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def midi_source(jack_server: JackServer) -> Iterator[str]:
    """A JACK MIDI output port for the daemon to find: its full name."""
    sender = MidiSender("snaresynth-test-pad")
    yield sender.port.name
    sender.close()


@pytest.mark.parametrize("audio", ["null", "auto"])
def test_a_quiet_start_prints_only_the_daemons_lines(tmp_path: Path, audio: str) -> None:
    # no JACK server by that name: libjack's five lines per probe would show here; auto also
    # starts PortAudio, which probes ALSA and JACK
    daemon = Daemon.in_home(tmp_path, "--audio", audio, env=NO_JACK)
    daemon.stop(signal.SIGTERM)
    assert daemon.returncode == 0, daemon.output()
    assert _foreign(daemon.lines) == [], daemon.output()


@pytest.mark.parametrize("extra, env, says", [
    (("--audio", "jack"), NO_JACK, 'no JACK server "snaresynth-nosuch" running'),
    (("--audio", "snaresynth-no-such-card"), NO_JACK, "outputs here: null, auto, jack"),
    (("--midi-in", "snaresynth-no-such-port", "--midi-api", "jack"), NO_JACK,
     "MIDI API jack unavailable"),
])
def test_a_missing_device_is_one_line_before_the_model_loads(
        tmp_path: Path, extra: tuple[str, ...], env: dict[str, str], says: str) -> None:
    done = _serve(tmp_path, *extra, env=env)
    lines = done.stderr.splitlines()
    assert done.returncode == 2 and done.stdout == "", done
    assert len(lines) == 1 and says in lines[0] and lines[0].startswith("snaresynth serve: "), \
        lines


def test_a_missing_jack_port_names_the_ports_there_are(tmp_path: Path, midi_source: str) -> None:
    done = _serve(tmp_path, "--audio", "jack", "--midi-in", "snaresynth-no-such-port")
    assert done.returncode == 2, done
    assert "no MIDI input matching 'snaresynth-no-such-port' on jack" in done.stderr
    assert midi_source in done.stderr and " model: " not in done.stderr, done.stderr


def test_audio_list_names_the_jack_server_and_portaudio(tmp_path: Path,
                                                       jack_server: JackServer) -> None:
    done = _serve(tmp_path, "--audio", "list")
    assert done.returncode == 0 and done.stderr == "", done
    assert f'JACK server "{jack_server.name}": {jack_server.rate} Hz' in done.stdout
    assert "PortAudio outputs" in done.stdout and "null" in done.stdout, done.stdout


def test_midi_in_list_names_the_ports_by_api(tmp_path: Path, midi_source: str) -> None:
    done = _serve(tmp_path, "--midi-in", "list", "--audio", "jack")
    assert done.returncode == 0 and done.stderr == "", done
    jack_part = done.stdout.split("  jack:", 1)[1]
    assert f"    {midi_source}" in jack_part, done.stdout
    assert "  alsa:" in done.stdout and "--midi-api auto picks jack" in done.stdout


@pytest.mark.parametrize("decode", ["process", "thread"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_the_process_group_stops_all_without_a_traceback(
        tmp_path: Path, decode: str, sig: signal.Signals) -> None:
    daemon = Daemon.in_home(tmp_path, "--audio", "null", "--midi-in", "none", "--decode",
                            decode)
    pids = signal_tree(daemon.pid, sig)  # as Ctrl-C in a terminal: every process of it
    daemon.proc.wait(30)
    daemon.stop()
    assert daemon.returncode == 0 and "Traceback" not in daemon.output(), daemon.output()
    assert (len(pids) > 1) == (decode == "process")  # the decode child got it too
    assert "stopped in" in daemon.output()


def test_a_signal_delivered_to_another_thread_stops_it_as_soon(tmp_path: Path) -> None:
    # the kernel hands a process's signal to any thread that does not block it; the main thread
    # used to notice only when its 30 s autosave wait ended (a CI run timed out on it)
    daemon = Daemon.in_home(tmp_path, "--audio", "null", "--midi-in", "none")
    signal_other_thread(daemon.pid, signal.SIGTERM)
    try:
        daemon.proc.wait(20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"no exit within 20 s of SIGTERM to one of its threads:\n{daemon.tail()}")
    finally:
        daemon.stop()
    assert daemon.returncode == 0 and "stopped in" in daemon.output(), daemon.output()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_the_decode_child_starts_is_no_traceback(
        tmp_path: Path, sig: signal.Signals) -> None:
    daemon = Daemon.in_home(tmp_path, "--audio", "null", "--midi-in", "none", "--decode",
                            "process", wait_ready=False)
    try:
        # the child runs Python's own SIGINT handler (KeyboardInterrupt): it is importing its
        # modules, and child_main has not ignored SIGINT yet
        wait_for(lambda: any(_catches(p, signal.SIGINT) for p in proc_tree(daemon.pid)[1:]
                             if "spawn_main" in _cmdline(p)),
                 60, "the decode child to start", daemon.proc, interval=0.002)
        signal_tree(daemon.pid, sig)
        daemon.proc.wait(30)
    finally:
        daemon.stop()
    out = daemon.output()
    assert daemon.returncode == 0 and "Traceback" not in out, out
    assert "during start-up" in out and "snaresynth ready" not in out, out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


def _catches(pid: int, sig: int) -> bool:
    """Whether ``pid`` has a handler of its own for ``sig`` (SigCgt in /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = re.search(r"^SigCgt:\s*([0-9a-f]+)", status, re.M)
    return caught is not None and bool(int(caught.group(1), 16) >> (sig - 1) & 1)


def test_tensorflow_commands_print_none_of_its_start_up_lines(tmp_path: Path) -> None:
    from snaresynth.models.registry import bundled_models

    pytest.importorskip("tensorflow")
    model = tmp_path / "copy.keras"
    model.write_bytes(bundled_models()[0].read_bytes())
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0")
    procs = [subprocess.Popen([sys.executable, "-m", "snaresynth.cli", *args], cwd=tmp_path,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
             for args in (["export", str(model)],  # both at once: a TensorFlow start each
                          ["explore", "--model", str(model), "--steps", "2", "--out",
                           str(tmp_path / "x.png")])]
    for proc in procs:
        try:
            _, stderr = proc.communicate(timeout=300)
        finally:
            proc.kill()
        assert proc.returncode == 0, stderr
        for noise in ("absl", "oneDNN", "InitializeLog", "cpu_feature_guard"):
            assert noise not in stderr, (proc.args[3], stderr)
