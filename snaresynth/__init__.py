"""snaresynth: a neural snare-drum instrument served over MIDI and OSC.

Map of the package (see docs/ and DESIGN.md for the long form):

- ``engine.Engine`` is the one object the outside world talks to.
- ``decode`` runs the model off the audio thread; ``voices`` mixes inside the callback.
- ``models`` holds the Decoder contract, the registry and every model family.
- ``io`` translates audio devices, MIDI and OSC into Engine calls and nothing else.
- ``data`` builds training corpora; ``presets``/``mapping`` hold the user's settings.

Importing this package is cheap: TensorFlow is imported only where a model is built or loaded.
"""

from snaresynth.errors import SnareSynthError

__version__ = "0.1.0"
__all__ = ["SnareSynthError", "__version__"]
