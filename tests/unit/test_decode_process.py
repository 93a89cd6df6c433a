"""ProcessDecodeWorker: the model in a spawned child, DecodeWorker's interface in the daemon.

One child (an untrained dense autoencoder, fixed seed) serves the whole module, to keep the
TensorFlow start-up to one; the crash test starts its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from snaresynth.decode.process import ProcessDecodeWorker
from snaresynth.decode.worker import BufferCache, Request, playback_buffer

SPEC = "untrained:autoencoder"


class Published:
    def __init__(self) -> None:
        self.items: list[tuple[int, np.ndarray, Request]] = []
        self.lock = threading.Lock()

    def __call__(self, slot: int, buf: np.ndarray, req: Request) -> None:
        with self.lock:
            self.items.append((slot, buf, req))


@pytest.fixture(scope="module")
def worker():
    w = ProcessDecodeWorker(SPEC, cache=BufferCache(8 * 2**20))
    w.start()
    yield w
    w.stop()


@pytest.fixture
def published(worker):
    sink = Published()
    worker.on_ready = sink
    return sink


def test_the_child_describes_its_model(worker):
    d = worker.decoder
    assert d.family == "autoencoder" and d.latent_dim > 0 and d.length == 16384
    lo, hi = d.latent_range()
    assert lo.shape == (d.latent_dim,) and np.all(hi > lo)
    assert worker.pid is not None and worker.pid != os.getpid()


def test_buffer_comes_back_rendered_and_equal_to_an_in_process_decode(worker, published):
    d = worker.decoder
    key = (300,) * d.latent_dim
    req = Request(0, key, tune_semitones=0.0, decay=0.5, model_rate=d.sample_rate,
                  out_rate=48000)
    worker.submit(req)
    assert worker.wait_idle(30)
    slot, buf, got = published.items[-1]
    assert slot == 0 and got is req
    assert buf.dtype == np.float32 and buf.shape == (16384 * 48000 // d.sample_rate,)
    assert np.all(np.isfinite(buf)) and buf.flags.c_contiguous
    # the same fixed-seed network decoded here gives the same sound
    from snaresynth.decode.worker import knobs_to_z
    from snaresynth.models import registry

    local = registry.resolve(SPEC)
    raw = local.decode(knobs_to_z(key, *d.latent_range())[None, :])[0]
    expected = playback_buffer(raw, d.sample_rate, 48000, 0.0, 0.5)
    assert np.allclose(buf, expected, atol=1e-4)


def test_cache_hits_do_not_run_the_model(worker, published):
    d = worker.decoder
    key = (700,) * d.latent_dim
    base = Request(1, key, model_rate=d.sample_rate, out_rate=48000)
    worker.submit(base)
    assert worker.wait_idle(30)
    decodes, hits = worker.decodes, worker.cache.hits
    worker.submit(base)  # finished buffer cached in the daemon
    assert worker.wait_idle(30)
    assert worker.decodes == decodes and worker.cache.hits == hits + 1
    worker.submit(Request(1, key, tune_semitones=2.0, model_rate=d.sample_rate,
                          out_rate=48000))  # raw output cached in the child: only re-rendered
    assert worker.wait_idle(30)
    assert worker.decodes == decodes and worker.cache.hits == hits + 2
    assert published.items[-1][1].shape[0] < published.items[-2][1].shape[0]  # tuned up


def test_latest_request_wins(worker, published):
    d = worker.decoder
    dropped = worker.dropped
    for i in range(200):
        worker.submit(Request(2, (i,) * d.latent_dim, tag=i))
    assert worker.wait_idle(60)
    tags = [req.tag for slot, _, req in published.items if slot == 2]
    assert tags[-1] == 199 and len(tags) < 200
    assert worker.dropped - dropped == 200 - len(tags)


def test_a_dead_child_is_counted_and_replaced():
    sink = Published()
    w = ProcessDecodeWorker(SPEC, sink)
    w.start()
    try:
        d = w.decoder
        w.submit(Request(0, (1,) * d.latent_dim))
        assert w.wait_idle(30) and len(sink.items) == 1
        os.kill(w.pid, signal.SIGKILL)
        time.sleep(0.2)
        w.submit(Request(0, (2,) * d.latent_dim))
        assert w.wait_idle(120)
        assert w.failures == 1 and w.restarts == 1 and len(sink.items) == 1
        w.submit(Request(0, (3,) * d.latent_dim))
        assert w.wait_idle(30) and len(sink.items) == 2
        pid = w.pid
        w.stop()  # not timed: a test never judges speed (bench/footprint.py times the stop)
        assert w.restarts == 1
        assert not os.path.exists(f"/proc/{pid}/status") or _zombie(pid)  # the child is gone
    finally:
        w.stop()


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "zombie" in f.read()
    except OSError:
        return True


def test_the_daemon_side_does_not_import_tensorflow():
    code = ("import sys; import snaresynth.cli, snaresynth.serve, snaresynth.engine.engine, "
            "snaresynth.decode.process, snaresynth.io.osc, snaresynth.io.osc_server; "
            "print('tensorflow' in sys.modules or 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "False"
