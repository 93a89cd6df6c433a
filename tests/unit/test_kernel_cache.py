"""The kernels' cache folder follows every source file of snaresynth/rt/, whatever its name."""

import os
import shutil
import time
from pathlib import Path

import numba
import pytest

import snaresynth.rt
from snaresynth.rt import kernel_cache


@pytest.fixture
def rt_copy(tmp_path):
    """A copy of the real rt/ folder's sources."""
    folder = tmp_path / "rt"
    folder.mkdir()
    for path in kernel_cache.kernel_sources():
        shutil.copy(path, folder / path.name)
    return folder


def test_every_module_of_the_rt_folder_is_a_kernel_source():
    folder = Path(snaresynth.rt.__file__).parent
    names = {path.name for path in kernel_cache.kernel_sources()}
    assert names == {path.name for path in folder.glob("*.py")}
    assert {"ring.py", "mixer.py", "jack.py", "portaudio.py", "primitives.py"} <= names


def test_the_digest_changes_with_any_edit_new_file_or_rename(rt_copy):
    first = kernel_cache.sources_digest(rt_copy)
    assert kernel_cache.sources_digest(rt_copy) == first  # stable
    ring = rt_copy / "ring.py"
    ring.write_text(ring.read_text() + "# a new fence\n")
    edited = kernel_cache.sources_digest(rt_copy)
    (rt_copy / "newkernel.py").write_text("# compiled into a callback\n")
    added = kernel_cache.sources_digest(rt_copy)
    (rt_copy / "sub").mkdir()
    (rt_copy / "newkernel.py").rename(rt_copy / "sub" / "newkernel.py")
    moved = kernel_cache.sources_digest(rt_copy)
    (rt_copy / "__pycache__").mkdir()
    (rt_copy / "__pycache__" / "stray.py").write_text("# not a source\n")
    assert len({first, edited, added, moved}) == 4
    assert kernel_cache.sources_digest(rt_copy) == moved


def test_the_cache_folder_changes_with_any_kernel_source(rt_copy, tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(numba.config, "CACHE_DIR", numba.config.CACHE_DIR)
    first = kernel_cache.use_versioned_cache(rt_copy)
    assert first is not None and str(first) == numba.config.CACHE_DIR
    mixer = rt_copy / "mixer.py"
    mixer.write_text(mixer.read_text() + "# edited: the callbacks compiled against it are stale\n")
    second = kernel_cache.use_versioned_cache(rt_copy)
    assert second != first and second is not None and second.is_dir()
    assert first.is_dir()  # another checkout may still use it...
    week_ago = time.time() - kernel_cache.UNUSED_S - 60
    os.utime(first, (week_ago, week_ago))
    assert kernel_cache.use_versioned_cache(rt_copy) == second
    assert not first.exists()  # ...until it is a week unused
