"""Decode speed of one buffer, as the daemon's decode worker sees it: prints median and p99.

Why this shape: the worker calls ``decoder.decode(z)`` with one latent at a time through the
fixed-signature ``tf.function`` of ``KerasDecoder``; every knob move is a fresh latent, so each
call is timed cold for that z (no cache), after one warm-up. A figure, never pass/fail.

    .venv/bin/python bench/decode_speed.py [MODEL.keras] [--n 500] [--threads 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=None,
                        help="model file (default: the bundled model)")
    parser.add_argument("--n", type=int, default=500, help="timed decodes")
    parser.add_argument("--threads", type=int, default=2,
                        help="TensorFlow intra/inter-op threads (the daemon's 2-core budget)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from snaresynth.models.registry import DEFAULT_MODEL, load_model_file

    path = args.model or DEFAULT_MODEL
    t0 = time.perf_counter()
    decoder = load_model_file(path)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    decoder.warm_up()
    warm_s = time.perf_counter() - t0
    lo, hi = decoder.latent_range()
    rng = np.random.default_rng(args.seed)
    z = (lo + rng.uniform(size=(args.n, decoder.latent_dim)) * (hi - lo)).astype(np.float32)
    times = np.empty(args.n)
    for i in range(args.n):
        t0 = time.perf_counter()
        out = decoder.decode(z[i:i + 1])
        times[i] = time.perf_counter() - t0
    assert out.shape == (1, decoder.length)
    ms = times * 1e3
    print(f"model      {path} ({decoder.family}, {os.path.getsize(path) / 1e6:.2f} MB)")
    print(f"load       {load_s * 1e3:.0f} ms, warm-up {warm_s * 1e3:.0f} ms, "
          f"threads {args.threads}, n {args.n}")
    print(f"decode 1x{decoder.length}: median {np.median(ms):.2f} ms  "
          f"p90 {np.percentile(ms, 90):.2f} ms  p99 {np.percentile(ms, 99):.2f} ms  "
          f"max {ms.max():.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
