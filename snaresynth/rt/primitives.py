"""What compiled real-time code needs beyond numpy: a pointer from an address, a memory fence,
and CLOCK_MONOTONIC.

Thread: whichever runs the compiled code that uses them (the audio kernels, the JACK and
PortAudio callbacks: all without Python's GIL); ``as_pointer`` and ``memory_fence`` exist only
inside compiled code.
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

CLOCK_MONOTONIC = 1  # Linux; the clock of Python's time.monotonic()
_clock_gettime = types.ExternalFunction("clock_gettime", types.int32(types.int32, types.voidptr))


@intrinsic
def as_pointer(typingctx, address):  # noqa: ARG001  (numba's intrinsic signature)
    """An int64 address as a ``void *`` for ``numba.carray`` (compiled code only)."""
    sig = types.voidptr(address)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return sig, codegen


@intrinsic
def memory_fence(typingctx):  # noqa: ARG001
    """A full fence (compiled code only): no load or store moves across it, in the compiler
    or in the CPU."""
    def codegen(context, builder, signature, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.void(), codegen


@njit(cache=True, nogil=True)
def now_ns(timespec_address):
    """CLOCK_MONOTONIC in ns, through a 2 x int64 scratch ``struct timespec``."""
    _clock_gettime(CLOCK_MONOTONIC, as_pointer(timespec_address))
    ts = carray(as_pointer(timespec_address), (2,), np.int64)
    return ts[0] * 1_000_000_000 + ts[1]
