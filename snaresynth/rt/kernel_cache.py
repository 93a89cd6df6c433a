"""Where numba keeps the compiled real-time kernels: one folder per version of this folder.

Thread: main, once, when ``snaresynth.rt`` is first imported (before any kernel is compiled).
numba stamps a cached function with its own source file only, yet the callbacks of
``rt/jack.py`` and ``rt/portaudio.py`` have the kernels of the other modules compiled into them,
so the cache folder is named after a digest of every ``.py`` file of ``rt/``: any edit, added,
removed or renamed module gives a new folder and one recompile. Folders unused for a week are
removed (another checkout may be using its own right now).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import numba

RT_FOLDER = Path(__file__).resolve().parent
UNUSED_S = 7 * 24 * 3600


def kernel_sources(folder: Path = RT_FOLDER) -> list[Path]:
    """Every Python source under ``folder``, in a fixed order."""
    return sorted(path for path in folder.rglob("*.py") if "__pycache__" not in path.parts)


def sources_digest(folder: Path = RT_FOLDER) -> str:
    """A digest of the names and contents of ``kernel_sources(folder)``."""
    digest = hashlib.sha256()
    for path in kernel_sources(folder):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def use_versioned_cache(folder: Path = RT_FOLDER) -> Path | None:
    """Point numba's cache at ``<base>/kernels-<digest of folder>`` (base: ``$NUMBA_CACHE_DIR``,
    else the user cache folder) before any kernel is compiled. None if no folder can be written
    (numba then compiles without caching)."""
    import platformdirs

    base = Path(os.environ.get("NUMBA_CACHE_DIR") or
                Path(platformdirs.user_cache_dir("snaresynth")) / "numba")
    cache = base / f"kernels-{sources_digest(folder)}"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        os.utime(cache)  # in use: see below
    except OSError:
        return None
    for old in base.glob("kernels-*"):
        try:
            unused = time.time() - old.stat().st_mtime > UNUSED_S
        except OSError:
            continue
        if old != cache and unused:
            shutil.rmtree(old, ignore_errors=True)
    numba.config.CACHE_DIR = str(cache)
    return cache
