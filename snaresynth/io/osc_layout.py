"""An Open Stage Control (1.x) session made from the kit that is loaded, and the ``/EDIT``
messages that keep an open one in step when the kit changes.

The session has a fader for every latent dimension of the model and for the slot parameters,
``MAX_PADS`` trigger pads (those past the kit's slots hidden), a slot selector, a preset menu,
and randomize, undo, redo and "follow daemon" (subscribe) buttons. Open Stage Control's
``/EDIT id properties`` merges a JSON object into a widget, so a kit load relabels the pads,
shows or hides them and refreshes the menus without reloading the session. Pure: no sockets.
"""

from __future__ import annotations

import json
from typing import Any

from snaresynth.control.kit import Kit

MAX_PADS = 16
"""Pads in a session: kits with more slots are played from MIDI or the page beyond these."""
PREFIX = "/snaresynth"


def _fader(wid: str, label: str, address: str, x: int, value: float = 0.5) -> dict[str, Any]:
    return {"type": "fader", "id": wid, "label": label, "address": address, "left": x,
            "top": 80, "width": 70, "height": 300, "range": {"min": 0, "max": 1},
            "default": value, "preArgs": [], "target": [], "design": "compact"}


def _button(wid: str, label: str, address: str, x: int, y: int,
            on: float = 1.0) -> dict[str, Any]:
    """A tap button: sends ``address on`` when pressed (buttons send their value last)."""
    return {"type": "button", "id": wid, "label": label, "address": address, "left": x,
            "top": y, "width": 120, "height": 60, "mode": "tap", "on": on, "off": 0.0,
            "preArgs": [], "target": []}


def _menu(wid: str, label: str, address: str, x: int, y: int,
          values: dict[str, Any]) -> dict[str, Any]:
    return {"type": "dropdown", "id": wid, "label": label, "address": address, "left": x,
            "top": y, "width": 250, "height": 60, "values": values, "preArgs": [],
            "target": []}


def pad_label(kit: Kit, index: int) -> str:
    slot = kit.slots[index]
    notes = ",".join(str(n) for n in slot.notes)
    return f"{slot.name} ({notes})" if notes else slot.name


def _pad_props(kit: Kit, index: int) -> dict[str, Any]:
    shown = index < len(kit.slots)
    return {"label": pad_label(kit, index) if shown else "", "visible": shown}


def _slot_values(kit: Kit) -> dict[str, int]:
    return {f"{i + 1} {s.name}": i for i, s in enumerate(kit.slots[:MAX_PADS])}


def session(kit: Kit, latent_dim: int, presets: list[str]) -> dict[str, Any]:
    """The whole session for ``kit`` on a model with ``latent_dim`` dimensions."""
    widgets = [_fader(f"latent_{i}", f"latent {i + 1}", f"{PREFIX}/latent/{i}", 20 + 80 * i)
               for i in range(latent_dim)]
    x = 20 + 80 * latent_dim + 40
    for j, name in enumerate(["level", "tune", "decay", "pan", "morph"]):
        default = {"level": 0.8333, "decay": 1.0, "morph": 0.0}.get(name, 0.5)
        widgets.append(_fader(name, name, f"{PREFIX}/{name}", x + 80 * j, default))
    for k in range(MAX_PADS):
        pad = _button(f"hit_{k}", "", f"{PREFIX}/trigger/{k}", 20 + 130 * (k % 8),
                      420 + 70 * (k // 8))
        widgets.append(pad | _pad_props(kit, k))
    y = 420 + 70 * ((MAX_PADS + 7) // 8) + 20
    widgets += [
        _button("randomize", "randomize", f"{PREFIX}/randomize", 20, y, on=0.3),
        _button("undo", "undo", f"{PREFIX}/undo", 150, y),
        _button("redo", "redo", f"{PREFIX}/redo", 280, y),
        _button("subscribe", "follow daemon", f"{PREFIX}/subscribe", 410, y),
        _menu("select", "slot", f"{PREFIX}/select", 540, y, _slot_values(kit)),
        _menu("preset", "preset", f"{PREFIX}/preset/load", 800, y,
              {name: name for name in presets}),
    ]
    return {"createdWith": "open-stage-control", "version": "1.26.2", "type": "session",
            "content": {"type": "root", "id": "root", "label": "snaresynth", "tabs": [],
                        "widgets": widgets}}


def edits(kit: Kit, presets: list[str]) -> list[tuple[str, list[Any]]]:
    """``/EDIT`` messages that bring an open session in step with ``kit``."""
    out = [("/EDIT", [f"hit_{k}", json.dumps(_pad_props(kit, k))]) for k in range(MAX_PADS)]
    out.append(("/EDIT", ["select", json.dumps({"values": _slot_values(kit)})]))
    out.append(("/EDIT", ["preset", json.dumps({"values": {n: n for n in presets}})]))
    return out
