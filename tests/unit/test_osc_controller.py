"""The OSC address space, driven with raw datagrams (no sockets): python-osc's own builders
make the packets, so these are the bytes a real controller sends."""

import contextlib
import json
import socket
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from snaresynth.control.kit import Kit, Slot
from snaresynth.control.params import parse_param
from snaresynth.engine.engine import Engine, EngineSettings
from snaresynth.io.osc import MAX_SUBSCRIBERS, OscController
from snaresynth.io.osc_args import build_message

SENDER = ("127.0.0.1", 50000)


def _bundle(messages, timetag):
    builder = OscBundleBuilder(timetag)
    for address, args in messages:
        m = OscMessageBuilder(address)
        for a in args:
            m.add_arg(a)
        builder.add_content(m.build())
    return builder.build().dgram


@pytest.fixture
def osc(sine_decoder, preset_store):
    kit = Kit(name="t", slots=[Slot(name="a", notes=[38], knobs=[0.5] * 4),
                               Slot(name="b", notes=[40], knobs=[0.2] * 4)], cc={})
    engine = Engine(sine_decoder, kit, EngineSettings(rate=48000, blocksize=128),
                    store=preset_store)
    engine.start()
    sent = []
    controller = OscController(engine, send=lambda a, args, t: sent.append((a, args, t)))
    controller.pushed = sent
    yield controller
    engine.stop()


def _fails(replies):
    return [r for r in replies if r[0] == "/snaresynth/fail"]


def test_ping_pong(osc):
    assert osc.handle_packet(build_message("/snaresynth/ping", []), SENDER) == [
        ("/snaresynth/pong", [], SENDER)]


def test_trigger_schedules_a_hit(osc):
    assert osc.handle_packet(build_message("/snaresynth/trigger", [0.8, 1]), SENDER) == []
    assert len(osc.engine.mixer.queued()) == 1


def test_latent_and_params_change_state(osc):
    for address, args in (("/snaresynth/latent/2", [0.75]), ("/snaresynth/tune", [1.0]),
                          ("/snaresynth/level", [1])):  # an int is accepted as a float
        assert osc.handle_packet(build_message(address, args), SENDER) == []
    slot = osc.engine.kit.slots[0]
    assert slot.knobs[2] == pytest.approx(0.75)
    assert slot.tune_semitones == pytest.approx(12.0)


def test_bad_input_gets_fail_and_is_counted(osc):
    cases = [
        build_message("/snaresynth/nope", []),
        build_message("/snaresynth/latent/x", [0.5]),
        build_message("/snaresynth/latent/99", [0.5]),
        build_message("/snaresynth/latent/0", ["loud"]),
        build_message("/snaresynth/latent/0", [float("nan")]),
        build_message("/snaresynth/level", [7.0]),
        build_message("/snaresynth/trigger", [1.0, 9]),
        build_message("/snaresynth/preset/load", ["../../etc/passwd"]),
        b"\x00garbage",
        build_message("/snaresynth/level", [0.5])[:-6],  # truncated packet
    ]
    for data in cases:
        replies = osc.handle_packet(data, SENDER)
        assert len(_fails(replies)) == 1, data
        assert _fails(replies)[0][1][1]  # a reason is given
    assert osc.failed == len(cases)
    assert osc.engine.bad_messages == len(cases)


def test_status_reply_has_named_counters(osc):
    (address, args, target), = osc.handle_packet(build_message("/snaresynth/status", []), SENDER)
    assert address == "/snaresynth/status.reply" and target == SENDER
    status = dict(zip(args[::2], args[1::2], strict=True))
    for key in ("voices", "xruns", "decodes", "cache_hits", "dropped_requests", "bad_messages",
                "cpu_load"):
        assert key in status


def test_state_reply_is_the_engine_state(osc):
    osc.handle_packet(build_message("/snaresynth/latent/1", [0.1]), SENDER)
    (_, args, _), = osc.handle_packet(build_message("/snaresynth/state", []), SENDER)
    state = json.loads(args[0])
    assert state["kit"]["slot"][0]["knobs"][1] == pytest.approx(0.1)


