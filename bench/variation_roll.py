"""The picture of docs/presets.md: a roll of one slot with and without round-robin variation.

Drives the daemon's own engine and mixer (no audio device): the default kit's acoustic snare,
eight note-ons placed by ``place_note`` as a JACK note-on would be, first at variation 0, then
at variation 0.3 with 4 variants; each hit's first 60 ms are drawn one after the other.

    .venv/bin/python bench/variation_roll.py [--out docs/img/variation-roll.png]
"""

from __future__ import annotations

import argparse

import numpy as np

HITS = 8
SHOWN_S = 0.06


def roll(engine, hits: int) -> list[np.ndarray]:
    """``hits`` note-ons of note 38, each rendered on its own (one block per 64 frames)."""
    from snaresynth.rt.mixer import N_HIT, place_note

    mixer, out = engine.mixer, np.zeros((64, 2), dtype=np.float32)
    hit_i, hit_g = np.zeros((1, N_HIT), dtype=np.int64), np.zeros((1, 2), dtype=np.float32)
    frames = int(SHOWN_S * engine.rate) // 64
    heads = []
    for _ in range(hits):
        assert place_note(mixer.table.ctypes.data, 0x90, 38, 110, 0, hit_i, hit_g)
        blocks = []
        for _ in range(frames):
            mixer.render(out)
            blocks.append(out[:, 0].copy())
        heads.append(np.concatenate(blocks))
        for _ in range(int(0.5 * engine.rate) // 64):  # the hit ends before the next
            mixer.render(out)
    return heads


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="docs/img/variation-roll.png")
    args = p.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from snaresynth.control.params import Kind, Param
    from snaresynth.control.presets import PresetStore
    from snaresynth.engine.engine import Engine, EngineSettings
    from snaresynth.models import registry

    decoder = registry.resolve(None, runtime="inference")
    kit = PresetStore().load("default")
    engine = Engine(decoder, kit, EngineSettings(rate=48000, blocksize=64, latency="lowest"))
    engine.start()
    try:
        plain = roll(engine, HITS)
        engine.set_variants(4, slot=0)
        engine.set_param(Param(Kind.VARIATION), 0.3, slot=0)
        engine.worker.wait_idle(60)
        varied = roll(engine, HITS)
    finally:
        engine.stop()
    fig, axes = plt.subplots(2, 1, figsize=(11, 4.6), sharex=True, sharey=True)
    for ax, heads, title in ((axes[0], plain, "variation 0: every hit the same buffer"),
                             (axes[1], varied, "variation 0.3, 4 variants: never the same "
                                               "one twice in a row")):
        t0 = 0.0
        for i, head in enumerate(heads):
            t = t0 + np.arange(head.size) / engine.rate
            ax.plot(t * 1000, head, lw=0.6, color=f"C{i % 10}")
            t0 += head.size / engine.rate + 0.005
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("output")
    axes[1].set_xlabel(f"ms: the first {SHOWN_S * 1000:.0f} ms of each of {HITS} note-ons of the "
                       "default kit's acoustic snare (note 38, velocity 110), side by side")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    diffs = [float(np.abs(a - b).max()) for a, b in zip(varied, varied[1:], strict=False)]
    print(f"wrote {args.out}; successive varied hits differ by {np.round(diffs, 3).tolist()}")


if __name__ == "__main__":
    main()
