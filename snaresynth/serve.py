"""``snaresynth serve``: wire model, engine, audio, MIDI and OSC together and run until a signal.

Main thread only. Start-up order: the devices named checked (io/devices.py) -> model (warmed
up) -> engine (every slot decoded) -> audio -> MIDI -> OSC -> one "ready" line on stdout.
SIGINT/SIGTERM stop everything within a second and save the current state; the state is also
autosaved periodically when it changed.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import select
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from snaresynth.config import Settings
from snaresynth.control.presets import Kit, PresetStore, default_state_path, load_kit, load_state
from snaresynth.decode.worker import BufferCache, DecodeWorker, Worker
from snaresynth.engine.engine import Engine, EngineSettings
from snaresynth.errors import DeviceError, PresetError

log = logging.getLogger(__name__)

STREAM_SETTLE_S = 0.2
"""Underflow flags in the first moments of a stream are PortAudio priming the device buffers;
they are reported as start-up xruns, apart from the xruns that count."""


def choose_kit(settings: Settings, store: PresetStore, state_file: Path) -> tuple[Kit, int]:
    """--preset (a name or a TOML path), else the last saved state, else the "default" kit."""
    if settings.preset:
        path = Path(settings.preset)
        kit = load_kit(path) if path.suffix == ".toml" and path.exists() else store.load(
            settings.preset)
        return kit, 0
    if state_file.exists():
        try:
            return load_state(state_file)
        except PresetError as exc:
            log.warning("saved state not usable, starting with the default kit; %s", exc)
            _set_aside(state_file)
    return store.load("default"), 0


def _set_aside(path: Path) -> None:
    """Keep a bad file as evidence under a dated name, so saving the new state keeps it."""
    aside = path.with_name(f"{path.name}.bad-{time.strftime('%Y%m%dT%H%M%S')}")
    try:
        path.rename(aside)
        log.warning("the bad state file is kept as %s", aside)
    except OSError as exc:
        log.warning("could not keep the bad state file aside (%s); it will be overwritten",
                    exc.strerror or exc)


class StopDuringStart(Exception):
    """A stop signal arrived before the daemon was ready: start-up is abandoned at once."""


def device_rate(settings: Settings) -> int:
    """The output rate: --rate, else the audio device's own rate (JACK's), else 48000 Hz."""
    if settings.rate:
        return settings.rate
    if settings.audio == "null":
        return 48000
    try:
        if settings.audio == "jack":  # asked of JACK itself: PortAudio is not used for JACK
            from snaresynth.io.audio import jack_rate

            return jack_rate()
        import sounddevice as sd

        device = None if settings.audio == "auto" else settings.audio
        return int(sd.query_devices(device, kind="output")["default_samplerate"])
    except Exception:  # no device: the audio backend will say so in its own words
        return 48000


def serve(settings: Settings) -> int:
    stop = threading.Event()
    starting = [True]

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()
        if starting[0]:
            starting[0] = False  # once: a second signal must not cut the clean-up short
            raise StopDuringStart(signal.Signals(signum).name)

    # SIGHUP too: a dropped ssh session saves and stops like Ctrl-C
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        return _serve(settings, stop, starting)
    except StopDuringStart as exc:
        log.info("stopped by %s during start-up", exc)
        return 0


def _serve(settings: Settings, stop: threading.Event, starting: list[bool]) -> int:
    from snaresynth.io.audio import Recorder, open_audio
    from snaresynth.io.devices import check_devices
    from snaresynth.io.memlock import lock_memory
    from snaresynth.io.midi import open_midi_in
    from snaresynth.io.midi_feedback import open_midi_feedback
    from snaresynth.io.osc_server import OscServer
    from snaresynth.io.supervisor import Supervisor
    from snaresynth.models import registry

    check_devices(settings)  # a device that is not there: said in a second, not after the model
    engine_settings = EngineSettings(rate=0, blocksize=settings.blocksize,
                                     max_voices=settings.voices, latency=settings.latency)
    worker: Worker
    cache = BufferCache(engine_settings.cache_bytes)
    # realtime only above an ordinary audio thread: never over PortAudio's callback
    priority = settings.decode_rt_priority()
    # the model file's inference form (numpy): serving never imports TensorFlow
    if settings.decode == "process":
        from snaresynth.decode.process import ProcessDecodeWorker

        worker = process_worker = ProcessDecodeWorker(settings.model, cache=cache,
                                                      rt_priority=priority)
        decoder = process_worker.load()
    else:
        decoder = registry.resolve(settings.model, runtime="inference")
        decoder.warm_up()
        worker = DecodeWorker(decoder, lambda *_: None, cache, rt_priority=priority)
    metadata = getattr(decoder, "metadata", None)
    log.info("model: %s (%s, %d latent dims, %d Hz, decoding in a %s)",
             getattr(decoder, "path", None) or getattr(metadata, "description", "") or
             getattr(decoder, "description", ""), decoder.family, decoder.latent_dim,
             decoder.sample_rate, settings.decode)
    log.debug("decode priority: %s", f"SCHED_FIFO {priority} while light" if priority
              else "ordinary")
    store = PresetStore()
    state_file = settings.state_file or default_state_path()
    kit, selected = choose_kit(settings, store, state_file)
    rate = device_rate(settings)
    engine_settings.rate = rate
    engine = Engine(decoder, kit, engine_settings, store=store, worker=worker, selected=selected)
    engine.start()

    recorder = Recorder(settings.record, rate, engine.mixer) if settings.record else None
    # JACK and PortAudio: the mixer runs in a compiled callback that never takes the GIL
    audio = open_audio(settings.audio, engine.process, rate, settings.blocksize,
                       mixer=engine.mixer, autoconnect=settings.autoconnect)
    audio.on_xrun = engine.note_xrun
    midi = osc = feedback = web = sequencer = None
    supervisor = Supervisor()
    try:
        audio.start()
        settled_at = time.monotonic() + STREAM_SETTLE_S
        try:
            # on JACK the audio callback plays note-ons itself, in the cycle they arrive
            notes_to = getattr(audio, "notes_port_name", None)
            midi = open_midi_in(engine, settings.midi_in, settings.midi_api, notes_to,
                                audio=settings.audio)
            if notes_to is not None and getattr(midi, "notes_port_name", None):
                audio.notes_source = midi.notes_port_name  # reconnected when audio reopens
        except DeviceError as exc:
            if settings.midi_in != "virtual":
                raise
            log.warning("no MIDI input: %s", exc)
        feedback = open_midi_feedback(engine, settings.midi_out,
                                      midi.api if midi else settings.midi_api, skip_source=midi,
                                      audio=settings.audio)
        osc = OscServer(engine, settings.osc_host, settings.osc_port, settings.osc_allow)
        osc.start()
        if settings.http:  # the page: its own thread and asyncio loop (io/web.py)
            from snaresynth.engine.sequencer import Sequencer
            from snaresynth.io.web import WebServer

            sequencer = Sequencer(engine)
            web = _start_web(WebServer, engine, settings, sequencer,
                             device=f"{audio.name} at {rate} Hz / {settings.blocksize} frames",
                             extra_status=lambda: supervisor.counters() | {
                                 "osc_subscribers": len(osc.controller.subscribers)})
            sequencer.start()
        supervisor.watch("audio", audio)
        supervisor.watch("midi", midi)
        supervisor.watch("midi_out", feedback)
        why_not = lock_memory()  # what the callbacks touch from now on stays in RAM
        if why_not:
            log.warning("%s; a page fault in the audio thread costs a cycle", why_not)
        osc.controller.extra_status = lambda: supervisor.counters() | {
            "memory_locked": int(not why_not)}
        supervisor.start()
        # what is loaded lives as long as the daemon: a full collection scanning it would pause
        # every Python thread long enough to make a note late (docs/reliability.md)
        gc.freeze()
        _mark_running_when_settled(engine, settled_at)
        starting[0] = False
        print(f"snaresynth ready: audio {audio.name} at {rate} Hz / {settings.blocksize} frames"
              f" | MIDI {midi.name if midi else 'none'}"
              + (f" -> {feedback.name}" if feedback else "") + f" | OSC {osc.address}"
              f" | model {decoder.family} | kit {engine.kit.name}"
              + (f" | web {web.url}" if web else ""), flush=True)
        _run_until(stop, engine, state_file, settings.autosave_s)
    finally:
        starting[0] = False
        t0 = time.monotonic()
        supervisor.stop()
        if sequencer:
            sequencer.stop()
        if web:
            web.stop()
        if osc:
            osc.stop()
        if midi:
            midi.close()
        _save(engine, state_file)  # every input is closed: the state is final
        if feedback:
            feedback.close()
        audio.stop()
        if recorder:
            recorder.close()
        engine.stop()
        log.info("stopped in %.2f s", time.monotonic() - t0)
    return 0


def _mark_running_when_settled(engine: Engine, settled_at: float) -> None:
    """Count xruns from ``settled_at`` on, without holding the ready line back for it: the
    stream's priming flags are start-up xruns, the instrument plays meanwhile."""
    remaining = settled_at - time.monotonic()
    if remaining <= 0:
        engine.mark_running()
        return
    timer = threading.Timer(remaining, engine.mark_running)
    timer.name, timer.daemon = "snaresynth-settle", True
    timer.start()


