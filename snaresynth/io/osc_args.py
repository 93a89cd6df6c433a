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


KNOWN_TAGS = frozenset(",ihfdsbrmtTFN[]")
"""The type tags python-osc reads; it logs a warning for each other one (16,000 in one
datagram made 16,000 log calls), so such messages are refused before it sees them."""


def unknown_tag(data: bytes) -> str | None:
    """The first type tag python-osc cannot read in a message or any message of a bundle, or
    None (malformed datagrams are left for python-osc to refuse)."""
    spans = [(0, len(data))]
    while spans:
        start, end = spans.pop()
        if data.startswith(b"#bundle\x00", start):
            at = start + 16
            while at + 4 <= end:
                size = int.from_bytes(data[at:at + 4], "big")
                if size <= 0 or at + 4 + size > end:
                    return None
                spans.append((at + 4, at + 4 + size))
                at += 4 + size
            continue
        address_end = data.find(b"\x00", start, end)
        if address_end < 0:
            return None
        tags_at = start + ((address_end - start + 4) & ~3)
        tags_end = data.find(b"\x00", tags_at, end)
        if tags_at >= end or data[tags_at:tags_at + 1] != b"," or tags_end < 0:
            continue
        for tag in data[tags_at + 1:tags_end].decode("latin-1"):
            if tag not in KNOWN_TAGS:
                return tag
    return None


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
