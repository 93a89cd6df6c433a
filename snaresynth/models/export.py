"""Keras decoder -> its inference form (``inference.py``), checked against Keras before use.

``train`` calls ``inference_entries`` when it writes a model file; ``snaresynth export FILE``
(``export_file``) adds the form to a file written before, rewriting it atomically. Each Keras
layer of the decoder's chain becomes one op; a layer kind with no op is an ``ExportError``
naming it. Every export decodes random latents with both and refuses a form whose output differs
from Keras by more than ``TOLERANCE`` (max abs), so a served model sounds as it was trained.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from snaresynth.atomic import atomic_path
from snaresynth.errors import ModelFileError
from snaresynth.models.archive import open_archive
from snaresynth.models.base import METADATA_ENTRY, ModelMetadata, read_metadata
from snaresynth.models.inference import (
    ACTIVATIONS,
    ARRAYS_ENTRY,
    FORMAT,
    PROGRAM_ENTRY,
    InferenceDecoder,
    program_from_entries,
    source_digest,
)
from snaresynth.models.knobmap import check_knobs

log = logging.getLogger(__name__)

TOLERANCE = 1e-4
"""Largest |inference - Keras| sample difference an export accepts (on CHECK_LATENTS latents)."""
CHECK_LATENTS = 256


class ExportError(ModelFileError):
    """The decoder has a layer the inference form cannot run, or the form does not match."""


def _activation_name(layer: Any, config: dict[str, Any]) -> str:
    name = config.get("activation", "linear")
    if isinstance(name, dict):  # a serialised function object: only built-ins are known
        name = name.get("config", name.get("class_name"))
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ExportError(f"layer {layer.name!r}: activation {name!r} has no inference op")
    return name


def _weights(layer: Any) -> dict[str, np.ndarray]:
    return {w.path.split("/")[-1]: np.asarray(w.numpy(), dtype=np.float32)
            for w in layer.weights}


def _chain(model: Any) -> list[Any]:
    """The decoder's layers in order; refuses anything but a single-input chain."""
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    previous = None
    for layer in layers:
        inputs = layer.input
        if isinstance(inputs, list | tuple):
            raise ExportError(f"layer {layer.name!r} has {len(inputs)} inputs: the inference "
                              "form runs chains of single-input layers")
        source = inputs._keras_history[0]
        if previous is not None and source is not previous:
            raise ExportError(f"layer {layer.name!r} does not follow {previous.name!r}: the "
                              "inference form runs chains of single-input layers")
        previous = layer
    return layers


