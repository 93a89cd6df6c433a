"""The decode thread's scheduling (decode/priority.py): realtime while light, ordinary when
flooded, and the real threads (a DecodeWorker's, the decode child's) under SCHED_FIFO where this
machine allows it, ordinary with priority 0."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from snaresynth.decode.priority import BUDGET, RT_PRIORITY, DecodePriority
from snaresynth.decode.worker import DecodeWorker, Request


class FakeScheduler:
    def __init__(self, allowed: bool = True) -> None:
        self.now = 0.0
        self.allowed = allowed
        self.calls: list[str] = []

    def clock(self) -> float:
        return self.now

    def realtime(self, priority: int) -> None:
        if not self.allowed:
            raise PermissionError(1, "Operation not permitted")
        self.calls.append(f"fifo {priority}")

    def ordinary(self, priority: int) -> None:
        self.calls.append("other")

    def governor(self) -> DecodePriority:
        return DecodePriority(clock=self.clock, set_realtime=self.realtime,
                              set_ordinary=self.ordinary)


def test_light_decoding_stays_realtime() -> None:
    fake = FakeScheduler()
    gov = fake.governor()
    assert gov.enter() and gov.realtime
    for _ in range(200):  # 2 ms every 20 ms: a knob turned all the time, 10 % busy
        gov.before_decode()
        fake.now += 0.002
        gov.after_decode(0.002)
        fake.now += 0.018
    assert gov.realtime and gov.demotions == 0 and gov.share < BUDGET
    assert fake.calls == [f"fifo {RT_PRIORITY}"]


def test_a_flood_goes_ordinary_then_comes_back_when_it_stops() -> None:
    fake = FakeScheduler()
    gov = fake.governor()
    gov.enter()
    for _ in range(100):  # back-to-back decodes: the thread would never sleep
        gov.before_decode()
        fake.now += 0.003
        gov.after_decode(0.003)
    assert not gov.realtime and gov.demotions == 1 and fake.calls[-1] == "other"
    fake.now += 1.0  # the flood is over
    gov.before_decode()
    assert gov.realtime and fake.calls[-1] == f"fifo {RT_PRIORITY}"


def test_without_the_permission_it_decodes_at_normal_priority() -> None:
    fake = FakeScheduler(allowed=False)
    gov = fake.governor()
    assert not gov.enter() and not gov.realtime and not gov.available
    gov.before_decode()
    gov.after_decode(10.0)
    assert fake.calls == []


def test_priority_zero_turns_it_off() -> None:
    fake = FakeScheduler()
    gov = DecodePriority(0, clock=fake.clock, set_realtime=fake.realtime,
                         set_ordinary=fake.ordinary)
    assert not gov.enter() and fake.calls == []


def _may_use_fifo() -> bool:
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(RT_PRIORITY))
    except (PermissionError, OSError):
        return False
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    return True


def test_the_worker_thread_decodes_under_sched_fifo_when_allowed(sine_decoder) -> None:
    seen: list[int] = []
    done = threading.Event()

    def decode(z: np.ndarray) -> np.ndarray:
        seen.append(os.sched_getscheduler(0))  # the policy of the decoding thread itself
        return original(z)

    original = sine_decoder.decode
    sine_decoder.decode = decode
    worker = DecodeWorker(sine_decoder, lambda *a: done.set())
    worker.start()
    try:
        worker.submit(Request(target=0, key=(5,) * sine_decoder.latent_dim))
        assert done.wait(10)
    finally:
        worker.stop()
    expected = os.SCHED_FIFO if _may_use_fifo() else os.SCHED_OTHER
    assert seen == [expected]
    assert worker.priority.available == (expected == os.SCHED_FIFO)
    if expected != os.SCHED_FIFO:
        pytest.skip("realtime scheduling is not allowed here; the ordinary path was checked")


@pytest.mark.parametrize("rt_priority", [RT_PRIORITY, 0], ids=["realtime", "ordinary"])
def test_the_decode_child_decodes_under_sched_fifo_when_allowed(rt_priority: int) -> None:
    from snaresynth.decode.process import ProcessDecodeWorker

    done = threading.Event()
    worker = ProcessDecodeWorker(None, lambda *a: done.set(), rt_priority=rt_priority)
    worker.start()  # the bundled model's numpy form: no TensorFlow in the child
    try:
        assert worker.decoder is not None and worker.pid is not None
        worker.submit(Request(target=0, key=(512,) * worker.decoder.latent_dim))
        assert done.wait(30)
        # the child's loop runs on its main thread, whose id is the child's pid; one light
        # decode leaves the governor's share far below its budget
        policy = os.sched_getscheduler(worker.pid)
    finally:
        worker.stop()
    assert worker.failures == 0
    expected = os.SCHED_FIFO if rt_priority and _may_use_fifo() else os.SCHED_OTHER
    assert policy == expected
    if rt_priority and expected != os.SCHED_FIFO:
        pytest.skip("realtime scheduling is not allowed here; the ordinary path was checked")
