"""OSC control: the /snaresynth/... address space over UDP (python-osc).

``OscController.handle_packet(data, sender)`` parses one datagram and calls the Engine; it never
touches the network, so tests drive it with raw bytes. ``io/osc_server.py`` is the thin part:
the socket and its threads.

Timetags: python-osc's own timetag handling sleeps in the dispatcher, so packets are parsed
here with ``osc_packet.OscPacket`` and routed by this module (the dispatcher is only there for
the server class, with ``strict_timing=False``); bundle times are handed to the engine, which
places each trigger on the audio clock. Bad input of any kind gets
``/snaresynth/fail <address> <reason>`` back, a counter and a log line (bounded by
``snaresynth.logs``); the
daemon keeps playing.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import struct
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from pythonosc import osc_packet

from snaresynth.control.params import Param, parse_param
from snaresynth.engine.changes import change_key
from snaresynth.errors import SnareSynthError
from snaresynth.io import osc_layout
from snaresynth.io.osc_args import (
    OscError,
    bundle_time,
    integer,
    missing_bytes,
    no_more,
    number,
    released,
    string,
    unit,
    unknown_tag,
)

log = logging.getLogger(__name__)

PREFIX = "/snaresynth"
KNOB_ROUTES = frozenset({"/level", "/tune", "/decay", "/pan", "/morph", "/variation"})
"""Knob addresses besides /latent/<i>: one value (and a slot), coalesced within a batch."""
KNOB_TAGS = frozenset({b",f", b",i", b",ff", b",fi", b",if", b",ii"})
LAYOUT_EVENTS = frozenset({"/preset/load", "/preset/save", "/undo", "/redo"})
"""Changes after which a subscribed Open Stage Control session is edited to the kit."""
MAX_FAIL_ADDRESS = 200
"""Characters of the offending address a /fail echoes at most."""
MAX_SUBSCRIBERS = 32
"""Subscribers at most: each change is one datagram to each of them."""
MAX_AHEAD_S = 60.0
"""Bundles timetagged further ahead than this are refused (a typo'd year would hold a voice)."""

Address = tuple[str, int]
Reply = tuple[str, list[Any], Address]


def knob_param(route: str, latent_dim: int) -> Param | None:
    """The parameter of a knob route (``/level``, ``/latent/3``), None for other routes; a
    latent index the model does not have is a ValueError."""
    if route in KNOB_ROUTES or route.startswith("/latent/"):
        return parse_param(route[1:], latent_dim)
    return None


def wall_and_monotonic(tries: int = 3) -> tuple[float, float]:
    """``time.time()`` and ``time.monotonic()`` of one instant: a thread switch between two
    clock reads would put a timetag off by as long as it lasted (milliseconds when other
    threads are busy), so keep the reading whose monotonic brackets are closest."""
    best = (math.inf, 0.0, 0.0)
    for _ in range(tries):
        before = time.monotonic()
        wall = time.time()
        after = time.monotonic()
        if after - before < best[0]:
            best = (after - before, wall, (before + after) / 2)
    return best[1], best[2]


class OscController:
    """Routes parsed OSC messages to Engine calls and produces replies (no sockets here)."""

    def __init__(self, engine: Any, allow: Sequence[str] | None = None,
                 send: Callable[[str, list[Any], Address], None] | None = None) -> None:
        self.engine = engine
        self.latent_dim = engine.decoder.latent_dim
        self.allow = [ipaddress.ip_network(net, strict=False) for net in (allow or [])]
        self.send = send  # used for pushes to subscribers; replies are returned instead
        self.subscribers: set[Address] = set()
        # the changes flush sends: per target, per address (or edited widget), the latest
        self._pending: dict[Address, dict[tuple[Any, ...], tuple[str, list[Any]]]] = {}
        self._pending_lock = threading.Lock()
        self.received = 0
        self.failed = 0
        self.refused = 0
        self.late = 0
        self.coalesced = 0  # knob messages replaced by a newer one from the same batch
        self.extra_status: Callable[[], dict[str, int]] | None = None  # e.g. the supervisor's
        self._current_time: float | None = None  # timetag (monotonic) of the message in hand
        self._current_late = False  # the message in hand was timetagged in the past
        self._routes: dict[str, Callable[[Sequence[Any], Address], list[Reply] | None]] = {
            "/trigger": self._trigger, "/z": self._z, "/morph/targets": self._morph_targets,
            "/select": self._select, "/randomize": self._randomize, "/undo": self._undo,
            "/redo": self._redo,
            "/preset/load": self._preset_load, "/preset/save": self._preset_save,
            "/preset/list": self._preset_list, "/learn": self._learn,
            "/learn/cancel": self._learn_cancel, "/ping": self._ping, "/state": self._state,
            "/status": self._status, "/subscribe": self._subscribe,
            "/unsubscribe": self._unsubscribe, "/velocity/curve": self._velocity_curve,
            "/velocity/latent": self._velocity_latent, "/variants": self._variants,
        }
        for route in KNOB_ROUTES:
            self._routes[route] = self._param_route(route)
        engine.add_listener(self._on_change)

    # --- entry point (OSC server thread) -------------------------------------------------------
    def handle_packet(self, data: bytes, sender: Address) -> list[Reply]:
        """Handle one datagram; returns the replies to send. Thread: OSC server thread."""
        if self.allow and not self._allowed(sender[0]):
            self.refused += 1
            log.warning("OSC from %s refused (not in --osc-allow)", sender[0])
            return []
        if len(data) % 4:  # OSC packets are whole 32-bit words; anything else was cut short
            return self._fail("?", f"truncated packet ({len(data)} bytes, not a multiple of 4)",
                              sender)
        tag = unknown_tag(data)
        if tag is not None:
            return self._fail("?", f"unknown type tag {tag!r}", sender)
        try:
            packet = osc_packet.OscPacket(data)
            messages = packet.messages
        except Exception as exc:  # ParseError, and RecursionError for absurdly nested bundles
            return self._fail("?", f"unparseable packet ({type(exc).__name__}: {exc})", sender)
        replies: list[Reply] = []
        bundled = data[:8] == b"#bundle\x00"
        # python-osc hands past timetags over as "now": read the bundle's own
        past = bundled and bundle_time(data) < time.time() - 0.001
        for timed in messages:
            message = timed.message
            missing = missing_bytes(message)
            if missing:
                replies.extend(self._fail(message.address, f"truncated message ({missing} "
                                          "bytes of arguments missing)", sender))
                continue
            self._current_late = past
            replies.extend(self._handle_message(message.address, list(message.params),
                                                timed.time if bundled else None, sender))
        self._current_late = False
        return replies

    def handle_batch(self, batch: Sequence[tuple[bytes, Address]]) -> list[Reply]:
        """Handle datagrams that arrived together, in order. A plain knob message (valid, not
        in a bundle) is read by hand (microseconds, against ~50 for python-osc) and skipped
        when a later one in the batch sets the same knob of the same slot from the same
        sender: the last value wins, at a fraction of the cost."""
        knobs = [self._read_knob(data, sender) for data, sender in batch]
        last = {k[0]: i for i, k in enumerate(knobs) if k is not None}
        replies: list[Reply] = []
        for i, ((data, sender), knob) in enumerate(zip(batch, knobs, strict=True)):
            if knob is None:
                replies.extend(self.handle_packet(data, sender))
                continue
            self.received += 1
            if last[knob[0]] != i:
                self.coalesced += 1
                continue
            key, param, value, slot = knob
            replies.extend(self._call(key[1], sender, lambda p=param, v=value, s=slot, a=sender:
                                      self.engine.set_param(p, v, slot=s, source=a)))
        return replies

    def _read_knob(self, data: bytes, sender: Address
                   ) -> tuple[tuple, Param, float, int | None] | None:
        """(coalescing key, parameter, value, slot) of a well-formed knob message, else None
        (anything else, bad values included, goes the full way and gets its /fail)."""
        if data[:1] != b"/" or (self.allow and not self._allowed(sender[0])):
            return None
        end = data.find(b"\0")
        tags_at = (end + 4) & ~3
        tags_end = data.find(b"\0", tags_at)
        if end < 0 or tags_end < 0:
            return None
        tags = data[tags_at:tags_end]
        args_at = (tags_end + 4) & ~3
        if tags not in KNOB_TAGS or len(data) != args_at + 4 * (len(tags) - 1):
            return None
        address = data[:end].decode("ascii", "replace")
        if not address.startswith(PREFIX + "/"):
            return None
        args = list(struct.unpack(">" + tags[1:].decode(), data[args_at:]))
        try:
            param = knob_param(address[len(PREFIX):], self.latent_dim)
            if param is None:
                return None
            value = unit(args, 0)
            slot = integer(args, 1, "slot")
        except ValueError:
            return None
        return (sender, address, slot), param, value, slot

    def _handle_message(self, address: str, args: list[Any], timetag: float | None,
                        sender: Address) -> list[Reply]:
        self.received += 1
        route = address[len(PREFIX):] if address.startswith(PREFIX + "/") else ""
        handler = self._routes.get(route)
        if handler is None and route.startswith("/latent/"):
            handler = lambda args, sender: self._latent(route, args, sender)  # noqa: E731
        elif handler is None and route.startswith("/trigger/"):
            handler = lambda args, sender: self._trigger_slot(route, args, sender)  # noqa: E731
        if handler is None:
            return self._fail(address, "unknown address", sender)

        def run() -> list[Reply] | None:
            self._current_time = self._schedule_time(timetag)
            return handler(args, sender)
        return self._call(address, sender, run)

    def _call(self, address: str, sender: Address,
              run: Callable[[], list[Reply] | None]) -> list[Reply]:
        """Run one handler; whatever it raises becomes the sender's /fail."""
        try:
            return run() or []
        except (OscError, SnareSynthError, ValueError, TypeError, KeyError, OSError) as exc:
            return self._fail(address, str(exc) or type(exc).__name__, sender)
        except Exception as exc:  # anything else is our bug, but the daemon keeps playing
            log.exception("OSC handler for %s failed", address)
            return self._fail(address, f"internal error: {type(exc).__name__}", sender)
        finally:
            self._current_time = None

    def _schedule_time(self, timetag: float | None) -> float | None:
        """Bundle timetag (Unix s) -> monotonic s; None = play on arrival."""
        if timetag is None:
            return None
        wall, mono = wall_and_monotonic()
        ahead = timetag - wall
        if ahead > MAX_AHEAD_S:
            raise OscError(f"timetag {ahead:.1f} s ahead (limit {MAX_AHEAD_S:.0f} s)")
        if ahead <= 0:
            self._current_late |= ahead < -0.001
            return None
        return mono + ahead

    def _fail(self, address: str, reason: str, sender: Address) -> list[Reply]:
        self.failed += 1
        self.engine.count_bad()
        log.warning("OSC %s from %s:%s failed: %s", address, sender[0], sender[1], reason)
        if len(address) > MAX_FAIL_ADDRESS:  # a 30,000-character address is not sent back
            address = address[:MAX_FAIL_ADDRESS - 3] + "..."
        return [(PREFIX + "/fail", [address, reason], sender)]

    def _allowed(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(ip in net for net in self.allow)

    # --- handlers: args -> Engine call (-> replies) --------------------------------------------
    def _trigger(self, args: Sequence[Any], sender: Address) -> None:
        no_more(args, 2)
        velocity = unit(args, 0, "velocity") if args else 1.0
        slot = integer(args, 1, "slot")
        self._play(velocity, slot)

    def _play(self, velocity: float, slot: int | None) -> None:
        """A hit at the message's time; ``osc_late`` counts the ones that play late."""
        if self.engine.trigger(velocity, slot, at=self._current_time) and self._current_late:
            self.late += 1

    def _trigger_slot(self, route: str, args: Sequence[Any], sender: Address) -> None:
        """``/trigger/<slot> [velocity]``: one address per pad; velocity 0 (a button's release)
        plays nothing."""
        index = route[len("/trigger/"):]
        if not index.isdigit():
            raise OscError(f"slot must be a whole number, got {index!r}")
        no_more(args, 1)
        velocity = unit(args, 0, "velocity") if args else 1.0
        if velocity > 0.0:
            self._play(velocity, int(index))

    def _latent(self, route: str, args: Sequence[Any], sender: Address) -> None:
        param = knob_param(route, self.latent_dim)
        assert param is not None
        self._knob(param, args, sender)

    def _knob(self, param: Param, args: Sequence[Any], sender: Address) -> None:
        no_more(args, 2)
        self.engine.set_param(param, unit(args, 0), slot=integer(args, 1, "slot"), source=sender)

    def _z(self, args: Sequence[Any], sender: Address) -> None:
        values = [number(args, i, f"z[{i}]") for i in range(len(args))]
        self.engine.set_z(values, source=sender)

    def _param_route(self, route: str) -> Callable[[Sequence[Any], Address], None]:
        param = knob_param(route, self.latent_dim)
        assert param is not None
        return lambda args, sender: self._knob(param, args, sender)

    def _select(self, args: Sequence[Any], sender: Address) -> None:
        no_more(args, 1)
        slot = integer(args, 0, "slot")
        if slot is None:
            raise OscError("missing argument 1 (slot)")
        self.engine.select(slot, source=sender)

    def _randomize(self, args: Sequence[Any], sender: Address) -> list[Reply]:
        no_more(args, 2)
        amount = unit(args, 0, "amount") if args else 1.0
        seed = self.engine.randomize(amount, integer(args, 1, "seed"), source=sender)
        return [(PREFIX + "/randomize.reply", [amount, seed], sender)]

    def _undo(self, args: Sequence[Any], sender: Address) -> None:
        if not released(args) and not self.engine.undo(source=sender):
            raise OscError("nothing to undo")

    def _redo(self, args: Sequence[Any], sender: Address) -> None:
        if not released(args) and not self.engine.redo(source=sender):
            raise OscError("nothing to redo")

    def _preset_load(self, args: Sequence[Any], sender: Address) -> list[Reply]:
        no_more(args, 1)
        kit = self.engine.load_preset(string(args, 0, "name"), source=sender)
        return [(PREFIX + "/preset/load.reply", [kit.name], sender)]

    def _preset_save(self, args: Sequence[Any], sender: Address) -> list[Reply]:
        no_more(args, 1)
        name = string(args, 0, "name")
        self.engine.save_preset(name, source=sender)
        return [(PREFIX + "/preset/save.reply", [name], sender)]

    def _preset_list(self, args: Sequence[Any], sender: Address) -> list[Reply]:
        return [(PREFIX + "/preset/list.reply", self._preset_names(), sender)]

    def _morph_targets(self, args: Sequence[Any], sender: Address) -> None:
        no_more(args, 2)
        self.engine.set_morph_targets(string(args, 0, "preset A"), string(args, 1, "preset B"))

    def _velocity_curve(self, args: Sequence[Any], sender: Address) -> None:
        no_more(args, 1)
        self.engine.set_velocity(curve=string(args, 0, "curve"), source=sender)

    def _velocity_latent(self, args: Sequence[Any], sender: Address) -> None:
        """``/velocity/latent dim [amount]``: dim -1 switches velocity layering off."""
        no_more(args, 2)
        dim = integer(args, 0, "latent dimension")
        if dim is None:
            raise OscError("missing argument 1 (latent dimension, -1 = off)")
        amount = number(args, 1, "amount") if len(args) > 1 else None
        self.engine.set_velocity(latent=dim, amount=amount, source=sender)

    def _variants(self, args: Sequence[Any], sender: Address) -> None:
        """``/variants n [slot]``: round-robin variants the slot plays (1..8) when varied."""
        no_more(args, 2)
        count = integer(args, 0, "variants")
        if count is None:
            raise OscError("missing argument 1 (variants, 1..8)")
        self.engine.set_variants(count, integer(args, 1, "slot"), source=sender)

    def _learn(self, args: Sequence[Any], sender: Address) -> None:
        no_more(args, 1)
        self.engine.arm_learn(parse_param(string(args, 0, "parameter"), self.latent_dim))

    def _learn_cancel(self, args: Sequence[Any], sender: Address) -> None:
        self.engine.cancel_learn()

    def _ping(self, args: Sequence[Any], sender: Address) -> list[Reply]:
        return [(PREFIX + "/pong", list(args), sender)]

    def _state(self, args: Sequence[Any], sender: Address) -> list[Reply]:
        return [(PREFIX + "/state.reply", [json.dumps(self.engine.state())], sender)]

    def _status(self, args: Sequence[Any], sender: Address) -> list[Reply]:
        status = dict(self.engine.status())
        status.update(osc_received=self.received, osc_failed=self.failed,
                      osc_refused=self.refused, osc_late=self.late,
                      osc_coalesced=self.coalesced)
        if self.extra_status is not None:
            status.update(self.extra_status())
        flat: list[Any] = []
        for key, value in status.items():
            flat.extend([key, float(value) if isinstance(value, float) else int(value)])
        return [(PREFIX + "/status.reply", flat, sender)]

    def _subscribe(self, args: Sequence[Any], sender: Address) -> list[Reply]:
        """Add a subscriber and send it the current state, so a freshly opened layout shows
        the instrument's values instead of its own defaults."""
        if len(args) == 1 and released(args):
            return []
        target = self._target(args[:0] if len(args) == 1 else args, sender)
        if target not in self.subscribers and len(self.subscribers) >= MAX_SUBSCRIBERS:
            raise OscError(f"subscriber limit reached ({MAX_SUBSCRIBERS}); unsubscribe one first")
        self.subscribers.add(target)
        state = [(PREFIX + "/select", [self.engine.selected], target)]
        state += [(PREFIX + "/" + param.address, [x], target)
                  for param, x in self.engine.param_values().items()]
        return [(PREFIX + "/subscribe.reply", [target[0], target[1]], sender), *state]

    def _unsubscribe(self, args: Sequence[Any], sender: Address) -> None:
        self.subscribers.discard(self._target(args, sender))

    def _target(self, args: Sequence[Any], sender: Address) -> Address:
        """A subscriber's address: numeric only, so no send ever waits on a name lookup;
        broadcast and multicast are refused (one change would reach a whole network)."""
        no_more(args, 2)
        if not args:
            return sender
        host = string(args, 0, "host")
        port = integer(args, 1, "port")
        if port is None or not 1 <= port <= 65535:
            raise OscError(f"port must be 1..65535, got {port}")
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            shown = host if len(host) <= 40 else host[:37] + "..."
            raise OscError(f"host must be an IP address, got {shown!r}") from None
        if ip.is_multicast or ip.is_unspecified or str(ip) == "255.255.255.255":
            raise OscError(f"host {host} is a broadcast, multicast or unspecified address")
        return (str(ip), port)

    # --- pushes to subscribers ------------------------------------------------------------------
    def _on_change(self, address: str, value: Any, source: object) -> None:
        """Engine listener (thread of whoever made the change): only noted, the latest value
        of each address per subscriber; ``flush`` sends them."""
        if not self.subscribers:
            return
        change = (PREFIX + address, value if isinstance(value, list) else [value])
        # an open Open Stage Control session follows the kit, its sender's too
        edits = osc_layout.edits(self.engine.kit, self._preset_names()) \
            if address in LAYOUT_EVENTS else []
        with self._pending_lock:
            for target in list(self.subscribers):
                pending = self._pending.setdefault(target, {})
                if target != source:
                    pending[change_key(address, change[1])] = change
                for edit in edits:
                    pending[("/EDIT", edit[1][0])] = edit

    def _preset_names(self) -> list[str]:
        store = self.engine.store
        return store.list() if store is not None else []

    def flush(self) -> int:
        """Send what changed since the last flush (thread: the pusher, ``osc_server.PUSH_HZ``
        times a second, so a 200 CC/s sweep costs each subscriber 60 datagrams, not 200)."""
        with self._pending_lock:
            pending, self._pending = self._pending, {}
        sent = 0
        if self.send is not None:
            for target, changes in pending.items():
                for address, args in changes.values():
                    self.send(address, args, target)
                    sent += 1
        return sent
