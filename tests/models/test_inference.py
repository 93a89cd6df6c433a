"""The numpy inference form against the Keras decoder it is exported from, for every family.

Tiny decoders with seeded random weights (scaled so their outputs use the whole range: an
untrained network would barely move), 256 random latents each: the inference form must match
within 1e-4 max abs. Then the file side: train's and export's entries, refusals, staleness.
"""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from snaresynth.errors import ModelFileError  # noqa: E402
from snaresynth.models import export, registry  # noqa: E402
from snaresynth.models.base import (  # noqa: E402
    KerasDecoder,
    ModelMetadata,
    read_metadata,
    save_model_file,
)
from snaresynth.models.inference import (  # noqa: E402
    ARRAYS_ENTRY,
    PROGRAM_ENTRY,
    InferenceDecoder,
    load_inference,
    program_from_entries,
)

RATE, LENGTH = 16000, 16384
TOLERANCE = 1e-4
# Per-case config overrides (a case name before "-" is the family); small but every layer kind.
CASES: dict[str, dict] = {
    "autoencoder": {"hidden": [16, 8], "latent_dim": 3},
    "conv_autoencoder": {"d": 2, "latent_dim": 3},
    "conv_autoencoder-transpose": {"d": 2, "latent_dim": 3, "upsample": "transpose"},
    "wavegan": {"d": 2, "latent_dim": 8},
    "wavegan-transpose-post": {"d": 2, "latent_dim": 8, "upsample": "transpose",
                               "post_filter": True, "post_filter_taps": 16},
    "vae": {"d": 2, "latent_dim": 3},
    "ddsp_snare": {"latent_dim": 4, "hidden": 32, "n_bands": 8, "n_modes": 3,
                   "enc_channels": 8, "n_mels": 16},
}
# Weight scale (x 1/sqrt(fan-in)): ddsp_snare's synthesiser parameters then spread over about
# +-1 before their sigmoids, as in a trained model; the sample-decoding families at 1.5 fill
# [-1, 1] without all saturating in the tanh.
WEIGHT_SCALE = {"ddsp_snare": 1.0}


def family_of(case: str) -> str:
    return case.split("-")[0]


def tiny_decoder(case: str, seed: int = 0) -> tuple[object, ModelMetadata]:
    family = family_of(case)
    module = registry.get_family(family)
    config = {**module.default_config(), **CASES[case]}
    keras.utils.set_random_seed(seed)
    decoder = module.build_trainer(config, RATE, LENGTH).decoder
    rng = np.random.default_rng(seed + 1)
    scale = WEIGHT_SCALE.get(family, 1.5)
    for weight in decoder.trainable_weights:
        if len(weight.shape) >= 2:
            fan_in = int(np.prod(weight.shape[:-1]))
            weight.assign(rng.standard_normal(weight.shape).astype(np.float32)
                          * scale / np.sqrt(fan_in))
    dim = int(config["latent_dim"])
    metadata = ModelMetadata(family=family, latent_dim=dim, sample_rate=RATE,
                             latent_lo=[-2.0] * dim, latent_hi=[2.0] * dim,
                             training={"config": config})
    return decoder, metadata


def in_memory(model: object, metadata: ModelMetadata) -> InferenceDecoder:
    entries = export.inference_entries(model, metadata, check=0)
    program, info = program_from_entries(entries[PROGRAM_ENTRY], entries[ARRAYS_ENTRY])
    return InferenceDecoder(program, metadata, info=info)


@pytest.mark.parametrize("case", list(CASES))
def test_inference_form_matches_keras(case: str) -> None:
    model, metadata = tiny_decoder(case)
    numpy_decoder = in_memory(model, metadata)
    keras_decoder = KerasDecoder(model, metadata)
    z = export.check_latents(metadata, 256, seed=1)
    worst = export.max_difference(keras_decoder, numpy_decoder, z)
    assert worst <= TOLERANCE, f"{case}: max |numpy - keras| = {worst:.3g}"
    out = numpy_decoder.decode(z[:4])
    assert out.shape == (4, LENGTH) and out.dtype == np.float32
    assert np.std(out) > 1e-3  # a real sound, not a constant that would match trivially


def test_every_family_is_covered() -> None:
    assert {family_of(case) for case in CASES} == set(registry.FAMILIES)


def test_the_bundled_model_has_a_matching_inference_form() -> None:
    path = registry.DEFAULT_MODEL
    numpy_decoder = load_inference(path)
    keras_decoder = registry.load(path)
    z = export.check_latents(keras_decoder.metadata, 256, seed=2)
    worst = export.max_difference(keras_decoder, numpy_decoder, z)
    assert worst <= TOLERANCE, worst
    assert numpy_decoder.info["check"]["max_abs"] <= TOLERANCE
    assert path.stat().st_size < 2_000_000  # the shipped file stays small


