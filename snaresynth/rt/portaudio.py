"""A PortAudio output stream whose callback is compiled, so the audio thread never waits for
Python's GIL (the JACK side of the same idea is ``rt/jack.py``).

Thread: the callback runs in PortAudio's audio thread; ``CompiledStream``'s methods on one
control thread. The stream is opened through python-sounddevice's own PortAudio binding (its
cffi ``_lib``: the same library, device list and error texts) with a numba ``cfunc`` as the
``PaStreamCallback``. The callback mixes one block with ``rt/mixer.py``'s
``render_from_table`` into two scratch arrays, interleaves them into PortAudio's float32
buffer, and hands it PortAudio's output-underflow flag (counted in ``Mixer.underflows``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import carray, cfunc, types

from snaresynth.errors import DeviceError
from snaresynth.rt.mixer import Mixer, render_from_table
from snaresynth.rt.primitives import as_pointer

P_MIXER, P_LEFT, P_RIGHT, P_MAX_BLOCK = range(4)  # table slots
P_SIZE = 4
PA_OUTPUT_UNDERFLOW = 0x4  # paOutputUnderflow
PA_CONTINUE, PA_ABORT = 0, 2


@cfunc(types.int32(types.voidptr, types.voidptr, types.uint64, types.voidptr, types.uint64,
                   types.voidptr), cache=True, nopython=True)
def _stream_callback(input_buffer, output, frames, time_info, status_flags, arg):
    """Thread: PortAudio's. One block of the mix, interleaved into ``output``."""
    tab = carray(arg, (P_SIZE,), np.int64)
    out = carray(output, (frames * 2,), np.float32)
    if frames > tab[P_MAX_BLOCK]:  # never with a fixed block size; silence rather than overrun
        for i in range(frames * 2):
            out[i] = 0.0
        return PA_CONTINUE
    left = carray(as_pointer(tab[P_LEFT]), (frames,), np.float32)
    right = carray(as_pointer(tab[P_RIGHT]), (frames,), np.float32)
    render_from_table(tab[P_MIXER], left, right, frames, np.int64(-1),
                      (status_flags & PA_OUTPUT_UNDERFLOW) != 0, np.int64(0))
    for i in range(frames):
        out[2 * i] = left[i]
        out[2 * i + 1] = right[i]
    return PA_CONTINUE


class CompiledStream:
    """A started PortAudio output stream (stereo float32, fixed block) playing ``mixer``.

    Thread: open/close from one control thread; the callback runs in PortAudio's thread.
    """

    def __init__(self, sd: Any, device: int, rate: int, blocksize: int, mixer: Mixer) -> None:
        ffi, lib = sd._ffi, sd._lib
        self._sd = sd
        self._left = np.zeros(max(blocksize, 8192), dtype=np.float32)
        self._right = np.zeros_like(self._left)
        self._table = np.zeros(P_SIZE, dtype=np.int64)
        self._table[P_MIXER] = mixer.table.ctypes.data
        self._table[P_LEFT] = self._left.ctypes.data
        self._table[P_RIGHT] = self._right.ctypes.data
        self._table[P_MAX_BLOCK] = self._left.shape[0]
        self.mixer = mixer  # the callback reads its arrays: alive as long as the stream
        info = sd.query_devices(device, kind="output")
        params = ffi.new("PaStreamParameters *")
        params.device = device
        params.channelCount = 2
        params.sampleFormat = sd._sampleformats["float32"]
        params.suggestedLatency = info["default_low_output_latency"]
        params.hostApiSpecificStreamInfo = ffi.NULL
        stream = ffi.new("PaStream **")
        self._check(lib.Pa_OpenStream(
            stream, ffi.NULL, params, float(rate), blocksize, 0,
            ffi.cast("PaStreamCallback *", _stream_callback.address),
            ffi.cast("void *", self._table.ctypes.data)), "open")
        self._stream = stream[0]
        try:
            self._check(lib.Pa_StartStream(self._stream), "start")
        except DeviceError:
            lib.Pa_CloseStream(self._stream)
            raise

    def _check(self, err: int, what: str) -> None:
        if err < 0:
            text = self._sd._ffi.string(self._sd._lib.Pa_GetErrorText(err)).decode()
            raise DeviceError(f"cannot {what} the audio output stream: {text} ({err})")

    @property
    def active(self) -> bool:
        return self._stream is not None and self._sd._lib.Pa_IsStreamActive(self._stream) == 1

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            self._sd._lib.Pa_StopStream(stream)
            self._sd._lib.Pa_CloseStream(stream)
