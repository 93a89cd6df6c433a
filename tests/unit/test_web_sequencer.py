"""The daemon's pattern (engine/sequencer): every step is handed over inside the look-ahead
window, at a time the engine's clock turns back into the step's exact frame on the grid."""

from __future__ import annotations

import time

from snaresynth.engine.sequencer import LOOKAHEAD_S, STEPS, Sequencer

RATE = 48000
BLOCK = 128


class FakeMixer:
    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.frame0 = 1_000_000

    def clock(self) -> tuple[int, float, int, int]:
        # the clock moves on by whole blocks, like a running device
        blocks = int((time.monotonic() - self.t0) * RATE / BLOCK)
        return self.frame0 + blocks * BLOCK, self.t0 + blocks * BLOCK / RATE, -1, BLOCK


class FakeEngine:
    rate = RATE

    def __init__(self) -> None:
        self.mixer = FakeMixer()
        self.kit = type("Kit", (), {"slots": [0, 1]})()
        self.frames: list[tuple[int, int, float]] = []

    def trigger(self, velocity: float, slot: int, frame: int) -> bool:
        frame0, t0, _, _ = self.mixer.clock()
        now = frame0 + (time.monotonic() - t0) * RATE
        self.frames.append((frame, slot, velocity))
        assert -0.005 * RATE < frame - now < (LOOKAHEAD_S + 0.05) * RATE  # one window ahead
        return True


def test_steps_land_on_the_frame_grid_with_swing() -> None:
    engine = FakeEngine()
    seq = Sequencer(engine, tempo=240.0)  # 16ths of 3000 frames
    seq.set_swing(0.5)  # odd steps 750 frames late
    for step in range(STEPS):
        seq.set_step(0, step, 1.0)
    seq.set_step(1, 0, 0.5)
    seq.start()
    seq.play(True)
    time.sleep(0.6)
    seq.play(False)
    seq.stop()
    zero = [f for f, s, _ in engine.frames if s == 0]
    assert len(zero) >= 8
    offsets = [f - zero[0] for f in zero]
    assert offsets == [n * 3000 + (750 if n % 2 else 0) for n in range(len(zero))]
    assert [(s, v) for f, s, v in engine.frames if f == zero[0]] == [(0, 1.0), (1, 0.5)]


def test_a_tempo_change_keeps_the_placed_steps() -> None:
    engine = FakeEngine()
    seq = Sequencer(engine, tempo=240.0)
    seq.set_step(0, 0, 1.0)
    seq.set_step(0, 8, 1.0)
    seq.start()
    seq.play(True)
    time.sleep(0.3)
    placed = list(engine.frames)
    seq.set_tempo(120.0)
    time.sleep(0.1)
    seq.play(False)
    seq.stop()
    assert engine.frames[: len(placed)] == placed
    assert seq.state()["tempo"] == 120.0
