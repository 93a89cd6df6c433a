"""OSC flood against a real daemon: N messages a second for S seconds, then the figures.

    .venv/bin/python bench/flood.py                     # 10,000/s for 10 s, own daemon (null audio)
    .venv/bin/python bench/flood.py --port 9000         # against a daemon already running
    .venv/bin/python bench/flood.py --rate 20000 --seconds 5

Prints: messages sent and handled (the kernel drops datagrams while the daemon's socket buffer
is full), the daemon's resident memory before and after, triggers that sounded, the longest
/ping round trip during the flood, and whether the last value sent is the one in the state.
Figures only: it never fails on timing (docs/reliability.md quotes a run).
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import time
from pathlib import Path

from snaresynth.testing.daemon import Daemon
from snaresynth.testing.osc import OscClient, message
from snaresynth.testing.procs import rss_kib


def flood(client: OscClient, rate: int, seconds: float) -> tuple[int, int, int, float]:
    """Send latent/0 values (every 500th message a trigger) and a /ping every 0.5 s; returns
    messages sent, triggers, pings and the worst ping round trip."""
    sent = triggers = pings = 0
    worst_ping = 0.0
    t0 = time.monotonic()
    next_ping = t0 + 0.5
    ping_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ping_sock.bind(("127.0.0.1", 0))
    ping_sock.setblocking(False)
    pinged_at = None
    while (elapsed := time.monotonic() - t0) < seconds:
        while sent < int(elapsed * rate) + 1:
            if sent % 500 == 0:
                client.send("/snaresynth/trigger", 0.8)
                triggers += 1
            else:
                client.send("/snaresynth/latent/0", (sent % 16) / 16)
            sent += 1
        now = time.monotonic()
        if pinged_at is None and now >= next_ping:
            ping_sock.sendto(message("/snaresynth/ping"), client.target)
            pinged_at = now
            pings += 1
        if pinged_at is not None:
            try:
                ping_sock.recvfrom(65536)
                worst_ping = max(worst_ping, time.monotonic() - pinged_at)
                pinged_at, next_ping = None, time.monotonic() + 0.5
            except BlockingIOError:
                if now - pinged_at > 2.0:  # lost in the flood: counts as 2 s
                    worst_ping, pinged_at, next_ping = 2.0, None, now + 0.5
        time.sleep(0.0005)
    ping_sock.close()
    return sent, triggers, pings, worst_ping


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, help="a running daemon's OSC port (default: start one)")
    parser.add_argument("--pid", type=int, help="its process id, for the memory figures")
    parser.add_argument("--rate", type=int, default=10_000, help="messages a second")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    daemon = None
    tmp = tempfile.TemporaryDirectory()
    if args.port is None:
        daemon = Daemon.in_home(Path(tmp.name), "--audio", "null", "--midi-in", "none")
        port, pid = daemon.osc_port, daemon.pid
    else:
        port, pid = args.port, args.pid
    client = OscClient(port)
    try:
        flood(client, args.rate, 1.0)  # warm-up: decodes and caches the 16 values
        time.sleep(1.0)
        before = client.status(timeout=10.0)
        rss_before = rss_kib(pid) / 1024 if pid else float("nan")
        sent, triggers, pings, worst_ping = flood(client, args.rate, args.seconds)
        time.sleep(1.0)
        client.send("/snaresynth/latent/0", 0.123)
        time.sleep(2.0)
        after = client.status(timeout=10.0)
        rss_after = rss_kib(pid) / 1024 if pid else float("nan")
        state = client.state(timeout=10.0)
        slot = state["kit"]["slot"][state["selected"]]
        handled = after["osc_received"] - before["osc_received"] - 2 - pings
        print(f"sent {sent} messages in {args.seconds:.0f} s ({sent / args.seconds:.0f}/s); "
              f"handled {handled} ({handled / args.seconds:.0f}/s; "
              f"{after['osc_coalesced'] - before['osc_coalesced']} knob values coalesced); "
              f"{sent - handled} dropped by the kernel")
        print(f"triggers: {triggers} sent, {after['hits'] - before['hits']} sounded")
        print(f"RSS {rss_before:.1f} -> {rss_after:.1f} MiB; decode requests dropped (latest "
              f"wins) {after['dropped_requests'] - before['dropped_requests']}")
        print(f"worst /ping round trip during the flood: {1000 * worst_ping:.0f} ms")
        print(f"last value wins: latent 0 = {slot['knobs'][0]} (sent 0.123)")
    finally:
        client.close()
        if daemon is not None:
            daemon.stop()
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
