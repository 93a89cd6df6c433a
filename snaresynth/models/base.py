"""The Decoder contract, model-file metadata, and the model file format.

A model file is one Keras ``.keras`` archive (a zip) holding the *decoder* network, with extra
entries written by snaresynth: ``snaresynth.json`` (the metadata below), the decoder's inference
form (``inference.json`` + ``inference.npz``, numpy arrays: what ``serve`` runs, without
TensorFlow; ``inference.py``) and, for families that have one, ``encoder.keras`` (the encoder,
itself a Keras archive, used by ``eval`` for reconstruction figures). Loading always uses Keras
safe mode (and ``np.load`` without pickles): a model file is data, never code. Metadata can be
read with ``read_metadata`` without importing TensorFlow (fast ``models`` list).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from snaresynth.atomic import atomic_path
from snaresynth.dsp import LENGTH  # noqa: F401  (re-exported: the models' output length)
from snaresynth.errors import ModelFileError
from snaresynth.models.archive import open_archive, read_member
from snaresynth.models.knobmap import check_knobs, from_network, to_network

METADATA_ENTRY = "snaresynth.json"
ENCODER_ENTRY = "encoder.keras"


@runtime_checkable
class Decoder(Protocol):
    """What the engine needs from a model. ``decode`` is called from the decode worker only."""

    family: str
    latent_dim: int
    sample_rate: int
    length: int

    def decode(self, z: np.ndarray) -> np.ndarray:
        """(B, latent_dim) float32 -> (B, length) float32 in [-1, 1]."""
        ...

    def latent_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-dimension (lo, hi) that a knob spans from 0 to 1."""
        ...


@dataclass
class ModelMetadata:
    """Everything needed to serve, reproduce and compare a model; stored in the model file."""

    family: str
    latent_dim: int
    sample_rate: int
    latent_lo: list[float]
    latent_hi: list[float]
    length: int = LENGTH
    latent_prior: str = "normal"  # "normal" or "uniform": how eval draws random latent points
    knob_map: str = "cube"  # how the knob box bends before the network (models/knobmap.py)
    corpus_fingerprint: str | None = None
    training: dict[str, Any] = field(default_factory=dict)  # config, command, steps, seconds
    description: str = ""
    snaresynth_version: str = ""

    def __post_init__(self) -> None:
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {self.latent_dim}")
        if len(self.latent_lo) != self.latent_dim or len(self.latent_hi) != self.latent_dim:
            raise ValueError(
                f"latent_lo/latent_hi need {self.latent_dim} values, got "
                f"{len(self.latent_lo)}/{len(self.latent_hi)}"
            )
        if self.sample_rate < 1000:
            raise ValueError(f"sample_rate must be in Hz (>= 1000), got {self.sample_rate}")
        if self.latent_prior not in ("normal", "uniform"):
            raise ValueError(
                f"latent_prior must be 'normal' or 'uniform', got {self.latent_prior!r}")
        check_knobs(self.knob_map)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str = "metadata") -> ModelMetadata:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelFileError(f"{source}: metadata is not valid JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise ModelFileError(f"{source}: metadata must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ModelFileError(f"{source}: unknown metadata field(s) {unknown}")
        try:
            return cls(**raw)
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"{source}: bad metadata: {exc}") from exc


def read_metadata(path: str | Path) -> ModelMetadata:
    """Read a model file's metadata without importing TensorFlow."""
    path = Path(path)
    try:
        with open_archive(path) as archive:  # sizes checked before anything is inflated
            text = read_member(archive, METADATA_ENTRY).decode("utf-8")
    except FileNotFoundError as exc:
        raise ModelFileError(f"{path}: no such model file") from exc
    except KeyError as exc:
        raise ModelFileError(f"{path}: not a snaresynth model (no {METADATA_ENTRY})") from exc
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path}: corrupt or truncated model file: {exc}") from exc
    return ModelMetadata.from_json(text, source=str(path))


