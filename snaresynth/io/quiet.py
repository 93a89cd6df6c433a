"""Library messages into the log at debug level, instead of straight onto the terminal.

libjack prints five lines ("Cannot connect to server socket ...") for every client it cannot
open, and ALSA one ("ALSA lib seq_hw.c:...") for a missing sequencer or device; PortAudio's
probes of both print the same. Both libraries take a function for their messages:
``jack_set_error_function`` / ``jack_set_info_function`` (through JACK-Client) and
``snd_lib_error_set_handler`` (through ctypes). ``route_library_messages`` installs ours once,
before any client opens; the logger names are ``libjack`` and ``alsa``, so ``-v`` shows them.

Left on the terminal: PortAudio's own debug prints (``Expression '...' failed in
'src/hostapi/alsa/pa_linux_alsa.c'``), which it writes with ``fprintf(stderr)`` and whose
redirect function Debian's libportaudio2 does not export.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import platform
import re
import sys
from typing import Any

log = logging.getLogger(__name__)
jack_log = logging.getLogger("libjack")
alsa_log = logging.getLogger("alsa")

VARARGS = 6
"""ALSA's handler is variadic; its arguments after ``fmt`` are read as this many integer-class
slots, which is where the x86-64 and AArch64 Linux calling conventions put them."""
_READS_VARARGS = sys.platform == "linux" and platform.machine() in ("x86_64", "aarch64")
_CONVERSION = re.compile(r"%([-+ #0]*)(\d*)(?:\.(\d+))?(hh|h|ll|l|z|j|t)?([diouxXcsp%])")

_ALSA_HANDLER = ctypes.CFUNCTYPE(
    None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
    *([ctypes.c_void_p] * VARARGS),
    use_errno=True)  # ALSA reads errno after the handler returns: Python must not change it
_state: dict[str, Any] = {}  # the installed callbacks: ctypes' must live as long as ALSA


def route_library_messages() -> None:
    """Send libjack's and ALSA's messages to the log at debug level (once per process)."""
    if _state:
        return
    _state["routed"] = True
    _route_jack()
    _route_alsa()
    atexit.register(_restore)  # a callback into a finalised interpreter would crash it


def _route_jack() -> None:
    try:
        import jack
    except (ImportError, OSError) as exc:  # no libjack: nothing of it to route
        log.debug("libjack messages not routed: %s", exc)
        return
    # libjack may call these from its own threads; they take the GIL, and in the process
    # thread it reports only a failing server, never during normal cycles
    jack.set_error_function(lambda message: jack_log.debug("%s", message))
    jack.set_info_function(lambda message: jack_log.debug("%s", message))
    _state["jack"] = jack


def _route_alsa() -> None:
    try:  # by its soname: find_library would run ldconfig, a process, at every start
        lib = ctypes.CDLL("libasound.so.2")
    except OSError as exc:
        log.debug("ALSA messages not routed: %s", exc)
        return
    handler = _ALSA_HANDLER(_alsa_message)
    lib.snd_lib_error_set_handler.argtypes = [ctypes.c_void_p]
    lib.snd_lib_error_set_handler(ctypes.cast(handler, ctypes.c_void_p))
    _state["alsa"] = (lib, handler)


def _alsa_message(file: bytes | None, line: int, function: bytes | None, err: int,
                  fmt: bytes | None, *args: int | None) -> None:
    """ALSA's error handler: the line its default handler would print, as a debug record."""
    try:
        text = format_c(fmt or b"", args) if _READS_VARARGS else (fmt or b"").decode(
            errors="replace")
        where = f"{(file or b'?').decode(errors='replace')}:{line}:" \
                f"({(function or b'?').decode(errors='replace')})"
        alsa_log.debug("ALSA lib %s %s%s", where, text, f": {os.strerror(err)}" if err else "")
    except Exception:  # never raise into C
        pass


def format_c(fmt: bytes, args: tuple[int | None, ...]) -> str:
    """printf ``fmt`` with integer-class ``args`` (pointers, ints); a format with any other
    conversion (floating point, ``*`` widths) or more conversions than ``args`` is returned as
    it is, never guessed at."""
    text = fmt.decode(errors="replace")
    found = list(_CONVERSION.finditer(text))
    used = [m for m in found if m.group(5) != "%"]
    if len(used) > len(args) or text.count("%") != sum(m.group(0).count("%") for m in found):
        return text
    values = iter(args)

    def one(match: re.Match[str]) -> str:
        flags, width, precision, length, conv = match.groups()
        if conv == "%":
            return "%"
        raw = next(values) or 0
        if conv == "s":
            value: object = ctypes.string_at(raw).decode(errors="replace") if raw else "(null)"
            conv = "s"
        elif conv == "p":
            return hex(raw)
        else:
            bits = 64 if length in ("l", "ll", "z", "j", "t") else 32
            raw &= (1 << bits) - 1
            if conv in "di" and raw >> (bits - 1):
                raw -= 1 << bits
            value = chr(raw & 0xFF) if conv == "c" else raw
            conv = {"i": "d", "u": "d"}.get(conv, conv)
        spec = f"%{flags}{width}" + (f".{precision}" if precision else "") + conv
        return spec % value

    return _CONVERSION.sub(one, text)


def _restore() -> None:
    jack = _state.get("jack")
    if jack is not None:
        jack.set_error_function(None)
        jack.set_info_function(None)
    alsa = _state.get("alsa")
    if alsa is not None:
        alsa[0].snd_lib_error_set_handler(None)
