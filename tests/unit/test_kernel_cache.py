"""The kernels' cache folder follows every source compiled into the real-time callbacks."""

import os
import time

import numba

from snaresynth.rt import kernel_cache


def test_the_cache_folder_changes_with_any_kernel_source(tmp_path, monkeypatch):
    sources = []
    for name in ("rt_primitives.py", "voices.py", "jack_rt.py", "portaudio_rt.py"):
        path = tmp_path / "src" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"# {name}\n")
        sources.append(path)
    monkeypatch.setattr(kernel_cache, "KERNEL_SOURCES", tuple(sources))
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(numba.config, "CACHE_DIR", numba.config.CACHE_DIR)
    first = kernel_cache.use_versioned_cache()
    assert first is not None and str(first) == numba.config.CACHE_DIR
    sources[1].write_text("# voices.py, edited: the callbacks compiled against it are stale\n")
    second = kernel_cache.use_versioned_cache()
    assert second != first and second.is_dir()
    assert first.is_dir()  # another checkout may still use it...
    week_ago = time.time() - kernel_cache.UNUSED_S - 60
    os.utime(first, (week_ago, week_ago))
    assert kernel_cache.use_versioned_cache() == second
    assert not first.exists()  # ...until it is a week unused
