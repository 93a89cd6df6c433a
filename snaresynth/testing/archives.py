"""Hostile model archives made on the fly, small on disk: a zip bomb, members that lie about
their size, too many members, a directory that lies about its count (for the checks in
``snaresynth/models/archive.py``, from tests/unit and tests/e2e)."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"
_END = b"PK\x05\x06"


def zip_bytes(members: dict[str, bytes], deflate: bool = True) -> bytes:
    """A zip of ``members`` (deflated, or stored)."""
    out = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(out, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def zip_bomb(inflated: int = 2 << 20, name: str = "model.weights.h5") -> bytes:
    """One member of ``inflated`` zero bytes, deflated to about a thousandth of that."""
    return zip_bytes({name: bytes(inflated)})


def declare(data: bytes, size: int, crc: int | None = None) -> bytes:
    """The zip's first member made to declare ``size`` uncompressed bytes (and ``crc``), in its
    local header and in the central directory, whatever it really inflates to."""
    out = bytearray(data)
    for signature, size_at, crc_at in ((_LOCAL, 22, 14), (_CENTRAL, 24, 16)):
        at = out.index(signature)
        struct.pack_into("<L", out, at + size_at, size)
        if crc is not None:
            struct.pack_into("<L", out, at + crc_at, crc)
    return bytes(out)


def lying_member(declared: int = 10, inflated: int = 1 << 20, name: str = "snaresynth.json",
                 matching_crc: bool = False) -> bytes:
    """A member that declares ``declared`` bytes and inflates to ``inflated``; with
    ``matching_crc`` its CRC is that of the first ``declared`` bytes (so no CRC check trips)."""
    crc = zlib.crc32(bytes(declared)) if matching_crc else None
    return declare(zip_bomb(inflated, name), declared, crc)


def many_members(count: int, name_length: int = 8) -> bytes:
    """``count`` empty stored members with names ``name_length`` characters long."""
    return zip_bytes({f"{i:0{name_length}d}": b"" for i in range(count)}, deflate=False)


def understate_count(data: bytes, count: int) -> bytes:
    """The end record made to declare ``count`` members, whatever the directory holds."""
    out = bytearray(data)
    at = out.rindex(_END)
    struct.pack_into("<HH", out, at + 8, count, count)
    return bytes(out)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
