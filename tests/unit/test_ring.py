"""The one ring (snaresynth/rt/ring.py): records cross in order, whole, and never overwrite one
not yet taken, from Python to compiled code and back, also with both ends running at once."""

import threading
import time

import numpy as np
import pytest
from numba import njit

from snaresynth.rt.primitives import now_ns
from snaresynth.rt.ring import (
    R_READ,
    R_WRITE,
    Ring,
    ring_publish,
    ring_readable,
    ring_release,
    ring_reserve,
    ring_row,
)


@njit(nogil=True)
def _produce(counters, values, first, n):
    """Compiled producer: records first..first+n-1 as (k, -k, 3k); returns how many fit."""
    for i in range(n):
        write = ring_reserve(counters, 1)
        if write < 0:
            return i
        k = ring_row(counters, write)
        values[k, 0] = first + i
        values[k, 1] = -(first + i)
        values[k, 2] = 3 * (first + i)
        ring_publish(counters, write + 1)
    return n


@njit(nogil=True)
def _consume(counters, values, out, got):
    """Compiled consumer: every published record's first column appended to ``out``."""
    read, write = ring_readable(counters)
    for position in range(read, write):
        out[got] = values[ring_row(counters, position), 0]
        got += 1
    ring_release(counters, write)
    return got


@njit(nogil=True)
def _produce_all(counters, values, n, scratch, timeout_ns):
    """Compiled producer that waits for room (a test only: real ones never wait)."""
    deadline = now_ns(scratch.ctypes.data) + timeout_ns
    i = 0
    while i < n:
        if counters[R_WRITE] - counters[R_READ] >= values.shape[0]:
            if now_ns(scratch.ctypes.data) > deadline:
                return i
            continue
        i += _produce(counters, values, i, 1)
    return i


@njit(nogil=True)
def _consume_all(counters, values, out, scratch, timeout_ns):
    """Compiled consumer of ``out.shape[0]`` records; False if a record was torn."""
    deadline = now_ns(scratch.ctypes.data) + timeout_ns
    got = 0
    while got < out.shape[0] and now_ns(scratch.ctypes.data) < deadline:
        read, write = ring_readable(counters)
        for position in range(read, write):
            k = ring_row(counters, position)
            if values[k, 1] != -values[k, 0] or values[k, 2] != 3 * values[k, 0]:
                return False
            out[got] = values[k, 0]
            got += 1
        ring_release(counters, write)
    return True


def _ring(capacity=8):
    return Ring(capacity, ((3,), np.int64))


def test_python_producer_to_compiled_consumer_in_order_across_the_wrap():
    ring = _ring(8)
    out = np.zeros(100, dtype=np.int64)
    got = 0
    for n in range(0, 100, 5):  # 5 at a time: the rows wrap many times
        for i in range(n, n + 5):
            assert ring.push((i, -i, 3 * i))
        got = _consume(ring.counters, ring.arrays[0], out, got)
    assert got == 100 and list(out) == list(range(100))
    assert ring.unread() == 0 and ring.lost == 0


def test_compiled_producer_to_python_consumer_drain_and_take():
    ring = _ring(8)
    assert _produce(ring.counters, ring.arrays[0], 0, 6) == 6
    seen = [int(ring.arrays[0][k, 0]) for k in ring.drain()]
    assert seen == list(range(6)) and ring.unread() == 0
    assert _produce(ring.counters, ring.arrays[0], 6, 5) == 5  # rows 6, 7, 0, 1, 2
    (records,) = ring.take()
    assert records[:, 0].tolist() == list(range(6, 11))
    assert records[:, 1].tolist() == [-i for i in range(6, 11)]
    assert ring.take()[0].shape == (0, 3)  # taken once


def test_a_full_ring_refuses_and_counts_never_overwrites():
    ring = _ring(4)
    assert [ring.push((i, -i, 3 * i)) for i in range(6)] == [True] * 4 + [False] * 2
    assert ring.lost == 2
    assert _produce(ring.counters, ring.arrays[0], 100, 3) == 0  # compiled end: refused too
    assert ring.lost == 3  # it stops at the first refusal
    assert [int(ring.arrays[0][k, 0]) for k in ring.rows()] == [0, 1, 2, 3]  # still there
    assert ring.unread() == 4  # rows() releases nothing


