"""Where numba keeps the compiled real-time kernels: one folder per version of their sources.

numba stamps a cached function with its own source file only, but the compiled callbacks of
``io/jack_rt.py`` and ``io/portaudio_rt.py`` have the kernels of ``voices.py`` and
``rt_primitives.py`` compiled into them. After an edit of ``voices.py`` alone (a ``git pull``
in an editable install), numba would load a callback built for the old array layout and run
it in the audio thread. So every
kernel is cached under a folder named after a digest of all of them: any change gives a
new folder and one recompile (~5 s). Folders unused for a week are removed (not at once:
another checkout of another version may be using its own right now).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import numba

PACKAGE = Path(__file__).resolve().parent
KERNEL_SOURCES = (PACKAGE / "rt_primitives.py", PACKAGE / "voices.py",
                  PACKAGE / "io" / "jack_rt.py", PACKAGE / "io" / "portaudio_rt.py")
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