def test_save_model_file_writes_the_form_and_it_loads(tmp_path: Path) -> None:
    model, metadata = tiny_decoder("autoencoder")
    path = save_model_file(tmp_path / "m.keras", model, metadata)
    decoder = registry.load(path, runtime="inference")
    assert isinstance(decoder, InferenceDecoder) and decoder.path == path
    assert decoder.info["check"]["latents"] == export.CHECK_LATENTS
    assert decoder.info["check"]["max_abs"] <= TOLERANCE
    z = np.zeros((1, metadata.latent_dim), np.float32)
    np.testing.assert_allclose(decoder.decode(z), KerasDecoder(model, metadata).decode(z),
                               atol=TOLERANCE)


def _without_inference(src: Path, dst: Path) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            if item.filename not in (PROGRAM_ENTRY, ARRAYS_ENTRY):
                zout.writestr(item, zin.read(item.filename))
    return dst


def test_a_file_without_the_form_is_refused_with_the_export_command(tmp_path: Path) -> None:
    model, metadata = tiny_decoder("autoencoder")
    full = save_model_file(tmp_path / "full.keras", model, metadata)
    old = _without_inference(full, tmp_path / "old.keras")
    with pytest.raises(ModelFileError, match=r"snaresynth export .*old\.keras"):
        load_inference(old)


def test_export_adds_the_form_atomically_keeping_entries_and_mode(tmp_path: Path) -> None:
    model, metadata = tiny_decoder("wavegan")
    full = save_model_file(tmp_path / "full.keras", model, metadata, inference=False)
    assert not zipfile.ZipFile(full).namelist().count(PROGRAM_ENTRY)
    os.chmod(full, 0o644)
    before = set(zipfile.ZipFile(full).namelist())
    check = export.export_file(full, check=16)
    assert check["max_abs"] <= TOLERANCE and check["latents"] == 16
    assert set(zipfile.ZipFile(full).namelist()) == before | {PROGRAM_ENTRY, ARRAYS_ENTRY}
    assert stat.S_IMODE(full.stat().st_mode) == 0o644
    assert read_metadata(full) == metadata
    assert not list(tmp_path.glob(".full.keras.*"))  # no temporary file left behind
    export.export_file(full, check=4)  # again: replaces the entries, no duplicates
    names = zipfile.ZipFile(full).namelist()
    assert names.count(PROGRAM_ENTRY) == 1 and names.count(ARRAYS_ENTRY) == 1
    load_inference(full).decode(np.zeros((1, metadata.latent_dim), np.float32))


def test_a_form_that_does_not_match_is_refused(tmp_path: Path) -> None:
    model, metadata = tiny_decoder("autoencoder")
    with pytest.raises(export.ExportError, match="differs from the Keras decoder"):
        export.inference_entries(model, metadata, check=8, tolerance=0.0)


def test_an_unsupported_layer_is_named(tmp_path: Path) -> None:
    z = keras.Input((4,))
    x = keras.layers.Dense(64)(z)
    x = keras.layers.BatchNormalization(name="norm")(x)
    model = keras.Model(z, keras.layers.Dense(LENGTH, activation="tanh")(x))
    metadata = ModelMetadata(family="autoencoder", latent_dim=4, sample_rate=RATE,
                             latent_lo=[-1.0] * 4, latent_hi=[1.0] * 4)
    with pytest.raises(export.ExportError, match="norm"):
        export.build_program(model)
    # train still writes the Keras model (said in the log); serve refuses it by name
    path = save_model_file(tmp_path / "bn.keras", model, metadata)
    with pytest.raises(ModelFileError, match="no inference form"):
        load_inference(path)


def _rewrite(src: Path, dst: Path, name: str, data: bytes) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            zout.writestr(item, data if item.filename == name else zin.read(item.filename))
    return dst


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, metadata = tiny_decoder("autoencoder")
    return save_model_file(tmp_path_factory.mktemp("m") / "m.keras", model, metadata)


def test_a_changed_keras_model_makes_the_form_stale(saved: Path, tmp_path: Path) -> None:
    weights = zipfile.ZipFile(saved).read("model.weights.h5")
    stale = _rewrite(saved, tmp_path / "stale.keras", "model.weights.h5", weights + b"\0")
    with pytest.raises(ModelFileError, match="changed after the inference form"):
        load_inference(stale)


