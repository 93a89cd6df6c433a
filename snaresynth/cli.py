"""Command line: argument parsing only; every sub-command calls into the library.

Heavy modules (TensorFlow, sounddevice) are imported inside the command functions, so
``snaresynth --help`` answers at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from snaresynth import __version__, logs
from snaresynth.errors import SnareSynthError

Command = Callable[[argparse.Namespace], int]
EXTRAS = {"tensorflow": "train", "keras": "train", "matplotlib": "plots"}
"""Optional packages -> the pyproject extra that installs them (playing needs none of them)."""


# --- serve / render / models -------------------------------------------------------------------

def _add_serve(sub: argparse._SubParsersAction) -> None:
    from snaresynth.config import Settings

    d = Settings()  # argparse's own defaults stay None, so a --config file can set them
    p = _command(sub, "serve", help="run the instrument daemon (MIDI + OSC + audio)")
    p.add_argument("--model", help="model file or bundled model name (default: bundled model)")
    p.add_argument("--preset", help="preset/kit name or TOML file to start with (default: the "
                                    "last saved state, else the kit 'default')")
    p.add_argument("--config", type=Path, help="settings TOML with a [serve] table, the same "
                                               "names; the command line wins (default: none)")
    p.add_argument("--audio", default=None,
                   help="auto | jack | null | list | DEVICE name part or PortAudio index; "
                        f"list: print the outputs there are (default: {d.audio})")
    p.add_argument("--no-autoconnect", dest="autoconnect", action="store_const", const=False,
                   default=None, help="JACK: leave our outputs unconnected (default: connected "
                                      "to the physical playback ports)")
    p.add_argument("--rate", type=int, default=None,
                   help="output sample rate in Hz (default: the device's, 48000 for null)")
    p.add_argument("--blocksize", type=int, default=None,
                   help=f"audio block in frames (default: {d.blocksize})")
    p.add_argument("--record", type=Path,
                   help="also write exactly what is played to this WAV (default: none)")
    p.add_argument("--midi-in", default=None,
                   help="virtual | none | list | NAME part of a port; list: print the inputs "
                        f'there are (default: {d.midi_in}, a port "snaresynth")')
    p.add_argument("--midi-api", choices=["auto", "alsa", "jack"], default=None,
                   help="auto: jack when --audio jack and a JACK server runs, else alsa where "
                        f"there is a sequencer, else jack (default: {d.midi_api})")
    p.add_argument("--midi-out", default=None,
                   help="MIDI output for controller feedback: virtual | none | list | NAME "
                        f"(default: {d.midi_out})")
    p.add_argument("--osc-host", default=None, help=f"address to bind (default: {d.osc_host})")
    p.add_argument("--osc-port", type=int, default=None,
                   help=f"UDP port, 0 = any free (default: {d.osc_port})")
    p.add_argument("--osc-allow", nargs="+", metavar="CIDR", default=None,
                   help="only obey OSC senders in these networks (default: any sender)")
    p.add_argument("--http-host", default=None, help="address the page binds; wider than "
                                                     f"loopback needs the token (default: "
                                                     f"{d.http_host})")
    p.add_argument("--http-port", type=int, default=None, help="HTTP/WebSocket port of the "
                                                               "page, 0 = any free (default: "
                                                               f"{d.http_port})")
    p.add_argument("--no-http", dest="http", action="store_const", const=False, default=None,
                   help="serve no page (default: the page is served)")
    p.add_argument("--voices", type=int, default=None,
                   help=f"polyphony limit (default: {d.voices})")
    p.add_argument("--latency", choices=["constant", "lowest"], default=None,
                   help="constant: sample-accurate, no jitter (JACK MIDI: at the note's own frame; "
                        "other input: arrival + one block); lowest: at a block start "
                        f"(default: {d.latency})")
    p.add_argument("--decode", choices=["thread", "process"], default=None,
                   help="run the model in a thread of the daemon or a child process "
                        f"(default: {d.decode})")
    p.add_argument("--decode-priority", type=int, default=None, metavar="N",
                   help="SCHED_FIFO priority of the decoder while it is light, 0 = never "
                        "realtime; keep it below the audio thread's (default: 1 with --audio "
                        "jack or null, else 0: PortAudio's callback thread is not realtime)")
    p.add_argument("--state-file", type=Path, default=None,
                   help="where the current state is saved on exit (default: user state dir)")
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    from snaresynth.config import settings_from_args
    from snaresynth.io.quiet import route_library_messages

    settings = settings_from_args(args)
    route_library_messages()  # before any JACK client or ALSA port opens
    if "list" in (settings.audio, settings.midi_in, settings.midi_out):
        from snaresynth.io.devices import print_devices

        return print_devices(settings)
    from snaresynth.serve import serve

    return serve(settings)


def _add_render(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "render", help="decode latent point(s) to WAV file(s)")
    p.add_argument("--model", help="model file or bundled model name (default: bundled model)")
    p.add_argument("--knobs", type=_floats, help="comma-separated knob positions 0..1, one per "
                   "latent dimension; dimensions not given sit at 0.5 (default: all at 0.5)")
    p.add_argument("--z", type=_floats, help="comma-separated raw latent vector")
    p.add_argument("--random", type=int, metavar="N", help="render N random latent points")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--latents", type=Path, help="(B, latent_dim) .npy of raw latent vectors")
    p.add_argument("--out", type=Path, help="output WAV for a single latent")
    p.add_argument("--out-dir", type=Path, help="output folder for a batch (one WAV per row)")
    p.add_argument("--rate", type=int, help="resample to this rate in Hz (default: model rate)")
    p.set_defaults(func=_cmd_render)


def _cmd_render(args: argparse.Namespace) -> int:
    from snaresynth.analysis.render import render_command

    return render_command(
        model=args.model, knobs=args.knobs, z=args.z, random=args.random, seed=args.seed,
        latents=args.latents, out=args.out, out_dir=args.out_dir, rate=args.rate,
    )


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "models", help="list available models and their metadata")
    p.add_argument("paths", nargs="*", type=Path, help="model files or folders (default: bundled)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_models)


def _cmd_models(args: argparse.Namespace) -> int:
    from snaresynth.analysis.render import models_command

    return models_command(args.paths, as_json=args.json)


# --- train (models/train.py) ---------------------------------------------------------------------

def _add_train(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "train", help="train a model family on a corpus folder")
    p.add_argument("--family", help="autoencoder | conv_autoencoder | wavegan | vae | ddsp_snare "
                   "(default: the recipe's)")
    p.add_argument("--recipe", help="training recipe: name in presets/training/ or a .toml path "
                   "(default: none, the family's defaults)")
    p.add_argument("--data", type=Path, required=True, help="corpus folder (snaresynth dataset)")
    p.add_argument("--out", type=Path, required=True, help="model file to write (.keras)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="total batches (counted across --resume; "
                        "default: the recipe's or the family's)")
    length.add_argument("--epochs", type=int, help="passes over the corpus (the study: 700)")
    p.add_argument("--batch-size", type=int, help="batch size (default: the family's)")
    p.add_argument("--lr", type=float, help="learning rate (default: the family's)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--strategy", choices=("default", "mirrored", "multiworker"),
                   help="tf.distribute: default (one device), mirrored (the GPUs here), "
                        "multiworker (machines in TF_CONFIG); default: the recipe's or default")
    p.add_argument("--worker-wait", type=float, default=600.0, metavar="S",
                   help="multiworker: stop with exit code 2, naming the workers missing, if not "
                        "all joined within S seconds; 0 = wait forever")
    p.add_argument("--checkpoint-every", type=int, default=1000, metavar="N",
                   help="checkpoint every N batches; 0 = only at the end")
    p.add_argument("--checkpoint-dir", type=Path, help="default: OUT with .ckpt instead of .keras")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--log-dir", type=Path, help="TensorBoard logs (default: CHECKPOINT_DIR/logs)")
    p.add_argument("--latent-dim", type=int, help="config latent_dim (default: the recipe's or "
                   "the family's)")
    p.add_argument("--kl-weight", type=float, help="config kl_weight (vae; default: the recipe's "
                   "or the family's)")
    p.add_argument("--kl-warmup", type=int, help="config kl_warmup in batches (vae; "
                   "default: the recipe's or the family's)")
    p.add_argument("--d", type=int, help="config d, the model size (wavegan, "
                   "conv_autoencoder; default: the recipe's or the family's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any config value (TOML syntax), repeatable")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    from snaresynth.models.train import TrainSettings, parse_set, train

    overrides = parse_set(args.set)
    for key in ("latent_dim", "kl_weight", "kl_warmup", "d"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    path = train(TrainSettings(
        family=args.family, data=args.data, out=args.out, steps=args.steps, epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed,
        checkpoint_every=args.checkpoint_every, checkpoint_dir=args.checkpoint_dir,
        resume=args.resume, log_dir=args.log_dir, recipe=args.recipe, overrides=overrides,
        strategy=args.strategy, worker_wait=args.worker_wait,
    ))
    print(path)
    return 0

# --- export (models/export.py) -------------------------------------------------------------------

def _add_export(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "export", help="write model files' inference form (what serve runs, "
                                      "without TensorFlow); train writes it already")
    p.add_argument("models", nargs="+", type=Path, metavar="MODEL",
                   help="model file(s) to rewrite in place (atomically)")
    p.add_argument("--check", type=int, default=256, metavar="N",
                   help="random latents decoded by both forms to compare them (default: 256)")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="largest sample difference to Keras accepted (default: 1e-4)")
    p.add_argument("--knob-map", choices=["cube", "ball"], default=None,
                   help="also set how the knob box bends before the network: ball keeps the "
                        "corners inside the ellipsoid the single knobs reach (docs/models.md; "
                        "default: the file's own)")
    p.add_argument("--knob-scale", type=float, default=None, metavar="S",
                   help="also scale every knob's range about its centre by S, 0 < S <= 4; the "
                        "range it was trained with stays in the metadata (default: unchanged)")
    p.set_defaults(func=_cmd_export)


def _quiet_tensorflow(required: bool = True) -> None:
    """TensorFlow's start-up lines and logs into the log at debug level (shown with -v)."""
    from snaresynth.models.quiet import quiet_tensorflow

    quiet_tensorflow(required)


