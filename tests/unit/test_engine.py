import time

import numpy as np
import pytest

from snaresynth.control.kit import Kit, Slot
from snaresynth.control.params import knob, parse_param
from snaresynth.decode.worker import playback_buffer
from snaresynth.engine.engine import VELOCITY_LAYERS, Engine, EngineSettings


def _kit(velocity_latent=None):
    return Kit(name="t", slots=[Slot(name="a", notes=[38], knobs=[0.5] * 4),
                                Slot(name="b", notes=[40], knobs=[0.9] * 4, pan=0.5)],
               cc={20: "latent/0", 7: "level", 74: "tune"}, velocity_latent=velocity_latent,
               velocity_latent_amount=0.5 if velocity_latent is not None else 0.0)


@pytest.fixture
def engine(sine_decoder, preset_store):
    # "lowest" latency: a hit plays in the next block rendered, whatever the wall clock says,
    # since these tests render blocks faster than real time
    eng = Engine(sine_decoder, _kit(), EngineSettings(rate=48000, blocksize=64, latency="lowest"),
                 store=preset_store)
    eng.start()
    yield eng
    eng.stop()


def _play(engine, blocks=40, frames=64):
    out = np.zeros((frames, 2), dtype=np.float32)
    chunks = []
    for _ in range(blocks):
        engine.process(out)
        chunks.append(out.copy())
    return np.concatenate(chunks)


def test_every_slot_has_a_sound_after_start(engine):
    assert all(layers[-1] is not None for layers in engine.buffers)


def test_note_on_plays_the_mapped_slot_with_velocity(engine):
    assert engine.note_on(38, 127)
    loud = np.abs(_play(engine)).max()
    _play(engine, 800)  # let the first hit (one second) finish
    assert engine.note_on(38, 32)
    soft = np.abs(_play(engine)).max()
    assert loud > 0.1 and 0 < soft < loud / 4  # linear curve: (32/127)^2 ~ 0.06
    assert engine.mixer.hits_late == 0  # "lowest" asks for the next block: never late
    assert not engine.note_on(99, 100)  # unmapped
    assert not engine.note_on(38, 0)  # velocity 0 is a note-off
    assert engine.unmapped == 1


def test_latent_change_changes_next_hit_not_the_sounding_one(engine):
    _play(engine, 1)
    engine.trigger(1.0, 0)
    first = _play(engine, 20)
    before = engine.buffers[0][-1]
    engine.set_param(parse_param("latent/0"), 0.95, slot=0)
    assert engine.worker.wait_idle(5)
    assert engine.buffers[0][-1] is not before
    during = _play(engine, 20)  # the first hit continues with its own buffer
    engine.trigger(1.0, 0)
    second = _play(engine, 40)
    # the sounding hit went on with the old buffer, sample for sample
    continuing = np.concatenate([first, during])[:, 0]
    gain = continuing[0] / before[0]
    assert np.allclose(continuing, gain * before[:continuing.shape[0]], atol=1e-6)

    def peak_hz(x):
        spec = np.abs(np.fft.rfft(x[:, 0][np.abs(x[:, 0]).argmax():][:2048], 8192))
        return np.fft.rfftfreq(8192, 1 / 48000)[spec.argmax()]
    assert abs(peak_hz(second) - peak_hz(first)) > 50


def test_cc_moves_latent_and_is_cached(engine):
    engine.control_change(20, 127)
    engine.worker.wait_idle(5)
    assert engine.kit.slots[0].knobs[0] == pytest.approx(1.0)
    decodes = engine.worker.decodes
    engine.control_change(20, 64)
    engine.control_change(20, 127)
    engine.worker.wait_idle(5)
    assert engine.worker.cache.hits >= 1 or engine.worker.decodes <= decodes + 2


def test_level_tune_and_undo(engine):
    engine.set_param(parse_param("level"), 0.0, slot=0)
    assert engine.kit.slots[0].level_db == pytest.approx(-60.0)
    engine.set_param(parse_param("tune"), 1.0, slot=0)
    assert engine.kit.slots[0].tune_semitones == pytest.approx(12.0)
    assert engine.undo()
    assert engine.kit.slots[0].tune_semitones == pytest.approx(0.0)
    assert engine.kit.slots[0].level_db == pytest.approx(-60.0)


