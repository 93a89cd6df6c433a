"""Tests for control/presets.py: schema, strict loading, atomic saving, the store, name safety."""

from __future__ import annotations

import math
import os
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snaresynth.control import presets
from snaresynth.control.kit import Kit, Slot, default_cc, kit_from_dict, kit_to_dict
from snaresynth.control.presets import (
    PresetStore,
    check_name,
    load_kit,
    load_state,
    save_kit,
    save_state,
    shipped_preset_dir,
)
from snaresynth.errors import PresetError

SHIPPED = sorted(shipped_preset_dir().glob("*.toml"))


def make_kit(**overrides: Any) -> Kit:
    slots = [
        Slot("main", [38, 40], [0.5] * 8),
        Slot("rim", [37], [0.8, 0.2, 0.6, 0.3, 0.7, 0.4, 0.3, 0.6], level_db=-4, tune_semitones=3,
             decay=0.3, pan=0.1, choke_group=1),
    ]
    fields: dict[str, Any] = {"name": "test", "slots": slots, "cc": default_cc()}
    fields.update(overrides)
    return Kit(**fields)


def valid_doc() -> dict[str, Any]:
    return kit_to_dict(make_kit())


def write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(tomli_w.dumps(doc), encoding="utf-8")
    return path


# ---------------------------------------------------------------- shipped presets


def test_presets_are_shipped() -> None:
    names = {p.stem for p in SHIPPED}
    assert {"default", "tight", "fat", "brushy"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_preset_loads_and_round_trips(path: Path, tmp_path: Path) -> None:
    kit = load_kit(path)
    assert kit.description, "every shipped kit says what it is for"
    assert kit.name == path.stem
    notes = {n for slot in kit.slots for n in slot.notes}
    assert {38, 40} <= notes  # GM acoustic and electric snare always play something
    save_kit(kit, tmp_path / path.name)
    assert load_kit(tmp_path / path.name) == kit


def test_default_kit_layout() -> None:
    kit = load_kit(shipped_preset_dir() / "default.toml")
    assert kit.cc == default_cc()
    assert {20 + i: f"latent/{i}" for i in range(8)}.items() <= kit.cc.items()
    assert kit.cc[7] == "level" and kit.cc[74] == "tune" and kit.cc[75] == "decay"
    assert kit.cc[1] == "morph"
    assert {37, 38, 39, 40, 41} <= {n for s in kit.slots for n in s.notes}
    assert len({tuple(s.knobs) for s in kit.slots}) == len(kit.slots)


# ---------------------------------------------------------------- schema


def test_dict_round_trip() -> None:
    kit = make_kit(velocity_latent=2, velocity_latent_amount=-0.5, midi_channel=10,
                   description="two\nlines", velocity_curve="hard")
    again = kit_from_dict(kit_to_dict(kit))
    assert again == kit
    assert tomllib.loads(tomli_w.dumps(kit_to_dict(kit))) == kit_to_dict(kit)


def test_none_fields_are_left_out_and_defaults_apply() -> None:
    doc = kit_to_dict(make_kit())
    assert "midi_channel" not in doc and "velocity_latent" not in doc
    minimal = {"name": "m", "slot": [{"name": "s", "notes": [38], "knobs": [0.5]}]}
    kit = kit_from_dict(minimal)
    assert kit.cc == {} and kit.midi_channel is None and kit.velocity_curve == "linear"
    assert kit.slots[0] == Slot("s", [38], [0.5])


def test_int_is_accepted_for_float_and_becomes_float() -> None:
    doc = valid_doc()
    doc["slot"][0]["level_db"] = -6
    doc["slot"][0]["knobs"] = [0, 1, 0.5]
    kit = kit_from_dict(doc)
    assert kit.slots[0].level_db == -6.0 and isinstance(kit.slots[0].level_db, float)
    assert all(isinstance(k, float) for k in kit.slots[0].knobs)


def test_error_names_file_and_field(tmp_path: Path) -> None:
    doc = valid_doc()
    doc["slot"][1]["tune_semitones"] = "high"
    path = write(tmp_path / "default.toml", doc)
    with pytest.raises(PresetError) as info:
        load_kit(path)
    assert 'default.toml: slot[1].tune_semitones: must be a number in -12..12, got "high"' in str(
        info.value
    )


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.update(colour="red"), "colour: unknown field"),
        (lambda d: d["slot"][0].update(volume=1), "slot[0].volume: unknown field"),
        (lambda d: d.pop("name"), "name: required field is missing"),
        (lambda d: d.pop("slot"), "slot: required field is missing"),
        (lambda d: d["slot"][1].pop("knobs"), "slot[1].knobs: required field is missing"),
        (lambda d: d["slot"][0].update(level_db=True), "slot[0].level_db: must be a number"),
        (lambda d: d["slot"][0].update(level_db=13), "level_db: must be a number in -60..12"),
        (lambda d: d["slot"][0].update(decay=math.nan), "slot[0].decay"),
        (lambda d: d["slot"][0].update(pan=math.inf), "slot[0].pan"),
        (lambda d: d["slot"][0].update(choke_group=1.0), "slot[0].choke_group: must be an integer"),
        (lambda d: d["slot"][0].update(notes=[38, 128]), "slot[0].notes[1]: must be an integer"),
        (lambda d: d["slot"][0].update(notes=[38, 38]), "notes[1]: note 38 is listed twice"),
        (lambda d: d["slot"][1].update(notes=[40]), "slot[1].notes[0]: note 40 is already used"),
        (lambda d: d["slot"][0].update(knobs=[]), "slot[0].knobs: must be an array of 1..1024"),
        (lambda d: d["slot"][0].update(knobs=[0.5, 1.5]), "knobs[1]: must be a number in 0..1"),
        (lambda d: d["slot"][0].update(knobs=[10**400]), "slot[0].knobs[0]"),
        (lambda d: d["slot"][0].update(name=""), "slot[0].name: must be a non-empty string"),
        (lambda d: d["slot"][0].update(name="a\nb"), "slot[0].name: must not contain control"),
        (lambda d: d.update(slot=[]), "slot: must be an array of 1..128"),
        (lambda d: d.update(slot={"name": "x"}), "slot: must be an array"),
        (lambda d: d.update(slot=["x"]), "slot[0]: must be a table"),
        (lambda d: d.update(velocity_curve="log"), "velocity_curve: must be one of linear"),
        (lambda d: d.update(velocity_latent=-1), "velocity_latent: must be an integer"),
        (lambda d: d.update(velocity_latent_amount=2), "velocity_latent_amount: must be a number"),
        (lambda d: d.update(midi_channel=0), "midi_channel: must be an integer in 1..16"),
        (lambda d: d.update(midi_channel=17), "midi_channel: must be an integer in 1..16"),
        (lambda d: d["cc"].update({"128": "level"}), "cc.128: a CC number must be"),
        (lambda d: d["cc"].update({"x": "level"}), "cc.x: a CC number must be"),
        (lambda d: d["cc"].update({"20": "latent/x"}), "cc.20: unknown parameter"),
        (lambda d: d["cc"].update({"20": 3}), "cc.20: must be a parameter address string"),
        (lambda d: d.update(cc=[1]), "cc: must be a table"),
        (lambda d: d.update(format=2), "format: must be an integer in 1..1"),
        (lambda d: d.update(description=5), "description: must be a string"),
    ],
)
def test_strict_field_errors(mutate: Any, expected: str) -> None:
    doc = valid_doc()
    mutate(doc)
    with pytest.raises(PresetError) as info:
        kit_from_dict(doc, "kit.toml")
    assert str(info.value).startswith("kit.toml: ")
    assert expected in str(info.value)