def _cmd_export(args: argparse.Namespace) -> int:
    _quiet_tensorflow()
    from snaresynth.models.export import export_file

    for path in args.models:
        check = export_file(path, check=args.check, tolerance=args.tolerance,
                            knob_map=args.knob_map, knob_scale=args.knob_scale)
        print(f"{path}: inference form written (numpy); max |numpy - keras| = "
              f"{check['max_abs']:.2g} over {check['latents']} latents")
        if args.knob_map is not None or args.knob_scale is not None:
            from snaresynth.models.base import read_metadata

            meta = read_metadata(path)
            print(f"{path}: knob map {meta.knob_map}, knob 1 spans {meta.latent_lo[0]:g} .. "
                  f"{meta.latent_hi[0]:g}")
    return 0


# --- dataset (data/) -----------------------------------------------------------------------------

def _add_dataset(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "dataset", help="build or inspect a training corpus")
    dsub = p.add_subparsers(dest="dataset_command", required=True, metavar="ACTION")
    b = _command(dsub, "build", help="sample folders / Hydrogen kits -> aligned corpus folder")
    b.add_argument("--out", type=Path, required=True, help="corpus folder to write")
    b.add_argument("--from", dest="folders", type=Path, nargs="+", action="extend", default=[],
                   metavar="FOLDER", help="folders of WAV/FLAC/AIFF/OGG one-shots (recursive)")
    b.add_argument("--hydrogen", nargs="?", type=Path, metavar="DRUMKITS_DIR",
                   const=Path("/usr/share/hydrogen/data/drumkits"),
                   help="add Hydrogen drum kits (default folder: the Debian install)")
    b.add_argument("--soundfont", dest="soundfonts", type=Path, nargs="+", action="extend",
                   default=[], metavar="SF2", help="drum kits of SoundFont 2 files (rendered "
                   "with fluidsynth, labelled by GM key)")
    b.add_argument("--label", help="label every --from file with this class (default: by name)")
    b.add_argument("--instruments", help="keep only these classes, e.g. snare,kick")
    b.add_argument("--rate", type=int, default=32000, help="model sample rate in Hz")
    b.add_argument("--augment", type=int, default=0, metavar="N",
                   help="N extra seeded copies per file (gain, pitch, timing)")
    b.add_argument("--seed", type=int, default=0, help="random seed")
    b.set_defaults(func=_cmd_dataset_build)
    i = _command(dsub, "info", help="items per label of a corpus folder")
    i.add_argument("path", type=Path)
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.set_defaults(func=_cmd_dataset_info)


