"""Engine: the one object the outside world talks to, and the one place threads meet.

Threads that call in:
- audio callback -> ``process`` only (mixes; never waits on the model, a long lock or the disk);
- MIDI and OSC threads -> ``note_on``, ``control_change``, ``trigger``, ``set_param``, ...;
- decode worker -> ``_publish`` (swaps a slot's buffer reference);
- main thread -> ``start``, ``stop``, ``save_state``.

The control state (the kit) is guarded by ``_lock``, held only for short updates and never by
the audio callback. The audio callback sees the world through the mixer only: its inbox of
scheduled hits, and the note table ``publish_notes`` rewrites after every change of the kit or
of a slot's buffers (what a JACK note-on the callback reads itself plays).
"""

from __future__ import annotations

import copy
import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from snaresynth import dsp
from snaresynth.control import mapping
from snaresynth.control.mapping import ControlMap, History, MidiLearn, morph_knobs, randomize_knobs
from snaresynth.control.presets import Kit, PresetStore, save_state
from snaresynth.decode.worker import (  # noqa: F401  (playback_buffer: re-exported)
    BufferCache,
    DecodeWorker,
    Request,
    Worker,
    playback_buffer,
    quantize_knobs,
)
from snaresynth.models.base import Decoder
from snaresynth.rt.mixer import (
    AUDIO_STALLED_S,
    N_CHANNELS,
    N_NOTES,
    Hit,
    Mixer,
    SlotNotes,
    pan_gains,
)

log = logging.getLogger(__name__)

VELOCITY_LAYERS = 4
"""Decoded sounds per slot when velocity also moves a latent dimension (as sampler layers)."""

PREFETCH_STEPS = 3
"""Positions decoded ahead of a moving knob, so the decode worker keeps up with a sweep."""
PREFETCH_SLOT = 1 << 20
"""Request ids from here on are cache warm-ups (never published to a slot)."""

Listener = Callable[[str, Any, object], None]
"""Called as listener(address, value, source) after every change, on the changing thread."""


@dataclass
class EngineSettings:
    rate: int = 48000  # output sample rate in Hz
    blocksize: int = 128  # audio block in frames
    max_voices: int = 16
    latency: str = "constant"  # "constant": sample-accurate (docs/controls.md); "lowest"
    cache_bytes: int = 64 * 2**20


