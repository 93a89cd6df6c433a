"""Kits exported to the samplers drummers use: WAV files per slot x velocity layer x variant
(rendered as the daemon plays them), and an SFZ instrument, a Hydrogen drumkit or a DrumGizmo
kit mapping them. Offline: nothing in the daemon imports this package."""