def test_subscribers_get_changes_but_not_their_own(osc):
    other = ("127.0.0.1", 50001)
    osc.handle_packet(build_message("/snaresynth/subscribe", []), SENDER)
    osc.handle_packet(build_message("/snaresynth/subscribe", []), other)
    osc.handle_packet(build_message("/snaresynth/latent/0", [0.3]), SENDER)
    assert osc.pushed == []  # noted, sent by the pusher's next flush
    assert osc.flush() >= 1
    values = [p for p in osc.pushed if p[0] != "/snaresynth/buffer"]  # a re-decode may land
    assert values == [("/snaresynth/latent/0", [pytest.approx(0.3)], other)]


def test_pushes_keep_the_latest_value_of_each_address(osc):
    other = ("127.0.0.1", 50001)
    osc.handle_packet(build_message("/snaresynth/subscribe", []), other)
    for i in range(200):  # a sweep between two flushes
        osc.handle_packet(build_message("/snaresynth/latent/0", [i / 200]), SENDER)
    osc.handle_packet(build_message("/snaresynth/level", [0.25]), SENDER)
    osc.flush()
    values = [p for p in osc.pushed if p[0] != "/snaresynth/buffer"]  # re-decodes land too
    assert values == [("/snaresynth/latent/0", [pytest.approx(199 / 200)], other),
                      ("/snaresynth/level", [0.25], other)]


def test_pushes_keep_the_change_of_each_slot(osc):
    """/variants names its slot: two slots changed between two flushes are both told."""
    other = ("127.0.0.1", 50001)
    osc.handle_packet(build_message("/snaresynth/subscribe", []), other)
    osc.handle_packet(build_message("/snaresynth/variants", [3, 0]), SENDER)
    osc.handle_packet(build_message("/snaresynth/variants", [5, 1]), SENDER)
    osc.handle_packet(build_message("/snaresynth/variants", [2, 1]), SENDER)
    osc.flush()
    told = [p for p in osc.pushed if p[0] == "/snaresynth/variants"]
    assert told == [("/snaresynth/variants", [3, 0], other),
                    ("/snaresynth/variants", [2, 1], other)]


def test_a_new_subscriber_gets_the_current_state(osc):
    osc.engine.set_param(parse_param("latent/1"), 0.7, slot=0)
    replies = osc.handle_packet(build_message("/snaresynth/subscribe", ["127.0.0.1", 9100]),
                                SENDER)
    assert replies[0] == ("/snaresynth/subscribe.reply", ["127.0.0.1", 9100], SENDER)
    state = {address: args for address, args, target in replies[1:]
             if target == ("127.0.0.1", 9100)}
    assert state["/snaresynth/select"] == [osc.engine.selected]
    assert state["/snaresynth/latent/1"] == [pytest.approx(0.7)]
    assert {"/snaresynth/level", "/snaresynth/tune", "/snaresynth/pan"} <= state.keys()


@pytest.mark.parametrize(("host", "why"), [
    ("no-such-host.invalid", "IP address"), ("224.0.0.1", "multicast"),
    ("255.255.255.255", "broadcast"), ("0.0.0.0", "unspecified"), ("x" * 60_000, "IP address")])
def test_subscribe_targets_are_numeric_and_not_broadcast(osc, host, why):
    (address, args, _), = osc.handle_packet(build_message("/snaresynth/subscribe", [host, 9100]),
                                            SENDER)
    assert address == "/snaresynth/fail" and why in args[1] and len(args[1]) < 200
    assert not osc.subscribers


def test_subscribers_are_capped(osc):
    for port in range(MAX_SUBSCRIBERS):
        osc.handle_packet(build_message("/snaresynth/subscribe", ["127.0.0.1", 10000 + port]),
                          SENDER)
    (address, args, _), = osc.handle_packet(
        build_message("/snaresynth/subscribe", ["127.0.0.1", 20000]), SENDER)
    assert address == "/snaresynth/fail" and "limit" in args[1]
    assert len(osc.subscribers) == MAX_SUBSCRIBERS


