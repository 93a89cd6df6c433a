"""Model files are data, never code; a decoder fault never silences the instrument.

- ``load_model_file`` refuses corrupt, truncated, wrong-family and hostile files (a Lambda layer,
  a config naming an arbitrary module/class) with a ``ModelFileError`` naming the file, and runs
  nothing from them (each hostile payload would create a marker file if it ever ran);
- a decode that raises or returns NaN keeps the previous buffer and shows in ``/status``
  (``decode_failures``), through the real Engine and OSC controller (docs/reliability.md).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from snaresynth.control.kit import Kit, Slot
from snaresynth.engine.engine import Engine, EngineSettings
from snaresynth.errors import ModelFileError
from snaresynth.io.osc import OscController
from snaresynth.io.osc_args import build_message
from snaresynth.models.base import METADATA_ENTRY, ModelMetadata
from snaresynth.models.registry import load_model_file

LATENT = 4


def _metadata(family: str = "autoencoder") -> ModelMetadata:
    return ModelMetadata(family=family, latent_dim=LATENT, sample_rate=16000,
                         latent_lo=[-1.0] * LATENT, latent_hi=[1.0] * LATENT)


def _archive(path: Path, model, metadata: ModelMetadata) -> Path:
    """A model file written the way ``save_model_file`` does, minus its checks."""
    model.save(path)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(METADATA_ENTRY, metadata.to_json())
    return path


@pytest.fixture(scope="module")
def keras():
    import keras

    return keras


@pytest.fixture(scope="module")
def good_file(keras, tmp_path_factory) -> Path:
    z = keras.Input((LATENT,))
    model = keras.Model(z, keras.layers.Dense(16384, activation="tanh")(z))
    return _archive(tmp_path_factory.mktemp("m") / "good.keras", model, _metadata())


def _rewrite_config(src: Path, dst: Path, edit) -> Path:
    """Copy a model file, changing the Keras config.json inside it with ``edit(config)``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                edit(config)
                data = json.dumps(config).encode()
            zout.writestr(item, data)
    return dst


def test_the_good_file_loads(good_file):
    decoder = load_model_file(good_file)
    assert decoder.decode(np.zeros((1, LATENT), np.float32)).shape == (1, 16384)


@pytest.mark.parametrize("make", ["garbage", "truncated", "empty", "no metadata"])
def test_corrupt_and_truncated_files_are_refused_by_name(good_file, tmp_path, make):
    path = tmp_path / f"{make.replace(' ', '_')}.keras"
    data = good_file.read_bytes()
    if make == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif make == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif make == "empty":
        path.write_bytes(b"")
    else:
        with zipfile.ZipFile(good_file) as zin, zipfile.ZipFile(path, "w") as zout:
            for item in zin.infolist():
                if item.filename != METADATA_ENTRY:
                    zout.writestr(item, zin.read(item.filename))
    with pytest.raises(ModelFileError, match=str(path)):
        load_model_file(path)


def test_wrong_family_and_bad_metadata_are_refused(keras, good_file, tmp_path):
    for name, meta in (("family", {"family": "evil_family"}), ("field", {"run": "rm -rf /"}),
                       ("type", {"latent_dim": "four"})):
        path = tmp_path / f"{name}.keras"
        with zipfile.ZipFile(good_file) as zin, zipfile.ZipFile(path, "w") as zout:
            for item in zin.infolist():
                data = zin.read(item.filename)
                if item.filename == METADATA_ENTRY:
                    data = json.dumps({**json.loads(data), **meta}).encode()
                zout.writestr(item, data)
        with pytest.raises(ModelFileError, match=str(path)):
            load_model_file(path)


def test_a_lambda_layer_is_refused_and_never_run(keras, tmp_path):
    marker = tmp_path / "lambda-ran"
    z = keras.Input((LATENT,))
    # the payload: if Keras ever deserialised and called this, the marker would appear
    where = str(marker)
    hostile = keras.layers.Lambda(lambda x: (open(where, "w").close(), x)[1])
    model = keras.Model(z, keras.layers.Dense(16384)(hostile(z)))
    marker.unlink(missing_ok=True)  # building the model traced it once
    path = _archive(tmp_path / "lambda.keras", model, _metadata())
    with pytest.raises(ModelFileError, match="lambda.keras") as info:
        load_model_file(path)
    assert "safe" in str(info.value).lower() or "lambda" in str(info.value).lower()
    assert not marker.exists()


@pytest.mark.parametrize("module,class_name,config", [
    ("subprocess", "Popen", {"args": ["touch", "{marker}"]}),
    ("builtins", "exec", {"source": "open('{marker}', 'w').close()"}),
    ("os", "system", {"command": "touch {marker}"}),
])
def test_a_config_naming_any_module_or_class_is_refused(good_file, tmp_path, module, class_name,
                                                         config):
    marker = tmp_path / "payload-ran"
    filled = json.loads(json.dumps(config).replace("{marker}", str(marker)))

    def edit(cfg: dict) -> None:
        layers = cfg["config"]["layers"]
        layers[-1]["module"] = module
        layers[-1]["class_name"] = class_name
        layers[-1]["registered_name"] = None
        layers[-1]["config"] = filled

    path = _rewrite_config(good_file, tmp_path / f"{class_name}.keras", edit)
    with pytest.raises(ModelFileError, match=str(path)):
        load_model_file(path)
    assert not marker.exists()


# --- decoder faults through the engine -------------------------------------------------------

def _status(osc: OscController) -> dict:
    (_, args, _), = osc.handle_packet(build_message("/snaresynth/status", []), ("127.0.0.1", 9))
    return dict(zip(args[::2], args[1::2], strict=True))


@pytest.mark.parametrize("fault", ["raise", "nan"])
def test_a_failing_decode_keeps_the_previous_sound_and_is_reported(sine_decoder, fault):
    kit = Kit(name="t", slots=[Slot(name="a", notes=[38], knobs=[0.5] * 4)], cc={})
    engine = Engine(sine_decoder, kit, EngineSettings(rate=48000, blocksize=64, latency="lowest"))
    engine.start()
    try:
        osc = OscController(engine)
        before = engine.buffers[0][-1]
        assert before is not None and _status(osc)["decode_failures"] == 0
        sine_decoder.fail = fault
        osc.handle_packet(build_message("/snaresynth/latent/0", [0.9]), ("127.0.0.1", 9))
        assert engine.worker.wait_idle(5)
        assert engine.buffers[0][-1] is before  # the old sound stays
        assert _status(osc)["decode_failures"] == 1
        assert engine.trigger(1.0, 0)  # and it still plays
        out = np.zeros((64, 2), np.float32)
        engine.process(out)
        assert np.all(np.isfinite(out)) and np.abs(out).max() > 0
        sine_decoder.fail = None  # the model recovers: the next change decodes again
        osc.handle_packet(build_message("/snaresynth/latent/0", [0.1]), ("127.0.0.1", 9))
        assert engine.worker.wait_idle(5)
        assert engine.buffers[0][-1] is not before
    finally:
        engine.stop()
