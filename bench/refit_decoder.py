"""Refit a ddsp_snare decoder to its training snares, one synthesiser setting per snare.

    .venv/bin/python bench/refit_decoder.py --model runs/ddsp-mix.keras --data corpora/mix \
        --out runs/refit.keras [--fit-steps 200] [--fitted NPZ] [--steps 3000] [--jitter 0.1] \
        [--anchor 0] [--smooth 0] [--even 0] [--even-mel 0] [--move-points 0 [--hold 0]] \
        [--snare-pull 0 [--pull-radius 0]] [--rank-knobs] [--match 0] \
        [--guide LISTENER [--guide-pull 0] [--guide-k 1]
        [--ear 0 [--ear-margin 1] [--ear-members 1 [--ear-doubt 0]]]]

``bench/synth_oracle.py`` showed that the synthesiser, set per snare, covers far more of the
held-out snares than the network's reconstructions. This closes that gap in two steps:

1. fit every training snare's synthesiser parameters on their own (the training loss, the
   multi-resolution STFT, Adam from the network's own guess; as the oracle does);
2. train the decoder's MLP (not its knob map or synthesiser) to give, at each snare's encoded
   knob point, that snare's fitted parameters: mean squared error on the sigmoid-bounded
   parameters (every parameter in 0..1, so a saturated one cannot dominate), the knob points
   jittered by ``--jitter`` (network units) so that the neighbourhood of a snare sounds like it.
   ``--anchor A`` adds A times the same error against the original network at uniform knob
   points, to keep the knob travel between the snares as it was; ``--smooth S`` penalises the
   parameters' finite-difference Jacobian at uniform knob points; ``--even E`` penalises uneven
   steps along straight lines between uniform knob settings (what ``eval``'s smoothness counts);
   ``--even-mel E`` the same with each step's length in log-mel (eval's own distance), through
   the synthesiser's finite-difference Jacobian at ``JACOBIAN_SNARES`` fitted snares (a linear
   picture of the synthesiser: a few matrix products a step instead of a synthesis).
   ``--snare-pull P`` draws every uniform knob setting towards the nearest fitted snare;
   ``--pull-radius R`` leaves it free within R times the median neighbour distance of the
   snares (so the travel between near snares is not pulled onto them).
   ``--guide-pull G`` then mines the travel with a listener (``--guide``; another ear than the
   one ``eval`` judges with): ``--guide-rounds`` times, it decodes ``--guide-points`` uniform
   knob settings (draws of its own, not eval's), keeps those heard as something else, and
   trains ``--guide-steps`` more steps pulling each of them (jittered) onto the nearest fitted
   snare, G times the squared distance in parameters (beyond ``--guide-radius``); with
   ``--guide-k K`` towards the centre of its K nearest snares instead. ``--match M`` adds M
   times the squared MMD between the sounds' parameters at uniform knob settings and the
   fitted snares' (the travel spread like the snares, where the pulls only draw it near them).
   ``--ear E`` moves the misses only as far as the guide's decision: each round it fits a small
   network to the guide's snare margin (log P(snare) - log of the likeliest other class) over
   every setting decoded so far and the fitted snares' copies, in synthesiser parameters, and
   trains on E times how far each uniform knob setting's margin lies under ``--ear-margin``
   (a differentiable stand-in for the ear; it prints how well it foretold the new round).
   ``--ear-members N`` fits N stand-ins, each to its own bootstrap draw of the settings, and
   ``--ear-doubt D`` trains on their mean margin less D times their spread: where they disagree
   (the travel the guide has not heard yet) a setting counts as no surer than that.

The result is a whole model file (encoder, metadata with the refit in its training record, the
inference form); judge it with ``snaresynth eval``. Needs the train extra (TensorFlow).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SMOOTH_EPS = 0.05  # network units: the finite difference of the Jacobian penalty
EVEN_LINES, EVEN_POINTS = 16, 17  # knob lines per step for --even, points along each
JACOBIAN_SNARES, JACOBIAN_EPS = 4, 0.02  # --even-mel: where its Jacobians are taken, the step
MMD_WIDTHS = (0.5, 1.0, 2.0)  # network units (whitened knob space: the knobs span about +-2)
EAR_CLIP, EAR_EPOCHS = 8.0, 60  # --ear: the margin's range the stand-in learns, its epochs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=Path("runs/ddsp-mix.keras"))
    p.add_argument("--data", type=Path, default=Path("corpora/mix"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--fit-steps", type=int, default=200, help="per-snare synthesiser fit steps")
    p.add_argument("--fit-lr", type=float, default=0.05)
    p.add_argument("--steps", type=int, default=3000, help="MLP regression steps")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--jitter", type=float, default=0.1)
    p.add_argument("--anchor", type=float, default=0.0)
    p.add_argument("--smooth", type=float, default=0.0,
                   help="weight of a Jacobian penalty at uniform knob points (finite differences)")
    p.add_argument("--even", type=float, default=0.0,
                   help="weight of an evenness penalty along uniform knob lines: the squared "
                        "coefficient of variation of a line's parameter steps")
    p.add_argument("--even-mel", type=float, default=0.0,
                   help="the same evenness, the steps measured in log-mel through the "
                        "synthesiser's Jacobian at a few fitted snares (what eval measures)")
    p.add_argument("--move-points", type=float, default=0.0, metavar="M",
                   help="let the snares' knob points move too (an auto-decoder), M times the "
                        "MMD between them and uniform knob settings pulling them apart")
    p.add_argument("--hold", type=float, default=0.0, metavar="H",
                   help="with --move-points: H times the mean squared move from the encoder's "
                        "point")
    p.add_argument("--snare-pull", type=float, default=0.0, metavar="P",
                   help="P times the squared distance, in parameters, from the sound at a uniform "
                        "knob setting to the nearest fitted snare (keeps the travel among snares)")
    p.add_argument("--pull-radius", type=float, default=0.0, metavar="R",
                   help="with --snare-pull: no pull within R times the median distance between "
                        "neighbouring fitted snares (the travel may roam among near snares)")
    p.add_argument("--rank-knobs", action="store_true",
                   help="afterwards order the knobs again by how audibly each changes the sound "
                        "(knob 1 = most audible), as training does")
    p.add_argument("--guide-pull", type=float, default=0.0, metavar="G",
                   help="G times the squared distance, in parameters, from each knob setting the "
                        "guide listener hears as no snare to the nearest fitted snare")
    p.add_argument("--guide", type=Path, default=None, metavar="LISTENER",
                   help="with --guide-pull or --ear: the listener that mines the travel "
                        "(default: the bundled one; judge with another)")
    p.add_argument("--guide-radius", type=float, default=0.0, metavar="R",
                   help="with --guide-pull: no pull within R times the median distance between "
                        "neighbouring fitted snares")
    p.add_argument("--match", type=float, default=0.0, metavar="M",
                   help="M times the squared MMD, in parameters, between the sounds at uniform "
                        "knob settings and the fitted snares: the travel as varied as the snares, "
                        "not only near them (kernels at 1, 2 and 4 neighbour distances)")
    p.add_argument("--guide-k", type=int, default=1, metavar="K",
                   help="with --guide-pull: pull each miss towards its K nearest fitted snares "
                        "(the mean of the K squared distances: their centre), not only the nearest")
    p.add_argument("--ear", type=float, default=0.0, metavar="E",
                   help="E times how far each uniform setting lies under the margin, by a "
                        "stand-in for the guide's decision, in parameters")
    p.add_argument("--ear-margin", type=float, default=1.0, metavar="M",
                   help="with --ear: the snare margin (log-odds against the likeliest other "
                        "class) a setting must reach to cost nothing")
    p.add_argument("--ear-members", type=int, default=1, metavar="N",
                   help="with --ear: N stand-ins, each fitted to a bootstrap draw of the "
                        "settings (1: one, fitted to them all)")
    p.add_argument("--ear-doubt", type=float, default=0.0, metavar="D",
                   help="with --ear-members: the margin trained on is the members' mean less D "
                        "times their standard deviation")
    p.add_argument("--guide-rounds", type=int, default=3)
    p.add_argument("--guide-points", type=int, default=2000)
    p.add_argument("--guide-steps", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fitted", type=Path, default=None, metavar="NPZ",
                   help="keep step 1's parameters here, by snare; a later run fits only the snares "
                        "the file lacks")
    args = p.parse_args()
    if args.guide_k < 1:
        p.error("--guide-k: at least 1")
    if args.ear_members < 1:
        p.error("--ear-members: at least 1")
    guided = bool(args.guide_pull or args.ear)

    import dataclasses

    import keras
    import tensorflow as tf

    from snaresynth.analysis.travel import uniform_knobs, uniform_lines
    from snaresynth.data.corpus import load_corpus
    from snaresynth.models import losses, registry
    from snaresynth.models.base import save_model_file
    from snaresynth.models.knobmap import to_network
    from snaresynth.models.synth_fit import decoder_parts, fit_parameters

    keras.utils.set_random_seed(args.seed)
    decoder = registry.load(args.model, runtime="keras")
    corpus = load_corpus(args.data, label="snare")
    audio = corpus.audio[:, :decoder.length].astype(np.float32)
    lo, hi = (np.asarray(v, np.float32) for v in decoder.latent_range())
    knob_map = decoder.metadata.knob_map
    z = to_network(decoder.encode(audio), lo, hi, knob_map).astype(np.float32)
    params, synth = decoder_parts(decoder)

    def mrstft(sounds: tf.Tensor, rows: np.ndarray | None = None) -> float:
        real = audio if rows is None else audio[rows]
        return float(tf.reduce_mean(losses.multi_resolution_stft_loss(tf.constant(real),
                                                                      sounds)))

    # 1. per-snare fit, kept by a hash of each snare's audio so a larger corpus fits only its
    # new snares (the manifest's file hashes differ between two renderings of one SoundFont)
    keys = np.array([hashlib.sha256(row.tobytes()).hexdigest() for row in audio])
    fitted = np.full((len(audio), params.output_shape[-1]), np.nan, np.float32)
    if args.fitted and args.fitted.is_file():
        fitted = load_fitted(args.fitted, keys, fitted)
        print(f"fitted parameters of {int(np.sum(~np.isnan(fitted[:, 0])))} snares from "
              f"{args.fitted}", flush=True)
    todo = np.flatnonzero(np.isnan(fitted[:, 0]))
    if len(todo):
        start = params.predict(z[todo], verbose=0)
        print(f"{len(todo)} snares to fit; the network's reconstructions: MR-STFT "
              f"{mrstft(synth(start), todo):.3f}", flush=True)

        def report(step: int, loss: float, seconds: float, _raw: np.ndarray) -> None:
            print(f"fit step {step}: MR-STFT {loss:.3f} ({seconds:.0f} s)", flush=True)

        fitted[todo] = tf.sigmoid(fit_parameters(synth, start, audio[todo], args.fit_steps,
                                                 args.fit_lr, report=report)).numpy()
        if args.fitted:
            np.savez(args.fitted, fitted=fitted, sha256=keys)

    # 2. MLP regression onto the fitted parameters
    rng = np.random.default_rng(args.seed)
    jacobians = tf.zeros((1, fitted.shape[1], 1))
    if args.even_mel:
        jacobians = tf.constant(mel_jacobians(fitted[rng.choice(len(fitted), JACOBIAN_SNARES,
                                                                replace=False)], synth,
                                              int(decoder.sample_rate)))
    # --pull-radius, --guide-radius, squared: the free zones around each snare
    gaps = np.sum(np.square(fitted[:, None] - fitted[None]), -1)
    np.fill_diagonal(gaps, np.inf)
    neighbour2 = float(np.median(gaps.min(axis=1)))
    free2, guide_free2 = args.pull_radius ** 2 * neighbour2, args.guide_radius ** 2 * neighbour2
    original = keras.models.clone_model(params)
    original.set_weights(params.get_weights())
    mlp_optimizer = keras.optimizers.Adam(args.lr)
    points = tf.Variable(z)  # the snares' knob points (network units): moved by --move-points
    trainable = params.trainable_variables + ([points] if args.move_points else [])

    def cv2(steps: tf.Tensor, axis: int) -> tf.Tensor:
        """Squared coefficient of variation along ``axis``: scale-free, uneven steps cost."""
        mean = tf.reduce_mean(steps, axis=axis, keepdims=True)
        return tf.reduce_mean(tf.square(steps - mean), axis=axis) / (
            tf.square(tf.squeeze(mean, axis)) + 1e-6)

    def mmd2(a: tf.Tensor, b: tf.Tensor, widths: tuple[float, ...] = MMD_WIDTHS) -> tf.Tensor:
        """Squared maximum mean discrepancy, Gaussian kernels at ``widths``."""
        def gram(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
            d2 = tf.reduce_sum(tf.square(x[:, None] - y[None]), -1)
            return tf.add_n([tf.reduce_mean(tf.exp(-d2 / (2.0 * w * w))) for w in widths])
        return gram(a, a) + gram(b, b) - 2.0 * gram(a, b)

    match_widths = tuple(f * float(np.sqrt(neighbour2)) for f in (1.0, 2.0, 4.0))

    def travel_mmd() -> float:
        """The --match distance over 512 fresh uniform knob settings (printed, so M can be set)."""
        probe = np.random.default_rng(args.seed + 1)  # its own stream: the training's is untouched
        za = to_network(uniform_knobs(decoder, 512, probe), lo, hi, knob_map).astype(np.float32)
        return float(mmd2(tf.sigmoid(params(za)), tf.constant(fitted), match_widths))

    stand_ins = [ear_stand_in(fitted.shape[1]) for _ in range(args.ear_members)] if args.ear \
        else []

    def ear_margin(units: tf.Tensor) -> tf.Tensor:
        """The stand-ins' margin at these settings: their mean, less --ear-doubt spreads."""
        said = tf.stack([m(units, training=False)[:, 0] for m in stand_ins])
        return tf.reduce_mean(said, 0) - args.ear_doubt * tf.math.reduce_std(said, 0)

    @tf.function
    def mlp_step(jitter: tf.Tensor, want: tf.Tensor, za: tf.Tensor, anchor: tf.Tensor,
                 zl: tf.Tensor, zm: tf.Tensor, guide: tf.Tensor, ear: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(tf.sigmoid(params(points + jitter)) - want))
            if args.guide_pull:  # the settings the guide heard as no snare, onto the snares
                d2 = tf.reduce_sum(tf.square(tf.sigmoid(params(zm))[:, None] - want[None]), -1)
                near = -tf.math.top_k(-d2, args.guide_k).values  # the K nearest snares
                loss += guide * tf.reduce_mean(tf.nn.relu(near - guide_free2))
            if args.move_points:  # spread the snares over the knob travel, as uniform as it is
                loss += args.move_points * mmd2(points, za)
                loss += args.hold * tf.reduce_mean(tf.reduce_sum(tf.square(points - z), -1))
            if args.snare_pull or args.anchor or args.smooth or args.match or args.ear:
                uniform = tf.sigmoid(params(za))  # the uniform knob settings' parameters
            if args.ear:  # each setting heard as snare by a margin, moved no further than that
                short = tf.nn.relu(args.ear_margin - ear_margin(uniform))
                loss += ear * tf.reduce_mean(short)
            if args.match:  # the uniform travel's sounds spread like the snares' own settings
                loss += args.match * mmd2(uniform, want, match_widths)
            if args.snare_pull:  # every knob setting near some snare's own setting
                d2 = tf.reduce_sum(tf.square(uniform[:, None] - want[None]), -1)
                loss += args.snare_pull * tf.reduce_mean(tf.nn.relu(tf.reduce_min(d2, 1) - free2))
            if args.anchor:
                loss += args.anchor * tf.reduce_mean(tf.square(uniform - anchor))
            if args.smooth:  # squared: the steepest places along a knob line cost the most
                step = tf.random.normal(tf.shape(za))
                step = SMOOTH_EPS * step / tf.norm(step, axis=-1, keepdims=True)
                moved = tf.sigmoid(params(za + step)) - uniform
                loss += args.smooth * tf.reduce_mean(tf.reduce_sum(tf.square(moved), -1)) / (
                    SMOOTH_EPS ** 2)
            if args.even or args.even_mel:  # a long even travel costs nothing
                along = tf.reshape(tf.sigmoid(params(zl)), (EVEN_LINES, EVEN_POINTS, -1))
                du = along[:, 1:] - along[:, :-1]
                if args.even:
                    loss += args.even * tf.reduce_mean(cv2(tf.norm(du + 1e-9, axis=-1), 1))
                if args.even_mel:  # mean |J du| over log-mel cells: eval's distance, linearised
                    steps = tf.reduce_mean(tf.abs(tf.einsum("ltp,kpf->kltf", du, jacobians)), -1)
                    loss += args.even_mel * tf.reduce_mean(cv2(steps, 2))
        mlp_optimizer.apply_gradients(zip(tape.gradient(loss, trainable), trainable,
                                          strict=True))
        return loss

    misses = np.zeros((0, len(lo)), np.float32)  # network units, heard as no snare
    judge = None
    heard_x = np.zeros((0, fitted.shape[1]), np.float32)  # the stand-in's data: parameters,
    heard_y = np.zeros((0,), np.float32)  # and the guide's snare margin there
    if guided:
        from snaresynth.analysis.evaluate import decode_batched, snare_listener
        judge = snare_listener(args.guide)
        heard_x = np.clip(fitted, 1e-6, 1.0 - 1e-6)  # some fits sit on the sigmoid's very ends
        copies = synthesize_units(synth, heard_x)
        heard_y = snare_margin(judge, copies, int(decoder.sample_rate))
        bundled = snare_listener(None).share(copies, int(decoder.sample_rate), "snare")
        for name, share in (("the guide", float(np.mean(heard_y > 0))),
                            ("the bundled listener", bundled)):
            print(f"the synthesiser's copies of the {len(copies)} snares (their fitted settings): "
                  f"{share:.3f} snare to {name}", flush=True)
    rounds = args.guide_rounds if guided else 0
    print(f"travel-to-snares MMD^2 before: {travel_mmd():.4f}", flush=True)
    start = time.monotonic()
    for i in range(1, args.steps + rounds * args.guide_steps + 1):
        if judge is not None and i > args.steps and (i - args.steps - 1) % args.guide_steps == 0:
            knobs = uniform_knobs(decoder, args.guide_points, rng)
            margin = snare_margin(judge, decode_batched(decoder, knobs), int(decoder.sample_rate))
            heard_snare = margin > 0.0
            found = to_network(knobs[~heard_snare], lo, hi, knob_map).astype(np.float32)
            misses = np.concatenate([misses, found])
            print(f"guide: {len(found)} of {len(knobs)} knob settings heard as no snare "
                  f"({np.mean(heard_snare):.3f} snare); {len(misses)} kept", flush=True)
            if stand_ins:
                units = tf.sigmoid(params(to_network(knobs, lo, hi, knob_map))).numpy()
                if len(heard_y) > len(fitted):  # foretold before it learns this round
                    said = ear_margin(tf.constant(units)).numpy()
                    error = float(np.median(np.abs(said - margin)))
                    flagged = int(np.sum(said[~heard_snare] <= 0))
                    print(f"ear stand-in foretold {np.mean((said > 0) == heard_snare):.3f} of "
                          f"the guide's decisions, {flagged} of its {len(found)} misses (margin "
                          f"error {error:.2f} median)", flush=True)
                heard_x = np.concatenate([heard_x, units])
                heard_y = np.concatenate([heard_y, margin])
                for k, member in enumerate(stand_ins):
                    rows = np.arange(len(heard_y))
                    if len(stand_ins) > 1:  # each member its own draw: they differ where unsure
                        rows = np.random.default_rng([args.seed, i, k]).integers(
                            0, len(heard_y), len(heard_y))
                    fit_stand_in(member, heard_x[rows], heard_y[rows])
        zm = np.zeros((64, len(lo)), np.float32)
        if len(misses):
            zm = misses[rng.integers(0, len(misses), 64)] + rng.normal(
                0.0, args.jitter, (64, len(lo))).astype(np.float32)
        jitter = rng.normal(0.0, args.jitter, z.shape).astype(np.float32)
        za = to_network(uniform_knobs(decoder, 256 if args.move_points else 64, rng), lo, hi,
                        knob_map).astype(np.float32)
        anchor = tf.sigmoid(original(za)).numpy() if args.anchor else np.zeros((len(za), 1),
                                                                                 np.float32)
        zl = np.zeros((EVEN_LINES * EVEN_POINTS, len(lo)), np.float32)
        if args.even or args.even_mel:  # eval's knob lines, shorter
            knob_lines = uniform_lines(decoder, EVEN_LINES, EVEN_POINTS - 1, rng)
            zl = to_network(knob_lines.reshape(-1, len(lo)), lo, hi, knob_map).astype(np.float32)
        guide = np.float32(args.guide_pull if i > args.steps else 0.0)
        ear = np.float32(args.ear if i > args.steps else 0.0)
        loss = float(mlp_step(jitter, fitted, za, anchor, zl, zm, guide, ear))
        if i % 500 == 0 or i == args.steps:
            print(f"mlp step {i}: parameter MSE {loss:.5f} ({time.monotonic() - start:.0f} s)",
                  flush=True)
    print(f"travel-to-snares MMD^2 after: {travel_mmd():.4f}", flush=True)
    print(f"refit reconstructions: MR-STFT {mrstft(synth(params.predict(z, verbose=0))):.3f}",
          flush=True)
    if args.move_points:
        moved = np.linalg.norm(points.numpy() - z, axis=-1)
        print(f"knob points moved {np.median(moved):.3f} (median), {moved.max():.3f} (most); "
              f"at the moved points: MR-STFT {mrstft(synth(params(points))):.3f}", flush=True)

    training = dict(decoder.metadata.training)
    training["refit"] = {"from": str(args.model), "data": str(args.data),
                         "fit_steps": args.fit_steps, "fit_lr": args.fit_lr,
                         "steps": args.steps, "lr": args.lr, "jitter": args.jitter,
                         "anchor": args.anchor, "smooth": args.smooth, "even": args.even,
                         "even_mel": args.even_mel, "move_points": args.move_points,
                         "snare_pull": args.snare_pull, "pull_radius": args.pull_radius,
                         "hold": args.hold, "guide_pull": args.guide_pull,
                         "guide_radius": args.guide_radius, "guide_k": args.guide_k,
                         "match": args.match, "ear": args.ear, "ear_margin": args.ear_margin,
                         "ear_members": args.ear_members, "ear_doubt": args.ear_doubt,
                         "guide": str(args.guide) if args.guide else None,
                         "guide_rounds": rounds, "guide_points": args.guide_points,
                         "guide_steps": args.guide_steps, "seed": args.seed}
    metadata = dataclasses.replace(decoder.metadata, training=training)
    if args.rank_knobs:
        metadata = rank_knobs(decoder, metadata)
    save_model_file(args.out, decoder.model, metadata, encoder=decoder.encoder)
    print(f"wrote {args.out}")
    return 0


