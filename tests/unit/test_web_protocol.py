"""The page's WebSocket messages (io/web_protocol): any text gives commands or WebErrors, never
another exception; knob values outside 0..1 are refused with OSC's words; floods coalesce to
the last value per knob; the Host check lets no DNS name through."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from snaresynth.control.params import Kind, Param
from snaresynth.io.web_protocol import (
    BUFFER_MAGIC,
    Command,
    WebError,
    buffer_frame,
    coalesce,
    fail_reason,
    host_allowed,
    parse,
)

DIM = 8
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)
addresses = st.sampled_from([
    "/latent/0", "/latent/7", "/latent/8", "/level", "/tune", "/decay", "/pan", "/morph",
    "/trigger", "/trigger/1", "/z", "/select", "/randomize", "/undo", "/redo", "/preset/load",
    "/morph/targets", "/velocity/curve", "/velocity/latent", "/learn", "/learn/cancel",
    "/midi/note", "/midi/cc", "/seq/step", "/seq/tempo", "/seq/swing", "/seq/play",
    "/seq/clear", "/status", "/state", "/nowhere"]) | st.text(max_size=12)


@given(st.text(max_size=200) | st.binary(max_size=200))
def test_any_text_parses_to_commands_or_errors(text: str | bytes) -> None:
    for item in parse(text, DIM):
        assert isinstance(item, Command | WebError)


@given(addresses, st.lists(json_values, max_size=4))
def test_any_message_parses_to_a_command_or_an_error(address: str, args: list) -> None:
    (item,) = parse(json.dumps({"address": address, "args": args}), DIM)
    assert isinstance(item, Command | WebError)
    if isinstance(item, Command) and item.kind == "param":
        param, value, slot = item.args
        assert isinstance(param, Param) and 0.0 <= value <= 1.0
        assert slot is None or isinstance(slot, int)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_knob_values_outside_0_1_are_refused(x: float) -> None:
    (item,) = parse(json.dumps({"address": "/level", "args": [x]}), DIM)
    if 0.0 <= x <= 1.0:
        assert item == Command("/level", "param", (Param(Kind.LEVEL), x, None),
                               key=(Param(Kind.LEVEL), None))
    else:
        assert isinstance(item, WebError)


def test_errors_use_the_osc_words() -> None:
    items = parse(json.dumps([{"address": "/latent/0", "args": [1.5]},
                              {"address": "/latent/8", "args": [0.5]},
                              {"address": "/nowhere"}, "x", {"address": "/select"}]), DIM)
    reasons = [fail_reason(e) for e in items]
    assert reasons[0] == "value must be in 0..1, got 1.5"
    assert reasons[1] == "latent dimension must be 0..7, got 8"
    assert reasons[2] == "unknown address"
    assert reasons[3] == "a message is an object, got str"
    assert reasons[4] == "missing argument 1 (slot)"
    assert isinstance(parse("{", DIM)[0], WebError)
    assert isinstance(parse("[" * 100000, DIM)[0], WebError)  # too long, refused unread


@given(st.lists(st.tuples(st.sampled_from(["/latent/0", "/level", "/trigger"]),
                          st.floats(0.0, 1.0), st.sampled_from([None, 0, 1])), max_size=40))
def test_coalesce_keeps_the_last_value_of_each_knob_and_every_trigger(
        moves: list[tuple[str, float, int | None]]) -> None:
    frame = [{"address": a, "args": [v] if s is None else [v, s]} for a, v, s in moves]
    commands = [c for c in parse(json.dumps(frame), DIM) if isinstance(c, Command)]
    kept, dropped = coalesce(commands)
    assert dropped == len(commands) - len(kept)
    assert [c for c in kept if c.kind == "trigger"] == [c for c in commands
                                                       if c.kind == "trigger"]
    last = {}
    for c in commands:
        if c.key is not None:
            last[c.key] = c.args[1]
    assert {c.key: c.args[1] for c in kept if c.key is not None} == last
    assert len({c.key for c in kept if c.key is not None}) == len(
        [c for c in kept if c.key is not None])


def test_host_check() -> None:
    assert host_allowed("127.0.0.1:8000", "127.0.0.1", 8000)
    assert host_allowed("localhost:8000", "127.0.0.1", 8000)
    assert not host_allowed("127.0.0.1:8001", "127.0.0.1", 8000)
    assert not host_allowed("evil.example:8000", "127.0.0.1", 8000)  # DNS rebinding
    assert not host_allowed("evil.example:8000", "0.0.0.0", 8000)
    assert host_allowed("192.168.1.20:8000", "0.0.0.0", 8000)
    assert not host_allowed("192.168.1.21:8000", "192.168.1.20", 8000)
    assert not host_allowed("", "127.0.0.1", 8000)


def test_buffer_frame_layout() -> None:
    samples = np.linspace(-1, 1, 5, dtype=np.float32)
    frame = buffer_frame(2, 48000, 7, samples)
    head = np.frombuffer(frame[:16], dtype="<u4")
    assert list(head) == [BUFFER_MAGIC, 2, 48000, 7]
    assert np.array_equal(np.frombuffer(frame[16:], dtype="<f4"), samples)
