"""DrumGizmo kit: drumkit.xml, one version 2.0 instrument file per slot, midimap.xml (as
DrumGizmo 0.9.20 reads them: src/dgxmlparser.cc, src/domloader.cc, src/midimapparser.cc).

DrumGizmo has no velocity ranges: it picks the sample whose ``power`` is nearest to
``min + velocity * (max - min)`` of the instrument's powers, preferring samples not played
lately (so equal powers make round robins). Each velocity layer gets the power ``layer + 1``,
its variants the same power. Samples are ``normalized``, so DrumGizmo scales them by velocity.
Instruments and channels are named ``NN_slot`` (unique even when slot names repeat). Each slot
plays on its own output channel (named after the slot, as a multi-mic kit's close
mic), since DrumGizmo has no per-instrument level or pan: those are in drumkit.xml's metadata
notes for the mixer. Choke groups are instrument ``group`` attributes.
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from snaresynth.export.render import Rendered, slug


def channel_name(index: int, name: str) -> str:
    return f"{index + 1:02d}_{slug(name)}"


def layer_power(layer: int) -> float:
    return float(layer + 1)


def instrument_xml(rendered: Rendered, index: int) -> str:
    slot = rendered.kit.slots[index]
    channel = quoteattr(channel_name(index, slot.name))
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f"<!-- snaresynth slot {index + 1} {escape(slot.name)}: knobs "
           f"{[round(k, 4) for k in slot.knobs]}; {escape(rendered.model)} -->",
           f'<instrument version="2.0" name={channel} '
           f'description={quoteattr(f"snaresynth slot {index + 1}")}>',
           " <channels>", f'  <channel name={channel} main="true"/>', " </channels>",
           " <samples>"]
    for layer in rendered.layers(index):
        for s in layer:
            name = quoteattr(Path(s.path).stem)
            # the instrument file lives in instruments/, the samples beside it in samples/
            out += [f'  <sample name={name} power="{layer_power(s.layer):g}" normalized="true">',
                    f'   <audiofile channel={channel} file={quoteattr("../" + s.path)} '
                    'filechannel="1"/>', "  </sample>"]
    out += [" </samples>", "</instrument>"]
    return "\n".join(out) + "\n"


def drumkit_xml(rendered: Rendered) -> str:
    kit = rendered.kit
    mix = "; ".join(f"{s.name}: level {s.level_db:g} dB, pan {s.pan:g}, notes {s.notes}"
                    for s in kit.slots)
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f'<drumkit version="1.0" samplerate="{rendered.rate}">',
           " <metadata>", "  <version>1.0</version>",
           f"  <title>{escape(kit.name)}</title>",
           f"  <description>{escape(kit.description or kit.name)}</description>",
           f"  <notes>{escape(rendered.describe() + ' Mixer: ' + mix)}</notes>",
           "  <author>snaresynth</author>",
           '  <defaultmidimap src="midimap.xml"/>', " </metadata>", " <channels>"]
    out += [f"  <channel name={quoteattr(channel_name(i, s.name))}/>"
            for i, s in enumerate(kit.slots)]
    out += [" </channels>", " <instruments>"]
    for index, slot in enumerate(kit.slots):
        group = f" group={quoteattr(f'choke{slot.choke_group}')}" if slot.choke_group else ""
        channel = quoteattr(channel_name(index, slot.name))
        out += [f"  <instrument name={channel} "
                f"file={quoteattr(instrument_file(index, slot.name))}{group}>",
                f'   <channelmap in={channel} out={channel} main="true"/>', "  </instrument>"]
    out += [" </instruments>", "</drumkit>"]
    return "\n".join(out) + "\n"


def instrument_file(index: int, name: str) -> str:
    return f"instruments/{channel_name(index, name)}.xml"


def midimap_xml(rendered: Rendered) -> str:
    out = ['<?xml version="1.0" encoding="UTF-8"?>', "<midimap>"]
    for index, slot in enumerate(rendered.kit.slots):
        instr = quoteattr(channel_name(index, slot.name))
        out += [f"  <map note=\"{note}\" instr={instr}/>" for note in slot.notes]
    out.append("</midimap>")
    return "\n".join(out) + "\n"


def write_drumgizmo(rendered: Rendered, folder: Path) -> Path:
    (folder / "instruments").mkdir()
    for index, slot in enumerate(rendered.kit.slots):
        (folder / instrument_file(index, slot.name)).write_text(
            instrument_xml(rendered, index), encoding="utf-8")
    (folder / "midimap.xml").write_text(midimap_xml(rendered), encoding="utf-8")
    path = folder / "drumkit.xml"
    path.write_text(drumkit_xml(rendered), encoding="utf-8")
    return path
