"""Hydrogen drum kits (``drumkit.xml`` + sample files) as labelled one-shot sources.

Debian's hydrogen-drumkits / hydrogen-data install real kits under
``/usr/share/hydrogen/data/drumkits/<kit>/drumkit.xml``. Each ``<instrument>`` has a ``<name>``
and one or more ``<layer>``s (velocity layers) each naming a ``<filename>`` relative to the
kit folder. Old kits have no XML namespace, new ones use
``http://www.hydrogen-music.org/drumkit``; both are read. The file is outside input: anything
malformed becomes a ``CorpusError`` naming the file, never a crash deep in ElementTree.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from snaresynth.data.labels import classify_name
from snaresynth.errors import CorpusError

log = logging.getLogger(__name__)

DEFAULT_DRUMKITS_DIR = Path("/usr/share/hydrogen/data/drumkits")
DRUMKIT_FILE = "drumkit.xml"


@dataclass(frozen=True)
class Source:
    """One audio file to cut a corpus item from, with where it came from and its class."""

    path: Path
    label: str
    group: str  # kit or folder: held-out splits keep a whole group on one side
    instrument: str = ""
    collection: str = "hydrogen-drumkits"  # the package or file a kit came from


def _local(tag: str) -> str:
    """Tag name without its ``{namespace}``."""
    return tag.rsplit("}", 1)[-1]


def _child_text(elem: ET.Element, name: str) -> str | None:
    for child in elem:
        if _local(child.tag) == name:
            return (child.text or "").strip()
    return None


Instruments = list[tuple[str, list[str]]]


def parse_drumkit_xml(text: str | bytes, source: str = DRUMKIT_FILE) -> tuple[str, Instruments]:
    """(kit name, [(instrument name, [layer file names])]) from a drumkit.xml document.

    Instruments without layers (Hydrogen's empty placeholder slots) are kept with an empty list;
    callers skip them. File names are returned as written (relative to the kit folder).
    """
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise CorpusError(f"{source}: not valid XML: {exc}") from exc
    if _local(root.tag) != "drumkit_info":
        raise CorpusError(
            f"{source}: root element is <{_local(root.tag)}>, expected <drumkit_info>"
        )
    kit_name = _child_text(root, "name") or ""
    instruments: Instruments = []
    for elem in root.iter():
        if _local(elem.tag) != "instrument":
            continue
        name = _child_text(elem, "name") or ""
        files = []
        for sub in elem.iter():
            if _local(sub.tag) == "filename" and sub.text and sub.text.strip():
                files.append(sub.text.strip())
        instruments.append((name, files))
    return kit_name, instruments


def kit_sources(kit_dir: str | Path) -> list[Source]:
    """Every layer file of every instrument in one kit folder, labelled by instrument name."""
    kit_dir = Path(kit_dir)
    xml_path = kit_dir / DRUMKIT_FILE
    try:
        data = xml_path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"{xml_path}: cannot read drum kit: {exc}") from exc
    kit_name, instruments = parse_drumkit_xml(data, source=str(xml_path))
    group = kit_dir.name or kit_name
    sources: list[Source] = []
    for name, files in instruments:
        label = classify_name(name)
        for filename in files:
            rel = Path(filename)
            if rel.is_absolute() or ".." in rel.parts:
                # Hydrogen resolves only kit-relative names; anything else is not this kit's file
                log.warning("%s: instrument %r names a file outside the kit (%s); skipped",
                            xml_path, name, filename)
                continue
            sources.append(Source(kit_dir / rel, label, group, name))
    return sources


def find_kits(root: str | Path = DEFAULT_DRUMKITS_DIR) -> list[Path]:
    """Kit folders under ``root`` (or ``root`` itself if it is one kit), sorted by name."""
    root = Path(root)
    if (root / DRUMKIT_FILE).is_file():
        return [root]
    if not root.is_dir():
        raise CorpusError(f"{root}: no such drum-kit folder (is hydrogen-drumkits installed?)")
    kits = sorted(p.parent for p in root.glob(f"*/{DRUMKIT_FILE}"))
    if not kits:
        raise CorpusError(f"{root}: no */{DRUMKIT_FILE} found")
    return kits


def hydrogen_sources(root: str | Path = DEFAULT_DRUMKITS_DIR) -> list[Source]:
    """Sources of all kits under ``root``; a broken kit is skipped with a warning naming it."""
    sources: list[Source] = []
    for kit in find_kits(root):
        try:
            sources.extend(kit_sources(kit))
        except CorpusError as exc:
            log.warning("skipping drum kit: %s", exc)
    return sources
