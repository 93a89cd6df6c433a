"""Engine: the one object the outside world talks to, and the one place threads meet.

Threads that call in:
- a Python audio callback -> ``process`` only (JACK's and PortAudio's compiled callbacks run
  the mixer without it);
- MIDI, OSC and web threads -> ``note_on``, ``control_change``, ``trigger``, ``set_param``, ...
  with values already checked at their edge (``control.params``);
- decode worker -> ``_publish`` (swaps one buffer reference);
- main thread -> ``start``, ``stop``, ``save_state``.

``_lock`` guards the control state (``control.state.ControlState``) and the buffers; it is held
only for short updates and never by the audio callback, which sees the world through the mixer:
its inbox of scheduled hits and the note table (``engine.notes``). Every change is told to the
listeners, one notification path out: ``listener(address, value, source)``; changes of many
values (randomize, undo, redo, kit load, select) are followed by every value of the selected
slot, so every surface follows the instrument.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from snaresynth import dsp
from snaresynth.control.kit import Kit, kit_to_dict
from snaresynth.control.mapping import ControlMap, MidiLearn
from snaresynth.control.params import Kind, Param, cc_to_knob
from snaresynth.control.presets import PresetStore, save_state
from snaresynth.control.state import ControlState
from snaresynth.control.variation import MAX_PLAYED_VARIANTS
from snaresynth.decode.worker import BufferCache, DecodeWorker, Request, Worker
from snaresynth.engine.clock import Clock
from snaresynth.engine.notes import Buffers, NoteTableBuilder, Sounds
from snaresynth.engine.planner import (
    VELOCITY_LAYERS,
    Layer,
    Rates,
    prefetch_requests,
    slot_requests,
    variant_count,
)
from snaresynth.errors import SnareSynthError
from snaresynth.models.base import Decoder
from snaresynth.rt.mixer import Hit, Mixer, pan_gains
from snaresynth.rt.notes import MAX_SLOTS

log = logging.getLogger(__name__)

Listener = Callable[[str, Any, object], None]
"""Called as listener(address, value, source) after every change, on the changing thread."""

TABLE_ENTRIES = 2 * MAX_SLOTS * VELOCITY_LAYERS * MAX_PLAYED_VARIANTS  # a full kit, twice over

BULK_EVENTS = ("/randomize", "/undo", "/redo", "/preset/load", "/select", "/z", "/learn")
"""Events after which every value of the selected slot is told again."""


@dataclass
class EngineSettings:
    rate: int = 48000  # output sample rate in Hz
    blocksize: int = 128  # audio block in frames
    max_voices: int = 16
    latency: str = "constant"  # "constant": sample-accurate (docs/controls.md); "lowest"
    cache_bytes: int = 64 * 2**20


class Engine:
    def __init__(self, decoder: Decoder, kit: Kit, settings: EngineSettings | None = None,
                 store: PresetStore | None = None, worker: Worker | None = None,
                 selected: int = 0) -> None:
        """``worker``: a decode worker to use instead of a DecodeWorker thread on ``decoder``
        (e.g. a ProcessDecodeWorker; ``decoder`` then only describes the model)."""
        self.settings = settings or EngineSettings()
        if self.settings.latency not in ("constant", "lowest"):
            raise ValueError(
                f"latency must be 'constant' or 'lowest', got {self.settings.latency!r}")
        self.decoder = decoder
        self.store = store
        self.rate = self.settings.rate
        lowest = self.settings.latency == "lowest"
        self.mixer = Mixer(self.rate, self.settings.max_voices,
                           max_block=max(8192, 4 * self.settings.blocksize),
                           notes_at_block_start=lowest, table=TABLE_ENTRIES,
                           ahead_frames=max(self.rate // 20, 2 * self.settings.blocksize))
        self.clock = Clock(self.mixer, self.rate, self.settings.blocksize, lowest)
        if worker is None:
            worker = DecodeWorker(decoder, self._publish, BufferCache(self.settings.cache_bytes))
        else:
            worker.on_ready = self._publish
        self.worker: Worker = worker
        self._rates = Rates(int(decoder.sample_rate), int(self.rate))
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self.control = ControlState(kit, decoder.latent_dim, selected)
        self.sounds = Sounds(len(self.control.kit.slots))
        self._notes = NoteTableBuilder(self.mixer)
        self.started_at = time.monotonic()
        # counters: written under _lock or by one thread each; read by status()
        self.xruns = 0  # output underflows since mark_running()
        self.startup_xruns = 0  # flags while the stream was still starting (priming)
        self._running = False
        self._underflows_before_running = 0  # a compiled PortAudio callback's, at mark_running
        self.bad_messages = 0
        self.unmapped = 0
        self._morph_names: tuple[str, str] | None = None  # the kit's targets, once loaded
        self._follow_morph_targets()
        self.publish_notes()

    # --- the control state, for readers (any thread; a reference, replaced on change) --------
    @property
    def kit(self) -> Kit:
        return self.control.kit

    @property
    def controls(self) -> ControlMap:
        return self.control.controls

    @property
    def learn(self) -> MidiLearn:
        return self.control.learn

    @property
    def selected(self) -> int:
        return self.control.selected

    @property
    def buffers(self) -> Buffers:  # buffers[slot][layer]: variant 0 of each velocity layer
        return self.sounds.buffers

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
        """Fill one output block (frames, 2). Thread: a Python audio callback."""
        if xrun:
            self.note_xrun()
        self.mixer.render(out)

    def note_xrun(self) -> None:
        """An output underflow. Thread: the audio backend's (callback or xrun notification)."""
        if self._running:
            self.xruns += 1
        else:
            self.startup_xruns += 1

    # --- playing (MIDI / OSC / web threads) ----------------------------------------------------
    def trigger(self, velocity: float = 1.0, slot: int | None = None,
                at: float | None = None, jack_frame: int | None = None,
                frame: int | None = None) -> bool:
        """Play a slot's current sound (velocity 0..1) at monotonic time ``at`` (None: now),
        at JACK frame time ``jack_frame`` when the event came from JACK, or at output frame
        ``frame`` (a sequencer counting in frames)."""
        with self._lock:
            index = self.control.slot_index(slot)
            kit = self.control.kit
            spec = kit.slots[index]
            buffer, layer = self.sounds.for_hit(index, velocity, kit.velocity_latent is not None)
            gain = dsp.velocity_gain(velocity, kit.velocity_curve) * dsp.db_to_gain(
                spec.level_db)
            left, right = pan_gains(spec.pan)
            choke = spec.choke_group
        if buffer is None or gain <= 0.0:
            return False
        # once running, a stale clock means the device is gone: a hit must not be queued to
        # sound when it is back
        if self._running and self.clock.stalled():
            self.mixer.refused += 1
            return False
        if frame is None:
            frame = self.clock.frame_at(at) if jack_frame is None \
                else self.clock.frame_at_jack(jack_frame)
        return self.mixer.schedule(Hit(frame, buffer, gain * left, gain * right, choke, index,
                                       layer))

    def note_on(self, note: int, velocity: int, channel: int = 1, at: float | None = None,
                jack_frame: int | None = None, placed: bool = False) -> bool:
        """MIDI note-on (velocity 1..127; 0 is a note-off and plays nothing). ``placed``: the
        audio callback already played it from the note table; only count."""
        controls = self.control.controls
        if velocity <= 0 or not controls.accepts(channel):
            return False
        slot = controls.note_to_slot(note)
        if slot is None:
            self.unmapped += 1
            return False
        if placed:
            return True
        return self.trigger(velocity / 127.0, slot, at, jack_frame)

    def control_change(self, cc: int, value: int, channel: int = 1, source: object = None) -> None:
        """MIDI CC (0..127 each): MIDI learn first, then the kit's CC map."""
        if not self.control.controls.accepts(channel):
            return
        with self._lock:
            binding = self.control.feed_cc(cc, value)
        if binding is not None:
            self.publish_notes()
            self._notify("/learn", [binding.cc, binding.param.address], source)
        if self.control.learn.consumes(cc):
            return
        param = self.control.controls.cc_to_param(cc)
        if param is None:
            self.unmapped += 1
            return
        self.set_param(param, cc_to_knob(value), source=source)

    # --- controls (any thread) -----------------------------------------------------------------
    def set_param(self, param: Param, value: float, slot: int | None = None,
                  source: object = None) -> None:
        """Set one parameter to a knob value 0..1 (checked at the edge)."""
        with self._lock:
            index, previous = self.control.set_param(param, value, slot)
        if param.kind in (Kind.LEVEL, Kind.PAN):
            self.publish_notes()
        else:
            self._request(index)
        if param.kind in (Kind.LATENT, Kind.MORPH) and previous is not None \
                and previous != value:
            self._prefetch(index, param, value, value - previous)
        self._notify("/" + param.address, value, source)

    def set_z(self, z: list[float], slot: int | None = None, source: object = None) -> None:
        """Set the raw latent vector of a slot (finite numbers; clipped to the knob range)."""
        lo, hi = self.decoder.latent_range()
        if len(z) != self.decoder.latent_dim:
            raise ValueError(f"z needs {self.decoder.latent_dim} values, got {len(z)}")
        z_arr = np.asarray(z, dtype=np.float64)
        knobs = np.clip((z_arr - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0, 1.0)
        with self._lock:
            index = self.control.set_knobs(knobs, slot)
        self._request(index)
        self._notify("/z", [float(v) for v in z_arr], source)

    def set_velocity(self, curve: str | None = None, latent: int | None = None,
                     amount: float | None = None, source: object = None) -> None:
        """Velocity response of the kit: the gain curve, and which latent dimension (``-1``:
        none) harder hits move and by how much (-1..1 of the knob's travel)."""
        with self._lock:
            self.control.set_velocity(curve, latent, amount)
            kit = self.control.kit
            told = [kit.velocity_curve, -1 if kit.velocity_latent is None
                    else kit.velocity_latent, kit.velocity_latent_amount]
        self.publish_notes()
        if latent is not None or amount is not None:
            self._request_all()
        self._notify("/velocity", told, source)

    def set_variants(self, count: int, slot: int | None = None, source: object = None) -> None:
        """How many round-robin variants a slot plays when its ``variation`` is above 0."""
        with self._lock:
            index = self.control.set_variants(count, slot)
        self._request(index)
        self._notify("/variants", [count, index], source)

    def arm_learn(self, param: Param) -> None:
        """The next CC that moves is bound to ``param`` (saved with the kit)."""
        with self._lock:
            self.control.learn.arm(param)

    def cancel_learn(self) -> None:
        with self._lock:
            self.control.learn.cancel()

    def select(self, slot: int, source: object = None) -> None:
        with self._lock:
            index = self.control.select(slot)
        self._notify("/select", index, source)

    def randomize(self, amount: float = 1.0, seed: int | None = None, slot: int | None = None,
                  source: object = None) -> int:
        """Move a slot's latent point at random by ``amount`` (0..1); returns the seed, to find
        the sound again."""
        if seed is None:
            seed = int(np.random.default_rng().integers(0, 2**31 - 1))
        with self._lock:
            index = self.control.randomize(amount, seed, slot)
        self._request(index)
        self._notify("/randomize", [float(amount), seed], source)
        return seed

    def undo(self, source: object = None) -> bool:
        return self._step(self.control.undo, "/undo", source)

    def redo(self, source: object = None) -> bool:
        return self._step(self.control.redo, "/redo", source)

    # --- kits and presets (any thread; file I/O here, never on the audio thread) --------------
    def load_kit(self, kit: Kit, source: object = None) -> None:
        """Switch kits; hits already sounding finish with their own buffers."""
        with self._lock:
            self.control.load(kit)
            self._fit_buffers()
        self._follow_morph_targets()
        self.publish_notes()
        self._request_all()
        self._notify("/preset/load", kit.name, source)

    def load_preset(self, name: str, source: object = None) -> Kit:
        kit = self._require_store().load(name)
        self.load_kit(kit, source)
        return kit

    def program_change(self, program: int, source: object = None) -> Kit | None:
        name = self._require_store().name_for_program(program)
        if name is None:
            self.unmapped += 1
            return None
        return self.load_preset(name, source)

    def save_preset(self, name: str, source: object = None) -> str:
        store = self._require_store()
        with self._lock:
            kit, _ = self.control.snapshot()
        kit.name = name
        path = store.save(name, kit)
        self._notify("/preset/save", name, source)
        return str(path)

    def save_state(self, path: Path) -> None:
        """Write the current kit and selection atomically (main thread: exit and autosave)."""
        with self._lock:
            kit, selected = self.control.snapshot()
        save_state(path, kit, selected)

    def set_morph_targets(self, a: str, b: str) -> None:
        """Choose the two presets the morph control glides between (until the next kit)."""
        store = self._require_store()
        pair = (store.load(a), store.load(b))
        with self._lock:
            self.control.morph_pair = pair

    def _follow_morph_targets(self) -> None:
        """Load the morph targets the kit names, when they changed (file I/O: not under the
        lock); a target that cannot be loaded leaves morph as it was, with one log line."""
        names = self.control.kit.morph_targets
        if names is None or names == self._morph_names or self.store is None:
            return
        self._morph_names = names
        try:
            pair = (self.store.load(names[0]), self.store.load(names[1]))
        except SnareSynthError as exc:
            log.warning("kit %r: morph targets not loaded: %s", self.control.kit.name, exc)
            return
        with self._lock:
            self.control.morph_pair = pair

    # --- reporting (any thread) ----------------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def state(self) -> dict[str, Any]:
        """The whole control state, as plain data (for /state, autosave and tests)."""
        with self._lock:
            kit, selected = self.control.snapshot()
        return {"kit": kit_to_dict(kit), "selected": selected,
                "latent_dim": self.decoder.latent_dim, "family": self.decoder.family}

    def param_values(self, slot: int | None = None) -> dict[Param, float]:
        """Every parameter of a slot as a knob value 0..1 (for controller feedback)."""
        with self._lock:
            return self.control.values(slot)

    def status(self) -> dict[str, float | int]:
        """Counters in the spirit of scsynth's /status."""
        uptime = max(time.monotonic() - self.started_at, 1e-9)
        decode_times = sorted(self.worker.decode_seconds)
        mixer = self.mixer
        underflows = mixer.underflows  # counted by a compiled PortAudio callback
        return {
            "voices": mixer.active_voices(),
            "hits": mixer.hits_started,
            "late_hits": mixer.hits_late,
            "stolen": mixer.voices_stolen,
            "dropped_hits": mixer.dropped,
            "notes_in_callback": mixer.notes_in_callback,
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
            "cpu_load": mixer.busy_seconds / uptime,
            "longest_block_ms": 1000.0 * mixer.longest_block_seconds,
            "record_dropped": mixer.record_dropped,
            "decode_ms_median": 1000.0 * decode_times[len(decode_times) // 2]
            if decode_times else 0.0,
        }

    def count_bad(self) -> None:
        with self._lock:
            self.bad_messages += 1

    # --- internals -----------------------------------------------------------------------------
    def _require_store(self) -> PresetStore:
        if self.store is None:
            raise ValueError("no preset store configured")
        return self.store

    def _step(self, step: Callable[[], bool], event: str, source: object) -> bool:
        with self._lock:
            if not step():
                return False
            self._fit_buffers()
        self._follow_morph_targets()
        self.publish_notes()
        self._request_all()
        self._notify(event, 1, source)
        return True

    def _fit_buffers(self) -> None:
        """One buffer list per slot of the kit (under the lock), keeping those still there."""
        self.sounds.fit(len(self.control.kit.slots))

    def _request_all(self) -> None:
        for index in range(len(self.control.kit.slots)):
            self._request(index)

    def _request(self, index: int) -> None:
        with self._lock:
            requests = slot_requests(self.control.kit, index, self.control.knobs(index),
                                     self._rates)
            dropped = self.sounds.keep(index, variant_count(self.control.kit, index))
        if dropped:
            self.publish_notes()
        for request in requests:
            self.worker.submit(request)

    def _prefetch(self, index: int, param: Param, value: float, step: float) -> None:
        with self._lock:
            requests = prefetch_requests(self.control.kit, index, self.control.knobs(index),
                                         param, value, step, self.control.morph_ends(index),
                                         self._rates)
        for request in requests:
            self.worker.submit(request)

    def _publish(self, target: Hashable, buffer: np.ndarray, request: Request) -> None:
        """Thread: decode worker. One reference swap; sounding voices keep their old buffer."""
        if not isinstance(target, Layer):
            return  # a prefetch: decoded and cached, not played
        with self._lock:
            kit = self.control.kit
            if target.slot >= len(kit.slots) or not self.sounds.store(
                    target, buffer, variant_count(kit, target.slot)):
                return
        self.publish_notes()
        if target.variant == 0:
            self._notify("/buffer", [target.slot, target.layer], None)

    def publish_notes(self) -> None:
        """Give the mixer what every note-on plays now. Thread: any, after every change of
        the kit or of a buffer."""
        with self._lock:
            missing = self._notes.publish(self.control.kit, self.control.controls,
                                          self.sounds.buffers, self.sounds.variants)
        if missing:
            log.warning("note table: %d sounds found no room in the buffer table", missing)

    def _notify(self, address: str, value: Any, source: object) -> None:
        self._tell(address, value, source)
        if address in BULK_EVENTS:  # new values for every surface, the one that asked too
            for param, x in self.param_values().items():
                self._tell("/" + param.address, x, None)

    def _tell(self, address: str, value: Any, source: object) -> None:
        for listener in list(self._listeners):
            try:
                listener(address, value, source)
            except Exception as exc:  # a broken controller must not break the instrument
                log.warning("change listener failed for %s: %s", address, exc)

