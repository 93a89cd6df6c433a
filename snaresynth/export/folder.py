"""An export folder that appears complete or not at all: everything is written into a hidden
temporary folder beside the target, fsynced, then renamed onto the target in one step."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from snaresynth.atomic import fsync_dir, temp_dir
from snaresynth.export.render import ExportError


def check_target(target: Path, force: bool) -> None:
    """Refuse before any work: an existing target without ``force``, a target that is a file,
    a parent that is missing or cannot be written."""
    if target.exists() or target.is_symlink():
        if not force:
            raise ExportError(f"{target} already exists (use --force to replace it)")
        if not target.is_dir() or target.is_symlink():
            raise ExportError(f"{target} exists and is not a folder; not replacing it")
    parent = target.parent
    if not parent.is_dir():
        raise ExportError(f"{parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ExportError(f"{parent}: cannot write here (permission denied)")


@contextlib.contextmanager
def staged_folder(target: str | os.PathLike[str], force: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder; when the block succeeds, it becomes ``target``.

    With ``force`` an existing target is moved aside first and removed only after the new one
    is in place. On any failure the temporary folder is removed and the target is untouched.
    """
    target = Path(target)
    check_target(target, force)
    try:
        # the umask's mode, not mkdtemp's 0700: the folder becomes the user's kit
        tmp = temp_dir(target.parent, f".{target.name}.", ".tmp")
    except OSError as exc:
        raise ExportError(f"{target.parent}: cannot write here: {exc.strerror or exc}") from None
    old: Path | None = None
    try:
        yield tmp
        _fsync_tree(tmp)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old",
                                        dir=target.parent))
            os.replace(target, old / "kit")
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except OSError as exc:
        if old is not None and not target.exists():
            os.replace(old / "kit", target)  # put the old one back: never lose a kit
        raise ExportError(f"{target}: cannot write: {exc.strerror or exc}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            with open(Path(folder) / name, "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(Path(folder))