def test_bundle_timetag_schedules_in_the_future(osc):
    engine = osc.engine
    frame0, t0, _, _ = engine.mixer.clock()
    ahead = 0.25
    data = _bundle([("/snaresynth/trigger", [1.0])], time.time() + ahead)
    assert osc.handle_packet(data, SENDER) == []
    hit = engine.mixer.queued()[0]
    expected = engine.clock.frame_at(time.monotonic() + ahead)
    assert abs(hit.frame - expected) < 48000 * 0.01


def test_far_future_timetag_is_refused(osc):
    data = _bundle([("/snaresynth/trigger", [1.0])], time.time() + 3600 * 24 * 365)
    assert _fails(osc.handle_packet(data, SENDER))


def test_allow_list_refuses_other_senders(sine_decoder):
    kit = Kit(name="t", slots=[Slot(name="a", notes=[38], knobs=[0.5] * 4)], cc={})
    engine = Engine(sine_decoder, kit)
    controller = OscController(engine, allow=["10.0.0.0/8"])
    assert controller.handle_packet(build_message("/snaresynth/ping", []), SENDER) == []
    assert controller.refused == 1
    assert controller.handle_packet(build_message("/snaresynth/ping", []), ("10.1.2.3", 9)) != []


def test_preset_save_and_list(osc):
    replies = osc.handle_packet(build_message("/snaresynth/preset/save", ["gig one"]), SENDER)
    assert replies == [("/snaresynth/preset/save.reply", ["gig one"], SENDER)]
    (_, names, _), = osc.handle_packet(build_message("/snaresynth/preset/list", []), SENDER)
    assert "gig one" in names and "default" in names


osc_args = st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                              st.integers(-2**31, 2**31 - 1), st.text(max_size=20),
                              st.booleans(), st.binary(max_size=16)), max_size=5)
addresses = st.one_of(
    st.sampled_from(["/snaresynth/trigger", "/snaresynth/latent/0", "/snaresynth/latent/3",
                     "/snaresynth/z", "/snaresynth/level", "/snaresynth/tune",
                     "/snaresynth/decay", "/snaresynth/pan", "/snaresynth/randomize",
                     "/snaresynth/select", "/snaresynth/preset/load", "/snaresynth/learn",
                     "/snaresynth/subscribe", "/snaresynth/morph"]),
    st.text(min_size=1, max_size=30).map(lambda s: "/" + s))


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(address=addresses, args=osc_args)
def test_any_message_is_handled_or_failed_never_raised(osc, address, args):
    try:
        data = build_message(address, args)
    except Exception:
        return  # python-osc cannot even encode it; no controller could send it
    replies = osc.handle_packet(data, SENDER)
    assert isinstance(replies, list)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=256))
def test_arbitrary_bytes_never_raise(osc, data):
    replies = osc.handle_packet(data, SENDER)
    assert isinstance(replies, list)


def test_deeply_nested_bundle_is_refused_not_crashing(osc):
    inner = build_message("/snaresynth/ping", [])
    for _ in range(2000):
        inner = b"#bundle\x00" + b"\x00" * 7 + b"\x01" + len(inner).to_bytes(4, "big") + inner
    replies = osc.handle_packet(inner, SENDER)
    assert isinstance(replies, list)
    assert np.isfinite(osc.engine.status()["bad_messages"])


