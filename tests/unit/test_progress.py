"""Progress bars: every long command draws one (eval, listener training, dataset build, train),
and every bar is off when stderr is not a terminal (tqdm's ``disable=None``), so logs and CI
output get no carriage-return noise. Read from the source with ``ast``, plus tqdm's own rule."""

from __future__ import annotations

import ast
import io
from pathlib import Path

from tqdm import tqdm

import snaresynth

ROOT = Path(snaresynth.__file__).parent
LONG_COMMANDS = {
    "eval": ["analysis/evaluate.py"],
    "listener train (summary)": ["analysis/ear.py"],
    "listener train (cnn)": ["analysis/listener.py"],
    "dataset build": ["data/build.py"],
    "train": ["models/train.py", "models/progress.py"],  # the fit callback's bar
}


def _bars(path: Path) -> list[ast.Call]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)
            and getattr(node.func, "id", getattr(node.func, "attr", None)) == "tqdm"]


def _off_without_a_terminal(call: ast.Call) -> bool:
    """``disable=None``, or ``None if X else True`` (a bar that may also be off on purpose)."""
    value = next((k.value for k in call.keywords if k.arg == "disable"), None)
    if isinstance(value, ast.IfExp):
        value = value.body
    return isinstance(value, ast.Constant) and value.value is None


def test_every_long_command_draws_a_bar() -> None:
    missing = [name for name, files in LONG_COMMANDS.items()
               if not any((ROOT / f).exists() and _bars(ROOT / f) for f in files)]
    assert not missing


def test_every_bar_is_off_when_stderr_is_not_a_terminal() -> None:
    wrong = [f"{path.relative_to(ROOT)}:{call.lineno}" for path in ROOT.rglob("*.py")
             for call in _bars(path) if not _off_without_a_terminal(call)]
    assert not wrong, wrong


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_tqdm_draws_on_a_terminal_only() -> None:
    for stream, drawn in ((io.StringIO(), False), (_Terminal(), True)):
        for _ in tqdm(range(3), file=stream, disable=None):
            pass
        assert bool(stream.getvalue()) is drawn
