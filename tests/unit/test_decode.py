import threading
import time

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from snaresynth.decode.worker import (
    KNOB_STEPS,
    BufferCache,
    DecodeWorker,
    Request,
    quantize_knobs,
)


def test_cache_is_lru_and_bounded_in_bytes():
    buf = np.zeros(1000, dtype=np.float32)  # 4000 bytes
    cache = BufferCache(max_bytes=10_000)
    for i in range(3):
        cache.put((i,), buf.copy())
    assert len(cache) == 2 and cache.bytes <= 10_000
    assert cache.get((0,)) is None and cache.get((2,)) is not None


def test_quantize_is_stable_and_spans_the_knob_range():
    # knob values arrive checked at the edge (0..1), so the key needs no clipping of its own
    assert quantize_knobs(np.array([0.0, 1.0, 0.5])) == (0, KNOB_STEPS, KNOB_STEPS // 2)
    assert quantize_knobs(np.array([0.5])) == quantize_knobs(np.array([0.5 + 1e-5]))


@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=16))
def test_every_knob_position_has_a_key_in_range(knobs: list[float]) -> None:
    key = quantize_knobs(np.array(knobs))
    assert len(key) == len(knobs) and all(0 <= k <= KNOB_STEPS for k in key)


def _collect(worker_decoder):
    published = []
    done = threading.Event()

    def on_ready(slot, buf, req):
        published.append((slot, buf, req))
        done.set()

    worker = DecodeWorker(worker_decoder, on_ready)
    return worker, published


def test_latest_request_wins_and_older_are_dropped(sine_decoder):
    gate = threading.Event()
    original = sine_decoder.decode

    def slow_decode(z):
        gate.wait(5)
        return original(z)

    sine_decoder.decode = slow_decode
    worker, published = _collect(sine_decoder)
    worker.start()
    try:
        worker.submit(Request(0, (0, 0, 0, 0), tag="first"))
        time.sleep(0.05)  # the worker is now blocked decoding "first"
        for i in range(1, 50):
            worker.submit(Request(0, (i, 0, 0, 0), tag=i))
        gate.set()
        assert worker.wait_idle(5)
    finally:
        worker.stop()
    tags = [req.tag for _, _, req in published]
    assert tags == ["first", 49]
    assert worker.dropped == 48


def test_cache_hit_does_not_call_the_model(sine_decoder):
    worker, published = _collect(sine_decoder)
    worker.start()
    try:
        worker.submit(Request(0, (512, 512, 512, 512)))
        worker.wait_idle(5)
        worker.submit(Request(1, (512, 512, 512, 512)))
        worker.wait_idle(5)
    finally:
        worker.stop()
    assert sine_decoder.calls == 1 and worker.cache.hits == 1
    assert np.array_equal(published[0][1], published[1][1])


def test_failing_decode_keeps_previous_buffer_and_is_counted(sine_decoder):
    worker, published = _collect(sine_decoder)
    worker.start()
    try:
        worker.submit(Request(0, (1, 1, 1, 1)))
        worker.wait_idle(5)
        for mode, key in (("raise", (2, 2, 2, 2)), ("nan", (3, 3, 3, 3))):
            sine_decoder.fail = mode
            worker.submit(Request(0, key))
            worker.wait_idle(5)
    finally:
        worker.stop()
    assert len(published) == 1
    assert worker.failures == 2
