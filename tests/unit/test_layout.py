"""The package layout, read from the source with ``ast`` (nothing is imported).

Checks: no import cycle between snaresynth's modules, the import rules below (which package may
import which, for every import, function-level ones included), and no module over 500 lines.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# Units are snaresynth's packages and top-level modules, named without the ``snaresynth.`` prefix;
# "" is snaresynth/__init__.py. A unit may always import itself and "" (Python runs the package
# root before any submodule, so importing it adds nothing). A name in a set covers that module or
# package and everything under it ("models.base" is that one module).
MAY_IMPORT: dict[str, tuple[set[str], str]] = {
    "": ({"errors"}, "the version and the error base class"),
    "errors": (set(), "the exception types: a leaf that every layer raises"),
    "atomic": (set(), "atomic file writes: a leaf on the standard library"),
    "dsp": (set(), "signal helpers, shared constants (LENGTH, velocity curves): a leaf"),
    "logs": (set(), "the bounded, never-blocking log set-up: a leaf that cli installs"),
    "config": ({"errors"}, "the daemon's settings from flags and TOML; cli and serve read them"),
    "rt": ({"errors"}, "audio-thread kernels: the kernel cache digests rt/ only, so all they run"
           " lives here; errors, a leaf, for the control-thread code that opens a device"),
    "control": ({"dsp", "errors", "atomic"}, "control state as plain data (no threads): shared by"
                " engine, io and serve; presets are written atomically"),
    "decode": ({"models", "dsp", "errors"}, "runs a Decoder off the audio thread; the child"
               " process loads model files through the registry"),
    "engine": ({"control", "decode", "rt", "dsp", "errors", "models.base"}, "the facade where"
               " threads meet; it knows models only by the Decoder contract"),
    "io": ({"engine", "control", "rt", "dsp", "errors"}, "OSC, MIDI, audio devices, supervision:"
           " the outside world turned into Engine calls; devices run the rt callbacks"),
    "models": ({"dsp", "errors", "atomic", "data"}, "model families and files; training reads"
               " corpora, so models -> data (never back)"),
    "data": ({"dsp", "errors", "atomic"}, "corpus building: audio files in, arrays out; never"
             " models (training depends on corpora, not the other way)"),
    "analysis": ({"models", "data", "decode", "control", "rt", "dsp", "errors", "atomic",
                  "config"}, "offline tools: anything but the daemon's runtime (io, engine,"
                 " serve), so evaluating or rendering never opens a device"),
    "export": ({"control", "decode", "models", "dsp", "errors", "atomic",
                "engine.planner"}, "kits to sampler formats, offline; the velocity layers are"
               " the planner's own, so a sampler plays the daemon's layers"),
    "serve": ({"config", "engine", "control", "decode", "io", "rt", "models", "dsp", "errors",
               "atomic"}, "assembles the daemon: never analysis/ (offline) or testing/"),
    "cli": ({"serve", "config", "analysis", "data", "models", "engine", "control", "decode", "io",
             "rt", "dsp", "errors", "atomic", "export", "logs"},
            "the command line dispatches to every tool; nothing imports it"),
    "testing": ({"serve", "config", "engine", "control", "decode", "io", "rt", "models", "data",
                 "analysis", "dsp", "errors", "atomic"}, "the harness of tests/e2e and bench:"
                " drives the daemon from outside; nothing in snaresynth imports it"),
}

# The modules the daemon runs; none of them reaches analysis/, testing/ or cli, even indirectly.
DAEMON = {"serve", "engine", "io", "rt", "control", "decode"}
DAEMON_NEVER = {"analysis", "testing", "cli", "export"}

# Third-party and standard-library imports, by top-level name.
HEAVY = {"tensorflow", "keras"}
THREADS = {"threading", "_thread", "multiprocessing", "concurrent", "asyncio"}
# The only third-party packages rt/ imports (the standard library is free).
RT_THIRD_PARTY = {
    "numpy": "the kernels' arrays",
    "numba": "the kernels and the device callbacks are compiled",
    "llvmlite": "numba's LLVM binding: the JACK callback calls libjack's functions by address",
    "jack": "JACK-Client opens the client whose process callback is the compiled one",
    "platformdirs": "where the kernel cache lives",
}
MUST_NOT_IMPORT: dict[str, tuple[set[str], str]] = {
    "rt": (HEAVY | {"logging"}, "nothing here logs (a handler takes locks and writes)"),
    "control": (HEAVY | THREADS | {"time"}, "plain data: no threads, no clock, no TensorFlow"),
    **{unit: (HEAVY, "TensorFlow is imported only where a model is built, loaded or evaluated")
       for unit in ("engine", "io", "serve", "data", "dsp", "errors", "atomic", "config")},
}

MAX_LINES = 500

PACKAGE = Path(__file__).resolve().parents[2] / "snaresynth"


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, dotted
    target: str  # a snaresynth module (dotted) or a top-level third-party/stdlib name
    internal: bool
    module_level: bool  # False inside a function or lambda
    line: int


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = _sources()


def _resolve(name: str) -> str:
    """The longest existing module that ``name`` starts with."""
    parts = name.split(".")
    while parts and ".".join(parts) not in MODULES:
        parts.pop()
    return ".".join(parts) or "snaresynth"


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:  # relative: resolved against the importing module's package
        package = module.split(".") if is_package else module.split(".")[:-1]
        anchor = package[: len(package) - (node.level - 1)]
        base = ".".join(anchor + ([base] if base else []))
    if not base.startswith("snaresynth"):
        yield base
        return
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        yield sub if sub in MODULES else base


def _imports(module: str, path: Path) -> Iterator[Import]:
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"

    def walk(node: ast.AST, module_level: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                for name in _targets(child, module, is_package):
                    internal = name == "snaresynth" or name.startswith("snaresynth.")
                    target = _resolve(name) if internal else name.split(".")[0]
                    yield Import(module, target, internal, module_level, child.lineno)
            inner = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            yield from walk(child, module_level and not inner)

    yield from walk(tree, True)


IMPORTS = [imp for module, path in MODULES.items() for imp in _imports(module, path)]


def _unit(module: str) -> str:
    """``snaresynth.control.presets`` -> ``control``; the package root -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _covers(allowed: str, module: str) -> bool:
    full = f"snaresynth.{allowed}" if allowed else "snaresynth"
    return module == full or (allowed != "" and module.startswith(full + "."))


