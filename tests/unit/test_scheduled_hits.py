"""Hits scheduled ahead never take the room of live ones: one datagram of 300 triggers
timetagged 50 s ahead used to fill the pending list and silence every live hit for 50 s."""

from __future__ import annotations

import time

import numpy as np
import pytest
from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from snaresynth.control.kit import Kit, Slot
from snaresynth.engine.engine import Engine, EngineSettings
from snaresynth.io.osc import OscController
from snaresynth.rt.mixer import AheadFull, Hit, Mixer
from tests.unit.test_voices import _render


def _hit(frame: int) -> Hit:
    return Hit(frame, np.ones(256, dtype=np.float32), 0.5, 0.5, 0, 0)


def test_hits_due_far_ahead_hold_half_the_pending_list_at_most() -> None:
    mixer = Mixer(48000, pending=256)
    far = 50 * 48000
    accepted = 0
    for i in range(300):
        try:
            accepted += mixer.schedule(_hit(far + i))
        except AheadFull as exc:
            assert "scheduled ahead" in str(exc)
    assert accepted == mixer.max_ahead == 128
    _render(mixer, 2)
    for _ in range(100):  # live hits keep their room
        assert mixer.schedule(_hit(mixer.frame))
        _render(mixer, 1)
    assert mixer.hits_started == 100 and mixer.dropped == 300 - 128


def test_room_ahead_comes_back_as_the_scheduled_hits_fall_due() -> None:
    mixer = Mixer(48000, pending=8, ahead_frames=64)
    for i in range(4):
        assert mixer.schedule(_hit(1000 + i))
    with pytest.raises(AheadFull):
        mixer.schedule(_hit(5000))
    _render(mixer, 20)  # 1280 frames: the four are due and played
    assert mixer.hits_started == 4
    assert mixer.schedule(_hit(mixer.frame + 4000))


def test_a_bundle_of_future_triggers_gets_fail_and_live_hits_still_play(sine_decoder) -> None:
    kit = Kit(name="t", slots=[Slot(name="a", notes=[38], knobs=[0.5] * 4)], cc={})
    engine = Engine(sine_decoder, kit, EngineSettings(rate=48000, blocksize=64))
    engine.start()
    try:
        osc = OscController(engine)
        bundle = OscBundleBuilder(time.time() + 50)
        for _ in range(300):
            bundle.add_content(OscMessageBuilder("/snaresynth/trigger").build())
        replies = osc.handle_packet(bundle.build().dgram, ("127.0.0.1", 50000))
        fails = [args for address, args, _ in replies if address == "/snaresynth/fail"]
        assert len(fails) == 300 - engine.mixer.max_ahead
        assert "scheduled ahead" in fails[0][1]
        out = np.zeros((64, 2), dtype=np.float32)
        started = engine.mixer.hits_started
        for _ in range(10):
            engine.trigger(1.0, 0, frame=engine.mixer.frame)  # the next block, whatever the clock
            for _ in range(4):
                engine.process(out)
        assert engine.mixer.hits_started - started == 10
    finally:
        engine.stop()
