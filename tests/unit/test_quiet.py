"""Library messages go to the log at debug level, never straight onto the terminal: libjack's
"Cannot connect to server" lines for a server that is not there and ALSA's error lines, each in
a fresh process (the handlers are process-wide), read from its real stderr."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest

from snaresynth.io.quiet import format_c

PROGRAM = """
import ctypes, logging, sys
from snaresynth import logs
from snaresynth.io.quiet import route_library_messages
handler = logs.setup(logging.DEBUG if sys.argv[1] == "debug" else logging.INFO)
if sys.argv[2] == "route":
    route_library_messages()
pcm = ctypes.c_void_p()
assert ctypes.CDLL("libasound.so.2").snd_pcm_open(ctypes.byref(pcm), b"snaresynth_nosuch", 0, 0) < 0
import jack
try:
    jack.Client("snaresynth-quiet-test", no_start_server=True)
except jack.JackError:
    pass
handler.flush()
"""


def _stderr(level: str, route: str) -> str:
    try:
        ctypes.CDLL("libasound.so.2")
    except OSError:
        pytest.skip("no libasound here")
    env = dict(os.environ, JACK_DEFAULT_SERVER="snaresynth-nosuch", JACK_NO_START_SERVER="1")
    done = subprocess.run([sys.executable, "-c", PROGRAM, level, route], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_without_routing_the_libraries_print_their_lines() -> None:
    err = _stderr("info", "plain")  # what the daemon printed before: the proof the test bites
    assert "ALSA lib" in err and "Cannot connect to server" in err, err


def test_routed_they_print_nothing_at_info() -> None:
    assert _stderr("info", "route") == ""


def test_routed_they_are_debug_records_with_the_whole_message() -> None:
    lines = _stderr("debug", "route").splitlines()
    alsa = [line for line in lines if " DEBUG alsa: " in line]
    jack = [line for line in lines if " DEBUG libjack: " in line]
    assert any("Unknown PCM snaresynth_nosuch" in line and "ALSA lib pcm" in line
               for line in alsa), lines
    assert any("Cannot connect to server" in line for line in jack), lines
    assert all(" DEBUG " in line for line in lines), lines


def test_c_formats_with_integer_arguments() -> None:
    text = ctypes.create_string_buffer(b"/dev/snd/seq")
    address = ctypes.addressof(text)
    assert format_c(b"open %s failed", (address,)) == "open /dev/snd/seq failed"
    assert format_c(b"%d%% of %u, %5.2s|%x %c", (2**32 - 5, 7, address, 255, 65)) == \
        "-5% of 7,    /d|ff A"
    assert format_c(b"%ld", (2**64 - 1,)) == "-1"
    assert format_c(b"%s", (None,)) == "(null)"


def test_c_formats_it_cannot_read_are_kept_as_they_are() -> None:
    assert format_c(b"rate %f", (1,)) == "rate %f"  # a double is not in an integer slot
    assert format_c(b"%*d", (3, 4)) == "%*d"
    assert format_c(b"%s %s", (None,)) == "%s %s"  # more conversions than slots
