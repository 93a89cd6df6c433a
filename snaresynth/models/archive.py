"""Size checks for model archives, before anything in them is inflated.

A model or listener file is a zip (``.keras``) holding zips of its own (``encoder.keras``,
``inference.npz``). Every loader opens them here: ``open_archive`` (a file) and ``open_bytes``
(a member holding an archive) check the file's size, the central directory's size and member
count, and each member's declared uncompressed size and compression ratio against the limits
below; ``read_member`` reads a member with a bounded read, so one that inflates past what it
declared is stopped. A refusal is a ``ModelFileError`` naming the file and what is wrong; a file
that is no zip at all is left to ``zipfile`` (``BadZipFile``), which each loader words itself.
Keras and numpy read the members of an archive checked here through ``zipfile``, which never
returns more than a member declared. Limits are in docs/reliability.md ("Limits").
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
from pathlib import Path
from typing import BinaryIO

from snaresynth.errors import ModelFileError

MiB = 1 << 20
MAX_FILE_BYTES = 256 * MiB
"""A model file on disk (the bundled one is 1.5 MB; study models tens of MB)."""
MAX_MEMBER_BYTES = 256 * MiB
"""What one member may declare uncompressed."""
MAX_TOTAL_BYTES = 512 * MiB
"""What all members of one archive may declare together."""
MAX_MEMBERS = 4096
"""Members of one archive (a .keras holds about 8; an inference.npz one per array)."""
DIRECTORY_BYTES_PER_MEMBER = 1024
"""The central directory may hold MAX_MEMBERS entries of this size (names are short)."""
MAX_RATIO = 100
"""Declared over compressed size, for members over RATIO_FLOOR_BYTES (deflated zeros: ~1000)."""
RATIO_FLOOR_BYTES = 1 * MiB
"""Small members (zero biases, configs) may compress as well as they like."""
_CHUNK = 1 * MiB

_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record
_EOCD64_LOCATOR = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")


def _size(n: int) -> str:
    if n >= 1024 * MiB:
        return f"{n / (1024 * MiB):.1f} GiB"
    return f"{n / MiB:.1f} MiB" if n >= MiB else f"{n:,} bytes"


def _directory(fh: BinaryIO, size: int) -> tuple[int, int] | None:
    """(member count, central directory bytes) as the end records declare them, read before
    ``zipfile`` parses the directory; None when there is no end record (``zipfile`` says so)."""
    tail_len = min(size, _EOCD.size + (1 << 16))  # the record and its comment, as zipfile reads
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    at = len(tail) - _EOCD.size  # no comment: the record ends the file (as zipfile looks first)
    if at < 0 or tail[at:at + 4] != b"PK\x05\x06" or tail[-2:] != b"\x00\x00":
        at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _EOCD.size:
        return None
    _, _, _, _, count, dir_bytes, _, _ = _EOCD.unpack_from(tail, at)
    locator_at = at - _EOCD64_LOCATOR.size
    if locator_at >= 0 and tail[locator_at:locator_at + 4] == b"PK\x06\x07":
        record_at = size - tail_len + locator_at - _EOCD64.size  # where zipfile reads it too
        if record_at < 0:
            return None
        fh.seek(record_at)
        record = fh.read(_EOCD64.size)
        if len(record) == _EOCD64.size and record[:4] == b"PK\x06\x06":
            fields = _EOCD64.unpack(record)
            count, dir_bytes = fields[7], fields[8]
    return count, dir_bytes


class _Archive(zipfile.ZipFile):
    """A ZipFile that closes the file it was opened on (the one whose size was checked)."""

    def __init__(self, fh: BinaryIO, owned: bool) -> None:
        self._owned = fh if owned else None
        super().__init__(fh)

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._owned is not None:
                self._owned.close()


def _check(fh: BinaryIO, size: int, source: str, owned: bool = False) -> zipfile.ZipFile:
    """Open ``fh`` (``size`` bytes) as a zip once its size and directory are within limits."""
    if size > MAX_FILE_BYTES:
        raise ModelFileError(f"{source}: the file is {_size(size)}, over the "
                             f"{_size(MAX_FILE_BYTES)} limit")
    declared = _directory(fh, size)
    if declared is not None:
        count, dir_bytes = declared
        if count > MAX_MEMBERS:
            raise ModelFileError(f"{source}: the archive declares {count:,} members, over the "
                                 f"{MAX_MEMBERS:,} limit")
        if dir_bytes > MAX_MEMBERS * DIRECTORY_BYTES_PER_MEMBER:
            raise ModelFileError(f"{source}: the archive's directory is {_size(dir_bytes)}, over "
                                 f"the {_size(MAX_MEMBERS * DIRECTORY_BYTES_PER_MEMBER)} limit")
    fh.seek(0)
    archive = _Archive(fh, owned)
    try:
        _check_members(archive, source)
    except BaseException:
        archive.close()
        raise
    return archive


def _check_members(archive: zipfile.ZipFile, source: str) -> None:
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ModelFileError(f"{source}: the archive holds {len(infos):,} members, over the "
                             f"{MAX_MEMBERS:,} limit")
    total = 0
    for info in infos:
        if info.file_size > MAX_MEMBER_BYTES:
            raise ModelFileError(f"{source}: member {info.filename!r} declares "
                                 f"{_size(info.file_size)} uncompressed, over the "
                                 f"{_size(MAX_MEMBER_BYTES)} limit")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_FLOOR_BYTES and ratio > MAX_RATIO:
            raise ModelFileError(f"{source}: member {info.filename!r} inflates {ratio:,.0f} "
                                 f"times ({_size(info.compress_size)} to "
                                 f"{_size(info.file_size)}), over the {MAX_RATIO}x limit")
        total += info.file_size
    if total > MAX_TOTAL_BYTES:
        raise ModelFileError(f"{source}: the members declare {_size(total)} uncompressed "
                             f"together, over the {_size(MAX_TOTAL_BYTES)} limit")


def open_archive(path: str | Path, source: str | None = None) -> zipfile.ZipFile:
    """A model file opened once its limits are checked (use it in ``with``). Raises
    ``FileNotFoundError`` and ``zipfile.BadZipFile`` as ``zipfile.ZipFile`` does."""
    path = Path(path)
    fh = open(path, "rb")  # noqa: SIM115  (the archive owns it: closed with it)
    try:
        return _check(fh, os.fstat(fh.fileno()).st_size, source or str(path), owned=True)
    except BaseException:
        fh.close()
        raise


def open_bytes(data: bytes, source: str) -> zipfile.ZipFile:
    """An archive held in a member (``encoder.keras``, ``inference.npz``), checked likewise."""
    return _check(io.BytesIO(data), len(data), source)


def read_member(archive: zipfile.ZipFile, name: str, source: str | None = None) -> bytes:
    """A member's bytes, read no further than it declared (``KeyError`` when absent)."""
    info = archive.getinfo(name)
    source = source or archive.filename or "archive"
    if info.file_size > MAX_MEMBER_BYTES:  # archives opened here were checked; others may not
        raise ModelFileError(f"{source}: member {name!r} declares {_size(info.file_size)} "
                             f"uncompressed, over the {_size(MAX_MEMBER_BYTES)} limit")
    buffer = bytearray()
    try:
        with archive.open(info) as fh:
            while chunk := fh.read(min(_CHUNK, info.file_size + 1 - len(buffer))):
                buffer += chunk
                if len(buffer) > info.file_size:
                    break
    except zipfile.BadZipFile as exc:  # CPython stops at the declared size, then checks the CRC
        raise ModelFileError(f"{source}: member {name!r} is corrupt or inflates past its "
                             f"declared {_size(info.file_size)} ({exc})") from exc
    if len(buffer) > info.file_size:
        raise ModelFileError(f"{source}: member {name!r} inflates past its declared "
                             f"{_size(info.file_size)}")
    return bytes(buffer)