def _where(imp: Import) -> str:
    return f"{MODULES[imp.source].relative_to(PACKAGE.parent)}:{imp.line}"


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path whose last node is its first, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_scan_sees_the_package() -> None:
    assert {"snaresynth", "snaresynth.serve", "snaresynth.rt.mixer"} <= set(MODULES)
    engine = {i.target for i in IMPORTS if i.source == "snaresynth.engine.engine" and i.internal}
    assert "snaresynth.rt.mixer" in engine
    # ``from snaresynth import dsp`` imports the module snaresynth.dsp, not the package root
    assert any(i.target == "snaresynth.dsp" for i in IMPORTS if i.source.endswith(".listener"))


def test_cycle_finder() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"b"}}) == ["b", "c", "b"]


def test_no_import_cycle() -> None:
    """Module-level imports, ``if TYPE_CHECKING:`` ones included: a type named in another
    module is a dependency too, and a cycle hidden there is still one a reader has to untangle."""
    graph: dict[str, set[str]] = {}
    for imp in IMPORTS:
        if imp.internal and imp.module_level and imp.target != imp.source:
            graph.setdefault(imp.source, set()).add(imp.target)
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_every_unit_has_a_rule() -> None:
    missing = sorted({_unit(m) for m in MODULES} - set(MAY_IMPORT))
    assert not missing, f"add a line to MAY_IMPORT for {missing}"
    for unit, (allowed, _) in MAY_IMPORT.items():
        # a dotted name ("models.base") is one module of a unit
        assert {a.split(".")[0] for a in allowed} <= set(MAY_IMPORT), unit


def test_import_rules() -> None:
    broken = []
    for imp in IMPORTS:
        if not imp.internal:
            continue
        unit, target_unit = _unit(imp.source), _unit(imp.target)
        allowed = MAY_IMPORT[unit][0] | {unit, ""}
        if not any(_covers(a, imp.target) for a in allowed):
            why = MAY_IMPORT[unit][1]
            broken.append(f"{_where(imp)} {target_unit or 'snaresynth'} ({unit}/: {why})")
    assert not broken, "imports outside the rules:\n" + "\n".join(broken)


def test_nothing_imports_testing() -> None:
    users = [_where(i) for i in IMPORTS if i.internal and _unit(i.target) == "testing"
             and _unit(i.source) != "testing"]
    assert not users, users


def test_the_daemon_never_reaches_offline_code() -> None:
    """Followed through every import (function-level too), from every daemon module."""
    graph: dict[str, set[str]] = {}
    for imp in IMPORTS:
        if imp.internal:
            graph.setdefault(imp.source, set()).add(imp.target)
    bad = []
    for start in (m for m in MODULES if _unit(m) in DAEMON):
        seen, todo, via = {start}, [start], {start: start}
        while todo:
            node = todo.pop()
            for nxt in graph.get(node, ()):
                if nxt not in seen:
                    seen.add(nxt)
                    via[nxt] = node
                    todo.append(nxt)
        for reached in sorted(m for m in seen if _unit(m) in DAEMON_NEVER):
            chain = [reached]
            while chain[-1] != start:
                chain.append(via[chain[-1]])
            bad.append(" -> ".join(reversed(chain)))
    assert not bad, "\n".join(bad)


def test_third_party_rules() -> None:
    broken = []
    stdlib = sys.stdlib_module_names
    for imp in IMPORTS:
        if imp.internal or imp.target == "__future__":
            continue
        unit = _unit(imp.source)
        if unit == "rt" and imp.target not in stdlib and imp.target not in RT_THIRD_PARTY:
            broken.append(f"{_where(imp)} {imp.target} (rt/ imports only {sorted(RT_THIRD_PARTY)})")
        forbidden, why = MUST_NOT_IMPORT.get(unit, (set(), ""))
        if imp.target in forbidden:
            broken.append(f"{_where(imp)} {imp.target} ({unit}/: {why})")
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_length(module: str) -> None:
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module].relative_to(PACKAGE.parent)}: {lines} lines"