def test_randomize_is_reproducible_by_seed(engine):
    engine.randomize(1.0, seed=7, slot=0)
    a = list(engine.kit.slots[0].knobs)
    engine.randomize(1.0, seed=8, slot=0)
    engine.randomize(1.0, seed=7, slot=0)
    assert engine.kit.slots[0].knobs == a


def test_bad_parameters_raise_value_error_at_the_edge(engine):
    latent_dim = engine.decoder.latent_dim
    with pytest.raises(ValueError, match="latent dimension"):
        parse_param(f"latent/{latent_dim}", latent_dim)
    with pytest.raises(ValueError, match="unknown parameter"):
        parse_param("volume", latent_dim)
    with pytest.raises(ValueError, match="finite"):
        knob(float("nan"))
    with pytest.raises(ValueError, match="slot must be"):
        engine.trigger(1.0, slot=5)
    with pytest.raises(ValueError, match="slot must be"):
        engine.set_param(parse_param("level"), 0.5, slot=5)


def test_constant_latency_places_hits_one_block_after_arrival(sine_decoder):
    engine = Engine(sine_decoder, _kit(), EngineSettings(rate=48000, blocksize=64))
    _play(engine, 10)
    frame0, t0, _, _ = engine.mixer.clock()
    at = t0 + 0.0005  # 24 frames after the last block started
    assert engine.clock.frame_at(at) == frame0 + 24 + 64


def test_hits_while_the_audio_is_stalled_are_dropped_not_queued(sine_decoder):
    engine = Engine(sine_decoder, _kit(), EngineSettings(rate=48000, blocksize=64))
    engine.start()
    try:
        _play(engine, 2)
        engine.mark_running()
        assert engine.trigger(1.0, slot=0)  # the audio clock is fresh
        time.sleep(0.3)  # no block rendered: the device is gone
        assert not engine.trigger(1.0, slot=0)
        assert engine.status()["dropped_hits"] == 1
        _play(engine, 2)  # audio back: hits are taken again
        assert engine.trigger(1.0, slot=0)
    finally:
        engine.stop()


def test_velocity_layers_give_harder_hits_another_sound(sine_decoder, preset_store):
    eng = Engine(sine_decoder, _kit(velocity_latent=0), EngineSettings(rate=48000, blocksize=64),
                 store=preset_store)
    eng.start()
    try:
        layers = eng.buffers[0]
        assert all(layer is not None for layer in layers) and len(layers) == VELOCITY_LAYERS
        assert not np.allclose(layers[0], layers[-1])
    finally:
        eng.stop()


def test_listeners_hear_changes_with_their_source(engine):
    heard = []
    engine.add_listener(lambda address, value, source: heard.append((address, value, source)))
    engine.set_param(parse_param("latent/1"), 0.25, source="osc-client")
    # the new sound's /buffer may come first: the (realtime) decoder runs as soon as asked
    assert [h for h in heard if h[0] != "/buffer"] == [("/latent/1", 0.25, "osc-client")]


def test_preset_save_and_load_round_trip(engine, preset_store):
    engine.set_param(parse_param("latent/2"), 0.1, slot=1)
    engine.save_preset("mine")
    engine.load_preset("default")
    assert engine.kit.name == "default"
    engine.load_preset("mine")
    assert engine.kit.slots[1].knobs[2] == pytest.approx(0.1)
    assert "mine" in preset_store.list()


def test_playback_buffer_resamples_tunes_and_decays():
    raw = np.ones(16000, dtype=np.float32)
    plain = playback_buffer(raw, 16000, 48000, 0.0, 1.0)
    assert plain.shape[0] == pytest.approx(48000, abs=2)
    up = playback_buffer(raw, 16000, 48000, 12.0, 1.0)
    assert up.shape[0] == pytest.approx(24000, abs=2)
    short = playback_buffer(raw, 16000, 48000, 0.0, 0.0)
    assert abs(short[-100:]).max() < 1e-3


def test_status_counts(engine):
    engine.trigger()
    _play(engine, 2)
    status = engine.status()
    assert status["hits"] == 1 and status["decodes"] >= 2 and status["xruns"] == 0