class Engine:
    def __init__(self, decoder: Decoder, kit: Kit, settings: EngineSettings | None = None,
                 store: PresetStore | None = None, worker: Worker | None = None) -> None:
        """``worker``: a decode worker to use instead of a DecodeWorker thread on ``decoder``
        (e.g. a ProcessDecodeWorker; ``decoder`` then only describes the model); its
        ``on_ready`` is set to the engine's publisher."""
        self.settings = settings or EngineSettings()
        if self.settings.latency not in ("constant", "lowest"):
            raise ValueError(
                f"latency must be 'constant' or 'lowest', got {self.settings.latency!r}")
        self.decoder = decoder
        self.store = store
        self.rate = self.settings.rate
        self.mixer = Mixer(self.rate, self.settings.max_voices,
                           max_block=max(8192, 4 * self.settings.blocksize),
                           notes_at_block_start=self.settings.latency == "lowest")
        if worker is None:
            worker = DecodeWorker(decoder, self._publish, BufferCache(self.settings.cache_bytes))
        else:
            worker.on_ready = self._publish
        self.worker: Worker = worker
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self.kit = copy.deepcopy(kit)
        self.controls = ControlMap.from_kit(self.kit)
        self.learn = MidiLearn.from_kit(self.kit)
        self.history: History[Kit] = History()
        self.history.push(self.kit)
        self.selected = 0
        # buffers[slot][layer]: the playback buffer of each velocity layer of each slot
        self.buffers: list[list[np.ndarray | None]] = [
            [None] * VELOCITY_LAYERS for _ in self.kit.slots]
        self._morph_pair: tuple[Kit, Kit] | None = None
        self._last_values: dict[tuple[int, str], float] = {}  # for the direction of a sweep
        self._next_jack_frame = -1  # JACK frame time of the next block (Python JACK callback)
        self.started_at = time.monotonic()
        # counters: written under _lock or by one thread each; read by status()
        self.xruns = 0  # output underflows since mark_running()
        self.startup_xruns = 0  # flags while the stream was still starting (priming)
        self._running = False
        self._underflows_before_running = 0  # a compiled PortAudio callback's, at mark_running
        self.bad_messages = 0
        self.unmapped = 0
        # the note table's channel x note -> slot map, rebuilt when the controls change
        self._note_slot: tuple[ControlMap | None, int, np.ndarray] = (None, 0, np.empty(0))
        self.publish_notes()

    # --- lifecycle (main thread) ---------------------------------------------------------------
    def start(self, wait: float = 30.0) -> None:
        """Start the decode worker and decode every slot, so the first hit already has a sound."""
        self.worker.start()
        self._request_all()
        if not self.worker.wait_idle(wait):
            log.warning("initial decode still running after %.0f s", wait)

    def mark_running(self) -> None:
        """From now on underflow flags count as xruns (main thread, once the stream settled)."""
        self._underflows_before_running = self.mixer.underflows
        self._running = True

    def stop(self) -> None:
        self.worker.stop()

    # --- audio thread --------------------------------------------------------------------------
    def process(self, out: np.ndarray, xrun: bool = False) -> None:
        """Fill one output block (frames, 2). Thread: a Python audio callback. (JACK's
        compiled callback, ``io/jack_rt.py``, runs the mixer without this method.)"""
        if xrun:
            self.note_xrun()
        self.mixer.render(out, self._next_jack_frame)

    def note_xrun(self) -> None:
        """An output underflow. Thread: the audio backend's (callback or xrun notification)."""
        if self._running:
            self.xruns += 1
        else:
            self.startup_xruns += 1

    def set_block_frame_time(self, jack_frame: int) -> None:
        """The JACK frame time of the block ``process`` renders next. Thread: audio (the JACK
        backend calls it right before ``process``), so MIDI from JACK is placed by frame."""
        self._next_jack_frame = jack_frame

    # --- clock (any thread) --------------------------------------------------------------------
    def frame_at_jack(self, jack_frame: int) -> int:
        """Output frame of an event stamped with JACK's frame time: exactly one block after
        it, whatever the callbacks' wake-up jitter (no wall clock involved)."""
        frame0, _, jack0, block = self.mixer.clock()
        if jack0 < 0 or self.settings.latency == "lowest":
            return self.frame_at(None)
        delta = (jack_frame - jack0) & 0xFFFFFFFF  # JACK frame times are uint32 and wrap
        if delta >= 1 << 31:
            delta -= 1 << 32
        return frame0 + delta + max(block, self.settings.blocksize)

    def frame_at(self, t: float | None = None) -> int:
        """Output frame at which an event arriving at monotonic time ``t`` is played."""
        if self.settings.latency == "lowest":
            return self.mixer.frame  # the first frame of the next block the mixer renders
        frame0, t0, _, _ = self.mixer.clock()
        t = time.monotonic() if t is None else t
        return int(round(frame0 + (t - t0) * self.rate)) + self.settings.blocksize

    # --- playing (MIDI / OSC threads) ----------------------------------------------------------
    def trigger(self, velocity: float = 1.0, slot: int | None = None,
                at: float | None = None, jack_frame: int | None = None) -> bool:
        """Play a slot's current sound at monotonic time ``at`` (None = now), or at JACK frame
        time ``jack_frame`` when the event came from JACK. Thread: any."""
        with self._lock:
            index = self.selected if slot is None else slot
            if not 0 <= index < len(self.kit.slots):
                raise ValueError(f"slot must be 0..{len(self.kit.slots) - 1}, got {index}")
            spec = self.kit.slots[index]
            buffer = _layer_buffer(self.buffers[index], velocity,
                                   self.kit.velocity_latent is not None)
            gain = dsp.velocity_gain(velocity, self.kit.velocity_curve) * dsp.db_to_gain(
                spec.level_db)
            left, right = pan_gains(spec.pan)
            choke = spec.choke_group
        if buffer is None or gain <= 0.0:
            return False
        # once running, a stale clock means the device is gone (a JACK server loss): a hit
        # must not be queued to sound when it is back
        if self._running and time.monotonic() - self.mixer.clock()[1] > AUDIO_STALLED_S:
            self.mixer.refused += 1
            return False
        frame = self.frame_at(at) if jack_frame is None else self.frame_at_jack(jack_frame)
        return self.mixer.schedule(Hit(frame, buffer, gain * left, gain * right, choke, index))

    def note_on(self, note: int, velocity: int, channel: int = 1, at: float | None = None,
                jack_frame: int | None = None, placed: bool = False) -> bool:
        """MIDI note-on (velocity 1..127; 0 is a note-off and plays nothing). ``placed``: the
        audio callback already played it from the note table (``publish_notes``); only count."""
        if velocity <= 0:
            return False
        if not self.controls.accepts(channel):
            return False
        slot = self.controls.note_to_slot(note)
        if slot is None:
            self.unmapped += 1
            return False
        if placed:
            return True
        return self.trigger(velocity / 127.0, slot, at, jack_frame)

    def control_change(self, cc: int, value: int, channel: int = 1, source: object = None) -> None:
        """MIDI CC: MIDI learn first, then the kit's CC map."""
        if not self.controls.accepts(channel):
            return
        with self._lock:
            binding = self.learn.feed_cc(cc, value)
            if binding is not None:
                self.learn.apply_to(self.kit)
                self.controls = ControlMap.from_kit(self.kit)
        if binding is not None:
            self._notify("/learn", [binding.cc, binding.param], source)
        if self.learn.consumes(cc):
            return
        param = self.controls.cc_to_param(cc)
        if param is None:
            self.unmapped += 1
            return
        self.set_param(param, mapping.cc_to_unit(value), source=source)

    # --- controls (any thread) -----------------------------------------------------------------
    def set_param(self, param: str, value: float, slot: int | None = None,
                  source: object = None) -> None:
        """Set a normalized 0..1 parameter: latent/<i>, level, tune, decay, pan or morph."""
        name, dim = mapping.parse_param(param)
        value = mapping.osc_to_unit(value)
        with self._lock:
            index = self._slot_index(slot)
            spec = self.kit.slots[index]
            if name == "morph":
                self._apply_morph(value, index)
            else:
                if name == "latent" and not 0 <= (dim or 0) < self.decoder.latent_dim:
                    raise ValueError(
                        f"latent dimension must be 0..{self.decoder.latent_dim - 1}, got {dim}")
                mapping.set_slot_param(spec, param, value)
            self.learn.touch(param)
            self.history.push(self.kit, coalesce=f"{index}:{param}")
            previous = self._last_values.get((index, param))
            self._last_values[(index, param)] = value
        if name in ("level", "pan"):
            self.publish_notes()
        else:
            self._request(index)
        if name in ("latent", "morph") and previous is not None and previous != value:
            self._prefetch(index, param, value, value - previous)
        self._notify(f"/{param}", value, source)

    def set_z(self, z: list[float], slot: int | None = None, source: object = None) -> None:
        """Set the raw latent vector of a slot (clipped to the knob range)."""
        lo, hi = self.decoder.latent_range()
        z_arr = np.asarray(z, dtype=np.float64)
        if z_arr.shape != (self.decoder.latent_dim,):
            raise ValueError(f"z needs {self.decoder.latent_dim} values, got {len(z)}")
        if not np.all(np.isfinite(z_arr)):
            raise ValueError("z values must be finite")
        knobs = np.clip((z_arr - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0, 1.0)
        with self._lock:
            index = self._slot_index(slot)
            self.kit.slots[index].knobs = [float(k) for k in knobs]
            self.history.push(self.kit)
        self._request(index)
        self._notify("/z", [float(v) for v in z_arr], source)

    def set_velocity(self, curve: str | None = None, latent: int | None = None,
                     amount: float | None = None, source: object = None) -> None:
        """Velocity response of the kit: the gain curve, and which latent dimension (``-1``:
        none) harder hits move and by how much (-1..1 of the knob's travel)."""
        if curve is not None and curve not in dsp.VELOCITY_CURVES:
            raise ValueError(f"velocity curve must be one of {', '.join(dsp.VELOCITY_CURVES)}, "
                             f"got {curve!r}")
        if latent is not None and not -1 <= latent < self.decoder.latent_dim:
            raise ValueError(f"velocity latent must be -1..{self.decoder.latent_dim - 1}, "
                             f"got {latent}")
        if amount is not None and not -1.0 <= amount <= 1.0:
            raise ValueError(f"velocity amount must be in -1..1, got {amount}")
        with self._lock:
            if curve is not None:
                self.kit.velocity_curve = curve
            if latent is not None:
                self.kit.velocity_latent = None if latent < 0 else latent
            if amount is not None:
                self.kit.velocity_latent_amount = amount
            self.history.push(self.kit)
        self.publish_notes()
        if latent is not None or amount is not None:
            self._request_all()
        self._notify("/velocity", [self.kit.velocity_curve, -1 if self.kit.velocity_latent is None
                                   else self.kit.velocity_latent,
                                   self.kit.velocity_latent_amount], source)

    def arm_learn(self, param: str) -> None:
        """The next CC that moves is bound to ``param`` (saved with the kit)."""
        with self._lock:
            self.learn.arm(param)

    def select(self, slot: int, source: object = None) -> None:
        with self._lock:
            self.selected = self._slot_index(slot)
        self._notify("/select", slot, source)

    def randomize(self, amount: float = 1.0, seed: int | None = None, slot: int | None = None,
                  source: object = None) -> int:
        """Move a slot's latent point at random; returns the seed, to find the sound again."""
        if seed is None:
            seed = int(np.random.default_rng().integers(0, 2**31 - 1))
        rng = np.random.default_rng(seed)
        with self._lock:
            index = self._slot_index(slot)
            spec = self.kit.slots[index]
            spec.knobs = randomize_knobs(self._knobs(index), amount, rng)
            self.history.push(self.kit)
        self._request(index)
        self._notify("/randomize", [float(amount), seed], source)
        return seed

    def undo(self, source: object = None) -> bool:
        with self._lock:
            previous = self.history.undo()
            if previous is None:
                return False
            self._set_kit(previous)
        self._request_all()
        self._notify("/undo", 1, source)
        return True

    # --- presets (any thread; file I/O happens here, never on the audio thread) --------------
    def load_kit(self, kit: Kit, source: object = None) -> None:
        """Switch kits; hits already sounding finish with their own buffers."""
        with self._lock:
            self._set_kit(copy.deepcopy(kit))
            self.history.push(self.kit)
        self._request_all()
        self._notify("/preset/load", kit.name, source)

    def load_preset(self, name: str, source: object = None) -> Kit:
        store = self._require_store()
        kit = store.load(name)
        self.load_kit(kit, source)
        return kit

    def program_change(self, program: int, source: object = None) -> Kit | None:
        store = self._require_store()
        names = store.list()
        if not 0 <= program < len(names):
            self.unmapped += 1
            return None
        return self.load_preset(names[program], source)

    def save_preset(self, name: str, source: object = None) -> str:
        store = self._require_store()
        with self._lock:
            kit = copy.deepcopy(self.kit)
        kit.name = name
        path = store.save(name, kit)
        self._notify("/preset/save", name, source)
        return str(path)

    def save_state(self, path: Path) -> None:
        """Write the current kit and selection atomically (main thread: exit and autosave)."""
        with self._lock:
            kit, selected = copy.deepcopy(self.kit), self.selected
        save_state(path, kit, selected)

    def set_morph_targets(self, a: str, b: str) -> None:
        """Choose the two presets the morph control glides between."""
        store = self._require_store()
        pair = (store.load(a), store.load(b))
        with self._lock:
            self._morph_pair = pair

    # --- reporting (any thread) ----------------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def state(self) -> dict[str, Any]:
        """The whole control state, as plain data (for /state, autosave and tests)."""
        from snaresynth.control.presets import kit_to_dict

        with self._lock:
            return {"kit": kit_to_dict(self.kit), "selected": self.selected,
                    "latent_dim": self.decoder.latent_dim, "family": self.decoder.family}

    def status(self) -> dict[str, float | int]:
        """Counters in the spirit of scsynth's /status."""
        uptime = max(time.monotonic() - self.started_at, 1e-9)
        decode_times = sorted(self.worker.decode_seconds)
        underflows = self.mixer.underflows  # counted by a compiled PortAudio callback
        return {
            "voices": self.mixer.active_voices(),
            "hits": self.mixer.hits_started,
            "late_hits": self.mixer.hits_late,
            "stolen": self.mixer.voices_stolen,
            "dropped_hits": self.mixer.dropped,
            "notes_in_callback": self.mixer.notes_in_callback,
            "xruns": self.xruns + (underflows - self._underflows_before_running
                                   if self._running else 0),
            "startup_xruns": self.startup_xruns + (self._underflows_before_running
                                                   if self._running else underflows),
            "decodes": self.worker.decodes,
            "decode_failures": self.worker.failures,
            "cache_hits": self.worker.cache.hits,
            "cache_misses": self.worker.cache.misses,
            "cache_items": len(self.worker.cache),
            "dropped_requests": self.worker.dropped,
            "bad_messages": self.bad_messages,
            "unmapped": self.unmapped,
            "cpu_load": self.mixer.busy_seconds / uptime,
            "longest_block_ms": 1000.0 * self.mixer.longest_block_seconds,
            "decode_ms_median": 1000.0 * decode_times[len(decode_times) // 2]
            if decode_times else 0.0,
        }

    def param_values(self, slot: int | None = None) -> dict[str, float]:
        """Every parameter of a slot as a normalized 0..1 value (for controller feedback)."""
        with self._lock:
            spec = copy.deepcopy(self.kit.slots[self._slot_index(slot)])
        params = [f"latent/{i}" for i in range(self.decoder.latent_dim)]
        params += ["level", "tune", "decay", "pan"]
        return {p: mapping.slot_param(spec, p) for p in params}

    def count_bad(self) -> None:
        with self._lock:
            self.bad_messages += 1

    # --- internals -----------------------------------------------------------------------------
    def _require_store(self) -> PresetStore:
        if self.store is None:
            raise ValueError("no preset store configured")
        return self.store

    def _slot_index(self, slot: int | None) -> int:
        index = self.selected if slot is None else int(slot)
        if not 0 <= index < len(self.kit.slots):
            raise ValueError(f"slot must be 0..{len(self.kit.slots) - 1}, got {index}")
        return index

    def _knobs(self, index: int) -> list[float]:
        return list(self.kit.slots[index].knobs_for(self.decoder.latent_dim))

    def _apply_morph(self, amount: float, index: int) -> None:
        if self._morph_pair is None:
            raise ValueError("no morph targets: send /snaresynth/morph/targets A B first")
        a, b = self._morph_pair
        sa = a.slots[min(index, len(a.slots) - 1)]
        sb = b.slots[min(index, len(b.slots) - 1)]
        dim = self.decoder.latent_dim
        self.kit.slots[index].knobs = morph_knobs(sa.knobs_for(dim), sb.knobs_for(dim), amount)

    def _set_kit(self, kit: Kit) -> None:
        self.kit = kit
        self.controls = ControlMap.from_kit(kit)
        self.learn = MidiLearn.from_kit(kit)
        self.selected = min(self.selected, len(kit.slots) - 1)
        if len(self.buffers) != len(kit.slots):
            old = self.buffers
            self.buffers = [old[i] if i < len(old) else [None] * VELOCITY_LAYERS
                            for i in range(len(kit.slots))]
        self.publish_notes()

    def _request_all(self) -> None:
        for index in range(len(self.kit.slots)):
            self._request(index)

    def _request(self, index: int) -> None:
        """Ask the worker for every velocity layer of a slot (one layer without velocity_latent).

        Request ids are ``slot * VELOCITY_LAYERS + layer``, so each layer is latest-wins.
        """
        with self._lock:
            spec = self.kit.slots[index]
            knobs = self._knobs(index)
            tune, decay = spec.tune_semitones, spec.decay
            dim, amount = self.kit.velocity_latent, self.kit.velocity_latent_amount
        layers = [(VELOCITY_LAYERS - 1, knobs)]  # the top layer is the plain knob position
        if dim is not None and 0 <= dim < len(knobs):
            # the hardest hit plays the knobs as set; softer layers move knob ``dim`` back
            layers = [(layer, mapping.velocity_knobs(knobs, (layer + 1) / VELOCITY_LAYERS, dim,
                                                     amount, VELOCITY_LAYERS))
                      for layer in range(VELOCITY_LAYERS)]
        for layer, layer_knobs in reversed(layers):
            self.worker.submit(Request(index * VELOCITY_LAYERS + layer,
                                       quantize_knobs(layer_knobs), float(tune), float(decay),
                                       int(self.decoder.sample_rate), int(self.rate)))

    def _prefetch(self, index: int, param: str, value: float, step: float) -> None:
        """Decode the next ``PREFETCH_STEPS`` positions of a moving knob (or morph) into the
        cache, in its direction of travel, so a full-speed sweep finds them there. They use
        their own request ids (latest-wins among themselves) and are never published."""
        name, dim = mapping.parse_param(param)
        with self._lock:
            spec = self.kit.slots[index]
            knobs = self._knobs(index)
            tune, decay = float(spec.tune_semitones), float(spec.decay)
            pair = self._morph_pair
            if name == "morph" and pair is not None:
                latent_dim = self.decoder.latent_dim
                ends = [k.slots[min(index, len(k.slots) - 1)].knobs_for(latent_dim) for k in pair]
        for ahead in range(1, PREFETCH_STEPS + 1):
            target = min(max(value + ahead * step, 0.0), 1.0)
            if name == "morph":
                if pair is None:
                    return
                position = morph_knobs(ends[0], ends[1], target)
            else:
                position = list(knobs)
                position[dim or 0] = target
            self.worker.submit(Request(PREFETCH_SLOT + ahead, quantize_knobs(position), tune,
                                       decay, int(self.decoder.sample_rate), int(self.rate)))
            if target in (0.0, 1.0):
                return

    def _publish(self, slot: int, buffer: np.ndarray, request: Request) -> None:
        """Thread: decode worker. One reference swap; sounding voices keep their old buffer."""
        if slot >= PREFETCH_SLOT:
            return  # a cache warm-up: decoded and cached, not played
        index, layer = divmod(slot, VELOCITY_LAYERS)
        buffers = self.buffers
        if index < len(buffers):
            buffers[index][layer] = buffer
            self.publish_notes()

    def publish_notes(self) -> None:
        """Give the mixer what every note-on plays now (slot, velocity layer, gain, pan, choke),
        so an audio callback that reads MIDI itself plays a note without Python (JACK:
        ``io/jack_rt.py``). Thread: any; after every change of the kit or of a buffer."""
        with self._lock:
            kit, controls = self.kit, self.controls
            layered = kit.velocity_latent is not None
            curve = _velocity_gains(kit.velocity_curve)
            slots = []
            for spec, layers in zip(kit.slots, self.buffers, strict=False):
                pan = np.array(pan_gains(spec.pan), dtype=np.float32)
                gains = curve[:, None] * np.float32(dsp.db_to_gain(spec.level_db)) * pan
                slots.append(SlotNotes(list(layers),
                                       _layer_of_velocity(_layer_mask(layers), layered), gains,
                                       spec.choke_group))
            if self._note_slot[0] is not controls or self._note_slot[1] != len(slots):
                self._note_slot = (controls, len(slots), _note_slot(controls, len(slots)))
            missing = self.mixer.set_notes(self._note_slot[2], slots)
        if missing:
            log.warning("note table: %d sounds found no room in the buffer table", missing)

    def _notify(self, address: str, value: Any, source: object) -> None:
        for listener in list(self._listeners):
            try:
                listener(address, value, source)
            except Exception as exc:  # a broken controller must not break the instrument
                log.warning("change listener failed for %s: %s", address, exc)


def _layer_buffer(layers: list[np.ndarray | None], velocity: float,
                  layered: bool) -> np.ndarray | None:
    """The buffer of the velocity layer a hit falls in (the nearest decoded one, if that layer
    is still decoding). Without velocity layering only the top layer is used."""
    layer = _layer_index(_layer_mask(layers), velocity, layered)
    return None if layer < 0 else layers[layer]


def _layer_mask(layers: list[np.ndarray | None]) -> int:
    """Bit i set: velocity layer i has a decoded buffer."""
    return sum(1 << i for i, b in enumerate(layers) if b is not None)


def _layer_index(mask: int, velocity: float, layered: bool) -> int:
    """The layer a hit of ``velocity`` (0..1) plays when the layers in bit ``mask`` are
    decoded: its own, else the nearest one (-1: none)."""
    if not layered:
        top = VELOCITY_LAYERS - 1
        return top if mask >> top & 1 else -1
    want = min(VELOCITY_LAYERS - 1, max(0, int(np.ceil(velocity * VELOCITY_LAYERS)) - 1))
    for distance in range(VELOCITY_LAYERS):
        for layer in (want - distance, want + distance):
            if 0 <= layer < VELOCITY_LAYERS and mask >> layer & 1:
                return layer
    return -1


@functools.cache
def _velocity_gains(curve: str) -> np.ndarray:
    """``dsp.velocity_gain`` of every MIDI velocity 0..127."""
    out = np.array([dsp.velocity_gain(v / 127.0, curve) for v in range(N_NOTES)],
                   dtype=np.float32)
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


@functools.cache
def _layer_of_velocity(mask: int, layered: bool) -> np.ndarray:
    """``_layer_index`` for every MIDI velocity 0..127 (velocity 0 plays nothing)."""
    out = np.array([_layer_index(mask, v / 127.0, layered) for v in range(N_NOTES)],
                   dtype=np.int64)
    out[0] = -1
    out.flags.writeable = False
    return out

