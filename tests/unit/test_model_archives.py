"""Model archives are checked for size before anything is inflated (models/archive.py): the
file, the member count and directory, each member's declared size and compression ratio, and a
member inflating past what it declared, through every loader (metadata, inference form,
nested archives, the listener). Hostile zips are made on the fly and stay small on disk."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from snaresynth.analysis.listener import BUNDLED_LISTENER, read_listener_info
from snaresynth.errors import ModelFileError
from snaresynth.models import archive
from snaresynth.models.base import METADATA_ENTRY, ModelMetadata, read_metadata
from snaresynth.models.inference import (
    ARRAYS_ENTRY,
    FORMAT,
    PROGRAM_ENTRY,
    has_inference,
    load_inference,
)
from snaresynth.models.registry import DEFAULT_MODEL
from snaresynth.testing.archives import (
    declare,
    lying_member,
    many_members,
    understate_count,
    write,
    zip_bomb,
    zip_bytes,
)

METADATA = ModelMetadata(family="ddsp_snare", latent_dim=2, sample_rate=32000,
                         latent_lo=[-1.0, -1.0], latent_hi=[1.0, 1.0]).to_json()


def test_the_bundled_files_and_their_nested_archives_pass() -> None:
    for path in (DEFAULT_MODEL, BUNDLED_LISTENER):
        with archive.open_archive(path) as outer:
            for name in outer.namelist():
                data = archive.read_member(outer, name)
                assert len(data) == outer.getinfo(name).file_size
                if name.endswith((".keras", ".npz")):
                    with archive.open_bytes(data, name) as inner:
                        assert inner.namelist()


def test_an_archive_with_a_long_comment_is_read(tmp_path: Path) -> None:
    path = tmp_path / "comment.keras"
    with zipfile.ZipFile(path, "w") as made:
        made.writestr(METADATA_ENTRY, METADATA)
        made.comment = b"a comment " * 6500  # near the longest a zip can hold (65,535)
    assert read_metadata(path).latent_dim == 2


def test_a_zip_bomb_member_is_refused_by_its_ratio(tmp_path: Path) -> None:
    path = write(tmp_path / "bomb.keras", zip_bomb(2 << 20))
    assert path.stat().st_size < 10_000
    with pytest.raises(ModelFileError, match=r"bomb\.keras: member 'model.weights.h5' "
                                             r"inflates [\d,]+ times .* over the 100x limit"):
        read_metadata(path)
    assert not has_inference(path)
    with pytest.raises(ModelFileError, match="bomb.keras"):
        load_inference(path)
    with pytest.raises(ModelFileError, match="bomb.keras.*inflates"):
        read_listener_info(path)


def test_a_member_declaring_a_huge_size_is_refused_before_it_is_read(tmp_path: Path) -> None:
    # 4 GiB declared by a member of a few bytes: only the declaration is huge
    path = write(tmp_path / "huge.keras", declare(zip_bytes({"x": b"abc"}, deflate=False),
                                                  0xFFFF_FFF0))
    with pytest.raises(ModelFileError, match=r"huge\.keras: member 'x' declares 4\.0 GiB "
                                             r"uncompressed, over the 256\.0 MiB limit"):
        read_metadata(path)


def test_a_member_inflating_past_its_declared_size_is_stopped(tmp_path: Path) -> None:
    path = write(tmp_path / "liar.keras", lying_member(declared=10, inflated=1 << 20))
    with pytest.raises(ModelFileError, match=r"liar\.keras: member 'snaresynth.json' is "
                                             r"corrupt or inflates past its declared 10 bytes"):
        read_metadata(path)


def test_a_liar_with_a_matching_crc_yields_only_what_it_declared(tmp_path: Path) -> None:
    path = write(tmp_path / "liar.keras", lying_member(10, 1 << 20, "m", matching_crc=True))
    with archive.open_archive(path) as opened:
        assert archive.read_member(opened, "m") == bytes(10)


@pytest.mark.parametrize(("limit", "value", "members", "refusal"), [
    ("MAX_FILE_BYTES", 1000, {"m": bytes(2000)}, "the file is 2,"),
    ("MAX_TOTAL_BYTES", 1000, {"a": bytes(600), "b": bytes(600)}, "the members declare 1,200"),
    ("MAX_MEMBERS", 10, {str(i): b"" for i in range(11)}, "the archive declares 11 members, "
                                                          "over the 10 limit"),
])
def test_each_limit_refuses_what_is_over_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            limit: str, value: int, members: dict[str, bytes],
                                            refusal: str) -> None:
    monkeypatch.setattr(archive, limit, value)  # small stand-ins for the real limits
    path = write(tmp_path / "over.keras", zip_bytes(members, deflate=False))
    with pytest.raises(ModelFileError, match=f"over.keras: {refusal}"):
        read_metadata(path)


def test_a_directory_lying_about_its_count_is_refused_by_its_size(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive, "MAX_MEMBERS", 10)  # 10 entries of 1 KiB: a 10 KiB directory
    path = write(tmp_path / "dir.keras", understate_count(many_members(20, 600), 1))
    with pytest.raises(ModelFileError, match=r"dir.keras: the archive's directory is [\d,]+ "
                                             r"bytes, over the 10,240 bytes limit"):
        read_metadata(path)


@pytest.mark.parametrize("data", [b"", b"not a zip at all", b"PK\x05\x06 truncated end"])
def test_a_file_that_is_not_a_zip_is_refused_by_name(tmp_path: Path, data: bytes) -> None:
    path = write(tmp_path / "junk.keras", data)
    with pytest.raises(zipfile.BadZipFile):
        archive.open_archive(path)
    with pytest.raises(ModelFileError, match="junk.keras: corrupt or truncated model file"):
        read_metadata(path)
    with pytest.raises(ModelFileError, match="junk.keras: corrupt listener file"):
        read_listener_info(path)


def test_a_bomb_inside_the_inference_arrays_is_refused(tmp_path: Path) -> None:
    program = json.dumps({"format": FORMAT, "runtime": "numpy", "ops": []})
    outer = zip_bytes({METADATA_ENTRY: METADATA.encode(), PROGRAM_ENTRY: program.encode(),
                       ARRAYS_ENTRY: zip_bomb(2 << 20, "w.npy")}, deflate=False)
    path = write(tmp_path / "nested.keras", outer)
    with pytest.raises(ModelFileError, match=r"nested\.keras: inference\.npz: member 'w\.npy' "
                                             r"inflates"):
        load_inference(path)