def _layer_op(layer: Any, index: int, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    kind = type(layer).__name__
    config = layer.get_config()
    weights = _weights(layer)

    def keep(*names: str) -> None:
        for name in names:
            if name in weights:
                arrays[f"{index}.{name}"] = weights[name]

    if kind == "Dense":
        keep("kernel", "bias")
        return {"op": "dense", "activation": _activation_name(layer, config), "layer": layer.name}
    if kind == "LatentAffine":
        keep("kernel", "bias")
        return {"op": "dense", "activation": "linear", "layer": layer.name}
    if kind in ("Conv1D", "Conv1DTranspose"):
        strides = tuple(config["strides"])
        dilation = tuple(config["dilation_rate"])
        if config["padding"] != "same" or dilation != (1,) or config.get("groups", 1) != 1 \
                or config.get("data_format", "channels_last") != "channels_last":
            raise ExportError(f"layer {layer.name!r}: only 'same', channels-last, undilated, "
                              f"ungrouped convolutions have an inference op ({config})")
        if kind == "Conv1D" and strides != (1,):
            raise ExportError(f"layer {layer.name!r}: strided Conv1D has no inference op")
        if kind == "Conv1DTranspose" and config.get("output_padding") not in (None, [None]):
            raise ExportError(f"layer {layer.name!r}: output_padding has no inference op")
        keep("kernel", "bias")
        op = "conv1d" if kind == "Conv1D" else "conv1d_transpose"
        return {"op": op, "strides": int(strides[0]), "padding": "same",
                "activation": _activation_name(layer, config), "layer": layer.name}
    if kind == "UpSampling1D":
        return {"op": "upsample_nearest", "size": int(config["size"]), "layer": layer.name}
    if kind == "Reshape":
        return {"op": "reshape", "shape": [int(v) for v in config["target_shape"]],
                "layer": layer.name}
    if kind == "Flatten":
        out = layer.output.shape[1:]
        return {"op": "reshape", "shape": [int(np.prod(out))], "layer": layer.name}
    if kind == "Activation":
        return {"op": "activation", "activation": _activation_name(layer, config),
                "layer": layer.name}
    if kind == "LeakyReLU":
        return {"op": "activation", "activation": "leaky_relu", "layer": layer.name,
                "negative_slope": float(config.get("negative_slope", 0.3))}
    if kind == "ReLU" and not config.get("max_value") and not config.get("threshold") \
            and not config.get("negative_slope"):
        return {"op": "activation", "activation": "relu", "layer": layer.name}
    if kind == "SnareSynth":
        return _synth_op(layer, index, arrays)
    raise ExportError(f"layer {layer.name!r} ({kind}) has no inference op")


def _synth_op(layer: Any, index: int, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    import tensorflow as tf

    spec = layer.spec
    names = list(layer._noise_names)
    for name, weight in zip(names, layer.noise, strict=True):
        arrays[f"{index}.{name}"] = np.asarray(weight.numpy(), dtype=np.float32)
    arrays[f"{index}.bands"] = np.asarray(layer._bands, dtype=np.float32)
    window_fn = tf.signal.inverse_stft_window_fn(spec.hop)
    arrays[f"{index}.window"] = np.asarray(window_fn(spec.frame_length, dtype=tf.float32))
    return {"op": "snare_synth", "spec": spec.to_dict(), "arrays": [*names, "bands", "window"],
            "layer": layer.name}


def build_program(model: Any) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Keras decoder -> (ops, arrays) of its inference form."""
    ops: list[dict[str, Any]] = []
    arrays: dict[str, np.ndarray] = {}
    for index, layer in enumerate(_chain(model)):
        ops.append(_layer_op(layer, index, arrays))
    return ops, arrays


def check_latents(metadata: ModelMetadata, count: int = CHECK_LATENTS,
                  seed: int = 0) -> np.ndarray:
    """Random latents over the knob range and a little beyond (where a knob's edge decodes)."""
    rng = np.random.default_rng(seed)
    lo = np.asarray(metadata.latent_lo, np.float32)
    hi = np.asarray(metadata.latent_hi, np.float32)
    unit = rng.uniform(-0.1, 1.1, size=(count, metadata.latent_dim)).astype(np.float32)
    return lo + unit * (hi - lo)


def max_difference(reference: Any, candidate: Any, z: np.ndarray, batch: int = 32) -> float:
    """Largest |a - b| over every sample of both decoders' outputs for ``z``."""
    worst = 0.0
    for start in range(0, len(z), batch):
        a = reference.decode(z[start:start + batch])
        b = candidate.decode(z[start:start + batch])
        worst = max(worst, float(np.max(np.abs(a - b))))
    return worst


def inference_entries(model: Any, metadata: ModelMetadata, source_sha256: str | None = None,
                      check: int = CHECK_LATENTS, tolerance: float = TOLERANCE
                      ) -> dict[str, bytes]:
    """The two zip entries of ``model``'s inference form, after checking it against Keras."""
    from snaresynth.models.base import KerasDecoder

    ops, arrays = build_program(model)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    info: dict[str, Any] = {"format": FORMAT, "runtime": "numpy", "ops": ops,
                            "source_sha256": source_sha256}
    program, _ = program_from_entries(json.dumps(info), buffer.getvalue(), source="export")
    candidate = InferenceDecoder(program, metadata)
    worst = max_difference(KerasDecoder(model, metadata), candidate,
                           check_latents(metadata, check)) if check else float("nan")
    if check and not worst <= tolerance:
        raise ExportError(f"the inference form differs from the Keras decoder by {worst:.3g} "
                          f"(max abs over {check} latents; at most {tolerance:g} is accepted)")
    info["check"] = {"latents": check, "max_abs": worst, "tolerance": tolerance}
    log.info("inference form: %d ops, %d arrays, max |numpy - keras| = %.3g over %d latents",
             len(ops), len(arrays), worst, check)
    return {PROGRAM_ENTRY: json.dumps(info, indent=1).encode(), ARRAYS_ENTRY: buffer.getvalue()}


def with_knobs(metadata: ModelMetadata, knob_map: str | None = None,
               knob_scale: float | None = None) -> ModelMetadata:
    """``metadata`` with another knob map and/or its knob range scaled about its centre.

    The first change keeps the range the model was written with in ``training["knob_range"]``,
    so a scale is always visible against the original.
    """
    try:
        check_knobs(knob_map, knob_scale)
    except ValueError as exc:
        raise ModelFileError(str(exc)) from exc
    lo = np.asarray(metadata.latent_lo, np.float64)
    hi = np.asarray(metadata.latent_hi, np.float64)
    training = dict(metadata.training)
    training.setdefault("knob_range", {"lo": metadata.latent_lo, "hi": metadata.latent_hi,
                                       "knob_map": metadata.knob_map})
    if knob_scale is not None:
        centre, half = (lo + hi) / 2.0, (hi - lo) / 2.0
        lo, hi = centre - knob_scale * half, centre + knob_scale * half
    return dataclasses.replace(
        metadata, latent_lo=[round(float(v), 6) for v in lo],
        latent_hi=[round(float(v), 6) for v in hi], training=training,
        knob_map=metadata.knob_map if knob_map is None else knob_map)


def export_file(path: str | Path, check: int = CHECK_LATENTS, tolerance: float = TOLERANCE,
                knob_map: str | None = None, knob_scale: float | None = None
                ) -> dict[str, Any]:
    """Write (or rewrite) the inference form into an existing model file, atomically; with
    ``knob_map`` / ``knob_scale``, the metadata's knob space too (``with_knobs``)."""
    from snaresynth.models.registry import load_model_file

    path = Path(path)
    keras_decoder = load_model_file(path)
    with open_archive(path) as archive:
        digest = source_digest(archive)
    metadata = read_metadata(path)
    entries = inference_entries(keras_decoder.model, metadata, digest, check, tolerance)
    if knob_map is not None or knob_scale is not None:
        entries[METADATA_ENTRY] = with_knobs(metadata, knob_map, knob_scale).to_json().encode()
    with atomic_path(path) as tmp:
        with open_archive(path) as zin, zipfile.ZipFile(tmp, "w") as zout:
            for item in zin.infolist():
                if item.filename not in entries:
                    with zin.open(item) as src, zout.open(item, "w") as dst:
                        shutil.copyfileobj(src, dst)
            for name, data in entries.items():
                zout.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data,
                              compress_type=zipfile.ZIP_STORED)
        shutil.copymode(path, tmp)  # the file keeps its permissions
    return json.loads(entries[PROGRAM_ENTRY])["check"]
