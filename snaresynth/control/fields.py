"""Checks for values read from outside files (TOML presets, settings): each returns the value or
raises ``PresetError`` naming the field path and what was wrong, in the file's own spelling,
e.g. ``slot[1].tune_semitones: must be a number in -12..12, got "high"``. Pure functions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from snaresynth.errors import PresetError


def show(value: Any) -> str:
    """A value as the user wrote it (TOML spelling), shortened for error messages."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    elif isinstance(value, int) and abs(value) > 10**30:
        text = "a very large integer"
    elif isinstance(value, Mapping):
        text = "a table"
    elif isinstance(value, list | tuple):
        text = f"an array of {len(value)}"
    else:
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def fail(path: str, reason: str) -> PresetError:
    return PresetError(f"{path}: {reason}")


def num_text(x: float) -> str:
    return f"{x:g}"


def number(value: Any, path: str, lo: float, hi: float) -> float:
    """A finite number in lo..hi; an int is accepted (becomes float), a bool is not a number."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    # compare before float(): a huge TOML integer would overflow float conversion; NaN and
    # infinities fail the comparison
    if ok and lo <= value <= hi:
        return float(value)
    raise fail(path, f"must be a number in {num_text(lo)}..{num_text(hi)}, got {show(value)}")


def integer(value: Any, path: str, lo: int, hi: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi:
        return int(value)
    raise fail(path, f"must be an integer in {lo}..{hi}, got {show(value)}")


def text(value: Any, path: str, max_chars: int, allow_empty: bool = False) -> str:
    """A string; names (``allow_empty=False``) are one line, descriptions may have newlines."""
    if isinstance(value, str) and len(value) <= max_chars and (allow_empty or value.strip()):
        allowed = "\t\n" if allow_empty else ""
        if not any((ord(c) < 32 or ord(c) == 127) and c not in allowed for c in value):
            return value
        raise fail(path, "must not contain control characters")
    what = "a string" if allow_empty else "a non-empty string"
    raise fail(path, f"must be {what} of at most {max_chars} characters, got {show(value)}")


def array(value: Any, path: str, lo_len: int, hi_len: int, what: str) -> list[Any]:
    if isinstance(value, list | tuple) and lo_len <= len(value) <= hi_len:
        return list(value)
    raise fail(path, f"must be an array of {lo_len}..{hi_len} {what}, got {show(value)}")


def table(value: Any, path: str) -> Mapping[Any, Any]:
    if isinstance(value, Mapping):
        return value
    raise fail(path, f"must be a table, got {show(value)}")


def check_keys(table: Mapping[Any, Any], path: str, known: tuple[str, ...],
                required: tuple[str, ...]) -> None:
    prefix = f"{path}." if path else ""
    for key in table:
        if key not in known:
            shown = key if isinstance(key, str) else show(key)
            raise fail(f"{prefix}{shown}", f"unknown field (known: {', '.join(known)})")
    for key in required:
        if key not in table:
            raise fail(f"{prefix}{key}", "required field is missing")
