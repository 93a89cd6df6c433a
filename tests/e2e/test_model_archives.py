"""A hostile model archive given on the command line gets the usual one-line error naming the
file and what is wrong, exit code 2, no traceback: through the real ``snaresynth`` process
(``serve`` loads it in its decode child, ``render`` and ``export`` in the command itself)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from snaresynth.testing.archives import write, zip_bomb
from snaresynth.testing.daemon import daemon_env, serve_args

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("command", ["serve", "render", "export"])
def test_a_zip_bomb_on_the_command_line_is_one_line_and_exit_2(tmp_path: Path,
                                                               command: str) -> None:
    bomb = write(tmp_path / "bomb.keras", zip_bomb(2 << 20))  # 2 MiB of zeros in 2 KB
    args = {
        "serve": ["serve", *serve_args(tmp_path, "--audio", "null", "--midi-in", "none",
                                       "--model", str(bomb))],
        "render": ["render", "--model", str(bomb), "--out", str(tmp_path / "out.wav")],
        "export": ["export", str(bomb)],
    }[command]
    done = subprocess.run([sys.executable, "-m", "snaresynth.cli", *args], capture_output=True,
                          text=True, env=daemon_env(tmp_path), timeout=120)
    out = (done.stdout + done.stderr).strip()
    assert done.returncode == 2, out
    assert len(out.splitlines()) == 1, out
    assert re.fullmatch(rf"snaresynth {command}: {re.escape(str(bomb))}: member "
                        r"'model\.weights\.h5' inflates [\d,]+ times \(.+ to 2\.0 MiB\), "
                        r"over the 100x limit", out), out
    assert not (tmp_path / "out.wav").exists() and not (tmp_path / "state.toml").exists()
