"""Synths under test on one private JACK server, each with the JACK port names a ``Probe``
connects to: the daemon (``snaresynth serve --audio jack --midi-api jack``) and FluidSynth (the
reference the latency benchmark compares against)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from snaresynth.testing import HarnessError
from snaresynth.testing.daemon import READY_TIMEOUT_S, Daemon
from snaresynth.testing.jackd import JackServer
from snaresynth.testing.probe import jack_port_names, synth_audio_ports
from snaresynth.testing.procs import stop_process, wait_for

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")  # Debian's fluid-soundfont-gm


@dataclass
class Synth:
    """A synth under test: its process and the JACK ports a probe plays into and hears."""

    name: str
    proc: subprocess.Popen
    midi_in: str
    audio_out: str
    osc_port: int = 0
    daemon: Daemon | None = None

    def close(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
        else:
            stop_process(self.proc)


def jack_daemon(server: JackServer, home: Path, extra: Sequence[str] = (),
                timeout: float = READY_TIMEOUT_S) -> Synth:
    """``snaresynth serve`` on ``server`` at its period, state and presets under ``home``."""
    daemon = Daemon.in_home(home, "--audio", "jack", "--midi-api", "jack", "--blocksize",
                            str(server.period), *extra, env=server.env(), timeout=timeout)
    try:
        audio_out = synth_audio_ports(server, daemon.proc)[0]
    except BaseException:
        daemon.stop()
        raise
    return Synth("snaresynth", daemon.proc, "snaresynth:midi_in", audio_out, daemon.osc_port,
                 daemon)


def fluidsynth(server: JackServer, timeout: float = 30.0) -> Synth:
    """FluidSynth, GM soundfont, JACK audio + MIDI, no reverb/chorus, no autoconnect."""
    exe = shutil.which("fluidsynth")
    if exe is None or not SOUNDFONT.exists():
        raise HarnessError("fluidsynth or FluidR3_GM.sf2 missing (Debian fluidsynth, "
                           "fluid-soundfont-gm)")
    cmd = [exe, "-a", "jack", "-m", "jack", "-i", "-s", "-g", "1", "-R", "0", "-C", "0",
           "-r", str(server.rate), "-o", "audio.jack.autoconnect=0", str(SOUNDFONT)]
    proc = subprocess.Popen(cmd, env=server.env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def ports() -> list[str]:
        names = jack_port_names(server, "fluidsynth")
        return names if {"midi_00", "left"} <= {n.split(":")[-1] for n in names} else []

    try:
        names = wait_for(ports, timeout, "fluidsynth", proc)
    except BaseException:
        stop_process(proc)
        raise
    client_name = names[0].split(":")[0]
    return Synth("FluidSynth", proc, f"{client_name}:midi_00", f"{client_name}:left")
