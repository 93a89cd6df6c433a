"""The decoder's inference form: a list of numpy operations read from the model file.

Why: serving needs one function from a latent vector to 16384 samples, and every family's
decoder is a chain of a few layer kinds (dense, 1-D convolution, transposed convolution,
nearest-neighbour upsampling, the snare synthesiser). Numpy runs that chain exactly (within
float32 rounding of Keras) in a fraction of TensorFlow's start-up time and memory.

File format (written by ``export.py``, next to the Keras model in the same zip):

* ``inference.json``: ``{"format": 1, "runtime": "numpy", "ops": [...], "source_sha256": ...,
  "check": {...}}``; each op is a dict with an ``"op"`` name, its settings, and the names of its
  arrays in the npz;
* ``inference.npz``: the arrays (float32), read with ``allow_pickle=False``: data, never code.

``source_sha256`` is the digest of the Keras model's entries the form was exported from; a file
whose Keras part changed since is refused ("run snaresynth export"). Nothing here imports
TensorFlow or Keras.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from snaresynth.errors import ModelFileError
from snaresynth.models.archive import open_archive, open_bytes, read_member
from snaresynth.models.base import ModelMetadata, read_metadata
from snaresynth.models.knobmap import to_network
from snaresynth.models.synth_numpy import NumpySynth
from snaresynth.models.synth_spec import SynthSpec

PROGRAM_ENTRY = "inference.json"
ARRAYS_ENTRY = "inference.npz"
FORMAT = 1
SOURCE_ENTRIES = ("config.json", "model.weights.h5")
"""The Keras archive's entries the inference form is derived from (their digest is stored)."""

F32 = np.float32
EXPORT_HINT = "run `snaresynth export {path}` once (needs: pip install snaresynth[train])"


# --- activations (Keras names) -------------------------------------------------------------------

