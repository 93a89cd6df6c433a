"""Test and benchmark harness (like ``numpy.testing``): installed with the package so tests/ and
bench/ import it by name, with no ``sys.path`` edits.

- ``jackd``: a private JACK server (dummy driver) to start, kill, restart and read the log of;
- ``daemon``: ``snaresynth serve`` as a subprocess, ready line and OSC port parsed;
- ``osc``: one OSC client (send, bundles, wait for a reply by address);
- ``probe``: a compiled JACK frame probe (MIDI out at exact frames, onsets heard on JACK's clock);
- ``midi``: raw-byte JACK MIDI senders (in this process or in a child);
- ``synths``: synths under test on one JACK server (the daemon, FluidSynth);
- ``signals``: synthetic snares, onsets and the shape of a hit (pure numpy);
- ``procs``: waiting, stopping processes, their memory and CPU time from /proc;
- ``archives``: hostile model archives made on the fly (a zip bomb, members lying about their
  size, too many members), small on disk.

The daemon never imports this package (it may import the daemon). Importing the package itself
loads nothing heavy: each module imports JACK, numba or python-osc only where it needs them.
"""

from __future__ import annotations


class HarnessError(AssertionError):
    """Something the harness waited for did not happen: an AssertionError, so a test that waited
    in vain fails (not errors), and a benchmark stops with the reason."""
