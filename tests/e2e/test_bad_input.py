"""Bad input and floods against one running daemon (JACK audio + JACK MIDI + OSC over UDP).

Each test sends one kind of abuse and then checks the daemon still answers and still plays.
What each test guards is listed in docs/reliability.md; the figures printed here (run with -s)
are the ones quoted there.
"""

from __future__ import annotations

import os
import socket
import time
import tomllib
from pathlib import Path

import pytest
import tomli_w

from snaresynth.control.presets import shipped_preset_dir
from snaresynth.testing.daemon import Daemon
from snaresynth.testing.midi import MidiSender
from snaresynth.testing.osc import NoReply, OscClient, bundle, message
from snaresynth.testing.procs import rss_kib

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def daemon(jack_server, tmp_path_factory):
    home = tmp_path_factory.mktemp("bad-input")
    d = Daemon.in_home(home, "--audio", "jack", "--midi-api", "jack", "--midi-in", "virtual",
                       "--blocksize", "256")
    d.home = home
    yield d
    d.stop()


@pytest.fixture
def client(daemon):
    c = OscClient(daemon.osc_port)
    yield c
    c.close()


def _plays(client: OscClient) -> None:
    """The daemon answers and a trigger still sounds."""
    before = client.status()["hits"]
    assert client.ping() == []
    client.send("/snaresynth/trigger", 1.0)
    deadline = time.monotonic() + 5
    while client.status()["hits"] <= before:
        assert time.monotonic() < deadline, "a trigger did not sound"
        time.sleep(0.05)


def _nested_bundle(depth: int) -> bytes:
    data = message("/snaresynth/ping")
    for _ in range(depth):
        data = b"#bundle\x00" + b"\x00" * 7 + b"\x01" + len(data).to_bytes(4, "big") + data
    return data


def test_osc_abuse_over_udp_gets_fail_and_the_daemon_plays(daemon, client):
    bad_before = client.status()["bad_messages"]
    ping = len(message("/snaresynth/ping"))
    deepest = (65507 - ping) // 20  # the deepest bundle one UDP datagram holds (3274 levels)
    year = 3600 * 24 * 365
    future = bundle(time.time() + 3 * year, ("/snaresynth/trigger",))  # (NTP time ends 2036)
    cases = [
        ("nested bundle", _nested_bundle(deepest)),
        ("64 KB datagram", message("/snaresynth/z", *[0.5] * 13000)),
        ("64 KB of junk", os.urandom(65000)),
        ("timetag years ahead", future),
        ("truncated by 3", message("/snaresynth/level", 0.5)[:-3]),
        ("truncated by 4", message("/snaresynth/level", 0.5)[:-4]),
        ("wrong type", message("/snaresynth/decay", "long")),
        ("too many args", message("/snaresynth/level", 0.5, 0, 7, 7)),
        ("NaN", message("/snaresynth/tune", float("nan"))),
        ("-inf", message("/snaresynth/latent/1", float("-inf"))),
        ("far out of range", message("/snaresynth/level", 1e30)),
        ("slot out of range", message("/snaresynth/trigger", 1.0, 2**31 - 2)),
        ("unknown address", message("/snaresynth/evil", 1)),
    ]
    assert len(cases[1][1]) > 64000 and all(len(data) <= 65507 for _, data in cases)
    for what, data in cases:
        client.send_raw(data)
        try:
            address, reason = client.receive("/snaresynth/fail", timeout=5)
        except NoReply as exc:
            raise AssertionError(f"{what}: {exc}") from None
        assert reason, what
        if what == "64 KB datagram":  # read whole, so the answer is about its own address
            assert address == "/snaresynth/z", (address, reason)
    status = client.status()
    assert status["bad_messages"] - bad_before == len(cases), status
    # a timetag in the past is played at once (counted late), not refused
    hits = status["hits"]
    client.send_bundle(time.time() - year, ("/snaresynth/trigger",))
    time.sleep(0.3)
    status = client.status()
    assert status["osc_late"] >= 1 and status["hits"] == hits + 1, status
    _plays(client)
    print(f"OSC abuse: {len(cases)} kinds answered with /fail (bundle {deepest} deep, "
          f"{len(cases[1][1])} byte datagram)")


