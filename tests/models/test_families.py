"""Every registered model family: train a few steps, save, reload in safe mode, decode.

One parametrised test guards the whole model zoo (RAVE's tests/test_configs.py idea); a family
joins automatically once its module exists. Plus resume, the KL warm-up, the CLI and recipes.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
try:  # five engineers share two cores; keep TensorFlow to one thread each
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
except RuntimeError:  # TensorFlow already initialised by another test module
    pass

from snaresynth.cli import main  # noqa: E402
from snaresynth.data.corpus import Corpus, save_corpus  # noqa: E402
from snaresynth.errors import SnareSynthError  # noqa: E402
from snaresynth.models import registry  # noqa: E402
from snaresynth.models.base import read_metadata  # noqa: E402
from snaresynth.models.inference import load_inference  # noqa: E402
from snaresynth.models.registry import load_model_file  # noqa: E402
from snaresynth.models.train import (  # noqa: E402
    RECIPES_DIR,
    TrainingError,
    TrainSettings,
    load_recipe,
    parse_set,
    resolve_config,
    train,
)
from snaresynth.testing.signals import synthetic_snares  # noqa: E402

RATE, LENGTH = 16000, 16384
AVAILABLE = [name for name, module in registry.FAMILIES.items()
             if importlib.util.find_spec(module) is not None]
# Per-family overrides that make a model tiny; keys a family does not have are dropped.
# one family per trainer, the longest to train first (conv_autoencoder is wavegan's generator
# under the autoencoder's trainer): what the tf.distribute tests check
TRAINER_FAMILIES = ["wavegan", "ddsp_snare", "vae", "autoencoder"]
TINY: dict[str, dict] = {
    "autoencoder": {"hidden": [8], "latent_dim": 3},
    "conv_autoencoder": {"d": 2, "latent_dim": 3},
    "wavegan": {"d": 2, "latent_dim": 8, "n_critic": 2, "post_filter": True,
                "post_filter_taps": 16},
    "vae": {"d": 2, "latent_dim": 3, "kl_warmup": 2},
    "ddsp_snare": {"latent_dim": 4, "hidden": 32, "enc_channels": 16, "n_mels": 32,
                   "n_bands": 8, "n_modes": 3, "order_probes": 4, "fft_sizes": [1024, 256, 64]},
}


def tiny_config(family: str) -> dict:
    defaults = importlib.import_module(registry.FAMILIES[family]).default_config()
    return {k: v for k, v in TINY.get(family, {}).items() if k in defaults}


def logged_scalar_tags(log_dir: Path) -> set[str]:
    """Tags of the TensorBoard scalar summaries in a log folder's event files."""
    from tensorflow.core.util import event_pb2

    tags = set()
    for path in log_dir.glob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(record.numpy())
            tags |= {v.tag for v in event.summary.value
                     if v.metadata.plugin_data.plugin_name == "scalars"}
    return tags


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus")
    audio = synthetic_snares()
    items = [{"source": f"synth{i}.wav", "label": "snare", "sha256": "", "augment": 0}
             for i in range(len(audio))]
    # two non-snares: train() must select label "snare" only
    audio = np.concatenate([audio, np.zeros((2, LENGTH), np.float32)])
    items += [{"source": "kick.wav", "label": "kick"}, {"source": "hat.wav", "label": "hat"}]
    return save_corpus(path, Corpus(audio, RATE, items))


