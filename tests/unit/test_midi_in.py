"""MIDI in without ports: raw bytes through ``RunningStatusParser`` (mido's parser plus running
status) into ``MidiRouter.handle`` and a real Engine. Guards: handle never raises into the MIDI
thread (every fault counted), running status, and what is ignored (docs/reliability.md)."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snaresynth.control.kit import Kit, Slot
from snaresynth.engine.engine import Engine, EngineSettings
from snaresynth.io.midi import MidiRouter, RunningStatusParser


def _kit(channel=None):
    return Kit(name="t", slots=[Slot(name="a", notes=[38], knobs=[0.5] * 4),
                                Slot(name="b", notes=[40], knobs=[0.2] * 4)],
               cc={20: "latent/0", 21: "latent/1", 7: "level"}, midi_channel=channel)


@pytest.fixture
def engine(sine_decoder):
    # no preset store: a program change then raises inside the engine, as a fault would
    eng = Engine(sine_decoder, _kit(), EngineSettings(rate=48000, blocksize=64))
    eng.start()
    yield eng
    eng.stop()


def _feed(router: MidiRouter, data: bytes) -> int:
    parser = RunningStatusParser()
    messages = parser.feed(data)
    for msg in messages:
        router.handle(msg)
    return len(messages)


def test_running_status_expands_to_whole_messages(engine):
    router = MidiRouter(engine)
    # note-on 38, then 40 and 38 again under running status; then CC 20 and CC 21 the same way
    n = _feed(router, bytes([0x90, 38, 100, 40, 90, 38, 80, 0xB0, 20, 127, 21, 0]))
    assert n == 5 and router.messages == 5
    assert len(engine.mixer.queued()) == 3
    assert engine.kit.slots[engine.selected].knobs[:2] == [1.0, 0.0]


def test_realtime_bytes_inside_a_message_keep_running_status(engine):
    router = MidiRouter(engine)
    data = bytes([0x90, 38, 0xF8, 100, 0xFE, 40, 90] + [0xF8, 0xFE] * 500)
    assert _feed(router, data) == 2 + 2 + 1000
    assert len(engine.mixer.queued()) == 2
    assert router.ignored == 1002 and router.bad == 0 and engine.bad_messages == 0


def test_sysex_velocity_zero_and_other_channels_play_nothing(sine_decoder):
    engine = Engine(sine_decoder, _kit(channel=10), EngineSettings(rate=48000, blocksize=64))
    router = MidiRouter(engine)
    data = bytes([0xF0, 0x7E, 0x7F, 0x06, 0x01, 0xF7,  # sysex (identity request)
                  0x99, 38, 0,  # note-on velocity 0 on the kit's channel: a note-off
                  0x90, 38, 100, 0xB0, 20, 127,  # channel 1: not this kit's channel
                  0x99, 99, 100,  # unmapped note on the right channel
                  0xF6, 0x45, 0x12])  # stray data bytes after a system message: dropped
    _feed(router, data)
    assert len(engine.mixer.queued()) == 0
    assert engine.kit.slots[0].knobs[0] == 0.5
    assert engine.unmapped == 1 and router.bad == 0
    parser = RunningStatusParser()
    parser.feed(bytes([0xF6, 0x45, 0x12]))
    assert parser.stray == 2


def test_a_fault_inside_the_engine_is_counted_not_raised(engine):
    router = MidiRouter(engine)
    _feed(router, bytes([0xC0, 5]))  # program change with no preset store: ValueError inside
    assert router.bad == 1 and engine.bad_messages == 1


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_and_state_stays_valid(engine, data):
    router = MidiRouter(engine)
    parser = RunningStatusParser()
    parsed = 0
    for chunk in (data[: len(data) // 2], data[len(data) // 2:]):  # split across events
        for msg in parser.feed(chunk):
            router.handle(msg)
            parsed += 1
    assert router.messages == parsed
    knobs = np.asarray(engine.kit.slots[engine.selected].knobs)
    assert np.all((knobs >= 0.0) & (knobs <= 1.0))
    assert engine.bad_messages >= router.bad


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(st.tuples(st.integers(0x80, 0xEF), st.integers(0, 127),
                                 st.integers(0, 127)), max_size=30))
def test_running_status_gives_the_same_messages_as_full_status(events):
    full, running = bytearray(), bytearray()
    last = None
    for status, a, b in events:
        args = [a] if 0xC0 <= status < 0xE0 else [a, b]
        full += bytes([status, *args])
        running += bytes(([] if status == last else [status]) + args)
        last = status
    assert RunningStatusParser().feed(bytes(running)) == RunningStatusParser().feed(bytes(full))
