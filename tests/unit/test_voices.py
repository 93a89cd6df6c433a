import numpy as np
import pytest

from snaresynth.rt.mixer import Hit, Mixer, pan_gains


def _buffer(n=1000, value=1.0):
    return np.full(n, value, dtype=np.float32)


def _render(mixer, blocks, frames=64):
    out = np.zeros((frames, 2), dtype=np.float32)
    chunks = []
    for _ in range(blocks):
        mixer.render(out)
        chunks.append(out.copy())
    return np.concatenate(chunks)


def test_hit_starts_at_its_exact_frame():
    mixer = Mixer(48000, max_voices=4)
    mixer.schedule(Hit(frame=100, buffer=_buffer(), gain_left=1.0, gain_right=0.5))
    audio = _render(mixer, 4)
    assert np.all(audio[:100] == 0.0)
    assert audio[100, 0] == pytest.approx(1.0)
    assert audio[100, 1] == pytest.approx(0.5)
    assert mixer.hits_started == 1 and mixer.hits_late == 0


def test_late_hit_plays_at_block_start_and_is_counted():
    mixer = Mixer(48000)
    _render(mixer, 2)  # now at frame 128
    mixer.schedule(Hit(frame=10, buffer=_buffer(), gain_left=1.0, gain_right=1.0))
    audio = _render(mixer, 1)
    assert audio[0, 0] == pytest.approx(1.0)
    assert mixer.hits_late == 1


def test_hit_far_too_late_is_dropped_not_played():
    mixer = Mixer(48000, max_late_s=0.05)
    _render(mixer, 100)  # 6400 frames = 133 ms, e.g. while the device was gone
    mixer.schedule(Hit(frame=10, buffer=_buffer(), gain_left=1.0, gain_right=1.0))
    mixer.schedule(Hit(frame=6400 - 100, buffer=_buffer(), gain_left=1.0, gain_right=1.0))
    audio = _render(mixer, 2)
    assert mixer.hits_started == 1 and mixer.hits_late == 1 and mixer.dropped == 1
    assert audio[0, 0] == pytest.approx(1.0)  # only the slightly late one, at block start
    assert sum(a is not None for a in mixer.buffers.arrays) == 2  # both still referenced...
    mixer.schedule(Hit(mixer.frame, _buffer(), 1.0, 1.0))  # ...until the next collection
    assert sum(a is not None for a in mixer.buffers.arrays) == 2  # the dropped one released


def test_voice_keeps_its_buffer_when_a_new_one_is_scheduled():
    mixer = Mixer(48000)
    first = _buffer(500, 0.25)
    mixer.schedule(Hit(0, first, 1.0, 1.0))
    _render(mixer, 1)
    first[:] = 0.25  # the engine never mutates published buffers; the voice owns its reference
    mixer.schedule(Hit(64, _buffer(500, 0.5), 1.0, 1.0))
    audio = _render(mixer, 1)
    assert audio[0, 0] == pytest.approx(0.75)  # both voices sound: 0.25 + 0.5


def test_voice_limit_steals_oldest_with_fade_not_cut():
    mixer = Mixer(48000, max_voices=2)
    for i in range(3):
        mixer.schedule(Hit(i, _buffer(5000, 1.0), 1.0, 1.0))
    audio = _render(mixer, 8)[:, 0]
    assert mixer.voices_stolen == 1
    fade = int(0.003 * 48000)
    # after the steal, level goes from 3 voices down to 2 smoothly over the fade
    tail = audio[2:2 + fade + 5]
    assert np.all(np.diff(tail) <= 1e-6)
    assert audio[2 + fade + 10] == pytest.approx(2.0)


def test_choke_group_fades_previous_voice():
    mixer = Mixer(48000, max_voices=8)
    mixer.schedule(Hit(0, _buffer(5000), 1.0, 1.0, choke_group=1))
    mixer.schedule(Hit(200, _buffer(5000), 1.0, 1.0, choke_group=1))
    audio = _render(mixer, 10)[:, 0]
    assert audio[400] == pytest.approx(1.0)  # only the new voice remains


def test_finished_hits_release_their_buffers():
    mixer = Mixer(48000, max_voices=4, table=8)
    for _i in range(50):  # far more distinct buffers than table entries, a few at a time
        assert mixer.schedule(Hit(mixer.frame + 10, _buffer(100), 0.1, 0.1))
        _render(mixer, 3)
    assert mixer.hits_started == 50 and mixer.dropped == 0
    assert mixer.active_voices() == 0
    assert sum(a is not None for a in mixer.buffers.arrays) <= 1


def test_a_full_ring_refuses_hits_instead_of_overwriting():
    mixer = Mixer(48000, ring=4)
    results = [mixer.schedule(Hit(1000, _buffer(), 1.0, 1.0)) for _ in range(6)]
    assert results == [True] * 4 + [False] * 2 and mixer.dropped == 2
    _render(mixer, 20)
    assert mixer.hits_started == 4


def test_polyphony_flood_keeps_the_voice_limit():
    mixer = Mixer(48000, max_voices=4)
    for i in range(50):
        mixer.schedule(Hit(i * 10, _buffer(5000), 0.1, 0.1))
    _render(mixer, 20)
    assert mixer.hits_started == 50
    assert mixer.voices_stolen == 46
    assert mixer.active_voices() <= 8


def test_pan_is_constant_power():
    for pan in (-1.0, -0.3, 0.0, 0.7, 1.0):
        left, right = pan_gains(pan)
        assert left * left + right * right == pytest.approx(1.0)
    assert pan_gains(-1.0)[1] == pytest.approx(0.0, abs=1e-9)


def test_the_record_ring_holds_exactly_what_was_played_and_counts_what_it_lost():
    mixer = Mixer(48000)
    mixer.enable_recording(256)
    mixer.schedule(Hit(frame=70, buffer=np.linspace(1, 0, 300, dtype=np.float32),
                       gain_left=1.0, gain_right=0.5))
    played = _render(mixer, 3)  # 192 frames
    np.testing.assert_array_equal(mixer.recorded(), played)
    assert mixer.recorded().shape == (0, 2)  # taken out once
    more = _render(mixer, 5)  # 320 frames into a 256-frame ring: the last block does not fit
    assert mixer.record_dropped == 64
    np.testing.assert_array_equal(mixer.recorded(), more[:256])