def save_keras_archive(path: str | Path, model: Any, entries: dict[str, str | bytes],
                       what: str = "model", inference: ModelMetadata | None = None) -> Path:
    """Write a Keras model plus extra named entries (metadata) atomically to one ``.keras`` zip;
    Keras ignores the extra entries when it loads the file. With ``inference`` (the model's
    metadata) the decoder's inference form is written too (``export.py``), checked first."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"{what} file name must end in .keras, got {path.name}")
    with atomic_path(path) as tmp:
        keras_tmp = tmp.with_name(tmp.name + ".keras")
        try:
            model.save(keras_tmp)
            if inference is not None:
                entries = {**entries, **_inference_entries(model, inference, keras_tmp, path)}
            with zipfile.ZipFile(keras_tmp, "a") as archive:
                for name, data in entries.items():
                    archive.writestr(name, data)
            keras_tmp.replace(tmp)
        finally:
            keras_tmp.unlink(missing_ok=True)
    return path


def _inference_entries(model: Any, metadata: ModelMetadata, keras_file: Path,
                       path: Path) -> dict[str, bytes]:
    """The inference form's entries, or none (said in the log) when the decoder has none."""
    from snaresynth.models.export import ExportError, inference_entries
    from snaresynth.models.inference import source_digest

    with zipfile.ZipFile(keras_file) as archive:
        digest = source_digest(archive)
    try:
        return inference_entries(model, metadata, digest)
    except ExportError as exc:  # the Keras model is still worth keeping (analysis, export)
        logging.getLogger(__name__).error(
            "%s: written without an inference form, so serve cannot play it: %s", path, exc)
        return {}


def save_model_file(
    path: str | Path,
    decoder: Any,
    metadata: ModelMetadata,
    encoder: Any | None = None,
    inference: bool = True,
) -> Path:
    """Write decoder (+ optional encoder), metadata and the decoder's inference form (numpy,
    for serving without TensorFlow) atomically to one ``.keras`` file."""
    entries: dict[str, str | bytes] = {METADATA_ENTRY: metadata.to_json()}
    if encoder is not None:
        with tempfile.TemporaryDirectory() as tmpdir:
            enc_path = Path(tmpdir) / "encoder.keras"
            encoder.save(enc_path)
            entries[ENCODER_ENTRY] = enc_path.read_bytes()
    return save_keras_archive(path, decoder, entries, inference=metadata if inference else None)


class KerasDecoder:
    """A loaded model file served through a fixed-signature ``tf.function``.

    Thread: ``decode`` from the decode worker (or a CLI command); never the audio callback.
    """

    def __init__(self, model: Any, metadata: ModelMetadata, encoder: Any | None = None,
                 path: Path | None = None) -> None:
        import tensorflow as tf

        self.model = model
        self.metadata = metadata
        self.encoder = encoder
        self.path = path
        self.family = metadata.family
        self.latent_dim = metadata.latent_dim
        self.sample_rate = metadata.sample_rate
        self.length = metadata.length
        self._lo = np.asarray(metadata.latent_lo, dtype=np.float32)
        self._hi = np.asarray(metadata.latent_hi, dtype=np.float32)
        spec = tf.TensorSpec(shape=(None, self.latent_dim), dtype=tf.float32)
        self._decode_fn = tf.function(lambda z: model(z, training=False), input_signature=[spec],
                                      reduce_retracing=True)

    def decode(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float32)
        if z.ndim == 1:
            z = z[None, :]
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (B, {self.latent_dim}), got {z.shape}")
        z = to_network(z, self._lo, self._hi, self.metadata.knob_map)
        out = np.asarray(self._decode_fn(z), dtype=np.float32)
        out = out.reshape(out.shape[0], -1)
        if out.shape[1] != self.length:
            raise ModelFileError(
                f"{self.family} decoder produced {out.shape[1]} samples, expected {self.length}"
            )
        return np.clip(out, -1.0, 1.0)

    def latent_range(self) -> tuple[np.ndarray, np.ndarray]:
        return self._lo.copy(), self._hi.copy()

    def encode(self, audio: np.ndarray) -> np.ndarray:
        """(B, length) -> (B, latent_dim) latent means; only for families saved with an encoder."""
        if self.encoder is None:
            raise ModelFileError(f"{self.family} model has no encoder")
        audio = np.asarray(audio, dtype=np.float32)
        out = self.encoder(audio, training=False)
        if isinstance(out, list | tuple):  # VAE encoders return (mean, log_var, ...)
            out = out[0]
        return from_network(np.asarray(out, dtype=np.float32), self._lo, self._hi,
                            self.metadata.knob_map)

    def warm_up(self) -> None:
        """Trace and run once so the first real decode is not slowed by graph building."""
        self.decode(np.zeros((1, self.latent_dim), dtype=np.float32))
