"""Generated drum sounds and a generated Hydrogen kit folder (no real sample files needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

NS = "http://www.hydrogen-music.org/drumkit"


def drum(kind: str, rate: int = 44100, seconds: float = 0.4, seed: int = 0,
         lead_s: float = 0.05) -> np.ndarray:
    """A recognisable synthetic hit after ``lead_s`` of silence: kick = low decaying sine,
    snare = tone + noise, hat = short high noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    if kind == "kick":
        sig = np.sin(2 * np.pi * (50 + seed + 80 * np.exp(-t * 30)) * t) * np.exp(-t * 8)
    elif kind == "snare":
        sig = 0.5 * np.sin(2 * np.pi * 190 * t) * np.exp(-t * 20)
        sig += 0.6 * rng.standard_normal(n) * np.exp(-t * 14)
    elif kind == "hat":
        noise = rng.standard_normal(n)
        sig = (noise - np.convolve(noise, np.ones(4) / 4, mode="same")) * np.exp(-t * 40)
    else:
        raise ValueError(kind)
    lead = np.zeros(int(lead_s * rate))
    return (0.5 * np.concatenate([lead, sig]) / np.max(np.abs(sig))).astype(np.float32)


def kit_xml(name: str, instruments: list[tuple[str, list[str]]], namespaced: bool = True) -> str:
    parts = []
    for inst_name, files in instruments:
        layers = "".join(f"<layer><filename>{f}</filename><min>0</min><max>1</max></layer>"
                         for f in files)
        parts.append(f"<instrument><id>0</id><name>{inst_name}</name>"
                     f"<instrumentComponent><component_id>0</component_id>{layers}"
                     f"</instrumentComponent></instrument>")
    xmlns = f' xmlns="{NS}"' if namespaced else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<drumkit_info{xmlns}><name>{name}</name>'
            f"<instrumentList>{''.join(parts)}</instrumentList></drumkit_info>")


def write_kit(root: Path, name: str, namespaced: bool = True, seed: int = 0) -> Path:
    """A kit with a two-layer snare (WAV + FLAC, stereo 48 kHz), a kick, a hat, a side stick,
    an empty placeholder layer, a missing file and a corrupt file."""
    kit = root / name
    kit.mkdir(parents=True)
    sf.write(kit / "sn_soft.wav", drum("snare", 44100, seed=seed) * 0.3, 44100)
    stereo = np.stack([drum("snare", 48000, seed=seed + 1)] * 2, axis=1)
    sf.write(kit / "sn_hard.flac", stereo, 48000)
    sf.write(kit / "kick.wav", drum("kick", 44100, seed=seed), 44100, subtype="PCM_24")
    sf.write(kit / "hat.flac", drum("hat", 44100, seed=seed), 44100)
    sf.write(kit / "stick.wav", drum("hat", 44100, seed=seed + 2, seconds=0.05), 44100)
    sf.write(kit / "empty.flac", np.zeros(1000, dtype=np.float32), 44100)
    (kit / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    xml = kit_xml(name, [
        ("Snare Rock", ["sn_soft.wav", "sn_hard.flac"]),
        ("Kick", ["kick.wav"]),
        ("Closed HH", ["hat.flac"]),
        ("Side Stick", ["stick.wav"]),
        ("17", ["empty.flac"]),
        ("Tom Hi", ["missing.wav"]),
        ("Crash", ["broken.wav"]),
        ("Ride", []),
    ], namespaced)
    (kit / "drumkit.xml").write_text(xml, encoding="utf-8")
    return kit


@pytest.fixture
def kits(tmp_path: Path) -> Path:
    """Two generated kits (one namespaced, one old-style) under one drumkits folder."""
    root = tmp_path / "drumkits"
    write_kit(root, "KitA", namespaced=True, seed=0)
    write_kit(root, "KitB", namespaced=False, seed=10)
    return root
