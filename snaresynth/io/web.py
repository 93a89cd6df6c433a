"""The browser surface: an HTTP + WebSocket server (aiohttp) in its own thread and asyncio loop.

This module is what the daemon holds: the listening socket (bound in the main thread, so the
ready line's URL is valid at once), the pages' mailboxes and the engine calls; aiohttp and the
routes are ``io.web_http``, which the web thread imports after the daemon is ready.

``GET /`` serves the page (``web_static/``, shipped in the package: no build step, no CDN);
``GET /ws`` is the WebSocket. Each text frame is parsed once (``io.web_protocol``, the same
checks as OSC) into one engine call; a bad message gets ``/fail [address, reason]`` back. A
flood is coalesced: knob moves still waiting when a newer one for the same knob arrives are
dropped, as OSC does within a batch.

Out: every engine change (``engine.add_listener``, one path for every source) goes into each
page's own bounded mailbox, keyed by address and, for a step or a slot's round-robin count,
by its target (``engine.changes.change_key``: the newest value wins; when it is full the oldest
entry goes and the page gets the whole state again), and each page's sender task sends what
is there at most 60 times a second. Listeners run on the changing thread (MIDI, OSC, decode,
this loop) and only touch the mailbox and ``call_soon_threadsafe``: no daemon thread waits on a
browser. A stalled page's sender waits alone and is closed after ``SEND_TIMEOUT_S``.

Security: bound to loopback unless told; bound wider, a token (in the ready line's URL) is
required; a WebSocket whose Origin or Host is not the page's own is refused (403).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import logging
import secrets
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from snaresynth.control.params import slot_params
from snaresynth.engine.changes import change_key
from snaresynth.engine.notes import layer_buffer
from snaresynth.errors import DeviceError, SnareSynthError
from snaresynth.io.web_protocol import (
    Command,
    WebError,
    coalesce,
    fail_address,
    fail_reason,
    is_loopback,
)

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)

UPDATES_PER_S = 60
MAILBOX = 512  # distinct keys waiting for one page; beyond this the oldest goes, state is resent
REPLIES = 64
SEND_TIMEOUT_S = 5.0
BUFFER_MIN_S = 0.1  # a page gets one slot's buffer at most this often
MAX_CONNECTIONS = 32
STATE_EVENTS = frozenset({"/preset/load", "/undo", "/redo", "/randomize", "/z", "/select",
                          "/learn", "/velocity", "/preset/save"})
"""Changes after which each page gets the whole state again (pads and menus follow the kit)."""
BACKLOG = 128  # connections the kernel holds while aiohttp is still being imported (as its own)


class Page:
    """One connected page: its mailbox (any thread writes) and what its sender sent."""

    def __init__(self, ws: web.WebSocketResponse, loop: asyncio.AbstractEventLoop) -> None:
        self.ws = ws
        self.loop = loop
        self.lock = threading.Lock()
        # (address, target) -> (address, args): the newest message per knob, step or slot
        self.mailbox: collections.OrderedDict[tuple[Any, ...], tuple[str, list[Any]]] = \
            collections.OrderedDict()
        self.replies: collections.deque[dict[str, Any]] = collections.deque(maxlen=REPLIES)
        self.state_due = True
        self.buffers_due: set[int] = set()
        self.buffer_sent_at: dict[int, float] = {}
        self.wake = asyncio.Event()
        self.dropped = 0
        self.inbox: list[Command | WebError] = []
        self.applying = False
        self.closed = False
        self.woken = False

    def push(self, address: str, args: list[Any]) -> None:
        """Any thread: the newest value of ``address`` (for its target) waits for the next
        send."""
        key = change_key(address, args)
        with self.lock:
            self.mailbox.pop(key, None)
            self.mailbox[key] = (address, args)
            while len(self.mailbox) > MAILBOX:
                self.mailbox.popitem(last=False)
                self.dropped += 1
                self.state_due = True  # the whole state again: what was dropped is in it
            if address in STATE_EVENTS:
                self.state_due = True
        self._wake()

    def reply(self, address: str, args: list[Any]) -> None:
        with self.lock:
            self.replies.append({"address": address, "args": args})
        self._wake()

    def want_buffer(self, slot: int) -> None:
        with self.lock:
            self.buffers_due.add(slot)
        self._wake()

    def _wake(self) -> None:
        # one wake-up in flight at a time: a knob sweep does not fill the loop's self-pipe
        if not self.closed and not self.woken:
            self.woken = True
            with contextlib.suppress(RuntimeError):  # the loop is closing
                self.loop.call_soon_threadsafe(self._woke)

    def _woke(self) -> None:
        self.woken = False
        self.wake.set()

    def take(self) -> tuple[list[dict[str, Any]], bool, set[int]]:
        with self.lock:
            out = list(self.replies) + [{"address": a, "args": v}
                                        for a, v in self.mailbox.values()]
            self.replies.clear()
            self.mailbox.clear()
            state, self.state_due = self.state_due, False
            buffers, self.buffers_due = self.buffers_due, set()
        return out, state, buffers


class WebServer:
    """The page and its WebSocket on ``host:port`` (0 = any free port), in a thread."""

    def __init__(self, engine: Any, host: str = "127.0.0.1", port: int = 8000,
                 sequencer: Any = None, device: str = "",
                 extra_status: Callable[[], dict[str, Any]] | None = None,
                 token: str | None = None) -> None:
        self.engine = engine
        self.host = host
        self.port = port
        self.sequencer = sequencer
        self.device = device
        self.extra_status = extra_status
        self.token = token if token is not None else (
            "" if is_loopback(host) else secrets.token_urlsafe(16))
        self.latent_dim = int(engine.decoder.latent_dim)
        self.pages: set[Page] = set()
        self.received = 0
        self.failed = 0
        self.refused = 0
        self.coalesced = 0
        self._loop = asyncio.new_event_loop()
        self._sock: socket.socket | None = None
        self._http: Any = None  # io.web_http.HttpApp, made on the web thread
        self._ready = threading.Event()  # the web thread serves, or gave up
        self.generation = 0
        self._thread = threading.Thread(target=self._main, name="snaresynth-web", daemon=True)
        engine.add_listener(self._on_change)
        if sequencer is not None:
            sequencer.add_listener(lambda address, args: self._broadcast(address, args))

    # --- lifecycle (main thread) ---------------------------------------------------------------
    @property
    def url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}/" + (f"?token={self.token}" if self.token else "")

    def start(self) -> None:
        """Listen on the port now (a busy one raises DeviceError here, in the main thread) and
        serve from the web thread, which imports aiohttp first: the daemon does not wait for
        it, and a browser that connects meanwhile waits in the listen backlog."""
        try:
            self._sock = listen(self.host, self.port)
        except OSError as exc:
            raise DeviceError(f"cannot listen for HTTP on {self.host}:{self.port}: "
                              f"{exc.strerror or exc}") from exc
        self.port = int(self._sock.getsockname()[1])
        self._thread.start()

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._ready.wait(5.0)  # still importing aiohttp: let it come to a stop it can act on
        if self._http is not None:
            future = asyncio.run_coroutine_threadsafe(self._http.shutdown(), self._loop)
            try:
                future.result(2.0)
            except Exception as exc:  # stopping goes on: the thread is a daemon thread
                log.debug("web server shutdown: %s", exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(2.0)

    def _main(self) -> None:
        assert self._sock is not None
        asyncio.set_event_loop(self._loop)
        try:
            from snaresynth.io.web_http import HttpApp  # aiohttp: after the ready line

            http = HttpApp(self)
            self._loop.run_until_complete(http.start(self._sock))
        except Exception as exc:  # the instrument plays on without its page
            log.error("the page is not served: %s", exc)
            self._sock.close()
            self._ready.set()
            self._loop.close()
            return
        self._http = http
        self._ready.set()
        gc.freeze()  # aiohttp lives as long as the daemon, as what serve froze (reliability.md)
        self._loop.run_forever()
        self._loop.close()

    def apply(self, page: Page) -> None:
        items, page.inbox, page.applying = page.inbox, [], False
        commands = [c for c in items if isinstance(c, Command)]
        kept, dropped = coalesce(commands)
        self.coalesced += dropped
        self.received += len(items)
        keep = set(map(id, kept))
        for item in items:
            if isinstance(item, WebError):
                self.fail(page, item)
            elif id(item) in keep:
                try:
                    self._run(page, item)
                except WebError as exc:
                    self.fail(page, exc)
                except (SnareSynthError, ValueError, TypeError, KeyError, OSError) as exc:
                    self.fail(page, WebError(item.address, str(exc) or type(exc).__name__))
                except Exception as exc:  # our bug; the daemon keeps playing
                    log.exception("web handler for %s failed", item.address)
                    self.fail(page, WebError(item.address,
                                             f"internal error: {type(exc).__name__}"))

    def fail(self, page: Page, error: WebError) -> None:
        self.failed += 1
        self.engine.count_bad()
        log.debug("web %s failed: %s", fail_address(error), fail_reason(error))
        page.reply("/fail", [fail_address(error), fail_reason(error)])

    def _run(self, page: Page, c: Command) -> None:
        """One parsed command -> its engine (or sequencer) call; replies to ``page``."""
        e, a = self.engine, c.args
        if c.kind == "param":
            e.set_param(a[0], a[1], slot=a[2], source=page)
        elif c.kind == "trigger":
            if a[0] > 0.0:
                e.trigger(a[0], a[1])
        elif c.kind == "z":
            e.set_z(list(a), source=page)
        elif c.kind == "select":
            e.select(a[0], source=page)
        elif c.kind == "randomize":
            seed = e.randomize(a[0], a[1], source=page)
            page.reply("/randomize.reply", [a[0], seed])
        elif c.kind in ("undo", "redo"):
            if not getattr(e, c.kind)(source=page):
                raise WebError(c.address, f"nothing to {c.kind}")
        elif c.kind == "load":
            e.load_preset(a[0], source=page)
        elif c.kind == "save":
            e.save_preset(a[0], source=page)
            self._broadcast("/presets", self.presets())
        elif c.kind == "morph_targets":
            e.set_morph_targets(a[0], a[1])
            self._broadcast("/morph/targets", [a[0], a[1]])
        elif c.kind == "velocity_curve":
            e.set_velocity(curve=a[0], source=page)
        elif c.kind == "velocity_latent":
            e.set_velocity(latent=a[0], amount=a[1], source=page)
        elif c.kind == "variants":
            e.set_variants(a[0], a[1], source=page)
        elif c.kind == "learn":
            e.arm_learn(a[0])
            page.reply("/learn/armed", [a[0].address])
        elif c.kind == "learn_cancel":
            e.cancel_learn()
        elif c.kind == "note":
            e.note_on(a[0], a[1], a[2])
        elif c.kind == "cc":
            e.control_change(a[0], a[1], a[2], source=page)
        elif c.kind.startswith("seq_"):
            self._run_seq(c)
        elif c.kind == "preset_list":
            page.reply("/presets", self.presets())
        elif c.kind == "state":
            page.state_due = True
            page.want_buffer(e.selected)
        elif c.kind == "status":
            page.reply("/status", [self.status()])
        elif c.kind == "ping":
            page.reply("/pong", list(a))

    def _run_seq(self, c: Command) -> None:
        seq, a = self.sequencer, c.args
        if seq is None:
            raise WebError(c.address, "no sequencer in this daemon")
        if c.kind == "seq_step":
            seq.set_step(a[0], a[1], a[2])
        elif c.kind == "seq_tempo":
            seq.set_tempo(a[0])
        elif c.kind == "seq_swing":
            seq.set_swing(a[0])
        elif c.kind == "seq_play":
            seq.play(a[0])
        elif c.kind == "seq_clear":
            seq.clear()

    # --- out -----------------------------------------------------------------------------------
    def _on_change(self, address: str, value: Any, source: object) -> None:
        """Engine listener (the changing thread): every page gets it, its sender included (a
        page ignores values for the control it is dragging)."""
        if address == "/buffer":  # a re-decoded sound: its pages get the new buffer
            self.generation += 1
            for page in list(self.pages):
                page.want_buffer(value[0])
            return
        self._broadcast(address, value if isinstance(value, list) else [value])

    def _broadcast(self, address: str, args: list[Any]) -> None:
        for page in list(self.pages):
            page.push(address, args)

    def buffer(self, slot: int) -> np.ndarray | None:
        buffers = self.engine.buffers  # a reference read: the decode worker replaces entries
        if slot >= len(buffers):
            return None
        return layer_buffer(buffers[slot], 1.0, self.engine.kit.velocity_latent is not None)

    def state(self) -> dict[str, Any]:
        state = self.engine.state()
        values = self.engine.param_values()
        state["values"] = {p.address: float(values[p]) for p in values}
        state["params"] = [p.address for p in slot_params(self.latent_dim)]
        state["rate"] = int(self.engine.rate)
        state["audio"] = self.device
        state["sequencer"] = self.sequencer.state() if self.sequencer is not None else None
        state["pages"] = len(self.pages)
        return state

    def presets(self) -> list[str]:
        store = getattr(self.engine, "store", None)
        return list(store.list()) if store is not None else []

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = dict(self.engine.status())
        status.update(web_received=self.received, web_failed=self.failed,
                      web_refused=self.refused, web_coalesced=self.coalesced,
                      web_pages=len(self.pages), audio=self.device)
        if self.sequencer is not None:
            status.update(seq_hits=self.sequencer.hits, seq_refused=self.sequencer.refused)
        if self.extra_status is not None:
            status.update(self.extra_status())
        return status


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0 = any free port), as aiohttp's own site would
    bind it (address reuse; IPv6 only for an IPv6 address); the first address ``host`` names."""
    family, _, _, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                  flags=socket.AI_PASSIVE)[0]
    return socket.create_server(address[:2], family=family, backlog=BACKLOG)