def _cmd_dataset_build(args: argparse.Namespace) -> int:
    from snaresynth.data.build import build_command

    return build_command(out=args.out, folders=args.folders, hydrogen=args.hydrogen,
                         label=args.label, instruments=args.instruments, rate=args.rate,
                         augment=args.augment, seed=args.seed, soundfonts=args.soundfonts)


def _cmd_dataset_info(args: argparse.Namespace) -> int:
    from snaresynth.data.build import info_command

    return info_command(args.path, as_json=args.json)

# --- eval / explore / listener (evaluate.py) -----------------------------------------------------

def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "eval", help="quality figures of models (reconstruction, smoothness, ...)")
    p.add_argument("--model", nargs="+", required=True, metavar="M", help="model file(s)")
    p.add_argument("--data", type=Path, required=True, help="corpus folder (real snares)")
    p.add_argument("--points", type=int, default=1000, help="random latent points (snare share)")
    p.add_argument("--lines", type=int, default=50, help="latent lines for smoothness / span")
    p.add_argument("--steps", type=int, default=64, help="steps along each line")
    p.add_argument("--timing", type=int, default=200, metavar="N", help="single decodes timed")
    p.add_argument("--listener", type=Path, help="listener file (default: bundled)")
    p.add_argument("--heldout", type=Path, metavar="CORPUS",
                   help="corpus with snares of kits the models were not trained on (coverage)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="machine-readable output")
    out.add_argument("--markdown", action="store_true", help="a table for docs/models.md")
    p.set_defaults(func=_cmd_eval)


def _cmd_eval(args: argparse.Namespace) -> int:
    _quiet_tensorflow()
    from snaresynth.analysis.evaluate import eval_command

    return eval_command(models=args.model, data=args.data, points=args.points, lines=args.lines,
                        steps=args.steps, timing=args.timing, listener=args.listener,
                        seed=args.seed, as_json=args.json, markdown=args.markdown,
                        heldout=args.heldout)


def _add_explore(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "explore", help="picture a model over two latent dimensions")
    p.add_argument("--model", help="model file (default: bundled model)")
    p.add_argument("--dims", type=int, nargs=2, default=[0, 1], metavar=("X", "Y"),
                   help="the two latent dimensions drawn (default: 0 1)")
    p.add_argument("--steps", type=int, default=5, help="knob positions per dimension")
    p.add_argument("--kind", choices=["wave", "spec"], default="wave",
                   help="waveforms or spectrograms")
    p.add_argument("--out", type=Path, required=True, help="PNG file to write")
    p.set_defaults(func=_cmd_explore)


def _cmd_explore(args: argparse.Namespace) -> int:
    _quiet_tensorflow(required=False)
    from snaresynth.analysis.explore import explore_command

    return explore_command(model=args.model, dims=tuple(args.dims), steps=args.steps,
                           kind=args.kind, out=args.out)


def _add_listener(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "listener", help="train or inspect the instrument classifier")
    lsub = p.add_subparsers(dest="listener_command", required=True, metavar="ACTION")
    t = _command(lsub, "train", help="train on a labelled corpus, report held-out accuracy")
    t.add_argument("--data", type=Path, nargs="+", required=True,
                   help="labelled corpus folder(s)")
    t.add_argument("--out", type=Path, required=True, help="listener file to write (.keras)")
    t.add_argument("--kind", choices=["summary", "cnn"], default="summary",
                   help="summary: judged leave-one-kit/source-out (default); cnn: the older one")
    t.add_argument("--epochs", type=int, default=None, help="default 25 (summary), 30 (cnn)")
    t.add_argument("--holdout", type=float, default=0.25, help="share of items in held-out kits")
    t.add_argument("--seed", type=int, default=0, help="random seed")
    t.set_defaults(func=_cmd_listener_train)
    i = _command(lsub, "info", help="classes, features and held-out accuracy of a listener")
    i.add_argument("path", type=Path, nargs="?", help="listener file (default: bundled)")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.set_defaults(func=_cmd_listener_info)


def _cmd_listener_train(args: argparse.Namespace) -> int:
    _quiet_tensorflow()
    from snaresynth.analysis.listener import listener_train_command

    return listener_train_command(data=args.data, out=args.out, epochs=args.epochs,
                                  seed=args.seed, holdout=args.holdout, kind=args.kind)


def _cmd_listener_info(args: argparse.Namespace) -> int:
    from snaresynth.analysis.listener import listener_info_command

    return listener_info_command(args.path, as_json=args.json)



# --- export-kit (export/) ------------------------------------------------------------------------

def _add_export_kit(sub: argparse._SubParsersAction) -> None:
    # "export" writes model files' inference form (issue 14); kits have their own command
    p = _command(sub, "export-kit", help="render a kit to WAV samples and an SFZ, Hydrogen or "
                                          "DrumGizmo kit in a new folder")
    p.add_argument("kit", metavar="KIT", help="preset name, kit .toml file, or 'state' (the "
                                              "daemon's current state file)")
    p.add_argument("--format", dest="fmt", default="sfz", metavar="FORMAT",
                   help="sfz | hydrogen | drumgizmo | wav (default: sfz)")
    p.add_argument("--out", type=Path, help="folder to create (default: ./KITNAME-FORMAT)")
    p.add_argument("--rate", type=int, default=48000, help="sample rate in Hz (default: 48000)")
    p.add_argument("--bits", type=int, default=24, help="16 | 24 (default: 24)")
    p.add_argument("--model", help="model file or bundled model name (default: bundled model)")
    p.add_argument("--variants", type=int, default=1, metavar="N",
                   help="round-robin samples per slot and velocity layer (default: 1)")
    p.add_argument("--variation", type=float, default=0.1, metavar="AMOUNT",
                   help="how far variants move each knob, 0..1 (default: 0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the variants (default: 0)")
    p.add_argument("--force", action="store_true", help="replace an existing folder")
    p.set_defaults(func=_cmd_export_kit)


def _cmd_export_kit(args: argparse.Namespace) -> int:
    from snaresynth.export.command import export_kit_command

    return export_kit_command(kit=args.kit, fmt=args.fmt, out=args.out, rate=args.rate,
                              bits=args.bits, model=args.model, variants=args.variants,
                              variation=args.variation, seed=args.seed, force=args.force)


# --- plumbing ------------------------------------------------------------------------------------

def _floats(text: str) -> list[float]:
    try:
        return [float(part) for part in text.replace(" ", ",").split(",") if part]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc


PARSERS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_serve, _add_render, _add_models,
    _add_dataset, _add_eval, _add_explore, _add_listener,
    _add_train, _add_export, _add_export_kit,
]


