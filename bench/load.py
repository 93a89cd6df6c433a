"""Soak: snaresynth under a drummer's and a knob-twiddler's load on a private JACK server.

For each ``--decode`` mode given (default: process, then thread, one fresh JACK server each):
``snaresynth serve --audio jack --midi-api jack`` at ``--period`` frames / 48 kHz, driven for
``--seconds`` (60) by
- hits on 16th notes at 180 bpm (12 a second), cycling over the kit's notes 37..41 with
  changing velocities (every velocity layer), never choked: as many voices as the kit allows;
- a continuous CC sweep over every latent dimension (CC 20..27), 200 messages a second, each a
  new value (so a new latent point: decodes and dropped requests);
- an OSC stream of /snaresynth/decay and /snaresynth/level, 50 messages a second;
while it counts xruns (JACK's xrun callback on the probe client, the daemon's own
/snaresynth/status xruns and startup_xruns, and jackd's log of which client was late),
decodes, dropped requests, cache hit rate, late hits, voices, the daemon's CPU time (its
decode process included, and apart) and its memory: VmRSS and VmHWM from /proc/PID/status
every second, with the growth over the soak.
Figures only, never pass/fail.

    .venv/bin/python bench/load.py [--seconds 60] [--period 128] [--decode process thread]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from snaresynth.testing.jackd import JackServer, bench_server
from snaresynth.testing.osc import OscClient
from snaresynth.testing.probe import Probe, control_change, note_on
from snaresynth.testing.procs import (
    cpu_seconds,
    load_average,
    memory_kib,
    proc_tree,
    tensorflow_loaded,
)
from snaresynth.testing.synths import Synth, jack_daemon

BPM = 180
NOTES = (38, 40, 37, 39, 41)
LATENT_CCS = tuple(range(20, 28))
CC_RATE = 200  # messages per second
OSC_RATE = 50
LEAD_S = 0.05


def soak(server: JackServer, daemon: Synth, seconds: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    probe = Probe(server, lock_memory=True)
    probe.connect(daemon.midi_in, daemon.audio_out)
    status = OscClient(daemon.osc_port)
    stream = OscClient(daemon.osc_port)  # a second socket: the OSC stream, not read
    rate = server.rate
    sixteenth = int(round(rate * 60 / BPM / 4))
    cc_step = rate // CC_RATE
    pids = proc_tree(daemon.proc.pid)
    samples: list[dict] = []
    try:
        time.sleep(1.0)
        before = status.status()
        xruns0 = probe.xruns
        log0 = len(server.log_text())
        cpu0 = {pid: cpu_seconds(pid) for pid in pids}
        t_start = time.monotonic()
        start = probe.now() + int(LEAD_S * rate)
        next_hit, next_cc, hit_i, cc_i = start, start, 0, 0
        next_osc, next_sample = t_start, t_start
        end_frame = start + int(seconds * rate)
        while True:
            horizon = probe.now() + int(2 * LEAD_S * rate)  # schedule 50..100 ms ahead
            while min(next_hit, next_cc) < min(horizon, end_frame):
                if next_hit <= next_cc:
                    velocity = int(40 + (hit_i * 37) % 88)
                    probe.schedule(next_hit, note_on(NOTES[hit_i % len(NOTES)], velocity))
                    hit_i += 1
                    next_hit += sixteenth
                else:
                    dim = cc_i % len(LATENT_CCS)
                    phase = (cc_i // len(LATENT_CCS)) / 64.0 + dim / len(LATENT_CCS)
                    value = int(round(63.5 + 63.5 * np.sin(2 * np.pi * phase)))
                    probe.schedule(next_cc, control_change(LATENT_CCS[dim], value))
                    cc_i += 1
                    next_cc += cc_step
            now = time.monotonic()
            while next_osc <= now:
                stream.send("/snaresynth/decay", float(rng.uniform(0.6, 1.0)), 1)
                stream.send("/snaresynth/level", float(rng.uniform(0.7, 0.9)), 2)
                next_osc += 2.0 / OSC_RATE
            if now >= next_sample:
                row = {"t": now - t_start}
                for pid in proc_tree(daemon.proc.pid):
                    mem = memory_kib(pid)
                    row[pid] = mem
                    if pid not in pids:
                        pids.append(pid)
                row["voices"] = status.status()["voices"]
                samples.append(row)
                next_sample += 1.0
            if probe.now() >= end_frame:
                break
            time.sleep(0.005)
        wall = time.monotonic() - t_start
        time.sleep(1.0)
        after = status.status()
        cpu = {pid: cpu_seconds(pid) - cpu0.get(pid, 0.0) for pid in pids}
        probe_xruns = probe.xruns - xruns0
        late_clients = server.late_clients(log0)
    finally:
        probe.close()
        status.close()
        stream.close()
    main_pid = daemon.proc.pid
    result: dict = {"seconds": wall, "hits_sent": hit_i, "ccs_sent": cc_i,
                    "osc_sent": int(wall * OSC_RATE), "probe_xruns": probe_xruns,
                    "late_clients": late_clients,
                    "late_sends": probe.late_events}
    for key in ("xruns", "startup_xruns", "hits", "late_hits", "stolen", "decodes",
                "decode_failures", "cache_hits", "cache_misses", "dropped_requests",
                "bad_messages", "unmapped"):
        result[key] = after.get(key, 0) - before.get(key, 0)
    result["startup_xruns_total"] = after.get("startup_xruns")
    result["cache_items"] = after.get("cache_items")
    looked = result["cache_hits"] + result["cache_misses"]
    result["cache_hit_rate"] = result["cache_hits"] / looked if looked else None
    result["decode_ms_median"] = after.get("decode_ms_median")
    result["callback_cpu_load"] = after.get("cpu_load")
    result["longest_block_ms"] = after.get("longest_block_ms")  # since the daemon started
    result["memory_locked"] = after.get("memory_locked")
    result["max_voices"] = max((s["voices"] for s in samples), default=0)
    result["cpu_percent_daemon"] = 100.0 * cpu.get(main_pid, 0.0) / wall
    result["cpu_percent_children"] = 100.0 * sum(
        v for p, v in cpu.items() if p != main_pid) / wall
    result["memory"] = memory_report(samples, main_pid)
    result["tensorflow_in_daemon"] = tensorflow_loaded(main_pid)
    return result


def memory_report(samples: list[dict], main_pid: int) -> dict:
    """RSS of the daemon (and of its children) over the soak, in MiB: first, last, peak."""
    def series(which: str, key: str) -> list[float]:
        out = []
        for s in samples:
            pids = [p for p in s if isinstance(p, int)]
            chosen = [main_pid] if which == "daemon" else [p for p in pids if p != main_pid]
            out.append(sum(s[p].get(key, 0) for p in chosen if p in s) / 1024.0)
        return out

    report = {}
    for which in ("daemon", "children"):
        rss, hwm = series(which, "VmRSS"), series(which, "VmHWM")
        if not rss or max(rss) == 0:
            continue
        half = len(rss) // 2
        slope = float(np.polyfit(np.arange(len(rss) - half), rss[half:], 1)[0]) \
            if len(rss) - half >= 3 else 0.0
        report[which] = {"rss_first_mib": rss[0], "rss_last_mib": rss[-1],
                         "rss_growth_mib": rss[-1] - rss[0], "peak_rss_mib": max(hwm),
                         "second_half_slope_mib_per_min": slope * 60.0}
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--period", type=int, default=128)
    parser.add_argument("--decode", nargs="+", default=["process", "thread"],
                        choices=["process", "thread"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("daemon_args", nargs="*", help="extra `snaresynth serve` arguments")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="snaresynth-load-") as tmp:
        for mode in args.decode:
            with bench_server(args.period) as server:
                daemon = jack_daemon(server, Path(tmp) / mode,
                                     ("--decode", mode, *args.daemon_args))
                try:
                    load0 = load_average()
                    print(f"{mode}: soaking {args.seconds:.0f} s at {args.period} frames "
                          f"(load {load0}) ...", flush=True)
                    res = soak(server, daemon, args.seconds, args.seed)
                    res["load_before"], res["load_after"] = load0, load_average()
                    results[mode] = res
                finally:
                    daemon.close()
    for mode, r in results.items():
        mem = r["memory"].get("daemon", {})
        kids = r["memory"].get("children", {})
        rate = r["cache_hit_rate"]
        print(f"\n--decode {mode}, {r['seconds']:.0f} s at {args.period} frames / 48 kHz "
              f"(load {r['load_before']} -> {r['load_after']})")
        print(f"  sent: {r['hits_sent']} hits, {r['ccs_sent']} CCs, ~{r['osc_sent']} OSC "
              f"({r['late_sends']} MIDI events sent a cycle late by the probe itself)")
        print(f"  xruns: daemon {r['xruns']} (start-up {r['startup_xruns_total']}), "
              f"JACK server (probe client's callback) {r['probe_xruns']}; cycles jackd "
              f"found unfinished, by client: {r['late_clients'] or 'none'}")
        print(f"  hits played {r['hits']}, late {r['late_hits']}, stolen {r['stolen']}, "
              f"max voices seen {r['max_voices']}")
        print(f"  decodes {r['decodes']} (median {r['decode_ms_median']:.1f} ms, failures "
              f"{r['decode_failures']}), dropped requests {r['dropped_requests']}, cache hit "
              f"rate {rate:.1%}, {r['cache_items']} buffers cached at the end"
              if rate is not None else "  no cache lookups")
        print(f"  CPU: daemon {r['cpu_percent_daemon']:.0f} % of a core, decode process "
              f"{r['cpu_percent_children']:.0f} %; audio callback load "
              f"{r['callback_cpu_load']:.3f}, longest block {r['longest_block_ms']:.3f} ms "
              f"(period {1000 * args.period / 48000:.2f} ms); memory locked "
              f"{r['memory_locked']}; TensorFlow in the daemon: {r['tensorflow_in_daemon']}")
        if mem:
            print(f"  daemon RSS {mem['rss_first_mib']:.0f} -> {mem['rss_last_mib']:.0f} MiB "
                  f"(growth {mem['rss_growth_mib']:+.1f} MiB, second-half slope "
                  f"{mem['second_half_slope_mib_per_min']:+.2f} MiB/min), peak "
                  f"{mem['peak_rss_mib']:.0f} MiB")
        if kids:
            print(f"  decode process RSS {kids['rss_first_mib']:.0f} -> "
                  f"{kids['rss_last_mib']:.0f} MiB (growth {kids['rss_growth_mib']:+.1f} MiB),"
                  f" peak {kids['peak_rss_mib']:.0f} MiB")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
