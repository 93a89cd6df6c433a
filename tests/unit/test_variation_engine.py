"""Round-robin variation through the engine: the kit's ``variation``/``variants``, the decode
targets ``Layer(slot, layer, variant)``, the note table, ``Engine.trigger`` and the controls."""

from __future__ import annotations

import numpy as np
import pytest

from snaresynth.control.kit import Kit, Slot, kit_from_dict, kit_to_dict
from snaresynth.control.params import Kind, Param, parse_param
from snaresynth.control.variation import MAX_PLAYED_VARIANTS, slot_seed, variant_knobs
from snaresynth.decode.worker import quantize_knobs
from snaresynth.engine.engine import Engine, EngineSettings
from snaresynth.engine.planner import VELOCITY_LAYERS, Layer, Rates, slot_requests
from snaresynth.errors import PresetError
from snaresynth.export.render import plan
from tests.unit.test_note_table import _place
from tests.unit.test_round_robin import _placed_entry

TOP = VELOCITY_LAYERS - 1
VARIATION = Param(Kind.VARIATION)


def _kit(variation: float = 0.3, variants: int = 4, velocity_latent: int | None = None) -> Kit:
    return Kit(name="v", slots=[Slot(name="a", notes=[38], knobs=[0.5] * 4, variation=variation,
                                     variants=variants),
                                Slot(name="b", notes=[40], knobs=[0.2] * 4)],
               cc={76: "variation"}, velocity_latent=velocity_latent,
               velocity_latent_amount=0.5 if velocity_latent is not None else 0.0)


@pytest.fixture
def make(sine_decoder):
    engines = []

    def build(kit: Kit) -> Engine:
        eng = Engine(sine_decoder, kit, EngineSettings(rate=48000, blocksize=64,
                                                       latency="lowest"))
        eng.start()
        engines.append(eng)
        return eng

    yield build
    for eng in engines:
        eng.stop()


def _play(engine: Engine, blocks: int) -> np.ndarray:
    out = np.zeros((64, 2), dtype=np.float32)
    chunks = []
    for _ in range(blocks):
        engine.process(out)
        chunks.append(out.copy())
    return np.concatenate(chunks)


def test_kit_fields_are_checked_and_round_trip() -> None:
    kit = _kit(0.25, 6)
    again = kit_from_dict(kit_to_dict(kit))
    assert (again.slots[0].variation, again.slots[0].variants) == (0.25, 6)
    assert (again.slots[1].variation, again.slots[1].variants) == (0.0, 4)
    for field, value in (("variation", 1.5), ("variation", -0.1), ("variation", "lots"),
                         ("variants", 0), ("variants", MAX_PLAYED_VARIANTS + 1),
                         ("variants", 2.5)):
        doc = kit_to_dict(kit)
        doc["slot"][0][field] = value
        with pytest.raises(PresetError, match=rf"slot\[0\]\.{field}"):
            kit_from_dict(doc)


def test_requests_are_every_layer_times_variant_at_the_exported_points() -> None:
    kit = _kit(0.3, 3, velocity_latent=0)
    requests = slot_requests(kit, 0, kit.slots[0].knobs, Rates(16000, 48000))
    assert [r.target for r in requests][:VELOCITY_LAYERS] == [
        Layer(0, layer, 0) for layer in range(TOP, -1, -1)]
    assert {r.target for r in requests} == {Layer(0, layer, v) for layer in range(4)
                                            for v in range(3)}
    exported = {(layer, v): quantize_knobs(np.asarray(k))
                for s, layer, v, _, _, k in plan(kit, 4, 3, 0.3, 0) if s == 0}
    for r in requests:
        assert r.key == exported[(r.target.layer, r.target.variant)]
    # variation 0: today's requests, one per layer, variant 0 only
    flat = slot_requests(_kit(0.0, 8), 0, [0.5] * 4, Rates(16000, 48000))
    assert [r.target for r in flat] == [Layer(0, TOP)]
    assert variant_knobs([0.5] * 4, 0.3, 2, slot_seed(0, 0))[0] == [0.5] * 4


def test_variation_zero_plays_exactly_todays_buffer(make) -> None:
    engine = make(_kit(0.0, 8))
    mixer = engine.mixer
    assert engine.sounds.variants[0][TOP] == []
    entry = mixer.buffers.entry_of(engine.buffers[0][TOP])
    assert [_placed_entry(mixer) for _ in range(6)] == [entry] * 6
    assert engine.trigger(1.0, 0)
    (hit,) = mixer.queued()
    assert hit.buffer is engine.buffers[0][TOP] and hit.layer == -1


