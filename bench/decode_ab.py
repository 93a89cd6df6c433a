"""The numpy synthesiser against an earlier revision of itself, in one process: speed and sameness.

    .venv/bin/python bench/decode_ab.py --against HEAD~1 [MODEL.keras] [--latents 50] [--rounds 20]

Loads ``snaresynth/models/synth_numpy.py`` as it was at ``--against`` (``git show``) beside
today's, gives both the same model's synthesiser arrays, and times them alternately on the
same network outputs (one latent at a time, as the daemon decodes), so the machine's load
falls on both alike. Prints median and p99 per part (whole synthesiser, wires, head) for
each, the ratio, the largest difference between their outputs, and what resampling a buffer
to 48 kHz costs at soxr's VHQ and HQ. A figure, never pass/fail.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "snaresynth/models/synth_numpy.py"


def old_module(rev: str):  # noqa: ANN201 - a module object
    text = subprocess.run(["git", "show", f"{rev}:{SOURCE}"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "synth_numpy_then.py"
    path.write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("synth_numpy_then", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", default=None, help="model file (default: bundled)")
    p.add_argument("--against", required=True, help="git revision to compare with")
    p.add_argument("--latents", type=int, default=50, help="distinct knob settings")
    p.add_argument("--rounds", type=int, default=20, help="passes over them")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    from snaresynth import dsp
    from snaresynth.decode.worker import PLAYBACK_QUALITY
    from snaresynth.models import registry
    from snaresynth.models.knobmap import to_network

    decoder = registry.resolve(args.model, runtime="inference")
    steps = decoder.program.steps
    now = steps[-1]
    then = old_module(args.against).NumpySynth(
        now.spec, {**now.noise, "bands": now.bands, "window": now.window})
    rng = np.random.default_rng(args.seed)
    lo, hi = decoder.latent_range()
    raws = []
    for _ in range(args.latents):
        x = to_network(rng.uniform(lo, hi)[None, :].astype(np.float32), lo, hi,
                       decoder.metadata.knob_map)
        for step in steps[:-1]:
            x = step(x)
        raws.append(x)
    worst = max(float(np.max(np.abs(now(r) - then(r)))) for r in raws)
    times: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for raw in raws:
            for name, synth in (("then", then), ("now", now)):
                params = synth.params(raw)
                for part, call in (("synth", lambda s=synth, r=raw: s(r)),
                                   ("wires", lambda s=synth, q=params: s.wires(q)),
                                   ("head", lambda s=synth, q=params: s.head(q))):
                    t0 = time.perf_counter()
                    call()
                    times.setdefault(f"{part} {name}", []).append(time.perf_counter() - t0)
    print(f"{decoder.path or 'bundled model'}: {args.against} (then) against the working tree "
          f"(now), {args.latents} latents x {args.rounds} rounds, alternating")
    for part in ("synth", "wires", "head"):
        then_ms, now_ms = (1e3 * np.asarray(times[f"{part} {n}"]) for n in ("then", "now"))
        print(f"{part:6s} then {np.median(then_ms):.3f} / {np.percentile(then_ms, 99):.3f} ms, "
              f"now {np.median(now_ms):.3f} / {np.percentile(now_ms, 99):.3f} ms "
              f"(median / p99), now/then {np.median(now_ms) / np.median(then_ms):.2f}")
    print(f"largest |now - then| over the outputs: {worst:.3g}")
    resample_ms: dict[str, list[float]] = {"VHQ": [], "HQ": []}
    audio = [now(r)[0] for r in raws]
    for _ in range(args.rounds):
        for buf in audio:
            for quality, out in resample_ms.items():
                t0 = time.perf_counter()
                dsp.resample(buf, int(decoder.sample_rate), 48000, quality)
                out.append(1e3 * (time.perf_counter() - t0))
    print("resampling a buffer to 48 kHz (playback uses "
          f"{PLAYBACK_QUALITY}): " + ", ".join(
              f"{q} {np.median(v):.3f} / {np.percentile(v, 99):.3f} ms"
              for q, v in resample_ms.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
