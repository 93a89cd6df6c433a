"""The page's WebSocket messages: one JSON text frame in, one typed ``Command`` out.

A message is ``{"address": "/latent/3", "args": [0.5]}`` (or a list of them, a batch): the OSC
address space without the ``/snaresynth`` prefix, read with the same argument checks as OSC
(``io.osc_args``, ``control.params``), plus the page's own addresses (``/midi/note``,
``/midi/cc``, ``/seq/...``, ``/status``). ``parse`` never touches the engine, so it is tested
on its own; ``Command.run`` is the one engine call. Anything wrong is a ``WebError`` whose text
goes back to the page as ``{"address": "/fail", "args": [address, reason]}``.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from snaresynth.control.params import Param, parse_param
from snaresynth.io.osc_args import OscError, integer, no_more, number, released, string, unit

MAX_MESSAGE_BYTES = 64 * 1024
"""A text frame longer than this is refused unread (a batch of a few hundred knob moves fits)."""
MAX_BATCH = 256
KNOB_ADDRESSES = frozenset({"/level", "/tune", "/decay", "/pan", "/morph", "/variation"})
STEPS = 16
BUFFER_MAGIC = 0x534E5242  # "SNRB": first word of a binary buffer frame


class WebError(ValueError):
    """A message the daemon cannot do; the text goes back to the page in /fail."""


@dataclass(frozen=True)
class Command:
    """One parsed message: ``kind`` names the call, ``args`` are checked values.

    ``key`` is set for knob moves: two commands with the same key set the same knob of the same
    slot, so the later one makes the earlier one redundant (flood coalescing)."""

    address: str
    kind: str
    args: tuple[Any, ...] = ()
    key: tuple[Any, ...] | None = None
    param: Param | None = field(default=None, compare=False)


def _int_in(args: list[Any], i: int, name: str, lo: int, hi: int) -> int:
    value = integer(args, i, name)
    if value is None:
        raise OscError(f"missing argument {i + 1} ({name})")
    if not lo <= value <= hi:
        raise OscError(f"argument {i + 1} ({name}) must be {lo}..{hi}, got {value}")
    return value


def _knob(address: str, args: list[Any], latent_dim: int) -> Command:
    param = parse_param(address[1:], latent_dim)
    no_more(args, 2)
    value = unit(args, 0)
    slot = integer(args, 1, "slot")
    return Command(address, "param", (param, value, slot), key=(param, slot), param=param)


def _trigger(address: str, args: list[Any]) -> Command:
    if address == "/trigger":
        no_more(args, 2)
        velocity = unit(args, 0, "velocity") if args else 1.0
        return Command(address, "trigger", (velocity, integer(args, 1, "slot")))
    index = address[len("/trigger/"):]
    if not index.isdigit() or len(index) > 4:
        raise OscError(f"slot must be a whole number, got {index[:8]!r}")
    no_more(args, 1)
    velocity = unit(args, 0, "velocity") if args else 1.0
    return Command(address, "trigger", (velocity, int(index)))


def _simple(address: str, args: list[Any], latent_dim: int) -> Command:
    if address == "/z":
        if len(args) > 1024:
            raise OscError(f"z has at most 1024 values, got {len(args)}")
        return Command(address, "z", tuple(number(args, i, f"z[{i}]") for i in range(len(args))))
    if address == "/select":
        no_more(args, 1)
        return Command(address, "select", (_int_in(args, 0, "slot", 0, 1023),))
    if address == "/randomize":
        no_more(args, 2)
        amount = unit(args, 0, "amount") if args else 1.0
        seed = integer(args, 1, "seed")
        if seed is not None and seed < 0:
            raise OscError(f"argument 2 (seed) must be 0 or more, got {seed}")
        return Command(address, "randomize", (amount, seed))
    if address in ("/undo", "/redo"):
        return Command(address, "noop" if released(args) else address[1:])
    if address in ("/preset/load", "/preset/save"):
        no_more(args, 1)
        return Command(address, address[len("/preset/"):], (string(args, 0, "name"),))
    if address == "/morph/targets":
        no_more(args, 2)
        return Command(address, "morph_targets",
                       (string(args, 0, "preset A"), string(args, 1, "preset B")))
    if address == "/velocity/curve":
        no_more(args, 1)
        return Command(address, "velocity_curve", (string(args, 0, "curve"),))
    if address == "/velocity/latent":
        no_more(args, 2)
        dim = _int_in(args, 0, "latent dimension", -1, latent_dim - 1)
        amount = number(args, 1, "amount") if len(args) > 1 else None
        return Command(address, "velocity_latent", (dim, amount))
    if address == "/variants":  # round-robin variants 1..8, [slot]
        no_more(args, 2)
        return Command(address, "variants", (_int_in(args, 0, "variants", 1, 8),
                                             integer(args, 1, "slot")))
    if address == "/learn":
        no_more(args, 1)
        return Command(address, "learn", (parse_param(string(args, 0, "parameter"), latent_dim),))
    if address == "/midi/note":  # Web MIDI: note, velocity 0..127, [channel 1..16]
        no_more(args, 3)
        return Command(address, "note", (_int_in(args, 0, "note", 0, 127),
                                         _int_in(args, 1, "velocity", 0, 127),
                                         _int_in(args, 2, "channel", 1, 16) if len(args) > 2
                                         else 1))
    if address == "/midi/cc":
        no_more(args, 3)
        return Command(address, "cc", (_int_in(args, 0, "cc", 0, 127),
                                       _int_in(args, 1, "value", 0, 127),
                                       _int_in(args, 2, "channel", 1, 16) if len(args) > 2
                                       else 1))
    return _seq(address, args)


def _seq(address: str, args: list[Any]) -> Command:
    if address == "/seq/step":  # slot, step 0..15, velocity 0..1 (0 = off)
        no_more(args, 3)
        return Command(address, "seq_step", (_int_in(args, 0, "slot", 0, 1023),
                                             _int_in(args, 1, "step", 0, STEPS - 1),
                                             unit(args, 2, "velocity")),
                       key=("step", integer(args, 0, "slot"), integer(args, 1, "step")))
    if address == "/seq/tempo":
        no_more(args, 1)
        bpm = number(args, 0, "tempo")
        if not 20.0 <= bpm <= 300.0:
            raise OscError(f"tempo must be 20..300 bpm, got {bpm:g}")
        return Command(address, "seq_tempo", (bpm,), key=("tempo",))
    if address == "/seq/swing":
        no_more(args, 1)
        return Command(address, "seq_swing", (unit(args, 0, "swing"),), key=("swing",))
    if address == "/seq/play":
        no_more(args, 1)
        return Command(address, "seq_play", (not released(args),))
    if address == "/seq/clear":
        no_more(args, 0)
        return Command(address, "seq_clear")
    raise OscError("unknown address")


ROUTES_NO_ARGS = {"/learn/cancel": "learn_cancel", "/preset/list": "preset_list",
                  "/state": "state", "/status": "status", "/ping": "ping"}


def parse_one(message: object, latent_dim: int) -> Command:
    """One ``{"address", "args"}`` object -> a Command; WebError naming what is wrong."""
    if not isinstance(message, dict):
        raise WebError("?", f"a message is an object, got {type(message).__name__}")
    address = message.get("address")
    args = message.get("args", [])
    if not isinstance(address, str) or not address.startswith("/") or len(address) > 128:
        raise WebError("?", "address must be a string starting with /")
    if not isinstance(args, list):
        raise WebError(address, f"args must be a list, got {type(args).__name__}")
    extra = sorted(str(k) for k in set(message) - {"address", "args"})
    if extra:
        raise WebError(address, f"unknown keys {extra}")
    try:
        if address in ROUTES_NO_ARGS:
            if address != "/ping":
                no_more(args, 0)
            return Command(address, ROUTES_NO_ARGS[address], tuple(args))
        if address in KNOB_ADDRESSES or address.startswith("/latent/"):
            return _knob(address, args, latent_dim)
        if address == "/trigger" or address.startswith("/trigger/"):
            return _trigger(address, args)
        return _simple(address, args, latent_dim)
    except ValueError as exc:  # OscError and parse_param's ValueError: the same words as OSC
        raise WebError(address, str(exc)) from None


def parse(text: str | bytes, latent_dim: int) -> list[Command | WebError]:
    """One text frame -> its commands in order; a bad message in a batch is a WebError in its
    place (the others still run). A frame that is not JSON is one WebError."""
    if len(text) > MAX_MESSAGE_BYTES:
        return [WebError("?", f"message of {len(text)} bytes (limit {MAX_MESSAGE_BYTES})")]
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return [WebError("?", f"not JSON: {str(exc)[:80]}")]
    items = data if isinstance(data, list) else [data]
    if len(items) > MAX_BATCH:
        return [WebError("?", f"batch of {len(items)} messages (limit {MAX_BATCH})")]
    out: list[Command | WebError] = []
    for item in items:
        try:
            out.append(parse_one(item, latent_dim))
        except WebError as exc:
            out.append(exc)
    return out


def coalesce(commands: list[Command]) -> tuple[list[Command], int]:
    """Drop every keyed command that a later one with the same key replaces (the last value
    wins, in the last one's place); returns the commands left and how many were dropped."""
    last = {c.key: i for i, c in enumerate(commands) if c.key is not None}
    kept = [c for i, c in enumerate(commands) if c.key is None or last[c.key] == i]
    return kept, len(commands) - len(kept)


def fail_address(error: WebError) -> str:
    return str(error.args[0]) if error.args else "?"


def fail_reason(error: WebError) -> str:
    return str(error.args[1]) if len(error.args) > 1 else "bad message"


# --- the page's own checks and frames ----------------------------------------------------------

def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
        return True
    except ValueError:
        return False


def host_allowed(host_header: str, bound: str, port: int) -> bool:
    """Whether a request's Host names this server as bound: loopback names on loopback, the
    bound address, or (bound to every address) any IP literal; never some other DNS name
    (DNS rebinding gets nothing)."""
    name, _, given_port = host_header.rpartition(":")
    if not name or given_port != str(port):
        return False
    if is_loopback(bound):
        return name in ("localhost", "127.0.0.1", "[::1]") or (
            _is_ip(name) and ipaddress.ip_address(name.strip("[]")).is_loopback)
    if bound in ("0.0.0.0", "::", ""):
        return _is_ip(name) or name == "localhost"
    return name.strip("[]") == bound


def buffer_frame(slot: int, rate: int, generation: int, samples: np.ndarray) -> bytes:
    """One binary frame: 4 little-endian uint32 (magic, slot, rate, generation), then the
    buffer's samples as float32."""
    header = np.array([BUFFER_MAGIC, slot, rate, generation], dtype="<u4").tobytes()
    return header + np.ascontiguousarray(samples, dtype="<f4").tobytes()
