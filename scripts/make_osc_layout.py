"""Write presets/layouts/open-stage-control.json: the Open Stage Control (1.x) session of the
shipped default kit on an 8-dimension model (snaresynth/io/osc_layout.py builds it; a running
daemon serves the session of the kit it has loaded at /open-stage-control.json, and edits an
open session to follow kit changes). Regenerate after the address space changes:

    .venv/bin/python scripts/make_osc_layout.py
"""

from __future__ import annotations

import json
from pathlib import Path

from snaresynth.control.presets import PresetStore, shipped_preset_dir
from snaresynth.io.osc_layout import session

LATENT_DIMS = 8
OUT = Path(__file__).resolve().parent.parent / "presets" / "layouts" / "open-stage-control.json"

if __name__ == "__main__":
    store = PresetStore(user_dir=shipped_preset_dir(), shipped_dir=shipped_preset_dir())
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(session(store.load("default"), LATENT_DIMS, store.list()),
                              indent=2) + "\n")
    print(OUT)