def test_pickled_arrays_are_refused_and_never_run(saved: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pickle-ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    buffer = io.BytesIO()
    np.savez(buffer, **{"0.kernel": np.array([Payload()], dtype=object)})
    hostile = _rewrite(saved, tmp_path / "pickle.keras", ARRAYS_ENTRY, buffer.getvalue())
    with pytest.raises(ModelFileError, match="pickle.keras"):
        load_inference(hostile).decode(np.zeros((1, 3), np.float32))
    assert not marker.exists()


@pytest.mark.parametrize("edit", ["unknown op", "unknown activation", "bad json", "format"])
def test_bad_programs_are_refused_by_name(saved: Path, tmp_path: Path, edit: str) -> None:
    info = json.loads(zipfile.ZipFile(saved).read(PROGRAM_ENTRY))
    if edit == "unknown op":
        info["ops"][0]["op"] = "exec"
    elif edit == "unknown activation":
        info["ops"][0]["activation"] = "os.system"
    elif edit == "format":
        info["format"] = 99
    data = b"{" if edit == "bad json" else json.dumps(info).encode()
    path = _rewrite(saved, tmp_path / "bad.keras", PROGRAM_ENTRY, data)
    with pytest.raises(ModelFileError, match="bad.keras"):
        load_inference(path)


def test_untrained_models_are_served_through_the_inference_form() -> None:
    decoder = registry.resolve("untrained:autoencoder", runtime="inference")
    assert isinstance(decoder, InferenceDecoder)
    reference = registry.resolve("untrained:autoencoder")
    z = np.full((2, decoder.latent_dim), 0.3, np.float32)
    np.testing.assert_allclose(decoder.decode(z), reference.decode(z), atol=TOLERANCE)


def test_the_export_command(saved: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from snaresynth.cli import main

    path = _without_inference(saved, tmp_path / "cli.keras")
    assert main(["export", str(path), "--check", "8"]) == 0
    assert "inference form written" in capsys.readouterr().out
    load_inference(path)
    assert main(["export", str(tmp_path / "missing.keras")]) == 2
    assert "missing.keras" in capsys.readouterr().err


def test_a_ball_knob_map_is_written_and_both_forms_decode_through_it(tmp_path: Path) -> None:
    """``export --knob-map ball --knob-scale``: the metadata changes, the network does not;
    Keras and numpy both decode knob latents through the map (models/knobmap.py)."""
    from snaresynth.models.knobmap import to_network

    model, metadata = tiny_decoder("ddsp_snare")
    path = save_model_file(tmp_path / "m.keras", model, metadata, inference=True)
    export.export_file(path, check=8, knob_map="ball", knob_scale=0.75)
    after = read_metadata(path)
    assert after.knob_map == "ball"
    assert after.latent_lo == [-1.5] * 4 and after.latent_hi == [1.5] * 4
    assert after.training["knob_range"] == {"lo": [-2.0] * 4, "hi": [2.0] * 4,
                                            "knob_map": "cube"}
    corner = np.full((1, 4), 1.5, np.float32)
    served = load_inference(path).decode(corner)
    bent = to_network(corner, np.full(4, -1.5), np.full(4, 1.5), "ball")
    np.testing.assert_allclose(bent, np.full((1, 4), 0.75), atol=1e-6)  # 1.5 / sqrt(4)
    plain = InferenceDecoder(load_inference(path).program, metadata)  # the old, cube metadata
    np.testing.assert_allclose(served, plain.decode(bent), atol=1e-6)
    np.testing.assert_allclose(KerasDecoder(model, after).decode(corner), served, atol=TOLERANCE)
    with pytest.raises(ModelFileError, match="knob_map must be one of"):
        export.with_knobs(after, knob_map="sphere")
    with pytest.raises(ModelFileError, match="knob scale"):
        export.with_knobs(after, knob_scale=0.0)


def test_the_export_command_sets_the_knob_map(saved: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    import shutil

    from snaresynth.cli import main

    saved = Path(shutil.copy(saved, tmp_path / "knobs.keras"))  # the module's file stays as is
    before = read_metadata(saved)
    assert main(["export", str(saved), "--check", "4", "--knob-map", "ball",
                 "--knob-scale", "0.5"]) == 0
    assert "knob map ball" in capsys.readouterr().out
    after = read_metadata(saved)
    assert after.knob_map == "ball"
    np.testing.assert_allclose(np.subtract(after.latent_hi, after.latent_lo),
                               0.5 * np.subtract(before.latent_hi, before.latent_lo), rtol=1e-5)
    assert main(["export", str(saved), "--knob-scale", "9"]) == 2
    assert "knob scale must be in (0, 4]" in capsys.readouterr().err
