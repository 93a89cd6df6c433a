"""Where numba keeps the compiled real-time kernels: one folder per version of their sources.

numba stamps a cached function with its own source file only, but the compiled callbacks of
``rt/jack.py`` and ``rt/portaudio.py`` have the kernels of ``rt/mixer.py`` and
``rt/primitives.py`` compiled into them: after an edit of one file alone, numba would load a
callback built for an old table layout. So every kernel is cached under a folder named after a
digest of every source file of this folder: any change gives a new folder and one recompile.
Folders unused for a week are removed (another checkout may be using its own right now).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import numba

RT_FOLDER = Path(__file__).resolve().parent
KERNEL_SOURCES = tuple(sorted(RT_FOLDER.glob("*.py")))
UNUSED_S = 7 * 24 * 3600


def sources_digest() -> str:
    digest = hashlib.sha256()
    for path in KERNEL_SOURCES:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def use_versioned_cache() -> Path | None:
    """Point numba's cache at ``<base>/kernels-<digest>`` (base: ``$NUMBA_CACHE_DIR``, else the
    user cache folder) before any kernel is compiled. None if no folder can be written (numba
    then compiles without caching)."""
    import platformdirs

    base = Path(os.environ.get("NUMBA_CACHE_DIR") or
                Path(platformdirs.user_cache_dir("snaresynth")) / "numba")
    folder = base / f"kernels-{sources_digest()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.utime(folder)  # in use: see below
    except OSError:
        return None
    for old in base.glob("kernels-*"):
        try:
            unused = time.time() - old.stat().st_mtime > UNUSED_S
        except OSError:
            continue
        if old != folder and unused:
            shutil.rmtree(old, ignore_errors=True)
    numba.config.CACHE_DIR = str(folder)
    return folder