def test_a_multi_record_reservation_fits_whole_or_not_at_all():
    ring = _ring(8)
    write = ring_reserve(ring.counters, 6)
    assert write == 0
    ring_publish(ring.counters, write + 6)
    assert ring_reserve(ring.counters, 3) == -1 and ring.lost == 3  # 2 free: none written
    assert ring.unread() == 6
    ring.take()
    assert ring_reserve(ring.counters, 8) == 6  # all 8 rows free again, from position 6


def test_a_claimed_record_is_invisible_until_published():
    ring = _ring(4)
    k = ring.claim()
    ring.arrays[0][k] = (7, -7, 21)
    assert ring.unread() == 0 and ring.rows() == []
    ring.publish()
    assert [int(ring.arrays[0][k, 0]) for k in ring.rows()] == [7]


def test_the_positions_sit_a_cache_line_apart():
    ring = _ring(4)
    assert (R_READ - R_WRITE) * ring.counters.itemsize >= 64


def test_both_ends_at_once_compiled_producer_python_consumer():
    ring = _ring(64)
    n = 20_000
    produced = [0]
    producer = threading.Thread(target=lambda: produced.__setitem__(0, _produce_all(
        ring.counters, ring.arrays[0], n, np.zeros(2, dtype=np.int64), 20_000_000_000)))
    producer.start()  # runs without the GIL while this thread drains
    seen: list[int] = []
    values = ring.arrays[0]
    deadline = time.monotonic() + 20
    while len(seen) < n and time.monotonic() < deadline:
        for k in ring.drain():
            first, second, third = (int(x) for x in values[k])
            assert second == -first and third == 3 * first  # never a torn record
            seen.append(first)
    producer.join()
    assert produced[0] == n and seen == list(range(n))


def test_both_ends_at_once_python_producer_compiled_consumer():
    ring = _ring(64)
    n = 20_000
    out = np.full(n, -1, dtype=np.int64)
    whole = [False]
    consumer = threading.Thread(target=lambda: whole.__setitem__(0, _consume_all(
        ring.counters, ring.arrays[0], out, np.zeros(2, dtype=np.int64), 20_000_000_000)))
    consumer.start()
    i = 0
    deadline = time.monotonic() + 20
    while i < n and time.monotonic() < deadline:
        if ring.push((i, -i, 3 * i)):
            i += 1
    consumer.join()
    assert whole[0] and out.tolist() == list(range(n))


@pytest.fixture
def jack_rt():
    try:
        import snaresynth.rt.jack as jack_rt
    except OSError as exc:  # no libjack on this machine
        pytest.skip(f"libjack: {exc}")
    return jack_rt


def test_the_midi_rings_are_the_one_ring(jack_rt):
    capture = jack_rt.MidiCapture()
    try:
        stamps, data = capture.ring.arrays
        for i, message in enumerate((b"\x90\x26\x64", b"\xb0\x14\x40", b"\xf8")):
            k = capture.ring.claim()  # as the callback would: the record, then its position
            stamps[k] = (1000 + i, len(message), i == 0)
            data[k, :len(message)] = np.frombuffer(message, dtype=np.uint8)
            capture.ring.publish()
        assert list(capture.events()) == [(1000, b"\x90\x26\x64", True),
                                          (1001, b"\xb0\x14\x40", False), (1002, b"\xf8", False)]
        assert list(capture.events()) == []
    finally:
        capture.close()
    send = jack_rt.MidiSend(ring=2)
    assert [send.send(b"\x90\x26\x64"), send.send(b"\xfa"), send.send(b"\xfc")] == [
        True, True, False]
    assert send.dropped == 1
    sizes, data = send.ring.arrays
    assert [bytes(data[k, :sizes[k]]) for k in send.ring.rows()] == [b"\x90\x26\x64", b"\xfa"]