@pytest.mark.slow
@pytest.mark.parametrize("family", AVAILABLE)
def test_family_trains_saves_reloads_and_decodes(family: str, corpus_dir: Path,
                                                 tmp_path: Path) -> None:
    out = tmp_path / f"{family}.keras"
    config = tiny_config(family)
    path = train(TrainSettings(family=family, data=corpus_dir, out=out, steps=2, batch_size=4,
                               checkpoint_every=1, overrides=config))
    assert path == out
    meta = read_metadata(out)
    assert meta.family == family
    assert meta.sample_rate == RATE and meta.length == LENGTH
    assert meta.training["steps"] == 2 and meta.training["corpus_items"] == 16
    losses = meta.training["losses"]
    assert losses and all(math.isfinite(v) for v in losses.values()), losses
    assert meta.training["command"].startswith(f"snaresynth train --family {family}")
    assert meta.corpus_fingerprint and len(meta.corpus_fingerprint) == 16
    assert set(losses) <= logged_scalar_tags(out.with_suffix(".ckpt") / "logs")
    if family == "vae":  # kl_warmup=2: weights 0 then kl_weight/2 at steps 0 and 1; logs are means
        assert losses["kl_weight"] == pytest.approx(meta.training["config"]["kl_weight"] / 4)

    model = load_model_file(out)  # safe mode: every custom layer must be registered
    dim = model.latent_dim
    assert dim == meta.latent_dim == meta.training["config"]["latent_dim"]
    lo, hi = model.latent_range()
    assert lo.shape == hi.shape == (dim,) and np.all(hi > lo)
    z = np.random.default_rng(1).uniform(lo, hi, size=(3, dim)).astype(np.float32)
    audio = model.decode(z)
    assert audio.shape == (3, LENGTH) and audio.dtype == np.float32
    assert np.all(np.isfinite(audio)) and np.max(np.abs(audio)) <= 1.0
    raw = np.asarray(model.model(z, training=False))  # the raw network, before decode's clip
    assert np.max(np.abs(raw)) <= 1.0 + 1e-6
    if model.encoder is not None:
        assert model.encode(synthetic_snares(2, seed=5)).shape == (2, dim)
    served = load_inference(out)  # train wrote the inference form that serve plays
    assert served.info["check"]["max_abs"] <= 1e-4
    np.testing.assert_allclose(served.decode(z), audio, atol=1e-4)


def _settings(corpus_dir: Path, out: Path, **kw) -> TrainSettings:
    base = dict(family="autoencoder", data=corpus_dir, out=out, batch_size=4,
                checkpoint_every=2, overrides={"hidden": [8], "latent_dim": 2})
    return TrainSettings(**{**base, **kw})


