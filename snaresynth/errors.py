"""One exception family, so callers can catch everything snaresynth raises on purpose."""


class SnareSynthError(Exception):
    """Base class; library errors (Keras, PortAudio, rtmidi) are wrapped with ``raise ... from``."""


class ModelFileError(SnareSynthError):
    """A model file is missing, corrupt, of the wrong family or unsafe to load."""


class PresetError(SnareSynthError):
    """A preset or kit file is unreadable or has a missing, unknown or mistyped field."""


class CorpusError(SnareSynthError):
    """A training corpus is missing, empty or inconsistent."""


class DeviceError(SnareSynthError):
    """An audio or MIDI device cannot be opened."""