def test_note_ons_and_triggers_vary_and_never_repeat(make) -> None:
    engine = make(_kit(0.3, 4))
    mixer = engine.mixer
    assert len([b for b in engine.sounds.variants[0][TOP] if b is not None]) == 3
    assert mixer.note_table.layer_count[0, TOP] == 4
    entries = [_placed_entry(mixer) for _ in range(50)]
    assert len(set(entries)) == 4
    assert all(a != b for a, b in zip(entries, entries[1:], strict=False))
    _play(engine, 2)  # the placed hits start (and get stolen); let the pending list drain
    _play(engine, 800)
    # Engine.trigger: the audio side picks the variant as it takes the hit
    heads = []
    for _ in range(8):
        assert engine.trigger(1.0, 0)
        heads.append(_play(engine, 4)[:256, 0].copy())
        _play(engine, 400)
    assert all(not np.array_equal(a, b) for a, b in zip(heads, heads[1:], strict=False))
    _play(engine, 1600)  # every hit ends
    table = mixer.buffers
    assert mixer.active_voices() == 0
    assert np.array_equal(table.scheduled + table.rt_started, table.done)


def test_layers_and_variants_combine(make) -> None:
    engine = make(_kit(0.3, 2, velocity_latent=0))
    table = engine.mixer.note_table
    assert list(table.layer_count[0, :VELOCITY_LAYERS]) == [2] * VELOCITY_LAYERS
    soft = {table.layer_entry[0, 0, v] for v in range(2)}
    loud = {table.layer_entry[0, TOP, v] for v in range(2)}
    assert len(soft) == 2 and len(loud) == 2 and not soft & loud


def test_controls_change_the_count_and_turn_variation_off(make) -> None:
    engine = make(_kit(0.3, 4))
    seen = []
    engine.add_listener(lambda address, value, source: seen.append((address, value)))
    engine.set_variants(2, slot=0)
    engine.worker.wait_idle(10)
    assert engine.mixer.note_table.layer_count[0, TOP] == 2
    assert ("/variants", [2, 0]) in seen
    engine.control_change(76, 0)  # the kit's CC 76: variation 0
    engine.worker.wait_idle(10)
    assert engine.kit.slots[0].variation == 0.0
    assert engine.mixer.note_table.layer_count[0, TOP] == 1
    assert ("/variation", 0.0) in seen
    engine.set_param(parse_param("variation"), 0.5, slot=1)
    engine.worker.wait_idle(10)
    assert engine.mixer.note_table.layer_count[1, TOP] == 4
    with pytest.raises(ValueError, match="variants must be 1..8"):
        engine.set_variants(9, slot=0)
    assert engine.param_values(1)[VARIATION] == 0.5
    assert _place(engine.mixer, 0x90, 40, 100)


def test_osc_and_page_messages_reach_variation(make) -> None:
    from snaresynth.io import web_protocol
    from snaresynth.io.osc import OscController
    from snaresynth.io.osc_args import build_message

    engine = make(_kit(0.0, 4))
    osc = OscController(engine)
    sender = ("127.0.0.1", 50000)
    assert osc.handle_packet(build_message("/snaresynth/variation", [0.4, 1]), sender) == []
    assert osc.handle_packet(build_message("/snaresynth/variants", [3, 1]), sender) == []
    assert osc.handle_batch([(build_message("/snaresynth/variation", [0.2]), sender)]) == []
    engine.worker.wait_idle(10)
    assert (engine.kit.slots[1].variation, engine.kit.slots[1].variants) == (
        pytest.approx(0.4), 3)
    assert engine.kit.slots[0].variation == pytest.approx(0.2)
    assert engine.mixer.note_table.layer_count[1, TOP] == 3
    for bad in ([9], [0], [2.5], []):
        (reply,) = osc.handle_packet(build_message("/snaresynth/variants", bad), sender)
        assert reply[0] == "/snaresynth/fail"
    (reply,) = osc.handle_packet(build_message("/snaresynth/variation", [1.5]), sender)
    assert reply[0] == "/snaresynth/fail"
    command = web_protocol.parse_one({"address": "/variants", "args": [5, 0]}, 4)
    assert (command.kind, command.args) == ("variants", (5, 0))
    knob = web_protocol.parse_one({"address": "/variation", "args": [0.3]}, 4)
    assert knob.kind == "param" and knob.param == VARIATION
    with pytest.raises(web_protocol.WebError, match="1..8"):
        web_protocol.parse_one({"address": "/variants", "args": [9]}, 4)