def test_playback_buffer_trims_silent_preroll():
    raw = np.zeros(16000, dtype=np.float32)
    raw[800:] = np.exp(-np.arange(15200) / 2000.0)  # onset 50 ms into the window
    buf = playback_buffer(raw, 16000, 16000, 0.0, 1.0)
    assert int(np.flatnonzero(np.abs(buf) > 0.003)[0]) == 8  # 0.5 ms of pre-roll kept
    assert buf.max() == pytest.approx(1.0)


def test_a_knob_sweep_is_decoded_ahead_into_the_cache(engine):
    """After two moves the direction is known: the next positions are decoded before the knob
    gets there, so the sweep's later steps are cache hits (no model call on the way)."""
    for step in range(12):
        engine.set_param(parse_param("latent/0"), 0.30 + 0.02 * step, slot=0)
        assert engine.worker.wait_idle(5)
    hits_before = engine.worker.cache.hits
    calls_before = engine.decoder.calls
    # prefetched by the last move
    engine.set_param(parse_param("latent/0"), 0.30 + 0.02 * 12, slot=0)
    assert engine.worker.wait_idle(5)
    assert engine.worker.cache.hits > hits_before
    published = engine.buffers[0][-1]
    assert published is not None
    # the model was called only for positions further ahead, never for the one arrived at
    assert engine.decoder.calls - calls_before <= 1


def test_jack_stamped_events_land_one_block_after_their_frame(sine_decoder):
    engine = Engine(sine_decoder, _kit(), EngineSettings(rate=48000, blocksize=64))
    out = np.zeros((64, 2), dtype=np.float32)
    for block in range(3):
        engine.mixer.render(out, 1000 + 64 * block)
    # the block just rendered started at output frame 128, JACK frame 1128
    assert engine.clock.frame_at_jack(1128 + 10) == 128 + 10 + 64
    # an event of the next cycle
    assert engine.clock.frame_at_jack(1128 + 64 + 5) == 128 + 64 + 5 + 64
    # JACK's uint32 frame time wraps around
    engine.mixer.render(out, 2**32 - 5)
    assert engine.clock.frame_at_jack(3) == 192 + 8 + 64


def test_undo_and_redo_step_through_the_history(engine):
    level = parse_param("level")
    before = engine.kit.slots[0].level_db
    engine.set_param(level, 0.0, slot=0)
    assert engine.undo() and engine.kit.slots[0].level_db == before
    assert engine.redo() and engine.kit.slots[0].level_db == pytest.approx(-60.0)
    assert not engine.redo()  # nothing left to redo
    engine.undo()
    engine.set_param(parse_param("tune"), 1.0, slot=0)  # a new change forgets the redo
    assert not engine.redo()


def test_a_change_of_many_values_tells_every_value_of_the_selected_slot(engine):
    heard: list[tuple[str, object]] = []
    engine.add_listener(lambda address, value, source: heard.append((address, value)))
    engine.select(0)
    seed = engine.randomize(1.0, slot=0)
    after = dict(heard)
    assert after["/randomize"] == [1.0, seed]
    knobs = engine.kit.slots[0].knobs
    for i in range(engine.decoder.latent_dim):
        assert after[f"/latent/{i}"] == pytest.approx(knobs[i])
    assert {"/level", "/tune", "/decay", "/pan"} <= after.keys()


def test_morph_works_out_of_the_box_with_a_shipped_kit(sine_decoder, preset_store):
    default = preset_store.load("default")
    assert default.morph_targets == ("tight", "fat")
    eng = Engine(sine_decoder, default, EngineSettings(rate=48000, blocksize=64),
                 store=preset_store)
    morph = parse_param("morph")
    eng.set_param(morph, 0.0, slot=0)
    tight = preset_store.load("tight").slots[0].knobs_for(sine_decoder.latent_dim)
    assert eng.kit.slots[0].knobs == pytest.approx(tight)
    eng.set_param(morph, 1.0, slot=0)
    fat = preset_store.load("fat").slots[0].knobs_for(sine_decoder.latent_dim)
    assert eng.kit.slots[0].knobs == pytest.approx(fat)


def test_a_kit_without_morph_targets_says_how_to_set_them(engine):
    with pytest.raises(ValueError, match="morph/targets"):
        engine.set_param(parse_param("morph"), 0.5)