def test_midi_abuse_over_jack_plays_only_what_it_should(daemon, client):
    midi = MidiSender("abuser", connect_to="snaresynth:midi_in")
    try:
        before = client.status()
        midi.send([0xF0, 0x7E, 0x7F, 0x06, 0x01, 0xF7],  # sysex
                  [0x90, 38, 100, 40, 100],  # running status: two notes in one event
                  [0x90, 38, 0],  # note-on velocity 0 = note-off
                  [0x9F, 99, 100],  # an unmapped note on channel 16
                  [0xBF, 99, 5],  # an unmapped CC
                  [0xF4], [0x45, 0x12], [0xF9])  # undefined status bytes, stray data
        flood = [[0xFE]] * 3000 + [[0xF8]] * 3000  # active sensing and clock floods
        midi.send(*flood)
        midi.drain()
        time.sleep(0.5)
        status = client.status()
        assert status["hits"] - before["hits"] == 2, status
        assert status["unmapped"] - before["unmapped"] == 2, status
        assert status["bad_messages"] == before["bad_messages"], status
        _plays(client)
    finally:
        midi.close()
    print(f"MIDI abuse: {8 + len(flood)} events, 2 hits, 2 unmapped")


def _write_bad_presets(folder: Path) -> dict[str, str]:
    """Broken presets in the user folder; returns name -> a word the error must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    text = (shipped_preset_dir() / "default.toml").read_text()
    good = tomllib.loads(text)
    cases: dict[str, tuple[dict | bytes, str]] = {
        "bad-missing": ({k: v for k, v in good.items() if k != "name"}, "name"),
        "bad-unknown": ({**good, "exec": "rm -rf /"}, "exec"),
        "bad-type": ({**good, "slot": [{**good["slot"][0], "knobs": "loud"}]}, "knobs"),
        "bad-range": ({**good, "slot": [{**good["slot"][0], "level_db": 1e9}]}, "level_db"),
        "bad-toml": (b"name = [[[\x00\xff", "TOML"),
        "bad-truncated": (text[: len(text) // 2].encode(), "bad-truncated"),
    }
    for name, (doc, _) in cases.items():
        data = doc if isinstance(doc, bytes) else tomli_w.dumps(doc).encode()
        (folder / f"{name}.toml").write_bytes(data)
    return {name: word for name, (_, word) in cases.items()}


def test_bad_presets_and_escaping_names_are_refused_and_the_kit_stays(daemon, client):
    expected = _write_bad_presets(daemon.home / "presets")
    (daemon.home / "outside.toml").write_text((shipped_preset_dir() / "tight.toml").read_text())
    client.request("/snaresynth/preset/list")  # the store sees the folder
    kit_before = client.state()["kit"]
    for name, word in expected.items():
        client.send("/snaresynth/preset/load", name)
        address, reason = client.receive("/snaresynth/fail")
        assert address == "/snaresynth/preset/load"
        assert f"{name}.toml" in reason and word in reason, reason
    for name in ("../outside", "../../etc/passwd", "/etc/passwd", "..", "a/b", "", "x" * 5000,
                 "~/outside", "..\\outside"):
        client.send("/snaresynth/preset/load", name)
        address, reason = client.receive("/snaresynth/fail")
        assert address == "/snaresynth/preset/load" and reason, name
        client.send("/snaresynth/preset/save", name)
        address, reason = client.receive("/snaresynth/fail")
        assert address == "/snaresynth/preset/save" and reason, name
    assert client.state()["kit"] == kit_before  # the previous kit is still in use
    written = {p.name for p in daemon.home.rglob("*") if p.is_file()}
    assert written <= {"outside.toml", "state.toml"} | {f"{n}.toml" for n in expected}, written
    _plays(client)


def test_osc_flood_memory_bounded_last_value_wins_hits_sound(daemon, client):
    pid = daemon.proc.pid
    sock = client.sock
    target = client.target
    rate, seconds = 10_000, 2.0
    sent = triggers = 0

    def flood(duration: float) -> None:
        nonlocal sent, triggers
        t0 = time.monotonic()
        i = 0
        while (elapsed := time.monotonic() - t0) < duration:
            while sent < int(elapsed * rate) + 1:
                if i % 500 == 0:
                    sock.sendto(message("/snaresynth/trigger", 0.8), target)
                    triggers += 1
                else:
                    # 16 distinct values, all decoded (and cached) during the warm-up, so
                    # growth after it is what the flood itself holds on to
                    sock.sendto(message("/snaresynth/latent/0", (i % 16) / 16), target)
                sent += 1
                i += 1
            time.sleep(0.001)

    flood(0.5)  # warm-up: first-use allocations are not growth
    time.sleep(1.0)
    before_status, rss_before = client.status(), rss_kib(pid)
    sent = triggers = 0
    flood(seconds)
    time.sleep(1.0)  # the kernel drops datagrams while the socket buffer is full
    client.send("/snaresynth/latent/0", 0.123)  # the last value sent
    time.sleep(0.5)
    b = client.wait_settled(("decodes", "dropped_requests"), interval=0.3, timeout=15)
    rss_after = rss_kib(pid)
    received = b["osc_received"] - before_status["osc_received"] - 2  # minus our 2 statuses
    knob = client.state()["kit"]["slot"][0]["knobs"][0]
    assert knob == pytest.approx(0.123)
    sounded = b["hits"] - before_status["hits"]
    coalesced = b["osc_coalesced"] - before_status["osc_coalesced"]
    assert sounded >= triggers // 2, b  # most triggers get through the flood
    assert coalesced > sent // 4, b  # knob values were coalesced, not each handled
    growth_mib = (rss_after - rss_before) / 1024
    print(f"OSC flood: {sent} messages in {seconds:.0f} s ({sent / seconds:.0f}/s), "
          f"{received} received, {coalesced} coalesced, {sounded} of {triggers} triggers "
          f"sounded, RSS {rss_before / 1024:.1f} -> {rss_after / 1024:.1f} MiB, "
          f"dropped decode requests {b['dropped_requests'] - before_status['dropped_requests']}")
    assert growth_mib < 20, f"RSS grew {growth_mib:.1f} MiB"
    _plays(client)


def test_midi_cc_flood_memory_bounded_last_value_wins(daemon, client):
    midi = MidiSender("flooder", connect_to="snaresynth:midi_in")
    pid = daemon.proc.pid
    try:
        midi.send(*[[0xB0, 21, i % 128] for i in range(2000)])  # warm-up
        midi.drain()
        time.sleep(1.0)
        rss_before = rss_kib(pid)
        before = client.status()
        count = 20_000
        t0 = time.monotonic()
        midi.send(*[[0xB0, 21, i % 128] for i in range(count - 1)], [0xB0, 21, 77],
                  [0x90, 38, 100])
        midi.drain(30)
        flood_s = time.monotonic() - t0
        time.sleep(1.0)
        status = client.status()
        rss_after = rss_kib(pid)
        knob = client.state()["kit"]["slot"][0]["knobs"][1]
        assert knob == pytest.approx(77 / 127)
        assert status["hits"] == before["hits"] + 1
        # the flood was coalesced on the JACK thread: most values were replaced, not handled
        coalesced = status["midi_coalesced"] - before["midi_coalesced"]
        assert coalesced > count // 2, status
        growth_mib = (rss_after - rss_before) / 1024
        print(f"MIDI CC flood: {count} CCs in {flood_s:.1f} s ({count / flood_s:.0f}/s), "
              f"{coalesced} coalesced, RSS {rss_before / 1024:.1f} -> {rss_after / 1024:.1f} MiB")
        assert growth_mib < 20, f"RSS grew {growth_mib:.1f} MiB"
        _plays(client)
    finally:
        midi.close()


def _bound_to(port: int) -> list[str]:
    """The local addresses UDP sockets on ``port`` are bound to (from /proc/net/udp)."""
    local = []
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        host_hex, port_hex = line.split()[1].split(":")
        if int(port_hex, 16) == port:
            local.append(socket.inet_ntoa(bytes.fromhex(host_hex)[::-1]))
    return local


def test_osc_listens_on_loopback_only_by_default(daemon):
    assert _bound_to(daemon.osc_port) == ["127.0.0.1"]


def test_osc_allow_obeys_only_the_named_networks(start_daemon, tmp_path):
    d = start_daemon("--audio", "null", "--midi-in", "none", "--osc-host", "0.0.0.0",
                     "--osc-allow", "10.0.0.0/8", "127.0.0.2/32")
    assert _bound_to(d.osc_port) == ["0.0.0.0"]  # named by the user: all interfaces
    outsider = OscClient(d.osc_port)  # 127.0.0.1: not in the list
    insider = OscClient(d.osc_port, bind="127.0.0.2")
    try:
        for _ in range(5):
            outsider.send("/snaresynth/trigger", 1.0)
            outsider.send("/snaresynth/preset/save", "intruder")
        outsider.send("/snaresynth/ping")
        with pytest.raises(NoReply):  # refused senders get no answer at all
            outsider.receive("/snaresynth/pong", timeout=0.5)
        status = insider.status()
        assert status["osc_refused"] == 11 and status["hits"] == 0, status
        assert not (tmp_path / "presets" / "intruder.toml").exists()
        assert "refused" in d.output()
    finally:
        outsider.close()
        insider.close()
