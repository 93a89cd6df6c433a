"""Explicit registry: model family name -> the module that builds and trains it.

Each family module defines ``FAMILY`` and registers its custom Keras layers (with
``keras.saving.register_keras_serializable(package="snaresynth")``) at import, so a model file
of that family loads in safe mode once the module is imported. No discovery magic: a new family
is one line here.
"""

from __future__ import annotations

import importlib
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from snaresynth.errors import ModelFileError
from snaresynth.models.archive import open_archive, open_bytes, read_member
from snaresynth.models.base import (
    ENCODER_ENTRY,
    LENGTH,
    KerasDecoder,
    ModelMetadata,
    read_metadata,
)

FAMILIES: dict[str, str] = {
    "autoencoder": "snaresynth.models.autoencoder",
    "conv_autoencoder": "snaresynth.models.conv_autoencoder",
    "wavegan": "snaresynth.models.wavegan",
    "vae": "snaresynth.models.vae",
    "ddsp_snare": "snaresynth.models.ddsp_snare",
}

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "bundled"
DEFAULT_MODEL = BUNDLED_DIR / "default.keras"


def family_names() -> list[str]:
    return list(FAMILIES)


def get_family(name: str) -> ModuleType:
    """Import and return a family module; unknown names list the known ones."""
    if name not in FAMILIES:
        raise ValueError(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}")
    return importlib.import_module(FAMILIES[name])


def ensure_registered(name: str, source: str = "model") -> None:
    """Import the family's module so its layers are known to Keras before a safe-mode load."""
    try:
        get_family(name)
    except ValueError as exc:
        raise ModelFileError(f"{source}: {exc}") from exc
    except ImportError as exc:
        raise ModelFileError(f"{source}: family {name!r} is not available: {exc}") from exc


RUNTIMES = ("keras", "inference", "auto")
"""keras: the Keras model (training, analysis; imports TensorFlow); inference: the numpy form
written beside it (serving; never imports TensorFlow); auto: the inference form where the file
has one (render), else Keras."""
TRAIN_HINT = "install with pip install snaresynth[train]"


def load(path: str | Path, runtime: str = "keras") -> Any:  # -> KerasDecoder | InferenceDecoder
    """Load a model file (any registered family) as a Decoder."""
    if runtime == "auto":
        from snaresynth.models.inference import has_inference

        runtime = "inference" if has_inference(path) else "keras"
    if runtime == "inference":
        from snaresynth.models.inference import load_inference

        return load_inference(path)
    if runtime != "keras":
        raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    return load_model_file(path)


UNTRAINED_PREFIX = "untrained:"
FALLBACK_FAMILY = "ddsp_snare"
"""Family of the fixed-random-weight decoder used when no trained model is bundled."""


def untrained(family: str, sample_rate: int = 32000, seed: int = 0,
              runtime: str = "keras"):  # -> KerasDecoder | InferenceDecoder
    """A real decoder of ``family`` with fixed random weights (seeded): not trained, but a true
    network through the whole serving path. Used before a model is bundled, and in tests.
    Keras builds it (so TensorFlow is needed even for ``runtime="inference"``)."""
    try:
        import keras
    except ModuleNotFoundError as exc:
        raise ModelFileError(f"untrained:{family}: an untrained model is built by Keras, which "
                             f"is not installed; {TRAIN_HINT}") from exc

    module = get_family(family)
    config = module.default_config()
    keras.utils.set_random_seed(seed)
    trainer = module.build_trainer(config, sample_rate, LENGTH)
    dim = int(config["latent_dim"])
    prior_lo, prior_hi = (-1.0, 1.0) if family == "wavegan" else (-2.0, 2.0)
    metadata = ModelMetadata(
        family=family, latent_dim=dim, sample_rate=sample_rate,
        latent_lo=[prior_lo] * dim, latent_hi=[prior_hi] * dim,
        latent_prior="uniform" if family == "wavegan" else "normal",
        training={"config": config, "steps": 0, "untrained_seed": seed},
        description=f"untrained {family} (fixed random weights, seed {seed})",
    )
    if runtime == "inference":  # "auto" builds a Keras decoder: Keras is needed anyway
        from snaresynth.models.export import inference_entries
        from snaresynth.models.inference import (
            ARRAYS_ENTRY,
            PROGRAM_ENTRY,
            InferenceDecoder,
            program_from_entries,
        )

        entries = inference_entries(trainer.decoder, metadata, check=0)
        program, info = program_from_entries(entries[PROGRAM_ENTRY], entries[ARRAYS_ENTRY])
        return InferenceDecoder(program, metadata, info=info)
    return KerasDecoder(trainer.decoder, metadata)