def load_fitted(path: Path, keys: np.ndarray, fitted: np.ndarray) -> np.ndarray:
    """``fitted`` with the rows a kept fit has for these snares (by audio hash; a file without
    hashes must be of this very corpus, row for row)."""
    kept = np.load(path)
    if "sha256" not in kept:
        if len(kept["fitted"]) != len(fitted):
            raise SystemExit(f"{path}: {len(kept['fitted'])} fitted snares without their hashes, "
                             f"the corpus has {len(fitted)}")
        return kept["fitted"].astype(np.float32)
    row = {str(k): i for i, k in enumerate(kept["sha256"])}
    for i, key in enumerate(keys):
        if key in row:
            fitted[i] = kept["fitted"][row[key]]
    return fitted


def rank_knobs(decoder, metadata):
    """Knob 1 the most audible again (the refit changes what each knob does); the metadata with
    the ranges permuted alike, the new order and each knob's audibility in the refit record."""
    import dataclasses

    from snaresynth.models.ddsp_snare import LogMel, knob_audibility, reorder_knobs

    config = metadata.training["config"]
    mel = LogMel(int(decoder.sample_rate), n_mels=int(config["n_mels"]))
    audibility = knob_audibility(decoder.model, mel, int(config["order_probes"]))
    order = np.argsort(-audibility)
    reorder_knobs(decoder.model, decoder.encoder, order)
    print("knob audibility " + " / ".join(f"{a:.2f}" for a in audibility)
          + f"; new order (old knob numbers): {' '.join(str(i + 1) for i in order)}", flush=True)
    training = dict(metadata.training)
    training["refit"] = dict(training["refit"], knob_order=[int(i) for i in order],
                             knob_audibility=[round(float(audibility[i]), 4) for i in order])
    return dataclasses.replace(
        metadata, training=training,
        latent_lo=[metadata.latent_lo[i] for i in order],
        latent_hi=[metadata.latent_hi[i] for i in order])