def _start_web(server: Any, engine: Engine, settings: Settings, sequencer: Any,
               **kwargs: Any) -> Any:
    """The page on its port, or on any free one if that is taken (with one warning line): a
    busy web port must not keep the instrument from playing; the ready line names the URL."""
    web = server(engine, settings.http_host, settings.http_port, sequencer, **kwargs)
    try:
        web.start()
    except DeviceError as exc:
        if settings.http_port == 0:
            raise
        log.warning("%s; serving the page on a free port instead", exc)
        web = server(engine, settings.http_host, 0, sequencer, **kwargs)
        web.start()
    return web


def _run_until(stop: threading.Event, engine: Engine, state_file: Path, autosave_s: float) -> None:
    """Wait for a signal; meanwhile save the state every ``autosave_s`` seconds if it changed.

    The kernel may hand a process's signal to any of its threads, and then a main thread asleep
    in ``Event.wait`` would only run the Python handler when its timeout ends (30 s late, seen in
    CI): it sleeps in ``select`` on the wake-up fd, which CPython's C handler writes to from
    whichever thread got the signal."""
    reader, writer = socket.socketpair()
    for end in (reader, writer):
        end.setblocking(False)
    previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    try:
        saved = engine.state()
        next_save = time.monotonic() + autosave_s
        while not stop.is_set():
            select.select([reader], [], [], max(0.0, next_save - time.monotonic()))
            with contextlib.suppress(BlockingIOError):
                reader.recv(64)  # the signals' numbers: the Python handler sets ``stop``
            if time.monotonic() >= next_save and not stop.is_set():
                next_save = time.monotonic() + autosave_s
                current = engine.state()
                if current != saved:
                    _save(engine, state_file)
                    saved = current
    finally:
        signal.set_wakeup_fd(previous)
        reader.close()
        writer.close()


def _save(engine: Engine, state_file: Path) -> None:
    try:
        engine.save_state(state_file)
    except (OSError, PresetError) as exc:
        print(f"snaresynth: could not save state to {state_file}: {exc}", file=sys.stderr)
