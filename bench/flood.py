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
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder


def message(address: str, *args: object) -> bytes:
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


class Client:
    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.target = ("127.0.0.1", port)

    def request(self, address: str, *args: object, reply: str, timeout: float = 10.0) -> list:
        self.sock.sendto(message(address, *args), self.target)
        deadline = time.monotonic() + timeout
        while True:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                data, _ = self.sock.recvfrom(65536)
            except TimeoutError:
                return []
            msg = OscMessage(data)
            if msg.address == reply:
                return list(msg.params)

    def status(self) -> dict:
        flat = self.request("/snaresynth/status", reply="/snaresynth/status.reply")
        return dict(zip(flat[::2], flat[1::2], strict=True))


def rss_mib(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) / 1024


def start_daemon(home: Path) -> tuple[subprocess.Popen, int]:
    env = dict(os.environ, SNARESYNTH_PRESET_DIR=str(home / "presets"), TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "snaresynth.cli", "serve", "--audio", "null",
                             "--midi-in", "none", "--osc-port", "0", "--state-file",
                             str(home / "state.toml")], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    assert proc.stdout is not None
    for line in proc.stdout:
        match = re.search(r"snaresynth ready: .*OSC osc\.udp://[\d.]+:(\d+)", line)
        if match:
            return proc, int(match.group(1))
    raise SystemExit("daemon did not start")


def flood(client: Client, rate: int, seconds: float) -> tuple[int, int, int, float]:
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
                client.sock.sendto(message("/snaresynth/trigger", 0.8), client.target)
                triggers += 1
            else:
                client.sock.sendto(message("/snaresynth/latent/0", (sent % 16) / 16),
                                   client.target)
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

    proc = None
    tmp = tempfile.TemporaryDirectory()
    if args.port is None:
        proc, port = start_daemon(Path(tmp.name))
        pid = proc.pid
    else:
        port, pid = args.port, args.pid
    client = Client(port)
    try:
        flood(client, args.rate, 1.0)  # warm-up: decodes and caches the 16 values
        time.sleep(1.0)
        before, rss_before = client.status(), rss_mib(pid) if pid else float("nan")
        sent, triggers, pings, worst_ping = flood(client, args.rate, args.seconds)
        time.sleep(1.0)
        client.sock.sendto(message("/snaresynth/latent/0", 0.123), client.target)
        time.sleep(2.0)
        after, rss_after = client.status(), rss_mib(pid) if pid else float("nan")
        state = json.loads(client.request("/snaresynth/state", reply="/snaresynth/state.reply")[0])
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
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
