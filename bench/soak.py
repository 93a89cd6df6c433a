"""Soak: a mixed flood against a real daemon for N minutes, its memory recorded every minute.

    .venv/bin/python bench/soak.py                       # 10 minutes, own jackd (dummy) + daemon
    .venv/bin/python bench/soak.py --minutes 1 --rate 500
    .venv/bin/python bench/soak.py --audio null          # no JACK: OSC only, null audio

The flood mixes, every 10 ms: knob moves on every latent and control (random values, so the
decode cache fills to its cap), triggers, bundles timetagged up to 2 s ahead and some in the
past, hostile datagrams (junk, cut packets, unknown type tags, 30,000-character addresses, NaN,
deep bundles, names as subscribe hosts), /status, /state, preset saves over one name, undo,
randomize, select; on JACK, MIDI notes and CCs into ``snaresynth:midi_in``. Every minute it
records the daemon's RSS (the daemon and its decode child, from /proc), whether /ping is
answered on a socket of its own, and counters from /status, then prints the table.
Figures only: it never fails on timing (docs/reliability.md quotes a run).
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import random
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from snaresynth.testing.daemon import Daemon
from snaresynth.testing.osc import NoReply, OscClient, bundle, message
from snaresynth.testing.procs import load_average, memory_kib, proc_tree

TICK_S = 0.01
COUNTERS = ("osc_received", "bad_messages", "hits", "dropped_hits", "decodes", "cache_items",
            "dropped_requests", "decode_failures", "osc_coalesced", "midi_coalesced", "xruns")
"""The /status counters the table shows (those the daemon has; the rest print as -)."""


@functools.cache
def _hostile_kinds() -> tuple[bytes, ...]:
    data = message("/snaresynth/level", 0.5)
    nested = message("/snaresynth/ping")
    for _ in range(200):
        nested = b"#bundle\x00" + bytes(7) + b"\x01" + len(nested).to_bytes(4, "big") + nested
    return (
        data[:-3], data[:-4],
        b"/snaresynth/level\x00\x00\x00,Q\x00\x00" + bytes(8),  # unknown type tag
        message("/snaresynth/" + "x" * 30_000, 1),
        message("/snaresynth/tune", float("nan")),
        message("/snaresynth/level", 1e30),
        message("/snaresynth/trigger", 1.0, 2**31 - 2),
        message("/snaresynth/subscribe", "no-such-host.invalid", 9000),
        message("/snaresynth/subscribe", "255.255.255.255", 9000),
        message("/snaresynth/evil", 1),
        nested,
    )


def hostile(rng: random.Random) -> bytes:
    """One datagram of the kinds the daemon must refuse (each answered with /fail)."""
    if rng.random() < 0.2:
        return os.urandom(rng.randrange(1, 2000))
    return rng.choice(_hostile_kinds())


def mixed(rng: random.Random, latent_dim: int) -> bytes:
    """One datagram of ordinary traffic: knob moves mostly, a few of everything else."""
    roll = rng.random()
    if roll < 0.80:
        knob = rng.choice([f"/latent/{i}" for i in range(latent_dim)]
                          + ["/level", "/tune", "/decay", "/pan", "/morph", "/variation"])
        return message("/snaresynth" + knob, rng.random())
    if roll < 0.88:
        return message("/snaresynth/trigger", rng.uniform(0.1, 1.0))
    if roll < 0.93:
        ahead = rng.choice([rng.uniform(0.0, 2.0), -rng.uniform(0.1, 5.0)])
        return bundle(time.time() + ahead, ("/snaresynth/trigger", 0.7),
                      ("/snaresynth/latent/0", rng.random()))
    if roll < 0.97:
        return hostile(rng)
    if roll < 0.995:
        return message(rng.choice(["/snaresynth/status", "/snaresynth/state",
                                   "/snaresynth/undo", "/snaresynth/redo",
                                   "/snaresynth/preset/list"]))
    return rng.choice([message("/snaresynth/preset/save", "soak"),
                       message("/snaresynth/randomize", 0.3), message("/snaresynth/select", 0)])


def rss_mib(pid: int) -> tuple[float, int]:
    """RSS of the daemon and all its descendants (the decode child), and how many there are."""
    pids = proc_tree(pid)
    return sum(memory_kib(p).get("VmRSS", 0) for p in pids) / 1024, len(pids)


def drain(sock: socket.socket) -> int:
    """Read whatever is waiting on ``sock`` without waiting; how many datagrams."""
    sock.setblocking(False)  # a socket with a timeout would wait that long for each read
    count = 0
    while True:
        try:
            sock.recvfrom(65536)
        except (BlockingIOError, InterruptedError):
            return count
        count += 1


def ping_ok(sock: socket.socket, target: tuple[str, int], timeout: float = 5.0) -> bool:
    """Whether /ping is answered within ``timeout`` on a socket the flood never uses."""
    drain(sock)  # a late pong of the last row is not this row's
    sock.sendto(message("/snaresynth/ping"), target)
    sock.settimeout(timeout)
    try:
        while True:
            data, _ = sock.recvfrom(65536)
            if data.startswith(b"/snaresynth/pong"):
                return True
    except TimeoutError:
        return False


class Midi:
    """JACK MIDI notes and CCs into the daemon (None without JACK)."""

    def __init__(self) -> None:
        from snaresynth.testing.midi import MidiSender

        self.sender = MidiSender("soak", connect_to="snaresynth:midi_in")

    def tick(self, rng: random.Random, events: int) -> None:
        for _ in range(events):
            if rng.random() < 0.3:
                self.sender.send([0x90, 38, rng.randrange(1, 128)])
            else:
                self.sender.send([0xB0, rng.choice([1, 21, 22, 23]), rng.randrange(128)])

    def close(self) -> None:
        self.sender.close()


def flood_for(seconds: float, client: OscClient, rng: random.Random, rate: int,
              latent_dim: int, midi: Midi | None, midi_rate: int, sent: dict[str, int]) -> None:
    """Keep the mixed flood going for ``seconds``; replies to the flood socket are drained."""
    t0 = time.monotonic()
    done = 0
    while (elapsed := time.monotonic() - t0) < seconds:
        while done < int(elapsed * rate) + 1:
            try:
                client.send_raw(mixed(rng, latent_dim))
            except OSError:  # our own send buffer is full: the datagram is lost, as on a network
                sent["send_errors"] += 1
            done += 1
            sent["osc"] += 1
        if midi is not None:
            midi.tick(rng, max(1, int(midi_rate * TICK_S)))
            sent["midi"] += max(1, int(midi_rate * TICK_S))
        sent["replies"] += drain(client.sock)
        time.sleep(TICK_S)


def row(minute: float, rss: float, procs: int, ok: bool, status: dict[str, Any] | None) -> str:
    """One markdown table row (docs/reliability.md takes the table as printed)."""
    cells = [f"{minute:g}", f"{rss:.1f}", str(procs), "yes" if ok else "**no**"]
    for key in COUNTERS:
        value = None if status is None else status.get(key)
        cells.append(f"{value:,}" if isinstance(value, int) else "-")
    return "| " + " | ".join(cells) + " |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=60.0, help="seconds between table rows")
    parser.add_argument("--rate", type=int, default=2000, help="OSC datagrams a second")
    parser.add_argument("--midi-rate", type=int, default=500, help="JACK MIDI events a second")
    parser.add_argument("--audio", choices=("jack", "null"), default="jack",
                        help="jack: a private jackd (dummy driver), JACK MIDI too; null: OSC only")
    parser.add_argument("--warm-up", type=float, default=30.0, metavar="S",
                        help="seconds of flood before the first row (first-use allocations)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory()
    home = Path(tmp.name)
    server = None
    if args.audio == "jack":
        from snaresynth.testing.jackd import JackServer

        server = JackServer(f"snaresynth-soak-{os.getpid()}", period=256).start(attempts=3)
        server.export()
        daemon_args = ["--audio", "jack", "--midi-api", "jack", "--midi-in", "virtual",
                       "--blocksize", "256"]
    else:
        daemon_args = ["--audio", "null", "--midi-in", "none"]
    daemon = Daemon.in_home(home, *daemon_args)
    client = OscClient(daemon.osc_port)
    pinger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    pinger.bind(("127.0.0.1", 0))
    midi = Midi() if server is not None else None
    rng = random.Random(args.seed)
    latent_dim = len(client.state(timeout=10)["kit"]["slot"][0]["knobs"])
    sent = {"osc": 0, "midi": 0, "replies": 0, "send_errors": 0}
    names = ["min", "RSS MiB", "processes", "/ping", *(f"`{k}`" for k in COUNTERS)]
    header = "| " + " | ".join(names) + " |\n|" + "---|" * len(names)
    print(f"soak: {args.minutes:g} min, {args.rate} OSC datagrams/s, "
          f"{args.midi_rate if midi else 0} JACK MIDI events/s, audio {args.audio}, "
          f"daemon pid {daemon.pid}, load average {load_average()}", flush=True)
    try:
        flood_for(args.warm_up, client, rng, args.rate, latent_dim, midi, args.midi_rate, sent)
        print(header, flush=True)
        rows = max(1, math.ceil(args.minutes * 60 / args.every))
        for n in range(rows + 1):
            if n:
                flood_for(args.every, client, rng, args.rate, latent_dim, midi, args.midi_rate,
                          sent)
            rss, procs = rss_mib(daemon.pid)
            ok = ping_ok(pinger, client.target)
            probe = OscClient(daemon.osc_port)
            try:
                status: dict[str, Any] | None = probe.status(timeout=5.0)
            except NoReply:
                status = None
            finally:
                probe.close()
            print(row(round(n * args.every / 60, 2), rss, procs, ok, status), flush=True)
        print(f"sent {sent['osc']:,} OSC datagrams ({sent['send_errors']:,} refused by our own "
              f"socket), {sent['midi']:,} JACK MIDI events; {sent['replies']:,} replies read; "
              f"load average {load_average()}", flush=True)
    finally:
        if midi is not None:
            midi.close()
        pinger.close()
        client.close()
        daemon.stop()
        print(f"daemon exit code {daemon.returncode}", flush=True)
        if server is not None:
            server.close()
        tmp.cleanup()
    return 0 if daemon.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
