"""The command line: -v/-q after the sub-command as well as before, every option's default in
its ``--help``, ``--midi-api auto`` and ``--no-autoconnect`` reaching the daemon's settings
(parsing only: nothing is started)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import re
from collections.abc import Iterator

import pytest

from snaresynth.cli import build_parser, log_level
from snaresynth.config import Settings, settings_from_args

FLAG_ACTIONS = (argparse._StoreTrueAction, argparse._StoreConstAction, argparse._CountAction,
                argparse._HelpAction, argparse._VersionAction)


Named = tuple[tuple[str, ...], argparse.ArgumentParser]


def _parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[Named]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def _entries(help_text: str) -> dict[str, str]:
    """Option string -> its whole entry (wrapped lines joined) in a --help text."""
    entries: dict[str, str] = {}
    keys: list[str] = []
    for line in help_text.splitlines():
        if line.startswith("  -"):
            keys = re.findall(r"(?:^|, )(--?[\w-]+)", line.strip())
            entries.update(dict.fromkeys(keys, line.strip()))
        elif keys and line.startswith("   "):
            for key in keys:
                entries[key] += " " + line.strip()
        else:
            keys = []
    return entries


SETTINGS_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Settings)
                     if f.default is not dataclasses.MISSING}


def test_every_option_with_a_default_says_it_in_help() -> None:
    missing = []
    for path, parser in _parsers(build_parser()):
        entries = _entries(parser.format_help())
        for action in parser._actions:
            if not action.option_strings or isinstance(action, FLAG_ACTIONS):
                continue
            default = action.default
            if path == ("serve",) and default is None:  # None: the settings' default applies
                default = SETTINGS_DEFAULTS.get(action.dest)
            if default in (None, argparse.SUPPRESS, []):
                continue
            entry = entries.get(action.option_strings[-1], "")
            if "default" not in entry:
                missing.append(f"{' '.join(path)} {action.option_strings[-1]}: {entry!r}")
    assert not missing, "\n".join(missing)


def test_serve_help_names_the_settings_defaults() -> None:
    serve = dict(_parsers(build_parser()))[("serve",)]
    entries = _entries(serve.format_help())
    assert "(default: auto)" in entries["--audio"] and "(default: 128)" in entries["--blocksize"]
    assert "(default: 9000)" in entries["--osc-port"]
    assert "default: auto" in entries["--midi-api"]


@pytest.mark.parametrize("argv, level", [
    (["serve"], logging.INFO),
    (["-v", "serve"], logging.DEBUG),
    (["serve", "-v"], logging.DEBUG),
    (["-q", "serve"], logging.WARNING),
    (["serve", "--audio", "null", "-q"], logging.WARNING),
    (["dataset", "info", "x", "-v"], logging.DEBUG),
    (["listener", "-q", "info"], logging.WARNING),
    (["-v", "render", "--knobs", "0.5"], logging.DEBUG),
])
def test_verbosity_before_or_after_the_command(argv: list[str], level: int) -> None:
    assert log_level(build_parser().parse_args(argv)) == level


def test_midi_api_auto_and_no_autoconnect_reach_the_settings() -> None:
    args = build_parser().parse_args(["serve", "--midi-api", "auto", "--no-autoconnect"])
    settings = settings_from_args(args)
    assert settings.midi_api == "auto" and settings.autoconnect is False
    plain = settings_from_args(build_parser().parse_args(["serve"]))
    assert plain.midi_api == "auto" and plain.autoconnect is True


def test_a_config_file_still_sets_what_the_command_line_does_not(tmp_path) -> None:
    config = tmp_path / "s.toml"
    config.write_text('[serve]\nautoconnect = false\nmidi_api = "alsa"\nblocksize = 256\n')
    args = build_parser().parse_args(["serve", "--config", str(config), "--midi-api", "auto"])
    settings = settings_from_args(args)
    assert (settings.autoconnect, settings.midi_api, settings.blocksize) == (False, "auto", 256)


@pytest.mark.parametrize("argv, priority", [
    (["serve", "--audio", "null"], 1),
    (["serve", "--audio", "jack"], 1),
    (["serve"], 0),  # auto: PortAudio, whose callback thread is not realtime
    (["serve", "--audio", "hw:1"], 0),
    (["serve", "--audio", "jack", "--decode-priority", "0"], 0),
    (["serve", "--decode-priority", "5"], 5),
])
def test_the_decoder_is_realtime_only_above_a_realtime_audio_thread(argv: list[str],
                                                                    priority: int) -> None:
    settings = settings_from_args(build_parser().parse_args(argv))
    assert settings.decode_rt_priority() == priority and settings.decode == "thread"


def test_a_decode_priority_out_of_range_is_a_settings_error() -> None:
    from snaresynth.errors import SnareSynthError

    with pytest.raises(SnareSynthError, match="decode_priority must be 0..99"):
        settings_from_args(build_parser().parse_args(["serve", "--decode-priority", "100"]))
