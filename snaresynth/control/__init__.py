"""The instrument's control state as plain data: parameters, kits and presets, MIDI mapping and
learn, undo history. No threads, no clock, no TensorFlow; every input is parsed here once."""