def test_shipped_open_stage_control_layout_speaks_our_address_space(preset_store):
    """Every widget of the shipped layout, pressed or moved, is accepted (no /fail) by a daemon
    with an 8-dimension model and the default kit."""
    from pathlib import Path

    from tests.conftest import SineDecoder

    engine = Engine(SineDecoder(latent_dim=8), preset_store.load("default"), store=preset_store)
    osc = OscController(engine)
    engine.set_morph_targets("tight", "fat")

    layout = Path(__file__).resolve().parents[2] / "presets/layouts/open-stage-control.json"
    widgets = json.loads(layout.read_text())["content"]["widgets"]
    assert len(widgets) > 10
    for widget in widgets:
        if not widget.get("visible", True):
            continue  # a pad past the kit's slots, hidden
        if widget["type"] == "button":
            values = [widget["on"], widget["off"]]
        elif widget["type"] == "dropdown":
            values = list(widget["values"].values())
        else:
            values = [0.0, 0.7]
        for value in values:
            data = build_message(widget["address"], [*widget["preArgs"], value])
            replies = osc.handle_packet(data, SENDER)
            assert not _fails(replies), (widget["id"], value, replies)


def test_velocity_curve_and_layering_over_osc(osc):
    assert osc.handle_packet(build_message("/snaresynth/velocity/curve", ["hard"]), SENDER) == []
    assert osc.engine.kit.velocity_curve == "hard"
    assert osc.handle_packet(build_message("/snaresynth/velocity/latent", [2, 0.5]), SENDER) == []
    assert osc.engine.kit.velocity_latent == 2
    assert osc.engine.kit.velocity_latent_amount == 0.5
    assert osc.engine.worker.wait_idle(5)
    layers = osc.engine.buffers[0]
    assert all(layer is not None for layer in layers)
    assert osc.handle_packet(build_message("/snaresynth/velocity/latent", [-1]), SENDER) == []
    assert osc.engine.kit.velocity_latent is None
    for bad in (["sideways"], [3]):
        assert _fails(osc.handle_packet(build_message("/snaresynth/velocity/curve", bad), SENDER))
    assert _fails(osc.handle_packet(build_message("/snaresynth/velocity/latent", [9]), SENDER))


def test_wall_and_monotonic_are_read_as_one_instant():
    import time

    from snaresynth.io.osc import wall_and_monotonic

    wall, mono = wall_and_monotonic()
    offsets = []
    for _ in range(20):
        before = time.monotonic()
        offsets.append(time.time() - (before + time.monotonic()) / 2)
    assert abs((wall - mono) - min(offsets, key=lambda o: abs(o - (wall - mono)))) < 0.001


@contextlib.contextmanager
def _served(decoder, store):
    """A real OscServer on any free port and a client talking to it."""
    from snaresynth.io.osc_server import OscServer
    from snaresynth.testing.osc import OscClient

    kit = Kit(name="t", slots=[Slot(name="a", notes=[38], knobs=[0.5] * 4)], cc={})
    engine = Engine(decoder, kit, EngineSettings(rate=48000, blocksize=128), store=store)
    server = OscServer(engine, port=0)
    server.start()
    try:
        with OscClient(server.port) as client:
            yield client
    finally:
        server.stop()


def test_a_reply_too_large_for_a_datagram_becomes_a_fail_and_spares_the_others(
        sine_decoder, preset_store):
    """2,000 presets with 60-character names: /preset/list would be 130 KB."""
    preset_store.user_dir.mkdir(parents=True)
    text = (preset_store.shipped_dir / "default.toml").read_text()
    for i in range(2000):
        (preset_store.user_dir / f"{'p' * 55}{i:05d}.toml").write_text(text)
    with _served(sine_decoder, preset_store) as client:
        batch = [build_message("/snaresynth/preset/list", []),
                 build_message("/snaresynth/ping", ["after"])]
        for data in batch:
            client.send_raw(data)
        fail = client.receive("/snaresynth/fail")
        assert fail[0] == "/snaresynth/preset/list.reply"
        assert "too large" in fail[1]
        assert client.receive("/snaresynth/pong") == ["after"]


def test_osc_late_counts_only_hits_that_play_late(osc):
    past = time.time() - 1.0
    osc.handle_packet(_bundle([("/snaresynth/level", [0.5])], past), SENDER)  # not a hit
    osc.handle_packet(_bundle([("/snaresynth/trigger/7", [1.0])], past), SENDER)  # no slot 7
    assert osc.late == 0
    osc.handle_packet(_bundle([("/snaresynth/trigger", [1.0]), ("/snaresynth/trigger/1", [0.5])],
                              past), SENDER)
    assert osc.late == 2  # two hits, one bundle
    osc.handle_packet(build_message("/snaresynth/trigger", [1.0]), SENDER)  # no timetag: on time
    assert osc.late == 2