@pytest.mark.slow
def test_resume_continues_from_the_checkpoint_step(corpus_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ae.keras"
    train(_settings(corpus_dir, out, steps=3))  # checkpoints at 2 and at the end (3)
    ckpt = out.with_suffix(".ckpt")
    assert tf.train.latest_checkpoint(str(ckpt)).endswith("ckpt-3")
    first = read_metadata(out).training
    assert first["steps"] == 3 and first["resumed_from"] == 0
    # a periodic checkpoint carries the time trained so far (a killed run resumes with it)
    mid = tf.train.load_checkpoint(str(ckpt / "ckpt-2"))
    assert 0 < float(mid.get_tensor("seconds/.ATTRIBUTES/VARIABLE_VALUE")) <= first["seconds"]

    with pytest.raises(TrainingError, match="--resume"):  # no silent mixing of two runs
        train(_settings(corpus_dir, out, steps=5))
    z = np.array([[0.3, -0.2]], np.float32)
    before = load_model_file(out).decode(z)
    again = tmp_path / "again.keras"  # resume to the same total: restored weights, no new step
    train(_settings(corpus_dir, again, steps=3, resume=True, checkpoint_dir=ckpt, overrides={}))
    np.testing.assert_array_equal(load_model_file(again).decode(z), before)
    assert read_metadata(again).training["losses"] == {}  # nothing was trained
    train(_settings(corpus_dir, out, steps=5, resume=True, overrides={}))
    second = read_metadata(out).training
    assert second["resumed_from"] == 3 and second["steps"] == 5
    assert second["config"]["hidden"] == [8]  # the run's config came back from run.json
    assert second["seconds"] >= first["seconds"]
    assert tf.train.latest_checkpoint(str(ckpt)).endswith("ckpt-5")
    reader = tf.train.load_checkpoint(str(ckpt / "ckpt-5"))
    names = reader.get_variable_to_shape_map()
    assert any("iteration" in n for n in names), "optimizer state must be checkpointed"
    assert int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE")) == 5

    with pytest.raises(TrainingError, match="no checkpoint"):
        train(_settings(corpus_dir, tmp_path / "other.keras", steps=2, resume=True))


@pytest.mark.slow
def test_epochs_count_passes_over_the_snares(corpus_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ae.keras"
    train(_settings(corpus_dir, out, epochs=2, checkpoint_every=0))
    assert read_metadata(out).training["steps"] == 2 * 16 // 4  # 16 snares, batch 4
    with pytest.raises(TrainingError, match="not both"):
        train(_settings(corpus_dir, tmp_path / "x.keras", epochs=1, steps=1))


def test_kl_warmup_schedule_ramps_linearly() -> None:
    from snaresynth.models.vae import kl_weight_at

    assert float(kl_weight_at(0, 0.01, 30000)) == 0.0
    assert float(kl_weight_at(15000, 0.01, 30000)) == pytest.approx(0.005)
    assert float(kl_weight_at(30000, 0.01, 30000)) == pytest.approx(0.01)
    assert float(kl_weight_at(90000, 0.01, 30000)) == pytest.approx(0.01)
    assert float(kl_weight_at(5, 0.001, 0)) == pytest.approx(0.001)  # no warm-up


@pytest.mark.slow
def test_wavegan_takes_n_critic_critic_steps_per_generator_step() -> None:
    from snaresynth.models import wavegan
    from snaresynth.models.train import make_dataset

    config = {**wavegan.default_config(), "d": 2, "n_critic": 3, "latent_dim": 4}
    trainer = wavegan.build_trainer(config, RATE, LENGTH)
    trainer.compile()
    g_before = [np.array(w) for w in trainer.decoder.weights]
    trainer.fit(make_dataset(synthetic_snares(4), 2, 0), steps_per_epoch=2, epochs=1, verbose=0,
                shuffle=False)
    assert int(trainer.d_optimizer.iterations) == 6 and int(trainer.g_optimizer.iterations) == 2
    after = [np.array(w) for w in trainer.decoder.weights]
    assert any(not np.array_equal(a, b) for a, b in zip(g_before, after, strict=True))


def test_phase_shuffle_shifts_only_while_training() -> None:
    from snaresynth.models.wavegan import PhaseShuffle

    x = np.arange(2 * 64 * 3, dtype=np.float32).reshape(2, 64, 3)
    layer = PhaseShuffle(2, seed=3)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    seen = set()
    for _ in range(20):
        y = np.asarray(layer(x, training=True))
        for b in range(2):
            shift = int(y[b, 10, 0] - x[b, 10, 0]) // 3  # the ramp steps by 3 per sample
            assert -2 <= shift <= 2
            np.testing.assert_array_equal(y[b, 2:-2], x[b, 2 + shift:62 + shift])
            seen.add(shift)
    assert len(seen) > 1
    clone = PhaseShuffle.from_config(layer.get_config())
    assert clone.rad == 2 and clone.seed == 3


@pytest.mark.parametrize("upsample", ["transpose", "nearest"])
def test_wavegan_generator_options_survive_safe_mode_reload(upsample: str, tmp_path: Path) -> None:
    import keras

    from snaresynth.models.wavegan import build_generator

    gen = build_generator(8, 2, LENGTH, upsample, kernel=25, post_filter_taps=16)
    z = np.random.default_rng(0).uniform(-1, 1, (2, 8)).astype(np.float32)
    path = tmp_path / "g.keras"
    gen.save(path)
    again = keras.saving.load_model(path, compile=False, safe_mode=True)
    np.testing.assert_allclose(np.asarray(again(z)), np.asarray(gen(z)), atol=1e-6)
    assert np.asarray(gen(z)).shape == (2, LENGTH)


def test_discriminator_with_phase_shuffle_survives_safe_mode_reload(tmp_path: Path) -> None:
    import keras

    from snaresynth.models.wavegan import PhaseShuffle, build_discriminator

    disc = build_discriminator(2, LENGTH, kernel=25, phase_shuffle=2, seed=1)
    disc.save(tmp_path / "d.keras")
    again = keras.saving.load_model(tmp_path / "d.keras", compile=False, safe_mode=True)
    assert sum(isinstance(layer, PhaseShuffle) for layer in again.layers) == 4
    x = synthetic_snares(2)
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(disc(x)), atol=1e-5)


def test_config_resolution_rejects_unknown_keys_and_wrong_types() -> None:
    defaults = {"latent_dim": 8, "kl_weight": 0.001, "hidden": [4], "upsample": "nearest"}
    cfg = resolve_config(defaults, {"kl_weight": 1}, parse_set(["hidden=[16, 4]", "upsample=x"]))
    assert cfg == {"latent_dim": 8, "kl_weight": 1.0, "hidden": [16, 4], "upsample": "x"}
    assert isinstance(cfg["kl_weight"], float)
    with pytest.raises(TrainingError, match="unknown config key 'lantent_dim'"):
        resolve_config(defaults, {"lantent_dim": 3})
    with pytest.raises(TrainingError, match="needs a int"):
        resolve_config(defaults, {"latent_dim": 2.5})
    with pytest.raises(TrainingError, match="key=value"):
        parse_set(["latent_dim"])


def test_shipped_recipes_resolve_against_their_family() -> None:
    recipes = sorted(RECIPES_DIR.glob("*.toml"))
    assert {"vae-a", "vae-b", "vae-c"} <= {p.stem for p in recipes}
    for path in recipes:
        family, config = load_recipe(path.stem)
        module = registry.get_family(family)
        resolve_config(module.default_config(), config, family=family)
    weights = [load_recipe(f"vae-{x}")[1]["kl_weight"] for x in "abc"]
    assert weights == [0.01, 0.001, 0.0001]
    with pytest.raises(TrainingError, match="unknown training recipe"):
        load_recipe("vae-z")


@pytest.mark.slow
def test_cli_recipe_with_overriding_flag(corpus_dir: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "vae-a.keras"
    rc = main(["train", "--recipe", "vae-a", "--data", str(corpus_dir), "--out", str(out),
               "--steps", "1", "--batch-size", "4", "--latent-dim", "2", "--kl-warmup", "7",
               "--set", "d=2", "--checkpoint-every", "0"])
    assert rc == 0
    assert capsys.readouterr().out.strip() == str(out)
    meta = read_metadata(out)
    assert meta.family == "vae" and meta.latent_prior == "normal"
    config = meta.training["config"]
    assert config["kl_weight"] == 0.01  # from the recipe
    assert config["kl_warmup"] == 7 and config["latent_dim"] == 2 and config["d"] == 2  # flags
    assert json.loads(json.dumps(meta.training))  # JSON-serialisable all through


@pytest.mark.parametrize("args, message", [
    (["--family", "nope"], "unknown model family 'nope'"),
    (["--family", "vae", "--set", "kl_wieght=1"], "unknown config key 'kl_wieght'"),
    (["--family", "vae", "--recipe", "wavegan-paper"], "is for wavegan"),
    (["--recipe", "vae-q"], "unknown training recipe"),
    (["--family", "wavegan", "--set", "upsample=cubic"], "upsample must be one of"),
    (["--family", "vae", "--set", "latent_dim=2.5"], "needs a int"),
])
def test_cli_bad_input_is_a_message_not_a_traceback(args: list[str], message: str,
                                                    corpus_dir: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    rc = main(["train", *args, "--data", str(corpus_dir), "--out", str(tmp_path / "m.keras"),
               "--steps", "1"])
    assert rc == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_missing_corpus(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc = main(["train", "--family", "autoencoder", "--data", str(tmp_path / "none"),
               "--out", str(tmp_path / "m.keras"), "--steps", "1"])
    assert rc == 2
    assert "not a corpus folder" in capsys.readouterr().err
    assert issubclass(TrainingError, SnareSynthError) and issubclass(TrainingError, ValueError)


@pytest.mark.slow
def test_a_recipe_sets_the_knob_map(corpus_dir: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "ball.toml"
    recipe.write_text('family = "vae"\nknob_map = "ball"\nknob_scale = 0.5\n'
                      '[config]\nd = 2\nlatent_dim = 2\n')
    out = tmp_path / "ball.keras"
    train(TrainSettings(family=None, recipe=str(recipe), data=corpus_dir, out=out, steps=1,
                        batch_size=4, checkpoint_every=0))
    meta = read_metadata(out)
    trained = meta.training["knob_range"]
    assert meta.knob_map == "ball" and trained["knob_map"] == "cube"
    np.testing.assert_allclose(np.subtract(meta.latent_hi, meta.latent_lo),
                               0.5 * np.subtract(trained["hi"], trained["lo"]), rtol=1e-5)
    recipe.write_text('family = "vae"\nknob_map = "sphere"\n')
    with pytest.raises(TrainingError, match="knob_map must be one of"):
        train(TrainSettings(family=None, recipe=str(recipe), data=corpus_dir,
                            out=tmp_path / "x.keras", steps=1))