class _Help(argparse.HelpFormatter):
    """Every option's default in its help: "(default: X)" unless the help already says it, or
    the option is a flag (a flag's default is its absence)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if ("default" in text or default is None or default is argparse.SUPPRESS
                or isinstance(default, bool) or default == [] or not action.option_strings
                or action.nargs == 0):
            return text
        return f"{text} (default: %(default)s)"


def _verbosity(parser: argparse.ArgumentParser, default: object) -> None:
    group = parser.add_argument_group("output")
    group.add_argument("-v", "--verbose", action="count", default=default,
                       help="more log output; -v shows the libraries' messages (debug)")
    group.add_argument("-q", "--quiet", action="store_true", default=default,
                       help="warnings and errors only")


_AFTER = argparse.ArgumentParser(add_help=False)
_verbosity(_AFTER, argparse.SUPPRESS)  # absent after the command: the value before it stands


def _command(sub: argparse._SubParsersAction, name: str, **kwargs: object) -> Any:
    """A sub-command's parser: -v/-q accepted after it too, defaults shown in its help."""
    return sub.add_parser(name, parents=[_AFTER], formatter_class=_Help, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="snaresynth", description="A neural snare-drum instrument (MIDI/OSC sound server).",
        formatter_class=_Help)
    parser.add_argument("--version", action="version", version=f"snaresynth {__version__}")
    _verbosity(parser, None)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in PARSERS:
        add(sub)
    return parser


def log_level(args: argparse.Namespace) -> int:
    """-q: warnings; -v: debug (library messages too); else info."""
    if getattr(args, "quiet", None):
        return logging.WARNING
    return logging.DEBUG if getattr(args, "verbose", None) else logging.INFO


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if not getattr(args, "verbose", None):  # -v: TensorFlow's C++ info lines too
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        log_handler = logs.setup(log_level(args))
    except KeyboardInterrupt:  # Ctrl-C before the command started: no traceback
        return 130
    try:
        return _run(args)
    finally:
        log_handler.flush()


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args) or 0)
    except SnareSynthError as exc:
        print(f"snaresynth {args.command}: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 2))  # train stopped by a signal: 128 + it
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"snaresynth {args.command}: needs {exc.name}, which is not installed; "
              f"install with pip install snaresynth[{extra}]", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
