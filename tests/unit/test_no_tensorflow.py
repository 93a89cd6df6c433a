"""``snaresynth serve`` never imports TensorFlow or Keras, in the daemon or its decode child.

The daemon runs as on an install without the ``train`` extra: a ``sitecustomize`` on its
PYTHONPATH (which the spawned decode child inherits) makes importing tensorflow or keras fail
and writes down who tried. The daemon must still get ready, play, and nobody may have tried.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from snaresynth.testing.daemon import Daemon

BLOCKED = ("tensorflow", "keras", "tf_keras")

SITECUSTOMIZE = textwrap.dedent('''
    import os, sys, traceback

    class _NoTensorFlow:
        """Refuse TensorFlow and Keras as if the train extra were not installed."""

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {blocked!r}:
                with open(os.environ["NO_TF_LOG"], "a") as log:
                    stack = "".join(traceback.format_stack(limit=12)[:-1])
                    log.write(f"pid {{os.getpid()}} imported {{name}}\\n{{stack}}\\n")
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, _NoTensorFlow())
''').format(blocked=set(BLOCKED))


@pytest.fixture
def no_tf_env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = tmp_path / "tf-imports.log"
    log.touch()
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, NO_TF_LOG=str(log)), log


def test_the_blocker_blocks(no_tf_env: tuple[dict[str, str], Path]) -> None:
    env, log = no_tf_env
    result = subprocess.run([sys.executable, "-c", "import tensorflow"], env=env,
                            capture_output=True, text=True)
    assert result.returncode != 0 and "No module named 'tensorflow'" in result.stderr
    assert "imported tensorflow" in log.read_text()


@pytest.mark.parametrize("decode", ["thread", "process"])
def test_serve_never_imports_tensorflow(no_tf_env: tuple[dict[str, str], Path], tmp_path: Path,
                                        decode: str) -> None:
    env, log = no_tf_env
    daemon = Daemon.in_home(tmp_path / "home", "--audio", "null", "--midi-in", "none",
                            "--no-http", "--decode", decode, env=env, timeout=60)
    try:
        assert "model ddsp_snare" in daemon.ready_line
    finally:
        daemon.stop()
    assert log.read_text() == "", log.read_text()
    assert "Traceback" not in daemon.output(), daemon.output()


def test_the_serve_path_leaves_no_tensorflow_in_sys_modules() -> None:
    """In one interpreter: the modules serve imports, the bundled model's inference form, a
    decode through the engine's worker; then sys.modules is checked."""
    code = textwrap.dedent("""
        import sys
        import numpy as np
        import snaresynth.cli, snaresynth.serve, snaresynth.decode.process
        from snaresynth.models import registry
        decoder = registry.resolve(None, runtime="inference")
        decoder.warm_up()
        out = decoder.decode(np.zeros((1, decoder.latent_dim), np.float32))
        assert out.shape == (1, decoder.length)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in {blocked!r})
        print("LOADED", loaded)
    """).format(blocked=set(BLOCKED))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout, result.stdout


@pytest.mark.parametrize("command", [
    ["export", "snaresynth/bundled/default.keras"],
    ["train", "--family", "autoencoder", "--data", "{tmp}", "--out", "{tmp}/m.keras",
     "--steps", "1"],
    ["render", "--model", "untrained:autoencoder", "--out", "{tmp}/x.wav"],
])
def test_commands_that_need_the_train_extra_say_how_to_install_it(
        no_tf_env: tuple[dict[str, str], Path], tmp_path: Path, command: list[str]) -> None:
    from snaresynth.data.corpus import Corpus, save_corpus

    env, _ = no_tf_env
    audio = np.zeros((2, 16384), np.float32)
    save_corpus(tmp_path, Corpus(audio, 16000, [{"source": f"{i}.wav", "label": "snare"}
                                                 for i in range(2)]))
    args = [part.replace("{tmp}", str(tmp_path)) for part in command]
    result = subprocess.run([sys.executable, "-m", "snaresynth.cli", *args], env=env,
                            capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 2, result.stderr
    assert "pip install snaresynth[train]" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_render_plays_the_bundled_model_without_tensorflow(
        no_tf_env: tuple[dict[str, str], Path], tmp_path: Path) -> None:
    env, log = no_tf_env
    out = tmp_path / "snare.wav"
    result = subprocess.run([sys.executable, "-m", "snaresynth.cli", "render", "--out", str(out)],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 10_000 and log.read_text() == ""