def _erf(x: np.ndarray) -> np.ndarray:
    """erf in float64 to ~1e-7 absolute (Abramowitz & Stegun 7.1.26): below float32's step."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                                                                           + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def _gelu(x: np.ndarray) -> np.ndarray:
    x64 = x.astype(np.float64)
    return (0.5 * x64 * (1.0 + _erf(x64 / np.sqrt(2.0)))).astype(F32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return F32(1.0) / (F32(1.0) + np.exp(-x))


ACTIVATIONS: dict[str, Any] = {
    "linear": lambda x, op: x,
    "relu": lambda x, op: np.maximum(x, F32(0.0)),
    "leaky_relu": lambda x, op: np.where(x >= 0, x, F32(op.get("negative_slope", 0.2)) * x),
    "tanh": lambda x, op: np.tanh(x),
    "sigmoid": lambda x, op: _sigmoid(x),
    "gelu": lambda x, op: _gelu(x),
    "elu": lambda x, op: np.where(x > 0, x, np.expm1(np.minimum(x, F32(0.0)))),
    "softplus": lambda x, op: np.logaddexp(F32(0.0), x),
    "silu": lambda x, op: x * _sigmoid(x),
}
ACTIVATIONS["swish"] = ACTIVATIONS["silu"]


def activate(x: np.ndarray, name: str, op: dict[str, Any]) -> np.ndarray:
    return np.asarray(ACTIVATIONS[name](x, op), dtype=F32)


# --- 1-D convolutions ("same" padding, channels last, as TensorFlow pads) -------------------------

def _shift_add(y: np.ndarray, taps: np.ndarray, shifts: list[int], length: int) -> np.ndarray:
    """y[:, q] += taps[:, q + shift_j, j] for every tap j where q + shift_j is inside 0..length.

    ``taps``: (B, L, J, ...) per-tap products; ``y``: (B, length, ...)."""
    for j, d in enumerate(shifts):
        lo, hi = max(0, -d), min(length, taps.shape[1] - d)
        if hi > lo:
            y[:, lo:hi] += taps[:, lo + d:hi + d, j]
    return y


class Conv1D:
    """Keras Conv1D, stride 1, "same": y[n] = sum_k x[n + k - (K - 1) // 2] @ W[k]."""

    def __init__(self, kernel: np.ndarray, bias: np.ndarray | None, upsample: int = 1) -> None:
        k, cin, cout = kernel.shape
        self.cin, self.cout, self.upsample = cin, cout, upsample
        self.bias = None if bias is None else bias.astype(F32)
        pad = (k - 1) // 2
        if upsample == 1:
            self.shifts = [i - pad for i in range(k)]
            self.phases = 1
            stacked = kernel[:, :, :, None]  # (J=K, Cin, Cout, phases)
        else:
            # nearest-neighbour upsampling by s, then this convolution, as s polyphase filters
            # on the input: output s*q + r reads input q + (r + k - pad) // s
            s = upsample
            js = [(r + i - pad) // s for r in range(s) for i in range(k)]
            self.shifts = list(range(min(js), max(js) + 1))
            stacked = np.zeros((len(self.shifts), cin, cout, s), np.float64)
            for r in range(s):
                for i in range(k):
                    stacked[(r + i - pad) // s - self.shifts[0], :, :, r] += kernel[i]
            self.phases = s
        # one matrix product per layer: (B, L, Cin) @ (Cin, J * phases * Cout)
        self.weights = np.ascontiguousarray(
            stacked.transpose(1, 0, 3, 2).reshape(cin, -1)).astype(F32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        batch, length, _ = x.shape
        taps = (x @ self.weights).reshape(batch, length, len(self.shifts), self.phases, self.cout)
        y = np.zeros((batch, length, self.phases, self.cout), F32)
        _shift_add(y, taps, self.shifts, length)
        y = y.reshape(batch, length * self.phases, self.cout)
        return y if self.bias is None else y + self.bias


class Conv1DTranspose:
    """Keras Conv1DTranspose, "same", stride s: input i, tap k -> output s*i + k - (K - s) // 2."""

    def __init__(self, kernel: np.ndarray, bias: np.ndarray | None, stride: int) -> None:
        k, cout, cin = kernel.shape  # Keras stores (K, Cout, Cin)
        self.stride, self.cout = stride, cout
        self.bias = None if bias is None else bias.astype(F32)
        pad = max(k - stride, 0) // 2
        self.place = [divmod(i - pad, stride) for i in range(k)]  # (input offset, phase)
        self.weights = np.ascontiguousarray(kernel.transpose(2, 0, 1).reshape(cin, -1)).astype(F32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        batch, length, _ = x.shape
        taps = (x @ self.weights).reshape(batch, length, len(self.place), self.cout)
        y = np.zeros((batch, length, self.stride, self.cout), F32)
        for i, (a, r) in enumerate(self.place):  # output q (phase r) reads input q - a
            lo, hi = max(0, a), min(length, length + a)
            if hi > lo:
                y[:, lo:hi, r] += taps[:, lo - a:hi - a, i]
        y = y.reshape(batch, length * self.stride, self.cout)
        return y if self.bias is None else y + self.bias


# --- the program ---------------------------------------------------------------------------------

class Program:
    """The op list, bound to its arrays; ``run`` maps (B, latent_dim) to the decoder's output."""

    def __init__(self, ops: list[dict[str, Any]], arrays: dict[str, np.ndarray]) -> None:
        self.steps: list[Any] = []
        pending_upsample = 0
        for index, op in enumerate(ops):
            kind = op.get("op")
            get = _getter(arrays, index, kind)
            if kind == "upsample_nearest" and index + 1 < len(ops) \
                    and ops[index + 1].get("op") == "conv1d":
                pending_upsample = int(op["size"])  # fused into the convolution that follows
                continue
            if kind == "dense":
                kernel, bias = get("kernel"), get("bias", optional=True)
                self.steps.append(_dense(kernel, bias, op))
            elif kind == "conv1d":
                if int(op.get("strides", 1)) != 1 or op.get("padding", "same") != "same":
                    raise ModelFileError(f"conv1d op {index}: only stride 1, 'same' padding")
                conv = Conv1D(get("kernel"), get("bias", optional=True), pending_upsample or 1)
                self.steps.append(_then_activate(conv, op))
                pending_upsample = 0
            elif kind == "conv1d_transpose":
                if op.get("padding", "same") != "same":
                    raise ModelFileError(f"conv1d_transpose op {index}: only 'same' padding")
                conv = Conv1DTranspose(get("kernel"), get("bias", optional=True),
                                       int(op["strides"]))
                self.steps.append(_then_activate(conv, op))
            elif kind == "upsample_nearest":
                size = int(op["size"])
                self.steps.append(lambda x, s=size: np.repeat(x, s, axis=1))
            elif kind == "reshape":
                shape = tuple(int(v) for v in op["shape"])
                self.steps.append(lambda x, s=shape: x.reshape((x.shape[0], *s)))
            elif kind == "activation":
                self.steps.append(lambda x, o=op: activate(x, o["activation"], o))
            elif kind == "snare_synth":
                spec = SynthSpec.from_dict(op["spec"])
                synth = NumpySynth(spec, {name: get(name) for name in op["arrays"]})
                self.steps.append(synth)
            else:
                raise ModelFileError(f"unknown inference op {kind!r} (op {index})")
            if kind in ("dense", "conv1d", "conv1d_transpose") and \
                    op.get("activation", "linear") not in ACTIVATIONS:
                raise ModelFileError(f"unknown activation {op['activation']!r} (op {index})")
            if kind == "activation" and op.get("activation") not in ACTIVATIONS:
                raise ModelFileError(f"unknown activation {op.get('activation')!r} (op {index})")

    def run(self, z: np.ndarray) -> np.ndarray:
        x = np.asarray(z, F32)
        for step in self.steps:
            x = step(x)
        return x


def _getter(arrays: dict[str, np.ndarray], index: int, kind: Any) -> Any:
    def get(name: str, optional: bool = False) -> np.ndarray | None:
        key = f"{index}.{name}"
        if key not in arrays:
            if optional:
                return None
            raise ModelFileError(f"inference op {index} ({kind}) lacks its array {name!r}")
        return arrays[key]
    return get


def _dense(kernel: np.ndarray, bias: np.ndarray | None, op: dict[str, Any]) -> Any:
    kernel = np.ascontiguousarray(kernel, F32)
    bias = None if bias is None else np.asarray(bias, F32)
    name = op.get("activation", "linear")

    def dense(x: np.ndarray) -> np.ndarray:
        y = x @ kernel
        if bias is not None:
            y = y + bias
        return activate(y, name, op)
    return dense


def _then_activate(layer: Any, op: dict[str, Any]) -> Any:
    name = op.get("activation", "linear")
    if name == "linear":
        return layer
    return lambda x: activate(layer(x), name, op)


# --- the Decoder ---------------------------------------------------------------------------------

class InferenceDecoder:
    """A model file's inference form as a ``Decoder`` (numpy only).

    Thread: ``decode`` from the decode worker or a CLI command; never the audio callback.
    """

    runtime = "numpy"

    def __init__(self, program: Program, metadata: ModelMetadata, path: Path | None = None,
                 info: dict[str, Any] | None = None) -> None:
        self.program = program
        self.metadata = metadata
        self.path = path
        self.info = info or {}
        self.family = metadata.family
        self.latent_dim = metadata.latent_dim
        self.sample_rate = metadata.sample_rate
        self.length = metadata.length
        self._lo = np.asarray(metadata.latent_lo, dtype=F32)
        self._hi = np.asarray(metadata.latent_hi, dtype=F32)

    def decode(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=F32)
        if z.ndim == 1:
            z = z[None, :]
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (B, {self.latent_dim}), got {z.shape}")
        z = to_network(z, self._lo, self._hi, self.metadata.knob_map)
        out = self.program.run(z).reshape(z.shape[0], -1)
        if out.shape[1] != self.length:
            raise ModelFileError(
                f"{self.family} decoder produced {out.shape[1]} samples, expected {self.length}")
        return np.clip(out, -1.0, 1.0).astype(F32, copy=False)

    def latent_range(self) -> tuple[np.ndarray, np.ndarray]:
        return self._lo.copy(), self._hi.copy()

    def warm_up(self) -> None:
        """One decode, so the first real one does not pay for numpy's first-call set-up."""
        self.decode(np.zeros((1, self.latent_dim), dtype=F32))


def source_digest(archive: zipfile.ZipFile) -> str:
    """Digest of the Keras entries an inference form is exported from."""
    digest = hashlib.sha256()
    for name in SOURCE_ENTRIES:
        try:
            digest.update(read_member(archive, name))
        except KeyError:
            digest.update(b"-")
    return digest.hexdigest()


def has_inference(path: str | Path) -> bool:
    try:
        with open_archive(path) as archive:
            return PROGRAM_ENTRY in archive.namelist()
    except (OSError, zipfile.BadZipFile, ModelFileError):  # the Keras path names the fault
        return False


def program_from_entries(program_text: str | bytes, arrays_data: bytes,
                         source: str = "model") -> tuple[Program, dict[str, Any]]:
    try:
        info = json.loads(program_text)
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{source}: {PROGRAM_ENTRY} is not valid JSON: {exc}") from exc
    if not isinstance(info, dict) or not isinstance(info.get("ops"), list):
        raise ModelFileError(f"{source}: {PROGRAM_ENTRY} needs an object with an op list")
    if info.get("format") != FORMAT or info.get("runtime") != "numpy":
        raise ModelFileError(f"{source}: inference form {info.get('runtime')!r} format "
                             f"{info.get('format')!r} is not supported (numpy format {FORMAT})")
    try:
        with open_bytes(arrays_data, f"{source}: {ARRAYS_ENTRY}"):
            pass  # its members' sizes, before numpy inflates them
        with np.load(io.BytesIO(arrays_data), allow_pickle=False) as npz:
            arrays = {name: np.asarray(npz[name]) for name in npz.files}
    except (ValueError, OSError, MemoryError, zipfile.BadZipFile) as exc:
        raise ModelFileError(f"{source}: {ARRAYS_ENTRY} is unreadable: {exc}") from exc
    try:
        return Program(info["ops"], arrays), info
    except ModelFileError as exc:
        raise ModelFileError(f"{source}: {exc}") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{source}: bad inference op: {type(exc).__name__}: {exc}") from exc


def load_inference(path: str | Path) -> InferenceDecoder:
    """Load a model file's inference form; every failure is a ``ModelFileError`` naming it."""
    path = Path(path)
    metadata = read_metadata(path)
    try:
        with open_archive(path) as archive:
            names = set(archive.namelist())
            if PROGRAM_ENTRY not in names or ARRAYS_ENTRY not in names:
                raise ModelFileError(f"{path}: has no inference form; "
                                     + EXPORT_HINT.format(path=path))
            program_text = read_member(archive, PROGRAM_ENTRY)
            arrays_data = read_member(archive, ARRAYS_ENTRY)
            digest = source_digest(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFileError(f"{path}: corrupt or truncated model file: {exc}") from exc
    program, info = program_from_entries(program_text, arrays_data, source=str(path))
    if info.get("source_sha256") not in (None, digest):
        raise ModelFileError(f"{path}: its Keras model changed after the inference form was "
                             "exported; " + EXPORT_HINT.format(path=path))
    return InferenceDecoder(program, metadata, path=path, info=info)
