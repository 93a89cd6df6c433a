"""Note-on -> audio onset latency and jitter of snaresynth and FluidSynth on one JACK server.

For each period (64, 128, 256 frames at 48 kHz) a private JACK server (dummy driver) runs
``snaresynth serve`` and FluidSynth side by side, once per latency mode (``--latency constant``
and ``lowest``, one daemon after the other, each against FluidSynth). A probe client of this
process sends a note-on at a random frame offset inside its process callback and finds the
first non-silent sample the synth sends back: latency in frames = onset frame - note-on frame,
both on JACK's frame clock (see ``snaresynth.testing.probe``). Hits alternate between the
synths, so both see the same load.

At one period (``--latent-period``, default 128) it also measures how soon after a latent
change (a CC) a hit plays the new sound: a CC, then a note-on ``d`` ms later, for a ladder of
``d``; each test hit is compared sample for sample with a reference hit played once the decode
has settled. Figures only, never pass/fail.

    .venv/bin/python bench/latency.py [--periods 64 128 256] [--hits 100] [--json OUT.json]
                                      [--plot OUT.png]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from snaresynth.testing.jackd import RATE, JackServer, bench_server
from snaresynth.testing.osc import OscClient
from snaresynth.testing.probe import Probe, control_change, note_off, note_on
from snaresynth.testing.procs import load_average
from snaresynth.testing.synths import Synth, fluidsynth, jack_daemon

NOTE = 38  # GM acoustic snare: snaresynth's default kit slot 0, FluidSynth's drum kit
DRUM_CHANNEL = 10
LEAD_S = 0.05  # how far ahead of "now" a note is scheduled (always a future cycle)
WINDOW_S = 0.25  # an onset later than this after its note-on counts as missed
LATENT_CC = 21  # latent/1 in the default kit (latent/0 is the velocity dimension)
LADDER_MS = (0, 5, 10, 20, 30, 40, 50, 60, 80, 100, 130, 160, 200, 250)


def stats(latencies: list[int | None], rate: int) -> dict[str, float | int]:
    got = np.array([x for x in latencies if x is not None], dtype=np.int64)
    missed = len(latencies) - got.size
    if got.size == 0:
        return {"hits": len(latencies), "missed": missed}
    ms = 1000.0 / rate
    return {"hits": len(latencies), "missed": missed,
            "median_frames": float(np.median(got)), "min_frames": int(got.min()),
            "max_frames": int(got.max()), "jitter_frames": int(got.max() - got.min()),
            "median_ms": float(np.median(got)) * ms, "min_ms": int(got.min()) * ms,
            "max_ms": int(got.max()) * ms, "jitter_ms": int(got.max() - got.min()) * ms}


def measure_latency(server: JackServer, daemon: Synth, fluid: Synth, hits: int,
                    spacing_s: float, seed: int) -> dict[str, dict]:
    """``hits`` note-ons to each synth at random frame offsets; latency stats per synth."""
    rng = np.random.default_rng(seed)
    probes = {"snaresynth": Probe(server, lock_memory=True),
              "FluidSynth": Probe(server, lock_memory=True)}
    probes["snaresynth"].connect(daemon.midi_in, daemon.audio_out)
    probes["FluidSynth"].connect(fluid.midi_in, fluid.audio_out)
    lead = int(LEAD_S * server.rate)
    half = int(spacing_s * server.rate / 2)
    try:
        time.sleep(0.5)
        for i in range(hits + 1):  # the first hit of each is a warm-up, not counted
            # both synths get the same offset into the cycle, so their figures compare hit
            # for hit (each from the start of a cycle)
            now = probes["snaresynth"].now()
            offset = int(rng.integers(0, server.period))
            t = now + lead - now % server.period + offset
            probes["snaresynth"].schedule(t, note_on(NOTE, 110))
            t += server.period * round(half / server.period)
            probes["FluidSynth"].schedule(t, note_on(NOTE, 110, DRUM_CHANNEL))
            probes["FluidSynth"].schedule(t + lead, note_off(NOTE, DRUM_CHANNEL))
            time.sleep(spacing_s)
            if i == 0:
                for probe in probes.values():
                    probe.clear_sent()
        time.sleep(WINDOW_S + 0.3)
        result = {}
        for name, probe in probes.items():
            notes = [(f, c) for f, m, c in probe.sent if m[0] & 0xF0 == 0x90]
            lat = probe.match(notes, int(WINDOW_S * server.rate))
            from_cycle = [x + f - c for x, (f, c) in zip(lat, notes, strict=True)
                          if x is not None]
            result[name] = stats(lat, server.rate) | {
                # (the note's offset into its cycle, its latency) in frames, for --plot
                "per_hit": [[f - c, x] for x, (f, c) in zip(lat, notes, strict=True)
                            if x is not None],
                "probe_xruns": probe.xruns, "late_sends": probe.late_events,
                "distinct_offsets": len({f - c for f, c in notes}),
                # onset - first frame of the cycle the note-on was delivered in
                "from_cycle_median_frames": float(np.median(from_cycle)) if from_cycle else None,
                "from_cycle_jitter_frames": int(max(from_cycle) - min(from_cycle))
                if from_cycle else None}
        return result
    finally:
        for probe in probes.values():
            probe.close()


def measure_latent_change(server: JackServer, daemon: Synth, spacing_s: float,
                          repeats: int, seed: int) -> dict:
    """CC (a never-used value: a cache miss) then a note-on d ms later; new sound or old?"""
    rng = np.random.default_rng(seed)
    probe = Probe(server, record_seconds=30.0, lock_memory=True)
    probe.connect(daemon.midi_in, daemon.audio_out)
    osc = OscClient(daemon.osc_port)
    lead = int(LEAD_S * server.rate)
    rate = server.rate
    length = 4096
    ladder = [d for d in LADDER_MS for _ in range(repeats)]
    rng.shuffle(ladder)
    values = [int(v) for v in rng.permutation(128)]
    trials = []
    try:
        time.sleep(0.5)

        def hit_at(frame: int) -> np.ndarray | None:
            """The first ``length`` frames of the hit played for a note-on at ``frame``."""
            time.sleep(max((frame - probe.now()) / rate, 0) + WINDOW_S + 0.1)
            lat = probe.match([(frame, frame - frame % server.period)], int(WINDOW_S * rate))[0]
            return None if lat is None else probe.heard(frame + lat, length)

        t = probe.now() + lead
        probe.schedule(t, note_on(NOTE, 127))
        old = hit_at(t)
        time.sleep(spacing_s)
        for delay_ms in ladder:
            value = values.pop()
            t = probe.now() + lead
            probe.schedule(t, control_change(LATENT_CC, value))
            note = t + int(round(delay_ms * rate / 1000))
            probe.schedule(note, note_on(NOTE, 127))
            test = hit_at(note)
            time.sleep(spacing_s)
            t = probe.now() + lead
            probe.schedule(t, note_on(NOTE, 127))
            new = hit_at(t)
            time.sleep(spacing_s)
            exact = False
            if test is None or new is None or old is None:
                verdict = "missed"
            elif np.allclose(new, old, atol=1e-6):
                verdict = "same"  # the new latent point sounds like the old: no information
            else:  # the nearer of the two; exact = equal to the sample (no glitch in between)
                d_new, d_old = np.max(np.abs(test - new)), np.max(np.abs(test - old))
                verdict = "new" if d_new < d_old else "old"
                exact = bool(min(d_new, d_old) <= 1e-6)
            trials.append({"delay_ms": delay_ms, "verdict": verdict, "exact": exact})
            old = new
        status = osc.status()
    finally:
        probe.close()
        osc.close()
    old_delays = [t["delay_ms"] for t in trials if t["verdict"] == "old"]
    new_delays = [t["delay_ms"] for t in trials if t["verdict"] == "new"]
    always_new = min((d for d in LADDER_MS if all(
        t["verdict"] == "new" for t in trials if t["delay_ms"] >= d)), default=None)
    return {"trials": trials, "latest_old_ms": max(old_delays, default=None),
            "earliest_new_ms": min(new_delays, default=None), "always_new_from_ms": always_new,
            "decode_ms_median": status.get("decode_ms_median"),
            "block_ms": 1000.0 * server.period / rate}


def run_period(period: int, args: argparse.Namespace, workdir: Path) -> list[dict]:
    """One JACK server and one FluidSynth; a daemon per latency mode, each measured against
    FluidSynth in its own pass."""
    results = []
    with bench_server(period) as server:
        fluid = fluidsynth(server)
        try:
            for mode in args.modes:
                daemon = jack_daemon(server, workdir / f"p{period}-{mode}",
                                     ("--latency", mode, *args.daemon_args))
                try:
                    result: dict = {"period": period, "mode": mode,
                                    "load_before": load_average()}
                    log0 = len(server.log_text())
                    result["latency"] = measure_latency(server, daemon, fluid, args.hits,
                                                        args.spacing, args.seed + period)
                    if (period == args.latent_period and args.latent_repeats > 0
                            and mode == args.modes[0]):
                        result["latent_change"] = measure_latent_change(
                            server, daemon, args.spacing, args.latent_repeats, args.seed)
                    status = OscClient(daemon.osc_port)
                    try:
                        result["daemon_status"] = status.status()
                    finally:
                        status.close()
                    result["load_after"] = load_average()
                    result["late_clients"] = server.late_clients(log0)
                finally:
                    daemon.close()
                results.append(result)
        finally:
            fluid.close()
    return results


def report(results: list[dict]) -> None:
    print(f"\n{'period':>6} {'synth':<20} {'median':>16} {'min':>16} {'max':>16} "
          f"{'jitter':>16} {'missed':>6}")
    for res in results:
        lat = res["latency"]
        for name in ("snaresynth", "FluidSynth"):
            s = lat[name]
            label = f"{name} ({res['mode']})" if name == "snaresynth" else name
            if "median_frames" not in s:
                print(f"{res['period']:>6} {label:<20} all {s['missed']} hits missed")
                continue
            cells = [f"{s[k + '_frames']:7.1f} ({s[k + '_ms']:5.2f} ms)"
                     for k in ("median", "min", "max", "jitter")]
            print(f"{res['period']:>6} {label:<20} " + " ".join(f"{c:>16}" for c in cells)
                  + f" {s['missed']:>3}/{s['hits']}")
        a, b = lat["snaresynth"].get("median_ms"), lat["FluidSynth"].get("median_ms")
        if a is None or b is None:
            versus = "n/a (missed hits)"
        else:  # FluidSynth's median is often before the note-on frame: a ratio says nothing
            versus = f"{a - b:+.2f} ms" + (f", ratio {a / b:.2f}" if a > 0 and b > 0 else "")
        print(f"{'':>6} onset - start of the note-on's cycle: " + ", ".join(
            f"{n} median {lat[n]['from_cycle_median_frames']} jitter "
            f"{lat[n]['from_cycle_jitter_frames']} frames" for n in ("snaresynth", "FluidSynth")))
        st = res["daemon_status"]
        print(f"{'':>6} median snaresynth - FluidSynth {versus}; daemon xruns "
              f"{st.get('xruns')} (start-up {st.get('startup_xruns')}), late hits "
              f"{st.get('late_hits')}, notes played in the callback "
              f"{st.get('notes_in_callback')}; load {res['load_before']} -> {res['load_after']}")
        print(f"{'':>6} cycles jackd found unfinished (all clients of the server): "
              f"{res['late_clients'] or 'none'}")
        if "latent_change" in res:
            lc = res["latent_change"]
            print(f"{'':>6} latent change -> new sound: latest old {lc['latest_old_ms']} ms, "
                  f"earliest new {lc['earliest_new_ms']} ms, always new from "
                  f"{lc['always_new_from_ms']} ms; decode median "
                  f"{lc['decode_ms_median']:.1f} ms + block {lc['block_ms']:.2f} ms")
            by = {}
            for t in lc["trials"]:
                by.setdefault(t["delay_ms"], []).append(
                    t["verdict"][0] + ("" if t.get("exact") else "*"))
            print(f"{'':>6} verdicts by delay ms (n new, o old, * nearest but not exact): "
                  + " ".join(f"{d}:{','.join(v)}" for d, v in sorted(by.items())))


def plot(results: list[dict], path: Path) -> None:
    """Latency against the note's offset into its cycle, one panel per period: a flat line is
    a constant latency (no jitter), a diagonal is a synth that follows the block grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    periods = sorted({r["period"] for r in results})
    fig, axes = plt.subplots(1, len(periods), figsize=(4.2 * len(periods), 3.8), squeeze=False)
    styles = {"constant": ("tab:blue", "o"), "lowest": ("tab:green", "s"),
              "FluidSynth": ("tab:red", "x")}
    for ax, period in zip(axes[0], periods, strict=True):
        shown = set()
        for res in (r for r in results if r["period"] == period):
            for name in ("snaresynth", "FluidSynth"):
                label = res["mode"] if name == "snaresynth" else "FluidSynth"
                if label in shown:
                    continue  # FluidSynth once per period (each pass measures it again)
                shown.add(label)
                hits = np.array(res["latency"][name].get("per_hit", []), dtype=float)
                if hits.size == 0:
                    continue
                colour, marker = styles[label]
                text = f"snaresynth --latency {label}" if name == "snaresynth" else label
                ax.scatter(hits[:, 0], hits[:, 1] * 1000.0 / RATE, s=14, c=colour,
                           marker=marker, label=text, alpha=0.8)
        ax.axhline(0.0, color="grey", lw=0.6)
        ax.set_title(f"{period} frames ({1000.0 * period / RATE:.2f} ms)")
        ax.set_xlabel("note-on's offset into its cycle (frames)")
        ax.set_ylabel("onset - note-on (ms)")
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle("Note-on -> onset latency on JACK, each point one hit (bench/latency.py)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--periods", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--hits", type=int, default=100)
    parser.add_argument("--spacing", type=float, default=0.6, help="seconds between hits")
    parser.add_argument("--modes", nargs="+", choices=["constant", "lowest"],
                        default=["constant", "lowest"], help="the daemon's --latency modes")
    parser.add_argument("--latent-period", type=int, default=128)
    parser.add_argument("--latent-repeats", type=int, default=2,
                        help="trials per delay of the latent-change ladder (0 = skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("--plot", type=Path, help="also draw every hit into this PNG")
    parser.add_argument("daemon_args", nargs="*",
                        help="extra `snaresynth serve` arguments, after --")
    args = parser.parse_args()
    print(f"load average before: {load_average()}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="snaresynth-latency-") as tmp:
        for period in args.periods:
            print(f"period {period} frames ...", flush=True)
            results.extend(run_period(period, args, Path(tmp)))
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.plot:
        plot(results, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
