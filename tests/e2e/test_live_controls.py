"""Live-performance controls through the real paths: OSC over UDP, MIDI over JACK."""

from __future__ import annotations

import time

import pytest

from snaresynth.testing.midi import jack_mido_backend, mido_port_name
from snaresynth.testing.procs import until

pytestmark = pytest.mark.e2e


def test_feedback_learn_morph_and_save(jack_server, start_daemon, osc_client):
    import mido

    daemon = start_daemon("--audio", "null", "--midi-api", "jack", "--midi-in", "virtual",
                          "--midi-out", "virtual")
    client = osc_client(daemon.osc_port)
    backend = jack_mido_backend()
    received: list = []
    feedback_in = backend.open_input(mido_port_name(backend, "in",
                                                    "snaresynth-feedback:midi_out"),
                                     callback=received.append)
    out = backend.open_output(mido_port_name(backend, "out", "snaresynth:midi_in"))
    try:
        # an OSC change comes back as the CC bound to it (CC 20 = latent/0 in the default kit)
        client.send("/snaresynth/latent/0", 0.5)
        assert until(lambda: any(m.control == 20 and m.value == 64 for m in received))

        # MIDI learn: arm over OSC, move CC 50 on the controller: it now drives latent/3
        client.send("/snaresynth/learn", "latent/3")
        time.sleep(0.2)
        out.send(mido.Message("control_change", control=50, value=10))
        assert until(lambda: client.state()["kit"]["cc"].get("50") == "latent/3")
        out.send(mido.Message("control_change", control=50, value=127))
        assert until(lambda: client.state()["kit"]["slot"][0]["knobs"][3] == 1.0)

        # morph between two shipped kits: halfway lands between their knobs
        client.send("/snaresynth/morph/targets", "tight", "fat")
        client.send("/snaresynth/morph", 0.5)
        from snaresynth.control.presets import PresetStore

        store = PresetStore()
        a, b = store.load("tight").slots[0].knobs, store.load("fat").slots[0].knobs
        assert until(lambda: abs(client.state()["kit"]["slot"][0]["knobs"][0]
                                  - (a[0] + b[0]) / 2) < 1e-6)

        # randomize with a seed, undo brings the morphed point back
        before = client.state()["kit"]["slot"][0]["knobs"]
        amount, seed = client.request("/snaresynth/randomize", 1.0, 1234)
        assert seed == 1234
        assert client.state()["kit"]["slot"][0]["knobs"] != before
        client.send("/snaresynth/undo")
        assert until(lambda: client.state()["kit"]["slot"][0]["knobs"] == before)

        # save on stage, load another kit, load ours back: the learned CC came with it
        assert client.request("/snaresynth/preset/save", "stage one") == ["stage one"]
        names = client.request("/snaresynth/preset/list")
        other = next(n for n in names if n not in (names[0], "stage one"))
        client.send("/snaresynth/preset/load", other)
        assert until(lambda: client.state()["kit"]["name"] == other)
        # program 0 loads the first preset by name; waited for, so that it cannot land after
        # the load below (it comes over MIDI, the load over OSC)
        out.send(mido.Message("program_change", program=0))
        assert until(lambda: client.state()["kit"]["name"] == names[0])
        client.send("/snaresynth/preset/load", "stage one")
        assert until(lambda: client.state()["kit"]["cc"].get("50") == "latent/3")
        status = client.status()
        assert status["bad_messages"] == 0, status
    finally:
        feedback_in.close()
        out.close()
