"""Atomic file writes: a crash or SIGKILL mid-save leaves the old or the new file, never half.

Temporary files and folders are created with mode 0666 / 0777 less the umask, like any file the
user's tools write (``tempfile.mkstemp`` and ``mkdtemp`` make them 0600 / 0700, and a rename
keeps that mode: a WAV, preset or exported kit would then be private to its owner).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

TRIES = 100
"""Random temporary names tried before giving up (a clash is one in 2**48)."""


def _unique(folder: Path, prefix: str, suffix: str, make: Callable[[Path], object]) -> Path:
    for _ in range(TRIES):
        candidate = folder / f"{prefix}{secrets.token_hex(6)}{suffix}"
        try:
            make(candidate)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"{folder}: no free temporary name {prefix}*{suffix}")


def temp_file(folder: Path, prefix: str, suffix: str) -> Path:
    """Create an empty new file in ``folder``, mode 0666 less the umask (the kernel applies it)."""
    def make(path: Path) -> None:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666))

    return _unique(folder, prefix, suffix, make)


def temp_dir(folder: Path, prefix: str, suffix: str) -> Path:
    """Create an empty new folder in ``folder``, mode 0777 less the umask."""
    return _unique(folder, prefix, suffix, lambda path: os.mkdir(path, 0o777))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success fsync it and rename over ``path``.

    For writers that want a file name (soundfile, Keras); the rename is atomic on POSIX because
    the temporary file lives on the same file system.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_file(target.parent, f".{target.name}.", ".tmp" + target.suffix)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename, fsync of the folder)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` durable (best effort: not every file system
    lets a folder be synced)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
