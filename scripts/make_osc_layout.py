"""Write presets/layouts/open-stage-control.json: an Open Stage Control (1.x) session with a
fader for every latent dimension and the slot parameters, trigger pads for each slot, and
buttons for randomize, undo and subscribe. Regenerate after the address space changes:

    .venv/bin/python scripts/make_osc_layout.py
"""

from __future__ import annotations

import json
from pathlib import Path

LATENT_DIMS = 8
SLOTS = ["acoustic (38)", "electric (40)", "tight rim (37)", "loose crack (39)", "low fat (41)"]
OUT = Path(__file__).resolve().parent.parent / "presets" / "layouts" / "open-stage-control.json"


def fader(wid: str, label: str, address: str, x: int, value: float = 0.5) -> dict:
    return {"type": "fader", "id": wid, "label": label, "address": address, "left": x,
            "top": 80, "width": 70, "height": 300, "range": {"min": 0, "max": 1},
            "default": value, "preArgs": [], "target": [], "design": "compact"}


def button(wid: str, label: str, address: str, x: int, y: int, on: float = 1.0) -> dict:
    """A tap button: sends ``address on`` when pressed (buttons send their value last)."""
    return {"type": "button", "id": wid, "label": label, "address": address, "left": x,
            "top": y, "width": 120, "height": 60, "mode": "tap", "on": on, "off": 0.0,
            "preArgs": [], "target": []}


def session() -> dict:
    widgets = [fader(f"latent_{i}", f"latent {i + 1}", f"/snaresynth/latent/{i}", 20 + 80 * i)
               for i in range(LATENT_DIMS)]
    x = 20 + 80 * LATENT_DIMS + 40
    for j, name in enumerate(["level", "tune", "decay", "pan", "morph"]):
        default = {"level": 0.8333, "decay": 1.0, "morph": 0.0}.get(name, 0.5)
        widgets.append(fader(name, name, f"/snaresynth/{name}", x + 80 * j, default))
    for k, name in enumerate(SLOTS):
        widgets.append(button(f"hit_{k}", name, f"/snaresynth/trigger/{k}", 20 + 130 * k, 420))
    widgets += [
        button("randomize", "randomize", "/snaresynth/randomize", 20, 500, on=0.3),
        button("undo", "undo", "/snaresynth/undo", 150, 500),
        button("subscribe", "follow daemon", "/snaresynth/subscribe", 280, 500),
    ]
    return {"createdWith": "open-stage-control", "version": "1.26.2", "type": "session",
            "content": {"type": "root", "id": "root", "label": "snaresynth", "tabs": [],
                        "widgets": widgets}}


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(session(), indent=2) + "\n")
    print(OUT)