def test_constructing_invalid_dataclasses_raises() -> None:
    with pytest.raises(PresetError, match="slot.tune_semitones"):
        Slot("x", [38], [0.5], tune_semitones=13)
    with pytest.raises(PresetError, match=r"slot\[1\].notes\[0\]: note 38"):
        Kit("k", [Slot("a", [38], [0.5]), Slot("b", [38], [0.5])], {})
    with pytest.raises(PresetError, match="cc.3"):
        Kit("k", [Slot("a", [38], [0.5])], {3: "volume"})


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(PresetError, match="cannot read"):
        load_kit(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [", encoding="utf-8")
    with pytest.raises(PresetError, match="bad.toml: not valid TOML"):
        load_kit(bad)
    bad.write_bytes(b"name = \"\xff\"")
    with pytest.raises(PresetError, match="bad.toml"):
        load_kit(bad)


def test_knobs_for_pads_and_truncates() -> None:
    slot = Slot("s", [38], [0.1, 0.2, 0.3])
    assert slot.knobs_for(3) == [0.1, 0.2, 0.3]
    assert slot.knobs_for(5) == [0.1, 0.2, 0.3, 0.5, 0.5]
    assert slot.knobs_for(2) == [0.1, 0.2]
    assert slot.knobs == [0.1, 0.2, 0.3]
    with pytest.raises(ValueError):
        slot.knobs_for(0)


# ---------------------------------------------------------------- saving


def test_save_validates_a_mutated_kit(tmp_path: Path) -> None:
    kit = make_kit()
    kit.slots[0].level_db = 40.0  # the engine mutates; save must not write garbage
    with pytest.raises(PresetError, match=r"slot\[0\].level_db"):
        save_kit(kit, tmp_path / "k.toml")
    assert not (tmp_path / "k.toml").exists()


def test_failed_save_leaves_old_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "kit.toml"
    save_kit(make_kit(name="old"), path)
    before = path.read_bytes()

    def broken_replace(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(PresetError, match="cannot write"):
        save_kit(make_kit(name="new"), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_kit(path).name == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["kit.toml"]  # no temp file left behind


def test_state_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "state" / "state.toml"
    kit = make_kit()
    save_state(path, kit, 1)
    assert load_state(path) == (kit, 1)
    with pytest.raises(PresetError, match="selected_slot"):
        save_state(path, kit, 2)
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    doc["selected_slot"] = 5
    write(path, doc)
    with pytest.raises(PresetError, match=r"state.toml: selected_slot: must be an integer in 0..1"):
        load_state(path)
    doc.pop("selected_slot")
    write(path, doc)
    with pytest.raises(PresetError, match="selected_slot: required field is missing"):
        load_state(path)
    # a state file is not a kit file
    save_state(path, kit, 0)
    with pytest.raises(PresetError, match="selected_slot: unknown field"):
        load_kit(path)


# ---------------------------------------------------------------- the store


@pytest.fixture
def store(tmp_path: Path) -> PresetStore:
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for name in ("default", "Fat", "brushy"):
        save_kit(make_kit(name=name), shipped / f"{name}.toml")
    return PresetStore(user_dir=tmp_path / "user", shipped_dir=shipped)


def test_store_lists_loads_and_orders_program_changes(store: PresetStore) -> None:
    assert store.list() == ["brushy", "default", "Fat"]
    assert store.name_for_program(0) == "brushy"
    assert store.name_for_program(2) == "Fat"
    assert store.name_for_program(3) is None
    assert store.name_for_program(-1) is None
    assert store.load("default").name == "default"
    with pytest.raises(PresetError, match="no preset named"):
        store.load("nothing")


def test_store_saves_into_user_folder_only(store: PresetStore) -> None:
    shipped_bytes = (store.shipped_dir / "default.toml").read_bytes()
    path = store.save("default", make_kit(name="mine"))
    assert path.parent == store.user_dir
    assert (store.shipped_dir / "default.toml").read_bytes() == shipped_bytes
    assert store.load("default").name == "mine"  # the user's copy shadows the shipped one
    store.save("my kit 2", make_kit(name="mine2"))
    assert store.list() == ["brushy", "default", "Fat", "my kit 2"]


def test_store_skips_files_with_unloadable_names(store: PresetStore) -> None:
    store.user_dir.mkdir(parents=True)
    (store.user_dir / ".kit.toml.abc.tmp.toml").write_text("x")
    (store.user_dir / "a..b.toml").write_text("x")
    assert store.list() == ["brushy", "default", "Fat"]


def test_store_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNARESYNTH_PRESET_DIR", str(tmp_path / "env"))
    store = PresetStore()
    assert store.user_dir == tmp_path / "env"
    assert store.shipped_dir == shipped_preset_dir()
    assert set(store.list()) >= {"default", "tight", "fat", "brushy"}


def test_default_user_dir_uses_platformdirs(monkeypatch: pytest.MonkeyPatch) -> None:
    import platformdirs

    monkeypatch.delenv("SNARESYNTH_PRESET_DIR", raising=False)
    expected = Path(platformdirs.user_data_dir("snaresynth")) / "presets"
    assert presets.user_preset_dir() == expected


@pytest.mark.parametrize(
    "name",
    ["", "../evil", "..", "a/b", "a\\b", "/etc/passwd", "evil\n", "a..b", ".hidden", "-x", "x ",
     "x.", "a" * 65, "naïve", "C:evil", "a\x00b", "~root"],
)
def test_unsafe_names_are_refused(store: PresetStore, name: str) -> None:
    with pytest.raises(PresetError, match="invalid preset name"):
        check_name(name)
    with pytest.raises(PresetError):
        store.save(name, make_kit())
    with pytest.raises(PresetError):
        store.load(name)


@pytest.mark.parametrize("name", ["default", "My Kit 2", "a", "x_y-z.v2", "a" * 64])
def test_safe_names_are_accepted(name: str) -> None:
    assert check_name(name) == name


def test_non_string_name_is_refused() -> None:
    with pytest.raises(PresetError, match="must be a string"):
        check_name(3)


def test_symlink_out_of_the_folder_is_refused(store: PresetStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside.toml"
    save_kit(make_kit(name="outside"), outside)
    store.user_dir.mkdir(parents=True)
    (store.user_dir / "escape.toml").symlink_to(outside)
    with pytest.raises(PresetError, match="resolves outside"):
        store.load("escape")
    assert "escape" not in store.list()


# ---------------------------------------------------------------- property-based

toml_scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=20,
)
field_names = st.sampled_from(
    ["name", "notes", "knobs", "level_db", "tune_semitones", "decay", "pan", "choke_group",
     "slot", "cc", "format", "velocity_curve", "velocity_latent", "velocity_latent_amount",
     "midi_channel", "description", "20", "bogus"]
)


@st.composite
def near_valid_docs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid kit document with a few fields replaced, added or removed."""
    doc = valid_doc()
    tables = [doc, doc["cc"], doc["slot"][0], doc["slot"][1]]  # kept even if doc drops them
    for _ in range(draw(st.integers(1, 4))):
        table = draw(st.sampled_from(tables))
        key = draw(field_names)
        if draw(st.booleans()) and key in table:
            del table[key]
        else:
            table[key] = draw(toml_values)
    return doc


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(near_valid_docs(), toml_values, st.dictionaries(field_names, toml_values)))
def test_kit_from_dict_raises_only_preset_error(doc: Any) -> None:
    try:
        kit = kit_from_dict(doc, "fuzz.toml")
    except PresetError as exc:
        assert str(exc).startswith("fuzz.toml: ")
        return
    # whatever was accepted must survive a save/load round trip unchanged
    text = tomli_w.dumps(kit_to_dict(kit))
    assert kit_from_dict(tomllib.loads(text)) == kit


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80) | st.sampled_from(["..", "../x", "/x", "a/../../b", "x\n", "a\\..\\b"]))
def test_arbitrary_names_never_escape_the_folder(tmp_path_factory: Any, name: str) -> None:
    folder = tmp_path_factory.getbasetemp() / "prop-user"
    store = PresetStore(user_dir=folder, shipped_dir=folder / "none")
    try:
        path = store.user_path(name)
    except PresetError:
        return
    assert path.resolve().is_relative_to(folder.resolve())
    assert path.parent == folder and path.name == f"{name}.toml"
    assert "/" not in name and "\\" not in name and ".." not in name


def test_kit_deepcopy_is_independent_of_the_original():
    import copy

    from snaresynth.control.presets import PresetStore

    kit = PresetStore().load("default")
    snap = copy.deepcopy(kit)
    assert snap == kit
    snap.slots[0].knobs[0] = 0.123
    snap.slots[0].notes.append(99)
    snap.cc[99] = "level"
    snap.slots[1].level_db = -30.0
    assert kit.slots[0].knobs[0] != 0.123 and 99 not in kit.slots[0].notes
    assert 99 not in kit.cc and kit.slots[1].level_db != -30.0


@pytest.mark.parametrize(("targets", "why"), [
    (["tight"], "morph_targets: must be an array of 2..2"),
    (["tight", "../etc/passwd"], "invalid preset name"),
    ("tight", "morph_targets: must be an array"),
])
def test_bad_morph_targets_are_refused_naming_the_field(targets, why) -> None:
    doc = kit_to_dict(Kit("k", [Slot("a", [38], [0.5])], {}))
    doc["morph_targets"] = targets
    with pytest.raises(PresetError, match=why):
        kit_from_dict(doc, "k.toml")


def test_morph_targets_round_trip() -> None:
    kit = Kit("k", [Slot("a", [38], [0.5])], {}, morph_targets=("tight", "fat"))
    assert kit_from_dict(kit_to_dict(kit)).morph_targets == ("tight", "fat")


def test_the_user_folder_holds_at_most_max_presets(tmp_path: Path, monkeypatch) -> None:
    from snaresynth.control import presets

    monkeypatch.setattr(presets, "MAX_PRESETS", 3)
    store = presets.PresetStore(user_dir=tmp_path)
    kit = Kit("k", [Slot("a", [38], [0.5])], {})
    for name in ("a", "b", "c"):
        store.save(name, kit)
    with pytest.raises(PresetError, match="preset limit reached"):
        store.save("d", kit)
    store.save("b", kit)  # saving over an existing one is always possible
