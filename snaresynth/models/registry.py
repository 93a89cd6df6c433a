"""Explicit registry: model family name -> the module that builds and trains it.

Each family module defines ``FAMILY`` and registers its custom Keras layers (with
``keras.saving.register_keras_serializable(package="snaresynth")``) at import, so a model file
of that family loads in safe mode once the module is imported. No discovery magic: a new family
is one line here.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from snaresynth.errors import ModelFileError

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


def load(path: str | Path):  # -> KerasDecoder (lazy import keeps TensorFlow out of --help)
    """Load a model file (any registered family) as a Decoder."""
    from snaresynth.models.base import load_model_file

    return load_model_file(path)
