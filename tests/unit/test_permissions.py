"""Files the user asks for (WAVs, presets, exported kits, the daemon's state) get the mode the
umask gives any new file, not the 0600 / 0700 of ``tempfile``: the atomic write's temporary file
is what gets renamed into place, so its mode is the file's mode."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from snaresynth.analysis.render import write_wav
from snaresynth.atomic import atomic_path, atomic_write_text, temp_dir, temp_file
from snaresynth.control.kit import Kit, Slot
from snaresynth.control.presets import save_kit, save_state
from snaresynth.export.folder import staged_folder


@pytest.fixture(params=[0o022, 0o027, 0o002])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _kit() -> Kit:
    return Kit(name="k", slots=[Slot(name="s", notes=[38], knobs=[0.5] * 8)], cc={})


def test_written_files_follow_the_umask(tmp_path: Path, umask: int) -> None:
    wav, text, preset, state = (tmp_path / n for n in ("a.wav", "a.txt", "p.toml", "s.toml"))
    write_wav(wav, np.zeros(64, dtype=np.float32), 48000)
    atomic_write_text(text, "hello")
    save_kit(_kit(), preset)
    save_state(state, _kit(), 0)
    for path in (wav, text, preset, state):
        assert _mode(path) == 0o666 & ~umask, path


def test_an_exported_folder_follows_the_umask(tmp_path: Path, umask: int) -> None:
    with staged_folder(tmp_path / "kit-sfz") as tmp:
        (tmp / "snare.wav").write_bytes(b"RIFF")
    assert _mode(tmp_path / "kit-sfz") == 0o777 & ~umask


def test_temporary_names_are_new_each_time(tmp_path: Path) -> None:
    files = {temp_file(tmp_path, ".x.", ".tmp") for _ in range(20)}
    folders = {temp_dir(tmp_path, ".x.", ".d") for _ in range(20)}
    assert len(files) == 20 and len(folders) == 20
    assert all(p.name.startswith(".x.") for p in files | folders)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "kept.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-save")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.txt"]