def snare_margin(judge, audio: np.ndarray, rate: int) -> np.ndarray:
    """log P(snare) - log P(the likeliest other class): above 0 where the ear says snare."""
    probs = np.clip(judge.probabilities(audio, rate).astype(np.float64), 1e-12, 1.0)
    snare = judge.classes.index("snare")
    other = np.delete(probs, snare, axis=1).max(axis=1)
    return np.clip(np.log(probs[:, snare]) - np.log(other), -EAR_CLIP, EAR_CLIP).astype(np.float32)


def ear_stand_in(n_params: int):
    """A small network from synthesiser parameters (sigmoid units) to the guide's margin."""
    import keras

    return keras.Sequential([keras.Input((n_params,)), keras.layers.Dense(128, "gelu"),
                             keras.layers.Dense(128, "gelu"), keras.layers.Dense(1)])


def fit_stand_in(model, x: np.ndarray, y: np.ndarray) -> None:
    """Fit (again, from where it was) the stand-in to every setting the guide heard so far
    (its draws follow ``--seed`` through Keras' global seed)."""
    import keras

    model.compile(keras.optimizers.Adam(1e-3), loss="huber")
    model.fit(x, y, epochs=EAR_EPOCHS, batch_size=128, shuffle=True, verbose=0)
    print(f"ear stand-in fitted to {len(y)} settings ({np.mean(y > 0):.3f} snare)", flush=True)


