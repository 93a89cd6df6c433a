"""Preset and state files survive SIGKILL at any moment, and readers never see half a file.

A forked child saves kits and the daemon state over and over through the real ``save_kit`` /
``save_state`` (temp file, fsync, rename: ``snaresynth/atomic.py``); the parent reads the files
while the child writes and SIGKILLs it at random moments, 50 times. Every read and the file left
after every kill must parse and be one of the complete versions. With a plain ``write_text``
instead of the atomic write, the concurrent reads find empty or partial files within a few
rounds (docs/reliability.md).
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

from snaresynth.control.kit import Kit, Slot, kit_to_dict
from snaresynth.control.presets import load_kit, load_state, save_kit, save_state

KILLS = 50


def _versions() -> list[Kit]:
    """Kits of different sizes, so a torn write could not look like a whole one."""
    kits = []
    for v in range(4):
        slots = [Slot(name=f"v{v} slot {i}", notes=[36 + i], knobs=[(v + i) % 10 / 10] * 8,
                      level_db=-float(v))
                 for i in range(4 + 8 * v)]
        kits.append(Kit(name=f"version {v}", slots=slots, cc={20 + i: f"latent/{i}"
                                                              for i in range(8)},
                        description="x" * (50 * v)))
    return kits


def _child(preset: Path, state: Path, kits: list[Kit], start: int) -> None:
    """Runs in the forked child until it is killed; never returns."""
    try:
        i = start
        while True:
            kit = kits[i % len(kits)]
            save_kit(kit, preset)
            save_state(state, kit, i % len(kit.slots))
            i += 1
    finally:
        os._exit(1)


def _check(preset: Path, state: Path, known: list[dict]) -> None:
    assert kit_to_dict(load_kit(preset)) in known
    kit, selected = load_state(state)
    assert kit_to_dict(kit) in known and 0 <= selected < len(kit.slots)


def test_sigkill_during_saves_never_leaves_a_torn_file(tmp_path: Path) -> None:
    kits = _versions()
    known = [kit_to_dict(k) for k in kits]
    preset, state = tmp_path / "kit.toml", tmp_path / "state.toml"
    save_kit(kits[0], preset)
    save_state(state, kits[0], 0)
    rng = random.Random(1234)
    reads = 0
    for round_ in range(KILLS):
        pid = os.fork()
        if pid == 0:
            _child(preset, state, kits, round_)
        try:
            deadline = time.monotonic() + rng.uniform(0.002, 0.03)
            while time.monotonic() < deadline:  # readers while the child writes
                _check(preset, state, known)
                reads += 1
        finally:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        _check(preset, state, known)
    # leftover temp files from killed saves are hidden and never listed as presets
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("kit.toml", "state.toml")]
    assert all(name.startswith(".") for name in leftovers), leftovers
    print(f"{KILLS} SIGKILLs, {reads} concurrent reads, {len(leftovers)} temp files left")
