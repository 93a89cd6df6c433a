"""Reading OSC datagrams: argument checks with exact messages, bundle timetags, and the check
for truncated messages that python-osc pads instead of refusing. Pure functions; the text of
an ``OscError`` goes back to the sender in ``/snaresynth/fail``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pythonosc.osc_message_builder import OscMessageBuilder

from snaresynth.control.params import knob


class OscError(ValueError):
    """Bad arguments for an address; the text goes back in /snaresynth/fail."""


def number(args: Sequence[Any], i: int, name: str, default: float | None = None) -> float:
    if i >= len(args):
        if default is None:
            raise OscError(f"missing argument {i + 1} ({name})")
        return default
    value = args[i]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OscError(f"argument {i + 1} ({name}) must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise OscError(f"argument {i + 1} ({name}) must be finite, got {value}")
    return float(value)


def integer(args: Sequence[Any], i: int, name: str, default: int | None = None) -> int | None:
    if i >= len(args):
        return default
    value = number(args, i, name)
    if value != int(value) or abs(value) > 2**31:
        raise OscError(f"argument {i + 1} ({name}) must be a whole number, got {value}")
    return int(value)


def string(args: Sequence[Any], i: int, name: str) -> str:
    if i >= len(args) or not isinstance(args[i], str):
        raise OscError(f"argument {i + 1} ({name}) must be a string")
    return args[i]


def unit(args: Sequence[Any], i: int, name: str = "value") -> float:
    """A knob value, under the one out-of-range policy (``control.params.knob``)."""
    if i >= len(args):
        raise OscError(f"missing argument {i + 1} ({name})")
    try:
        return knob(args[i], name)
    except ValueError as exc:
        raise OscError(str(exc)) from None


def released(args: Sequence[Any]) -> bool:
    """For button-style addresses: no argument or a positive one is a press, 0 a release."""
    no_more(args, 1)
    return bool(args) and number(args, 0, "button") <= 0.0


def no_more(args: Sequence[Any], count: int) -> None:
    if len(args) > count:
        raise OscError(f"expected at most {count} argument(s), got {len(args)}")


NTP_UNIX_OFFSET_S = 2208988800
"""Seconds from 1900 (OSC/NTP time) to 1970 (Unix time)."""


def bundle_time(data: bytes) -> float:
    """A bundle's own timetag in Unix seconds (inf for "immediately", the timetag 1)."""
    raw = int.from_bytes(data[8:16], "big")
    if raw == 1:
        return math.inf
    return (raw >> 32) - NTP_UNIX_OFFSET_S + (raw & 0xFFFFFFFF) / 2**32


def missing_bytes(message: Any) -> int:
    """How many bytes shorter a parsed message is than its arguments need (0 = whole).

    python-osc pads a float or int that was cut off with zero bytes instead of failing, so a
    truncated ``/level 0.5`` would silently set the level to 0; encoding the parsed message again
    shows the shortfall.
    """
    try:
        needed = len(build_message(message.address, list(message.params)))
    except Exception:  # values python-osc can parse but not build: nothing to compare
        return 0
    return max(0, needed - len(message.dgram))


def build_message(address: str, args: Sequence[Any]) -> bytes:
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram
