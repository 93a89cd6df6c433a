"""OSC bundle timetags on JACK: how exactly the hits they schedule are spaced.

A private JACK server (dummy driver, 48 kHz, ``--period`` frames) runs ``snaresynth serve
--audio jack``; this process sends ``--bundles`` OSC bundles, each with one
``/snaresynth/trigger``, timetagged ``--spacing`` seconds apart and sent 0.2 s ahead, and the
probe (``snaresynth.testing.probe``) finds every onset on JACK's frame clock. The error of a hit
is its distance from the first hit, in frames, minus its timetag's distance times the rate: 0
means the timetags were honoured to the sample. Figures only, never pass/fail.

    .venv/bin/python bench/bundles.py [--period 128] [--bundles 60] [--spacing 0.6]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from snaresynth.testing.jackd import JackServer, bench_server
from snaresynth.testing.osc import OscClient
from snaresynth.testing.probe import Probe
from snaresynth.testing.procs import load_average
from snaresynth.testing.synths import Synth, jack_daemon

AHEAD_S = 0.2


def measure(server: JackServer, daemon: Synth, bundles: int, spacing: float,
            seed: int) -> dict:
    rng = np.random.default_rng(seed)
    probe = Probe(server, lock_memory=True)
    probe.connect(audio_out=daemon.audio_out)
    osc = OscClient(daemon.osc_port)
    tags = []
    try:
        time.sleep(0.5)
        before = osc.status()
        start = time.time() + 0.5
        for k in range(bundles):
            # a random sub-block part, so the hits do not all fall on one offset of the cycle
            tag = start + k * spacing + float(rng.uniform(0.0, 0.01))
            while time.time() < tag - AHEAD_S:
                time.sleep(0.005)
            osc.send_bundle(tag, ("/snaresynth/trigger",))
            tags.append(tag)
        time.sleep(AHEAD_S + 0.6)
        after = osc.status()
        onsets = probe.onsets
    finally:
        probe.close()
        osc.close()
    result: dict = {"bundles": bundles, "heard": len(onsets),
                    "xruns": after.get("xruns", 0) - before.get("xruns", 0),
                    "late_hits": after.get("late_hits", 0) - before.get("late_hits", 0),
                    "osc_late": after.get("osc_late", 0) - before.get("osc_late", 0)}
    if len(onsets) == bundles:
        rate = server.rate
        error = [(onsets[k] - onsets[0]) - round((tags[k] - tags[0]) * rate)
                 for k in range(1, bundles)]
        errors = np.abs(np.array(error))
        result |= {"error_frames_median": float(np.median(errors)),
                   "error_frames_p95": float(np.percentile(errors, 95)),
                   "error_frames_max": int(errors.max()),
                   "exact": int(np.count_nonzero(errors == 0)),
                   "within_1": int(np.count_nonzero(errors <= 1))}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--period", type=int, default=128)
    parser.add_argument("--bundles", type=int, default=60)
    parser.add_argument("--spacing", type=float, default=0.6,
                        help="seconds between timetags (the hits must not overlap)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("daemon_args", nargs="*", help="extra `snaresynth serve` arguments")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="snaresynth-bundles-") as tmp, \
            bench_server(args.period) as server:
        daemon = jack_daemon(server, Path(tmp), args.daemon_args)
        try:
            load0 = load_average()
            r = measure(server, daemon, args.bundles, args.spacing, args.seed)
        finally:
            daemon.close()
    print(f"\n{args.bundles} bundles {args.spacing} s apart at {args.period} frames / 48 kHz "
          f"(load {load0} -> {load_average()}): heard {r['heard']}, xruns {r['xruns']}, "
          f"late hits {r['late_hits']}, late bundles {r['osc_late']}")
    if "error_frames_median" in r:
        print(f"  spacing error against the timetags, frames: median "
              f"{r['error_frames_median']:.1f}, p95 {r['error_frames_p95']:.1f}, max "
              f"{r['error_frames_max']}; exact {r['exact']} / {args.bundles - 1}, within one "
              f"frame {r['within_1']} / {args.bundles - 1}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
