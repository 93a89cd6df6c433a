"""Python process callback against the compiled one, while Python threads are busy.

One process, one private JACK server (dummy driver, 48 kHz, ``--period`` frames). In
alternating phases a JACK client of this process plays the daemon's ``Mixer`` (one voice
always sounding) either from a Python process callback (JACK-Client; it must take the GIL each
cycle) or from the compiled callback the daemon uses (``snaresynth.rt.jack``; no GIL), while
``--busy`` Python threads do what the daemon's OSC and MIDI threads do in bursts: pure-Python
work with short sleeps. Prints JACK's xruns per phase. A figure, never pass/fail.

    .venv/bin/python bench/rt_callback.py [--period 128] [--seconds 20] [--rounds 2] [--busy 3]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import numpy as np

from snaresynth.testing.jackd import JackServer, bench_server
from snaresynth.testing.procs import load_average


def busy_python(stop: threading.Event) -> None:
    """Bursts of bytecode (like parsing and dispatching a message) with short sleeps."""
    total = 0
    while not stop.is_set():
        for i in range(20_000):
            total += i * i % 7
        _ = {str(i): i for i in range(200)}
        time.sleep(0.0005)


def phase(server: JackServer, callback: str, seconds: float, busy: int) -> int:
    """JACK xruns during ``seconds`` of one phase."""
    import jack

    from snaresynth.rt.jack import attach_mixer
    from snaresynth.rt.mixer import Hit, Mixer

    client = jack.Client(f"rt-probe-{callback}", no_start_server=True, servername=server.name)
    ports = [client.outports.register(f"out_{i + 1}") for i in range(2)]
    mixer = Mixer(server.rate, 16)
    sound = np.random.default_rng(0).standard_normal(server.rate).astype(np.float32) * 0.1
    xruns = [0]
    client.set_xrun_callback(lambda _delay: xruns.__setitem__(0, xruns[0] + 1))
    if callback == "compiled":
        attach_mixer(client, ports, mixer)
    else:
        block = np.zeros((8192, 2), dtype=np.float32)

        def process(frames: int) -> None:
            out = block[:frames]
            mixer.render(out)
            for channel, port in enumerate(ports):
                port.get_array()[:] = out[:, channel]

        client.set_process_callback(process)
    client.activate()
    stop = threading.Event()
    threads = [threading.Thread(target=busy_python, args=(stop,), daemon=True)
               for _ in range(busy)]
    try:
        time.sleep(1.0)  # activation xruns apart
        before = xruns[0]
        for thread in threads:
            thread.start()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if mixer.active_voices() == 0:  # keep one voice sounding
                mixer.schedule(Hit(mixer.frame, sound, 0.5, 0.5))
            time.sleep(0.05)
        return xruns[0] - before
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        client.deactivate()
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--period", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--busy", type=int, default=3, help="busy Python threads")
    args = parser.parse_args()
    print(f"load average before: {load_average()}")
    results: dict[str, list[int]] = {"python": [], "compiled": []}
    with bench_server(args.period) as server:
        for _ in range(args.rounds):
            for callback in results:
                results[callback].append(phase(server, callback, args.seconds, args.busy))
                print(f"  {callback:8s} callback, {args.busy} busy threads, {args.seconds:.0f} s:"
                      f" {results[callback][-1]} xruns", flush=True)
    print(f"\nxruns per {args.seconds:.0f} s at {args.period} frames, {args.busy} busy Python "
          f"threads, {args.rounds} rounds (load {load_average()} at the end)")
    for callback, counts in results.items():
        print(f"  {callback:8s} median {statistics.median(counts):7.1f}  all {counts}")


if __name__ == "__main__":
    main()
