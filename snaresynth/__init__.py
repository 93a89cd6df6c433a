"""snaresynth: a neural snare-drum instrument served over MIDI and OSC.

The package, by the thread that runs each part (docs/architecture.md has the long form; the
import rules between these parts are checked by tests/unit/test_layout.py):

- ``serve``: assembles the daemon and runs it until a signal; ``cli``: every command's entry.
- ``rt/``: what the audio thread runs: compiled kernels (the mixer, rings, the note table,
  the clock) and the JACK and PortAudio callbacks.
- ``engine/``: the one facade where the control threads, the decode worker and ``rt/`` meet.
- ``control/``: the instrument's state as plain data (parameters, kits, presets, MIDI mapping
  and learn, undo history); no threads.
- ``decode/``: turns latent points into playback buffers off the audio thread (a worker thread
  or a child process).
- ``io/``: OSC, MIDI, audio devices and their supervisor, turned into engine calls.
- ``models/``: the ``Decoder`` contract, the registry of model families, training.
- ``data/``: building training corpora; ``analysis/``: offline tools (eval, the listener,
  explore, render); ``bundled/``: the shipped model and listener files.
- ``testing/``: the harness of tests/e2e and bench (jackd, the daemon, OSC and MIDI clients,
  a frame probe); nothing in the package imports it.
- ``dsp``, ``errors``, ``atomic``, ``config``: leaves that the parts above share.

Importing this package is cheap: TensorFlow is imported only where a model is built or loaded.
"""

from snaresynth.errors import SnareSynthError

__version__ = "0.1.0"
__all__ = ["SnareSynthError", "__version__"]