def resolve(spec: str | None, runtime: str = "auto"):  # -> KerasDecoder | InferenceDecoder
    """``--model`` value -> Decoder: None = the bundled model (or, if none is bundled, an
    untrained one, said in the log); "untrained:FAMILY"; a bundled name; or a file path.
    ``runtime``: "inference" (serving: the numpy form, no TensorFlow), "keras" (analysis) or
    "auto" (the inference form where the file has one)."""
    import logging

    log = logging.getLogger(__name__)
    if spec is None:
        if DEFAULT_MODEL.exists():
            return load(DEFAULT_MODEL, runtime)
        log.warning("no trained model is bundled: using an UNTRAINED %s decoder with fixed "
                    "random weights (expect noise, not a snare)", FALLBACK_FAMILY)
        return untrained(FALLBACK_FAMILY if FALLBACK_FAMILY in _available() else "autoencoder",
                         runtime=runtime)
    if spec.startswith(UNTRAINED_PREFIX):
        return untrained(spec[len(UNTRAINED_PREFIX):], runtime=runtime)
    path = Path(spec)
    if not path.exists() and (BUNDLED_DIR / f"{spec}.keras").exists():
        path = BUNDLED_DIR / f"{spec}.keras"
    return load(path, runtime)


def bundled_models() -> list[Path]:
    return sorted(p for p in BUNDLED_DIR.glob("*.keras") if p.name != "listener.keras")


def _available() -> set[str]:
    import importlib.util

    return {name for name, module in FAMILIES.items() if importlib.util.find_spec(module)}


def load_model_file(path: str | Path) -> KerasDecoder:
    """Load a model file in Keras safe mode; every failure is a ``ModelFileError`` naming it."""
    path = Path(path)
    metadata = read_metadata(path)
    try:
        import keras  # noqa: F401  (before the family modules, which import it too)
    except ModuleNotFoundError as exc:
        raise ModelFileError(f"{path}: loading the Keras model needs TensorFlow and Keras; "
                             f"{TRAIN_HINT}") from exc
    ensure_registered(metadata.family, source=str(path))
    import keras

    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
        encoder = None
        with open_archive(path) as archive:
            if ENCODER_ENTRY in archive.namelist():
                encoder = _load_nested(read_member(archive, ENCODER_ENTRY),
                                       f"{path}: {ENCODER_ENTRY}")
    except ModelFileError:
        raise
    except Exception as exc:  # Keras raises many types for bad files; all mean "unloadable"
        raise ModelFileError(f"{path}: cannot load model: {type(exc).__name__}: {exc}") from exc
    _check_io_shapes(model, metadata, path)
    return KerasDecoder(model, metadata, encoder=encoder, path=path)


def _load_nested(data: bytes, source: str) -> Any:
    import keras

    with tempfile.TemporaryDirectory() as tmpdir:
        nested = Path(tmpdir) / "encoder.keras"
        nested.write_bytes(data)
        with open_bytes(data, source):
            pass  # its sizes, and BadZipFile early with a clear type
        return keras.saving.load_model(nested, compile=False, safe_mode=True)


def _check_io_shapes(model: Any, metadata: ModelMetadata, path: Path) -> None:
    try:
        in_shape = tuple(model.inputs[0].shape)
        out_shape = tuple(model.outputs[0].shape)
    except (AttributeError, IndexError, TypeError):
        return  # subclassed models without symbolic inputs are checked on first decode
    if in_shape[-1] != metadata.latent_dim:
        raise ModelFileError(
            f"{path}: decoder takes {in_shape[-1]} latent dims, metadata says {metadata.latent_dim}"
        )
    flat = int(np.prod([d for d in out_shape[1:] if d is not None]))
    if flat != metadata.length:
        raise ModelFileError(
            f"{path}: decoder outputs {out_shape[1:]}, expected {metadata.length} samples"
        )
