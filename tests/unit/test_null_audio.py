"""The null sink: a clocked ``process`` caller that survives a failing ``process``."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from snaresynth.io.audio import NullAudio, open_audio


def test_the_null_sink_calls_process_every_block_and_outlives_its_failures(
        caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []
    seen: list[float] = []  # the block as the previous call left it

    def process(out: np.ndarray, xrun: bool) -> None:
        calls.append(out.shape[0])
        seen.append(float(out.max()))
        out.fill(1.0)
        if len(calls) % 2:
            raise RuntimeError("boom")

    audio = open_audio("null", process, 48000, 480, mixer=None)  # 10 ms blocks
    assert isinstance(audio, NullAudio) and audio.alive
    with caplog.at_level(logging.ERROR, logger="snaresynth.io.audio"):
        audio.start()
        time.sleep(0.3)
        audio.stop()
    assert len(calls) >= 5 and set(calls) == {480}  # kept its clock through the failures
    assert seen[1:5] == [0.0, 1.0, 0.0, 1.0]  # a failed block was silenced, not played
    assert [r.getMessage() for r in caplog.records].count(
        "null audio: process failed (logged once)") == 1
    n = len(calls)
    audio.reopen()  # the supervisor's path: stop, start
    time.sleep(0.1)
    audio.stop()
    assert len(calls) > n
