"""Instrument classes from names: "Snare Rimshot" -> snare, "Hi Hat" -> hat, "Cowbell" -> other.

Names come from outside (drum-kit files, sample folders), so this is keyword matching on words,
never substring guessing that would make "Custom Ride" a tom. The first rule that matches wins;
the order encodes the exceptions ("Snare Roll" is not a one-shot, "Side Stick" is not a snare,
"Sangban Bell" is not a cymbal). A name that matches nothing is ``unknown``: it stays in the
corpus (labelled so) but the listener never learns from it.
"""

from __future__ import annotations

import re

CLASSES: tuple[str, ...] = ("kick", "snare", "hat", "tom", "cymbal", "clap", "other")
"""The instrument classes a corpus item can have (plus ``UNKNOWN``)."""

UNKNOWN = "unknown"

# Words (after splitting camelCase, digits and punctuation) that decide a class outright.
_OTHER_WORDS = {
    "cowbell", "agogo", "tambourine", "tamb", "tambo", "shaker", "shake", "maraca", "maracas",
    "conga", "congas", "bongo", "bongos", "cajon", "djembe", "clave", "claves", "woodblock",
    "block", "whistle", "triangle", "timbale", "timbales", "guiro", "cabasa", "vibraslap",
    "sangban", "dununba", "kenkeni", "waterglass", "glass", "snap", "snaps", "fingersnap",
    "fx", "sfx", "zap", "perc", "noise", "scratch", "vox", "voice", "chime", "chimes", "gong",
    "tabla", "udu", "cuica", "surdo", "click", "stick", "sticks", "sidestick",
    "crossstick", "xstick", "roll", "flam", "drag", "buzz", "rimclick",
}
_SNARE_WORDS = {"snare", "snares", "snr", "sd", "sn", "snaredrum", "rimshot", "rimshots"}
_CLAP_WORDS = {"clap", "claps", "handclap", "handclaps"}
_KICK_WORDS = {"kick", "kicks", "kik", "bd", "bassdrum", "kickdrum", "bdrum"}
_HAT_WORDS = {"hat", "hats", "hh", "hihat", "hihats", "chh", "ohh", "phh", "hhc", "hho",
              "closedhat", "openhat", "closehihat", "openhihat", "pedalhihat", "hatclosed",
              "hatopen", "hatopened"}
_TOM_WORDS = {"tom", "toms", "floortom", "hitom", "lotom", "lowtom", "midtom", "hightom",
              "tomhi", "tomlo", "tomlow", "tommid", "tomhigh", "rototom"}
_CYMBAL_WORDS = {"crash", "ride", "splash", "china", "chinese", "cymbal", "cymbals", "cym",
                 "bell", "cup", "ridebell", "ridecup", "crashride", "sizzle", "stack"}

# Two-word phrases checked on the joined word list (so "bass drum" and "rim click" work).
_PHRASES: tuple[tuple[str, str], ...] = (
    ("rim click", "other"), ("side stick", "other"), ("cross stick", "other"),
    ("snare roll", "other"), ("bass drum", "kick"), ("hi hat", "hat"), ("high hat", "hat"),
    ("floor tom", "tom"), ("bell tree", "other"),
)

_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_NON_ALPHA = re.compile(r"[^a-z]+")


def words(name: str) -> list[str]:
    """Lower-case alphabetic words of a name: "BassDrum_02-Hard.wav" -> bass drum hard wav."""
    spaced = _CAMEL.sub(" ", name)
    return [w for w in _NON_ALPHA.split(spaced.lower()) if w]


def classify_name(name: str) -> str:
    """The instrument class a name stands for, or ``UNKNOWN``.

    Checked in order: other percussion, stick and roll exceptions first (so "Snare Roll" and
    "Side Stick" are not snares), then snare, clap, kick, hat, tom, cymbal.
    """
    found = words(name)
    if not found:
        return UNKNOWN
    joined = " ".join(found)
    for phrase, label in _PHRASES:
        if f" {phrase} " in f" {joined} ":
            return label
    # A compound word like "closehihat" or "tomhi" is matched whole; single words are checked
    # against each class in priority order.
    word_set = set(found)
    for label, vocab in (
        ("other", _OTHER_WORDS),
        ("snare", _SNARE_WORDS),
        ("clap", _CLAP_WORDS),
        ("kick", _KICK_WORDS),
        ("hat", _HAT_WORDS),
        ("tom", _TOM_WORDS),
        ("cymbal", _CYMBAL_WORDS),
    ):
        if word_set & vocab:
            return label
    # Prefixes catch run-together names such as "snareJazz" lower-cased or "tomhi3".
    for word in found:
        for prefix, label in (("snare", "snare"), ("kick", "kick"), ("hihat", "hat"),
                              ("clap", "clap"), ("crash", "cymbal"), ("ride", "cymbal"),
                              ("cymbal", "cymbal"), ("tom", "tom")):
            if word.startswith(prefix) and not _is_false_prefix(word):
                return label
    return UNKNOWN


def _is_false_prefix(word: str) -> bool:
    """Words that start like an instrument but are not one ("tomato", "rider", "ridge")."""
    return word in {"tomato", "tomb", "tome", "tomorrow", "rider", "riders", "ridge", "kickoff"}


def classify_path(parts: list[str]) -> str:
    """Class from a file name and its parent folders, nearest first; ``UNKNOWN`` if none says.

    ``parts`` is e.g. ``["Bright 01.wav", "Snares", "MyKit"]``: the file name decides when it
    names an instrument, otherwise the closest folder that does.
    """
    for part in parts:
        stem = part.rsplit(".", 1)[0] if "." in part else part
        label = classify_name(stem)
        if label != UNKNOWN:
            return label
    return UNKNOWN
