"""Preset files: strict TOML reading, atomic saving, the daemon's state file, and presets by
name (the user's folder over the shipped one). File I/O only; no threads. ``PresetError``
names the file and the field path of any problem.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from snaresynth.atomic import atomic_write_text
from snaresynth.control import fields
from snaresynth.control.kit import (
    Kit,
    check_name,
    kit_from_dict,
    kit_to_dict,
    read_kit_document,
    validate_kit,
)
from snaresynth.errors import PresetError

PRESET_SUFFIX = ".toml"
MAX_PRESETS = 1000
"""Presets in the user folder at most: ``save`` refuses a new one past it (program change
reaches 128, and ``/preset/list`` must fit one datagram)."""
MAX_FILE_BYTES = 1 << 20
"""A kit or state file is refused past this size before it is read (a full kit of 128 slots
with 1024 knobs each is about 700 KB)."""


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise PresetError(f"{path}: larger than {MAX_FILE_BYTES} bytes, not read")
        return tomllib.loads(data.decode("utf-8"))
    except RecursionError:  # arrays nested thousands deep
        raise PresetError(f"{path}: not a kit: nested too deeply") from None
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"{path}: not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise PresetError(f"{path}: not valid UTF-8 TOML: {exc}") from exc
    except ValueError as exc:  # e.g. an integer longer than Python converts (4300 digits)
        raise PresetError(f"{path}: not a kit: {str(exc)[:120]}") from None
    except OSError as exc:
        raise PresetError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def _write_toml(path: Path, doc: dict[str, Any]) -> None:
    try:
        atomic_write_text(path, tomli_w.dumps(doc))
    except OSError as exc:
        raise PresetError(f"{path}: cannot write: {exc.strerror or exc}") from exc


def load_kit(path: str | os.PathLike[str]) -> Kit:
    """Read one kit file strictly (unknown keys, missing fields, wrong types, out-of-range
    values and notes used by two slots are all ``PresetError`` naming file and field path)."""
    path = Path(path)
    return kit_from_dict(_read_toml(path), str(path))


def save_kit(kit: Kit, path: str | os.PathLike[str]) -> None:
    """Validate ``kit`` and write it as TOML atomically: the old file survives any failure."""
    path = Path(path)
    validate_kit(kit, str(path))
    _write_toml(path, kit_to_dict(kit))


def load_state(path: str | os.PathLike[str]) -> tuple[Kit, int]:
    """The daemon's state file: a kit plus ``selected_slot`` (index into the kit's slots).

    A missing file is a ``PresetError`` like any other; the caller decides whether to fall back
    to a preset.
    """
    path = Path(path)
    kit, extra = read_kit_document(_read_toml(path), str(path), extra=("selected_slot",))
    try:
        selected = fields.integer(extra["selected_slot"], "selected_slot", 0, len(kit.slots) - 1)
    except PresetError as exc:
        raise PresetError(f"{path}: {exc}") from None
    return kit, selected


def save_state(path: str | os.PathLike[str], kit: Kit, selected_slot: int) -> None:
    """Write the daemon's state file atomically (same TOML as a kit plus ``selected_slot``)."""
    path = Path(path)
    validate_kit(kit, str(path))
    try:
        selected = fields.integer(selected_slot, "selected_slot", 0, len(kit.slots) - 1)
    except PresetError as exc:
        raise PresetError(f"{path}: {exc}") from None
    doc = kit_to_dict(kit)
    doc["selected_slot"] = selected
    _write_toml(path, doc)


def default_state_path() -> Path:
    """Where the daemon keeps its state file unless told otherwise (platformdirs state dir)."""
    import platformdirs

    return Path(platformdirs.user_state_dir("snaresynth")) / "state.toml"


# --------------------------------------------------------------------------------------------
# the store
# --------------------------------------------------------------------------------------------


def shipped_preset_dir() -> Path:
    """The repository's top-level presets/ folder (the package is installed editable)."""
    import snaresynth

    return Path(snaresynth.__file__).resolve().parent.parent / "presets"


def user_preset_dir() -> Path:
    """``$SNARESYNTH_PRESET_DIR`` if set, else ``user_data_dir("snaresynth")/presets``."""
    env = os.environ.get("SNARESYNTH_PRESET_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("snaresynth")) / "presets"


class PresetStore:
    """Presets by name: the user's folder first, then the shipped ones.

    ``save`` only ever writes into the user folder, so a shipped preset is never overwritten; a
    user preset with the same name shadows it. Names are checked with ``check_name`` and the
    resolved file must lie inside its folder. Program change ``n`` selects ``list()[n]``: the
    union of both folders, sorted case-insensitively (ties by exact spelling).
    """

    def __init__(self, user_dir: str | os.PathLike[str] | None = None,
                 shipped_dir: str | os.PathLike[str] | None = None) -> None:
        self.user_dir = Path(user_dir) if user_dir is not None else user_preset_dir()
        self.shipped_dir = Path(shipped_dir) if shipped_dir is not None else shipped_preset_dir()

    def _path_in(self, folder: Path, name: str) -> Path:
        check_name(name)
        path = folder / f"{name}{PRESET_SUFFIX}"
        if not path.resolve().is_relative_to(folder.resolve()):
            raise PresetError(f"preset name {fields.show(name)} resolves outside {folder}")
        return path

    def user_path(self, name: str) -> Path:
        """The file ``save(name, ...)`` writes."""
        return self._path_in(self.user_dir, name)

    def path(self, name: str) -> Path:
        """The file ``load(name)`` reads: the user's if present, else the shipped one."""
        for folder in (self.user_dir, self.shipped_dir):
            path = self._path_in(folder, name)
            if path.is_file():
                return path
        raise PresetError(f"no preset named {fields.show(name)} (see /snaresynth/preset/list)")

    def list(self) -> list[str]:
        """All preset names, user and shipped, without duplicates, in program-change order."""
        names: set[str] = set()
        for folder in (self.user_dir, self.shipped_dir):
            if not folder.is_dir():
                continue
            for path in folder.glob(f"*{PRESET_SUFFIX}"):
                stem = path.name[: -len(PRESET_SUFFIX)]
                try:
                    self._path_in(folder, stem)
                except PresetError:
                    continue  # temp files, hidden files, names we could never load
                if path.is_file():
                    names.add(stem)
        return sorted(names, key=lambda n: (n.casefold(), n))

    def load(self, name: str) -> Kit:
        """Load a preset by name (user folder first); ``PresetError`` if absent or invalid."""
        return load_kit(self.path(name))

    def save(self, name: str, kit: Kit) -> Path:
        """Save ``kit`` as ``name`` in the user folder, atomically; returns the file written."""
        path = self.user_path(name)
        if not path.exists() and self.user_dir.is_dir() and sum(
                1 for _ in self.user_dir.glob(f"*{PRESET_SUFFIX}")) >= MAX_PRESETS:
            raise PresetError(f"preset limit reached ({MAX_PRESETS} in {self.user_dir}); "
                              "delete some or save over an existing name")
        save_kit(kit, path)
        return path

    def name_for_program(self, program: int) -> str | None:
        """The preset a MIDI program change (0..127) selects, or None past the end."""
        if isinstance(program, bool) or not isinstance(program, int) or program < 0:
            return None
        names = self.list()
        return names[program] if program < len(names) else None

