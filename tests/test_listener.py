"""The listener: honest kit-wise splits, a short real training run, the shipped file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from snaresynth.analysis.listener import (
    BUNDLED_LISTENER,
    load_listener,
    per_class_accuracy,
    read_listener_info,
    split_by_group,
)
from snaresynth.cli import main
from snaresynth.data.corpus import Corpus, save_corpus
from snaresynth.data.labels import CLASSES
from snaresynth.dsp import LENGTH
from snaresynth.errors import ModelFileError
from tests.data.conftest import drum


def test_split_keeps_whole_groups_on_one_side_and_covers_classes() -> None:
    groups = [f"kit{i // 6}" for i in range(48)]  # 8 kits of 6 items
    labels = ["snare", "kick", "hat"] * 16
    train, test, held = split_by_group(groups, labels, holdout=0.25, seed=3)
    assert set(train).isdisjoint(test) and len(train) + len(test) == 48
    assert {groups[i] for i in test} == set(held)
    assert {groups[i] for i in train}.isdisjoint(held)
    assert {labels[i] for i in test} == {labels[i] for i in train} == {"snare", "kick", "hat"}
    assert len(test) >= 12
    assert split_by_group(groups, labels, seed=3)[2] == held  # seeded
    with pytest.raises(ValueError, match="at least 2 groups"):
        split_by_group(["a"] * 4, labels[:4])


def test_per_class_accuracy() -> None:
    acc = per_class_accuracy(["snare", "snare", "kick", "hat"], ["snare", "kick", "kick", "kick"],
                             ["snare", "kick", "hat", "tom"])
    assert acc["overall"] == 0.5
    assert acc["per_class"]["snare"] == {"accuracy": 0.5, "n": 2, "precision": 1.0}
    assert acc["per_class"]["kick"]["precision"] == pytest.approx(1 / 3)  # 3 heard, 1 a kick
    assert acc["per_class"]["hat"]["accuracy"] == 0.0
    assert acc["per_class"]["tom"] == {"accuracy": None, "n": 0, "precision": None}
    assert acc["balanced"] == pytest.approx(0.5)


def test_train_a_few_steps_on_a_tiny_corpus(tmp_path: Path, capsys) -> None:
    audio, items = [], []
    for kit in range(3):
        for kind in ("snare", "kick", "hat"):
            for take in range(4):
                seed = kit * 100 + take
                audio.append(drum(kind, 32000, seconds=0.6, seed=seed, lead_s=0.0)[:LENGTH])
                items.append({"source": f"{kit}/{kind}{take}", "label": kind, "sha256": "0",
                              "augment": None if take < 2 else {"copy": take},
                              "group": f"kit{kit}"})
    items[0]["label"] = "unknown"  # never learnt from
    save_corpus(tmp_path / "c", Corpus(np.stack(audio), 32000, items))
    out = tmp_path / "listener.keras"
    assert main(["listener", "train", "--data", str(tmp_path / "c"), "--out", str(out),
                 "--kind", "cnn", "--epochs", "2", "--holdout", "0.3"]) == 0
    assert "held-out kits" in capsys.readouterr().out
    info = read_listener_info(out)
    assert info.classes == ["kick", "snare", "hat"]
    assert info.accuracy["heldout_items"] == 6  # originals of one held-out kit
    assert len(info.accuracy["heldout_groups"]) == 1
    assert info.training["epochs"] == 2 and info.std > 0
    listener = load_listener(out)
    probs = listener.probabilities(np.stack(audio[:5]), 32000)
    assert probs.shape == (5, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    # other rates are resampled, short buffers padded
    assert len(listener.classify(np.stack(audio[:2])[:, :8000], 16000)) == 2
    assert 0.0 <= listener.share(np.stack(audio), 32000, "snare") <= 1.0
    with pytest.raises(ValueError, match="no class"):
        listener.share(np.stack(audio[:2]), 32000, "tom")
    assert out.stat().st_size < 1_000_000


def test_the_shipped_listener() -> None:
    assert BUNDLED_LISTENER.is_file(), "snaresynth/bundled/listener.keras must be shipped"
    assert BUNDLED_LISTENER.stat().st_size < 1_000_000
    info = read_listener_info(BUNDLED_LISTENER)
    assert info.classes == list(CLASSES)
    assert info.mel["sample_rate"] == 32000 and info.length == LENGTH
    acc = info.accuracy
    assert acc["heldout_groups"] and acc["heldout_items"] > 100
    assert set(acc["per_class"]) == set(CLASSES)
    assert acc["overall"] > 1.0 / len(CLASSES)  # better than chance on kits it never heard


def test_a_missing_or_foreign_file_is_a_model_file_error(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="no such listener"):
        read_listener_info(tmp_path / "nope.keras")
    (tmp_path / "x.keras").write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match="corrupt"):
        load_listener(tmp_path / "x.keras")


def test_cli_listener_info(capsys) -> None:
    assert main(["listener", "info"]) == 0
    out = capsys.readouterr().out
    assert "snare" in out and "overall" in out


def test_the_ensemble_averages_its_members_logits() -> None:
    from snaresynth.analysis.listener import build_ensemble

    ensemble = build_ensemble(17, 8, 3, width=2, members=2)
    x = np.random.default_rng(0).standard_normal((4, 17, 8, 1)).astype(np.float32)
    members = [layer for layer in ensemble.layers if layer.name.startswith("member")]
    assert len(members) == 2
    expected = (members[0](x).numpy() + members[1](x).numpy()) / 2
    np.testing.assert_allclose(ensemble(x).numpy(), expected, rtol=1e-5, atol=1e-6)


def _with_info(src: Path, dst: Path, **changes: object) -> Path:
    """A copy of listener file ``src`` whose listener.json has ``changes``."""
    import json
    import zipfile

    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w") as new:
        for entry in old.infolist():
            data = old.read(entry)
            if entry.filename == "listener.json":
                data = json.dumps(json.loads(data) | changes).encode()
            new.writestr(entry, data)
    return dst


def test_files_with_the_dropped_level_normalisation_are_refused(tmp_path: Path) -> None:
    # the shipped file says level_norm: false and reads; one made with it would be misheard
    assert read_listener_info(_with_info(BUNDLED_LISTENER, tmp_path / "off.keras",
                                         level_norm=False)).classes == list(CLASSES)
    with pytest.raises(ModelFileError, match="level normalisation"):
        read_listener_info(_with_info(BUNDLED_LISTENER, tmp_path / "on.keras", level_norm=True))
    with pytest.raises(ModelFileError, match="corrupt"):
        read_listener_info(_with_info(BUNDLED_LISTENER, tmp_path / "x.keras", unknown_key=1))


def _tiny_corpus(path: Path, collection: str, kits: int, offset: int) -> Path:
    audio, items = [], []
    for kit in range(kits):
        for kind in ("snare", "kick", "hat"):
            for take in range(3):
                seed = offset + kit * 100 + take
                audio.append(drum(kind, 32000, seconds=0.6, seed=seed, lead_s=0.0)[:LENGTH])
                items.append({"source": f"{kit}/{kind}{take}", "label": kind, "sha256": "0",
                              "augment": None if take < 2 else {"copy": take},
                              "group": f"{collection}-kit{kit}", "collection": collection})
    save_corpus(path, Corpus(np.stack(audio), 32000, items))
    return path


def test_summary_listener_is_judged_per_kit_and_per_source(tmp_path: Path, capsys) -> None:
    a = _tiny_corpus(tmp_path / "a", "alpha", 2, 0)
    b = _tiny_corpus(tmp_path / "b", "beta", 2, 1000)
    from snaresynth.analysis.ear import MEMBERS

    out = tmp_path / "ear.keras"
    assert main(["listener", "train", "--data", str(a), str(b), "--out", str(out),
                 "--epochs", "2"]) == 0
    printed = capsys.readouterr().out
    assert "leave-one-kit-out (4 folds, 24 files)" in printed and "| true \\ heard |" in printed
    info = read_listener_info(out)
    assert info.kind == "summary" and info.classes == ["kick", "snare", "hat"]
    assert info.feature_set == 2  # with the texture features
    assert len(info.feature_mean) == len(info.feature_std) > 50
    assert info.accuracy["items"] == 24  # every original once, each from a model without it
    assert np.asarray(info.accuracy["confusion"]).sum() == 24
    assert info.accuracy["leave_one_source_out"]["folds"] == 2
    listener = load_listener(out)
    audio = np.stack([drum(k, 32000, seconds=0.6, seed=9, lead_s=0.0)[:LENGTH]
                      for k in ("snare", "kick")])
    assert listener.probabilities(audio, 32000).shape == (2, 3)
    assert listener.embed(audio, 16000).shape == (2, MEMBERS * 64)  # each member's
    assert out.stat().st_size < 500_000


def test_the_summary_ensemble_trains_each_member_and_averages_their_logits(
        tmp_path: Path) -> None:
    from snaresynth.analysis.ear import EarRecipe, _build, train_ear

    net, ensemble = _build(12, 3, members=3)
    x = np.random.default_rng(0).standard_normal((5, 12)).astype(np.float32)
    stacked = net(x).numpy()  # what training sees: every member's logits, side by side
    assert stacked.shape == (5, 3, 3)
    np.testing.assert_allclose(ensemble(x).numpy(), stacked.mean(axis=1), rtol=1e-5, atol=1e-6)
    assert not np.allclose(stacked[:, 0], stacked[:, 1])  # members start apart
    a = _tiny_corpus(tmp_path / "a", "alpha", 3, 0)
    report = train_ear([a], tmp_path / "ens.keras", EarRecipe(epochs=2, members=2), limit=2)
    assert report.kit is not None and report.kit["folds"] == 2  # the quick screen
    assert report.kit["items"] == 12 and report.source is None  # one source: no source folds
    info = read_listener_info(report.path)
    assert info.training["members"] == 2
    listener = load_listener(report.path)
    audio = np.stack([drum(k, 32000, seconds=0.6, seed=9, lead_s=0.0)[:LENGTH]
                      for k in ("snare", "kick")])
    np.testing.assert_allclose(listener.probabilities(audio, 32000).sum(axis=1), 1.0, rtol=1e-5)
    assert listener.embed(audio, 32000).shape == (2, 2 * 64)  # each member's embedding


def test_augment_mel_changes_the_chain_not_the_shape() -> None:
    from snaresynth.analysis.ear import augment_mel

    mel = np.log(np.random.default_rng(0).uniform(1e-4, 1.0, (6, 65, 64)))
    out = augment_mel(mel, np.random.default_rng(1))
    assert out.shape == mel.shape and np.isfinite(out).all()
    assert not np.allclose(out, mel)


def test_repitch_mel_moves_a_tone_up_and_shortens_it() -> None:
    from snaresynth.analysis.ear import repitch_mel
    from snaresynth.analysis.features import MelSettings, log_mel

    rate = 32000
    t = np.arange(LENGTH) / rate
    tone = (np.sin(2 * np.pi * 400 * t) * np.exp(-t / 0.05)).astype(np.float32)
    mel = log_mel(np.stack([tone, tone]), MelSettings(rate))
    same = repitch_mel(mel, np.random.default_rng(0), MelSettings(rate), 1.0, 1.0, 1.0)
    np.testing.assert_allclose(same, mel, atol=1e-5)  # r = 1 changes nothing
    up = repitch_mel(mel, np.random.default_rng(0), MelSettings(rate), 1.0, 1.25, 1.25)
    assert up.shape == mel.shape and np.isfinite(up).all()
    band = mel[0, 2:10].mean(axis=0).argmax()
    assert up[0, 2:10].mean(axis=0).argmax() > band  # 400 Hz -> 500 Hz: a higher band
    loud = (mel[0].max(axis=1) > mel[0].max() - 6.0).sum()
    assert (up[0].max(axis=1) > up[0].max() - 6.0).sum() < loud  # and it decays sooner


def test_texture_features_are_level_free_and_hear_noise_flicker() -> None:
    from snaresynth.analysis.features import (
        MelSettings,
        log_mel,
        summary_features,
        texture_features,
    )

    rate = 32000
    t = np.arange(LENGTH) / rate
    env = np.exp(-t / 0.08)
    noise = np.random.default_rng(0).standard_normal(LENGTH) * env
    tone = np.sin(2 * np.pi * 180 * t) * env
    mel = log_mel(np.stack([noise, tone, 0.5 * noise]).astype(np.float32), MelSettings(rate))
    tex = texture_features(mel)
    assert tex.shape == (3, 49) and np.isfinite(tex).all()
    flicker = tex[:, :16].mean(axis=1)  # the first segment's 16 bands
    assert flicker[0] > flicker[1]  # wires flicker, a decaying mode does not
    # -6 dB: the same texture while the sound is above the log-mel floor (the first 64 ms)
    np.testing.assert_allclose(tex[2, :16], tex[0, :16], atol=0.01)
    assert abs(tex[2, 48] - tex[0, 48]) < 0.01
    assert summary_features(mel, 2).shape[1] == summary_features(mel, 1).shape[1] + 49


def test_attack_features_hear_a_roll_strike_again_and_are_level_free() -> None:
    from snaresynth.analysis.features import MelSettings, log_mel, summary_features

    rate = 32000
    t = np.arange(LENGTH) / rate
    noise = np.random.default_rng(1).standard_normal(LENGTH)
    hit = noise * np.exp(-t / 0.05)
    roll = noise * np.exp(-(t % 0.09) / 0.02)  # a stroke every 90 ms
    mel = log_mel(np.stack([hit, roll, 0.5 * roll]).astype(np.float32), MelSettings(rate))
    summary = summary_features(mel, 3)
    assert summary.shape[1] == summary_features(mel, 2).shape[1] + 3
    attack = summary[:, -3:]
    late_rise, strikes, _ = attack.T
    assert late_rise[0] < 0.1 < late_rise[1] and strikes[0] == 0 < strikes[1]
    # -6 dB: the same strokes; the rises as far as the troughs stay above the log-mel floor
    assert attack[2, 1] == attack[1, 1]
    np.testing.assert_allclose(attack[2], attack[1], atol=0.03)


def test_the_bundled_listener_keeps_its_feature_set() -> None:
    info = read_listener_info(BUNDLED_LISTENER)
    assert info.kind == "summary" and info.feature_set in (1, 2, 3)
    assert len(info.feature_mean) > 0


def test_class_weights_go_from_one_per_item_to_one_per_class() -> None:
    from snaresynth.analysis.ear import class_weights

    labels = np.array([0] * 90 + [1] * 10)
    np.testing.assert_allclose(class_weights(labels, 3, 0.0), 1.0)
    balanced = class_weights(labels, 3, 1.0)
    assert balanced[labels == 0].sum() == pytest.approx(balanced[labels == 1].sum())
    half = class_weights(labels, 3, 0.5)  # in between: the rare class 3 times the common one
    assert half[-1] / half[0] == pytest.approx(3.0)
    for w in (balanced, half):
        assert w.mean() == pytest.approx(1.0)
