"""Keep the daemon's memory in RAM, so the audio thread never waits for the disk.

A page the kernel has evicted comes back by a page fault on first touch: in JACK's thread that
is a whole lost cycle. Anonymous memory (buffers, the compiled kernels) is evicted only to swap,
but the code of shared libraries the callbacks run (libjack's) is file-backed, and kernels that
reclaim proactively evict it while it is cold (this machine runs DAMON with a ``pageout``
scheme). ``mlockall`` with ``MCL_ONFAULT`` locks every page once it has been touched, so what the
callbacks used stays resident, without faulting in untouched memory (thread stacks would
otherwise add 8 MiB each). JACK itself and DAWs like Ardour lock their memory the same way.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT = 1, 2, 4


def lock_memory() -> str | None:
    """Lock present and future pages as they are touched. None when done, else why not (the
    daemon runs on without it)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == 0:
        return None
    err = ctypes.get_errno()
    hint = (" (raise the memlock limit, e.g. the jackd2 package's audio group: "
            "/etc/security/limits.d/audio.conf)" if err in (1, 12) else "")
    return f"cannot lock memory: {os.strerror(err)}{hint}"
