"""Does decoding in the daemon's process delay the audio callback? (the GIL question)

One process, one private JACK server (dummy driver, 48 kHz, ``--period`` frames). A JACK
audio client of this process stands in for the daemon's audio callback: a Python process
callback that mixes a block with the daemon's own Mixer (one voice always sounding) and records
how late it started, ``frames_since_cycle_start`` at entry (the wake-up plus the wait for the
GIL), and how long it ran. The phases alternate, in one run:

- ``idle``: no decoding;
- ``thread``: a DecodeWorker thread in this process decodes a fresh latent every 5 ms (a CC
  sweep: 200 requests/s, latest-wins) with the daemon's model, and renders (resamples) it;
- ``process``: the same requests to a ProcessDecodeWorker (the model in a child process).

Prints per phase: callbacks, start lateness (median, p99, p99.9, max, in microseconds),
callbacks that started later than half a period, the longest callback, JACK xruns, decodes.
A figure, never pass/fail.

    .venv/bin/python bench/gil.py [--period 128] [--phase-seconds 15] [--rounds 2] [--model M]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

from snaresynth.testing.jackd import JackServer, bench_server
from snaresynth.testing.procs import load_average

REQUEST_INTERVAL_S = 0.005  # 200 latent changes per second


class CallbackTimer:
    """A JACK client whose process callback mixes one block and times itself."""

    def __init__(self, server: JackServer, capacity: int = 2_000_000) -> None:
        import jack

        from snaresynth.rt.mixer import Hit, Mixer

        self.client = jack.Client("gil-probe", no_start_server=True, servername=server.name)
        self.port = self.client.outports.register("out")
        self.rate = server.rate
        self.mixer = Mixer(server.rate, 16, max_block=8192)
        self._hit = Hit(0, np.random.default_rng(0).standard_normal(server.rate).astype(
            np.float32) * 0.1, 0.5, 0.5)
        self._stereo = np.zeros((server.period, 2), dtype=np.float32)
        self.late = np.zeros(capacity, dtype=np.int32)  # frames since cycle start at entry
        self.took = np.zeros(capacity, dtype=np.float32)  # seconds inside the callback
        self.n = 0
        self.xruns = 0
        self.client.set_process_callback(self._process)
        self.client.set_xrun_callback(self._xrun)
        self.client.activate()

    def _xrun(self, delay_usecs: float) -> None:
        self.xruns += 1

    def _process(self, frames: int) -> None:
        late = self.client.frames_since_cycle_start
        t0 = time.perf_counter()
        if self.mixer.active_voices() == 0:
            self._hit.frame = self.mixer.frame
            self.mixer.schedule(self._hit)
        self.mixer.render(self._stereo)
        self.port.get_array()[:] = self._stereo[:, 0]
        i = self.n
        if i < self.late.size:
            self.late[i] = late
            self.took[i] = time.perf_counter() - t0
            self.n = i + 1

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


def feed(worker, decoder, stop: threading.Event, seed: int) -> None:
    """Submit a fresh latent (a cache miss) every 5 ms until ``stop``."""
    from snaresynth.decode.worker import Request

    rng = np.random.default_rng(seed)
    while not stop.is_set():
        key = tuple(int(v) for v in rng.integers(0, 1025, decoder.latent_dim))
        worker.submit(Request(0, key, 0.0, 1.0, int(decoder.sample_rate), 48000))
        time.sleep(REQUEST_INTERVAL_S)


def summarize(timer: CallbackTimer, start: int, end: int, xruns: int, decodes: int,
              period: int) -> dict:
    late = timer.late[start:end].astype(np.float64) * 1e6 / timer.rate
    took = timer.took[start:end].astype(np.float64) * 1e6
    if late.size == 0:
        return {"callbacks": 0}
    half = 0.5 * period * 1e6 / timer.rate
    return {"callbacks": int(late.size), "late_median_us": float(np.median(late)),
            "late_p99_us": float(np.percentile(late, 99)),
            "late_p999_us": float(np.percentile(late, 99.9)), "late_max_us": float(late.max()),
            "late_over_half_period": int(np.sum(late > half)),
            "took_max_us": float(took.max()), "xruns": xruns, "decodes": decodes}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--period", type=int, default=128)
    parser.add_argument("--phase-seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", default=None, help="model spec (default: the daemon's)")
    parser.add_argument("--child-threads", type=int, default=0,
                        help="TensorFlow threads in the decode process (0 = TF's default)")
    parser.add_argument("--child-nice", type=int, default=0, help="nice value added in the child")
    parser.add_argument("--switch-interval", type=float, default=None,
                        help="sys.setswitchinterval for this process, in seconds")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from snaresynth.decode.process import ProcessDecodeWorker
    from snaresynth.decode.worker import DecodeWorker
    from snaresynth.models import registry

    print(f"load average before: {load_average()}; {vars(args)}", flush=True)
    decoder = registry.resolve(args.model)
    decoder.warm_up()
    thread_worker = DecodeWorker(decoder, lambda *a: None)
    thread_worker.start()
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    process_worker = ProcessDecodeWorker(args.model, threads=args.child_threads,
                                         nice=args.child_nice)
    process_worker.start()
    workers = {"thread": thread_worker, "process": process_worker}
    results: dict[str, list[dict]] = {"idle": [], "thread": [], "process": []}
    with bench_server(args.period) as server:
        timer = CallbackTimer(server)
        try:
            time.sleep(1.0)
            for r in range(args.rounds):
                for phase in ("idle", "thread", "process"):
                    worker = workers.get(phase)
                    stop = threading.Event()
                    feeder = None
                    if worker is not None:
                        feeder = threading.Thread(target=feed, args=(worker, decoder, stop, r))
                    start, xruns = timer.n, timer.xruns
                    decodes = worker.decodes if worker else 0
                    if feeder:
                        feeder.start()
                    time.sleep(args.phase_seconds)
                    end, xruns_end = timer.n, timer.xruns
                    stop.set()
                    if feeder:
                        feeder.join()
                        worker.wait_idle(10)
                    results[phase].append(summarize(
                        timer, start, end, xruns_end - xruns,
                        (worker.decodes - decodes) if worker else 0, args.period))
                    print(f"round {r + 1} {phase:<8} {json.dumps(results[phase][-1])}",
                          flush=True)
                    time.sleep(1.0)
        finally:
            timer.close()
            thread_worker.stop()
            process_worker.stop()
    period_us = args.period * 1e6 / server.rate
    print(f"\nperiod {args.period} frames = {period_us:.0f} us; load after {load_average()}")
    print(f"{'phase':<8} {'callbacks':>9} {'late med':>9} {'p99':>8} {'p99.9':>8} {'max':>8} "
          f"{'>T/2':>6} {'xruns':>6} {'decodes':>8}")
    for phase, rows in results.items():
        for row in rows:
            print(f"{phase:<8} {row['callbacks']:>9} {row['late_median_us']:>9.0f} "
                  f"{row['late_p99_us']:>8.0f} {row['late_p999_us']:>8.0f} "
                  f"{row['late_max_us']:>8.0f} {row['late_over_half_period']:>6} "
                  f"{row['xruns']:>6} {row['decodes']:>8}")
    if args.json:
        args.json.write_text(json.dumps({"period": args.period, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
