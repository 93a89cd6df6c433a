"""Instrument names -> classes, and drumkit.xml parsing, including hostile input."""

from __future__ import annotations

import contextlib
from xml.sax.saxutils import escape

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snaresynth.data.hydrogen import parse_drumkit_xml
from snaresynth.data.labels import CLASSES, UNKNOWN, classify_name, classify_path, words
from snaresynth.errors import CorpusError
from tests.data.conftest import kit_xml

KNOWN = {
    # real names from the Debian Hydrogen kits
    "Snare Rimshot": "snare", "808 Snare": "snare", "Snare Jazz": "snare", "Snare1": "snare",
    "Pearl Snare Rimshot": "snare", "Snare 2 Rimshot (Pearl Free Floating Maple 14x3.5)": "snare",
    "d3 - snare 1": "snare", "VariBreaks Snare 3": "snare", "SN_08.aiff": "snare",
    "Snare Roll": "other", "Stick": "other",
    "Rim Click (Pearl Free Floating Maple 14x3.5)": "other",
    "Pearl Side Stick": "other", "c#3 - stick": "other", "Click": "other",
    "Kick": "kick", "BassDrum": "kick", "c3 - bass drum 1": "kick", "Kick Lite 1": "kick",
    "Kick (Tama Superstar 22\")": "kick", "Pearl Kick": "kick", "bd1.flac": "kick",
    "Closed HH": "hat", "Hi Hat Opened": "hat",
    "Hi-Hat Pedal (Paiste Alpha Metal edge 14\")": "hat",
    "Hat Op Dirty": "hat", "Side OHH": "hat", "closehihat3": "hat", "Sabian Hat Swish": "hat",
    "Tom Low": "tom", "Floor Tom": "tom", "Pearl Tom Floor": "tom", "tomhi2": "tom",
    "b3 - low tom": "tom",
    "Crash": "cymbal", "Ride (Custom, Zagrebin 22\")": "cymbal", "ride-cup": "cymbal",
    "crash16inch": "cymbal", "China (Paiste Alpha 18\")": "cymbal", "Bell": "cymbal",
    "Zildjian Splash Choke": "cymbal", "Cymbal": "cymbal",
    "Hand Clap": "clap", "Clap Hard": "clap", "d#3 - clap": "clap",
    "Cowbell": "other", "Tambourine (Pearl PTM-10GH)": "other", "Agogo High": "other",
    "Shaker": "other", "Djembe1 Bass": "other", "Sangban1 Bell Hit": "other",
    "Finger Snaps": "other", "WaterglassHi": "other", "Zap 1": "other", "FX": "other",
    "17": UNKNOWN, "None": UNKNOWN, "": UNKNOWN, "f#4 - ": UNKNOWN, "Drum 1": UNKNOWN,
    "Sample: beats_01-10.flac": UNKNOWN,
}


@pytest.mark.parametrize(("name", "label"), sorted(KNOWN.items()))
def test_classify_known_names(name: str, label: str) -> None:
    assert classify_name(name) == label


def test_words_split_camel_case_digits_and_punctuation() -> None:
    assert words("BassDrum_02-Hard.wav") == ["bass", "drum", "hard", "wav"]


def test_classify_path_file_name_wins_then_nearest_folder() -> None:
    assert classify_path(["kick_01.wav", "Snares", "Kit"]) == "kick"
    assert classify_path(["Bright 01.wav", "Snares", "Kicks"]) == "snare"
    assert classify_path(["take 3.wav", "misc", "stuff"]) == UNKNOWN


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_classify_any_text_gives_a_known_label(name: str) -> None:
    assert classify_name(name) in (*CLASSES, UNKNOWN)


_CLEAR = [n for n, lab in KNOWN.items() if lab != UNKNOWN and not n.endswith((".aiff", ".flac"))]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(_CLEAR), st.integers(0, 999), st.sampled_from([" - ", "_", " ", "."]))
def test_numbering_and_separators_do_not_change_the_class(name: str, num: int, sep: str) -> None:
    assert classify_name(f"{num}{sep}{name}{sep}{num}") == KNOWN[name]


_XML_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=0xD7FF,
                                  blacklist_characters="\x7f"), max_size=30)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(_XML_TEXT, st.lists(_XML_TEXT.filter(str.strip), max_size=3)),
                max_size=6),
       st.booleans())
def test_drumkit_xml_round_trip(instruments: list[tuple[str, list[str]]], ns: bool) -> None:
    escaped = [(escape(n), [escape(f) for f in files]) for n, files in instruments]
    name, parsed = parse_drumkit_xml(kit_xml("Kit &amp; Co", escaped, namespaced=ns))
    assert name == "Kit & Co"
    assert parsed == [(n.strip(), [f.strip() for f in files]) for n, files in instruments]


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_drumkit_xml_garbage_is_a_corpus_error(data: str | bytes) -> None:
    """Outside input: any failure is a CorpusError naming the file, never another type."""
    with contextlib.suppress(CorpusError):
        parse_drumkit_xml(data)


def test_drumkit_xml_wrong_root_and_broken_xml() -> None:
    with pytest.raises(CorpusError, match="expected <drumkit_info>"):
        parse_drumkit_xml("<song><name>x</name></song>")
    with pytest.raises(CorpusError, match="not valid XML"):
        parse_drumkit_xml("<drumkit_info><name>x</name>", source="kit/drumkit.xml")


_PART = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
                min_size=1, max_size=20)


@settings(max_examples=200, deadline=None)
@given(st.lists(_PART, min_size=1, max_size=5), st.sampled_from(_CLEAR))
def test_path_labels_any_names_and_a_named_file_wins(parts: list[str], name: str) -> None:
    """Folder and file names are outside input: any of them gives a known label, and a file
    whose own name names an instrument keeps that label whatever its folders are called."""
    assert classify_path(parts) in (*CLASSES, UNKNOWN)
    assert classify_path([f"{name}.wav", *parts]) == KNOWN[name]