def synthesize_units(synth, units: np.ndarray) -> np.ndarray:
    """The synthesiser's sounds at parameter settings in sigmoid units (inside 0..1)."""
    import tensorflow as tf

    return synth(tf.constant(np.log(units / (1.0 - units)), tf.float32)).numpy()  # the logit


def mel_jacobians(units: np.ndarray, synth, rate: int) -> np.ndarray:
    """(K, P, cells): d log-mel / d parameter (sigmoid units) at K settings, finite differences."""

    from snaresynth.analysis.features import MelSettings, log_mel

    k, n = units.shape
    units = np.clip(units, 1e-4, 1.0 - 1e-4)
    delta = np.where(units < 0.5, JACOBIAN_EPS, -JACOBIAN_EPS)  # (K, P): nudged inwards
    moved = np.repeat(units[:, None, :], n + 1, axis=1)  # (K, P + 1, P): the setting, then each
    moved[:, 1:] += delta[:, :, None] * np.eye(n, dtype=units.dtype)[None]  # parameter nudged
    audio = synthesize_units(synth, moved.reshape(-1, n))
    feats = log_mel(audio, MelSettings(sample_rate=rate)).reshape(k, n + 1, -1)
    return ((feats[:, 1:] - feats[:, :1]) / delta[..., None]).astype(np.float32)


if __name__ == "__main__":
    raise SystemExit(main())