def test_the_session_is_made_from_the_kit_and_follows_it(osc, preset_store):
    """Pads are the kit's slots (the rest hidden); loading a kit edits an open session."""
    from snaresynth.io.osc_layout import MAX_PADS, session

    kit = osc.engine.kit
    widgets = {w["id"]: w for w in session(kit, 4, [])["content"]["widgets"]}
    assert widgets["hit_0"]["label"] == "a (38)" and widgets["hit_1"]["visible"]
    assert not widgets["hit_2"]["visible"] and f"hit_{MAX_PADS - 1}" in widgets
    assert {f"latent_{i}" for i in range(4)} <= widgets.keys() and "latent_4" not in widgets
    osc.handle_packet(build_message("/snaresynth/subscribe", []), SENDER)
    replies = osc.handle_packet(build_message("/snaresynth/preset/load", ["default"]), SENDER)
    assert replies == [("/snaresynth/preset/load.reply", ["default"], SENDER)]
    osc.flush()
    edits = {args[0]: json.loads(args[1]) for address, args, _ in osc.pushed
             if address == "/EDIT"}
    default = osc.engine.kit
    assert len(default.slots) == 5
    for k in range(MAX_PADS):
        assert edits[f"hit_{k}"]["visible"] == (k < 5)
    assert edits["hit_1"]["label"].startswith(default.slots[1].name)
    assert "default" in edits["preset"]["values"]
    values = {address for address, _, target in osc.pushed if target == SENDER}
    assert "/snaresynth/latent/0" in values  # the sender of a kit load gets its values too


def test_replies_to_one_sender_are_bounded_per_batch(sine_decoder, preset_store):
    """One 64 KB datagram of /status requests (a bundle of 2,000) gets at most REPLY_BYTES
    back and one /fail saying how many replies were left out."""
    from pythonosc.osc_bundle_builder import IMMEDIATELY

    from snaresynth.io.osc_server import REPLY_BYTES

    with _served(sine_decoder, preset_store) as client:
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 2**20)
        data = _bundle([("/snaresynth/status", [])] * 2000, IMMEDIATELY)
        assert len(data) < 65_000
        client.send_raw(data)
        received, fail = 0, None
        client.sock.settimeout(2.0)
        while fail is None:
            packet, _ = client.sock.recvfrom(65536)
            received += len(packet)
            if b"/snaresynth/fail" in packet[:20]:
                fail = packet
        assert received <= REPLY_BYTES + 2 * len(packet) + 2000
        assert b"reply volume limit" in fail


def test_unknown_type_tags_are_refused_before_python_osc_logs_each(osc, caplog):
    """python-osc logs one warning per tag it cannot read: 16,000 in one datagram were 16,000
    log calls (seconds of the OSC thread)."""
    flood = b"/snaresynth/ping\x00\x00\x00\x00," + b"Q" * 15_999 + b"\x00" * 4
    inner = b"/snaresynth/level\x00\x00\x00,fQ\x00" + b"\x00" * 8
    nested = _bundle([("/snaresynth/level", [0.5])], time.time())
    nested += len(inner).to_bytes(4, "big") + inner  # a second element, with a bad tag
    for data in (flood, nested):
        caplog.clear()
        (address, args, _), = osc.handle_packet(data, SENDER)
        assert address == "/snaresynth/fail" and args[1] == "unknown type tag 'Q'"
        assert not [r for r in caplog.records if "Unhandled parameter type" in r.getMessage()]


def test_a_fail_never_echoes_a_huge_address(osc):
    (address, args, _), = osc.handle_packet(build_message("/" + "x" * 30_000, [1.0]), SENDER)
    assert address == "/snaresynth/fail" and len(args[0]) <= 200 and args[0].endswith("...")
