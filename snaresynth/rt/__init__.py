"""What the audio thread runs: compiled kernels, the mixer's shared tables, the device callbacks.

Nothing here waits on a lock held by another thread, allocates in a callback, logs or touches the
disk; Python code in this folder runs on control threads and only prepares memory for the kernels.
Each module's docstring says which thread runs it; why it is built this way: docs/performance.md.
"""

from snaresynth.rt.kernel_cache import use_versioned_cache

use_versioned_cache()  # before any module of this folder defines a cached kernel
