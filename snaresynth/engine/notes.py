"""The note table: what every MIDI note-on plays right now (slot, velocity layer, gain, pan,
choke group), built from the kit and the decoded buffers and handed to the mixer, so an audio
callback that reads MIDI itself (JACK) plays a note without Python. Built on any thread that
changed the kit or a buffer, under the engine's lock."""

from __future__ import annotations

import functools

import numpy as np

from snaresynth import dsp
from snaresynth.control.kit import Kit
from snaresynth.control.mapping import ControlMap
from snaresynth.engine.planner import VELOCITY_LAYERS, Layer, layer_of_velocity
from snaresynth.rt.mixer import N_CHANNELS, N_NOTES, Mixer, SlotNotes, pan_gains

Buffers = list[list[np.ndarray | None]]
"""buffers[slot][layer]: the playback buffer of each velocity layer of each slot."""
Variants = list[list[list[np.ndarray | None]]]
"""variants[slot][layer][v - 1]: round-robin variant v (>= 1) of each layer; variant 0 is the
layer's buffer in ``Buffers``."""


class Sounds:
    """The decoded sounds of every slot: ``buffers`` (variant 0) and ``variants``. Thread: the
    engine's, under its lock; the decode worker replaces references, never mutates arrays."""

    def __init__(self, n_slots: int) -> None:
        self.buffers: Buffers = [[None] * VELOCITY_LAYERS for _ in range(n_slots)]
        self.variants: Variants = [[[] for _ in range(VELOCITY_LAYERS)] for _ in range(n_slots)]

    def fit(self, n_slots: int) -> None:
        """One entry per slot of the kit, keeping those still there."""
        self.buffers = self.buffers[:n_slots] + [[None] * VELOCITY_LAYERS
                                                 for _ in range(n_slots - len(self.buffers))]
        self.variants = self.variants[:n_slots] + [
            [[] for _ in range(VELOCITY_LAYERS)] for _ in range(n_slots - len(self.variants))]

    def store(self, target: Layer, buffer: np.ndarray, count: int) -> bool:
        """Publish a decoded sound; False if its slot or variant is no longer played (a decode
        that finished after the kit or ``variants`` changed)."""
        if target.slot >= len(self.buffers) or target.variant >= count:
            return False
        if target.variant == 0:
            self.buffers[target.slot][target.layer] = buffer
            return True
        extra = self.variants[target.slot][target.layer]
        extra.extend([None] * (target.variant - len(extra)))
        extra[target.variant - 1] = buffer
        return True

    def keep(self, index: int, count: int) -> bool:
        """Drop slot ``index``'s variants from ``count`` on; True if any was dropped."""
        dropped = False
        for extra in self.variants[index]:
            if len(extra) > count - 1:
                del extra[count - 1:]
                dropped = True
        return dropped

    def for_hit(self, index: int, velocity: float, layered: bool) -> tuple[np.ndarray | None, int]:
        """(variant 0 of the layer a hit of ``velocity`` plays, that layer if the audio side is
        to choose among its variants, else -1)."""
        layers = self.buffers[index]
        layer = layer_index(layer_mask(layers), velocity, layered)
        if layer < 0:
            return None, -1
        varies = any(b is not None for b in self.variants[index][layer])
        return layers[layer], layer if varies else -1


def layer_mask(layers: list[np.ndarray | None]) -> int:
    """Bit i set: velocity layer i has a decoded buffer."""
    return sum(1 << i for i, b in enumerate(layers) if b is not None)


def layer_index(mask: int, velocity: float, layered: bool) -> int:
    """The layer a hit of ``velocity`` (0..1) plays when the layers in ``mask`` are decoded:
    its own, else the nearest decoded one (-1: none). Unlayered kits use the top layer."""
    if not layered:
        top = VELOCITY_LAYERS - 1
        return top if mask >> top & 1 else -1
    want = layer_of_velocity(velocity)
    for distance in range(VELOCITY_LAYERS):
        for layer in (want - distance, want + distance):
            if 0 <= layer < VELOCITY_LAYERS and mask >> layer & 1:
                return layer
    return -1


def layer_buffer(layers: list[np.ndarray | None], velocity: float,
                 layered: bool) -> np.ndarray | None:
    layer = layer_index(layer_mask(layers), velocity, layered)
    return None if layer < 0 else layers[layer]


@functools.cache
def _velocity_gains(curve: str) -> np.ndarray:
    """``dsp.velocity_gain`` of every MIDI velocity 0..127."""
    out = np.array([dsp.velocity_gain(v / 127.0, curve) for v in range(N_NOTES)],
                   dtype=np.float32)
    out.flags.writeable = False
    return out


@functools.cache
def _layer_of_velocity(mask: int, layered: bool) -> np.ndarray:
    """``layer_index`` for every MIDI velocity 0..127 (velocity 0 plays nothing)."""
    out = np.array([layer_index(mask, v / 127.0, layered) for v in range(N_NOTES)],
                   dtype=np.int64)
    out[0] = -1
    out.flags.writeable = False
    return out


def _note_slot(controls: ControlMap, n_slots: int) -> np.ndarray:
    """Channel (0..15) x note -> the slot it plays (-1: none) under ``controls``."""
    by_note = np.array([-1 if (slot := controls.note_to_slot(note)) is None else slot
                        for note in range(N_NOTES)], dtype=np.int64)
    by_note[by_note >= n_slots] = -1
    note_slot = np.full((N_CHANNELS, N_NOTES), -1, dtype=np.int64)
    for channel in range(1, N_CHANNELS + 1):
        if controls.accepts(channel):
            note_slot[channel - 1] = by_note
    return note_slot


class NoteTableBuilder:
    """Builds the mixer's note table; the channel x note map is rebuilt only when the
    controls change (a new ControlMap), since it runs at every published buffer."""

    def __init__(self, mixer: Mixer) -> None:
        self.mixer = mixer
        self._map: tuple[ControlMap | None, int, np.ndarray] = (None, 0, np.empty(0))

    def publish(self, kit: Kit, controls: ControlMap, buffers: Buffers,
                variants: Variants | None = None) -> int:
        """Hand the mixer the table for ``kit``; returns how many sounds found no room."""
        layered = kit.velocity_latent is not None
        curve = _velocity_gains(kit.velocity_curve)
        slots = []
        for s, (spec, layers) in enumerate(zip(kit.slots, buffers, strict=False)):
            pan = np.array(pan_gains(spec.pan), dtype=np.float32)
            gains = curve[:, None] * np.float32(dsp.db_to_gain(spec.level_db)) * pan
            extra = [[b for b in rr if b is not None] for rr in variants[s]] \
                if variants is not None and s < len(variants) else []
            slots.append(SlotNotes(list(layers), _layer_of_velocity(layer_mask(layers), layered),
                                   gains, spec.choke_group, extra))
        if self._map[0] is not controls or self._map[1] != len(slots):
            self._map = (controls, len(slots), _note_slot(controls, len(slots)))
        return self.mixer.set_notes(self._map[2], slots)
