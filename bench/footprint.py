"""What the instrument costs to carry, beside FluidSynth in the same run (issue 14).

For each ``--decode`` mode (default: thread, then process):
- **start to ready**: from starting ``snaresynth serve --audio null`` to its ready line, with
  warm caches (one start first that is not counted; where PYTHONDONTWRITEBYTECODE is set, the
  daemons get a private bytecode cache, PYTHONPYCACHEPREFIX, so the first start fills it as an
  installed package's .pyc files would be there), median of ``--runs`` starts; and from the
  ready line to the page's first answer (the page's aiohttp is imported after ready);
- **resident memory** of all the daemon's processes (VmRSS of the daemon and its children),
  one second after ready and again after a knob sweep (``--sweep`` latent changes over OSC,
  every one a new decode) has settled;
- the daemon's decode median from /snaresynth/status;
- **decode** as the daemon decodes: the mode's own worker (a DecodeWorker thread, or the
  ProcessDecodeWorker and its child) decoding the bundled model's inference form, one knob
  change at a time (``--decodes`` of them, ``--gap-ms`` apart, as a knob turned by hand), from
  ``submit`` to the finished playback buffer (resampled to 48 kHz, decay-shaped); median / p99
  / max at ordinary priority (``--decode-priority 0``) and realtime (SCHED_FIFO 1 under the
  busy-share governor, decode/priority.py), idle and with every core busy with a spinning
  process.
Then, in this process:
- **install**: the size of the distributions ``pip install snaresynth`` brings (the package's
  own dependencies, their dependencies, snaresynth itself), and of each extra beside it; or, with
  ``--venv PATH``, that environment's whole folder as well.
FluidSynth (``fluidsynth`` and the FluidR3 GM bank, Debian fluidsynth + fluid-soundfont-gm), if
installed: start to ready (its shell port answers, so the 141 MB bank is loaded), resident
memory, the Debian packages' installed size. Figures only, never pass/fail.

    .venv/bin/python bench/footprint.py [--runs 5] [--decode thread process] [--venv /tmp/lean]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata as md
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from snaresynth.decode.priority import RT_PRIORITY
from snaresynth.decode.worker import KNOB_STEPS, DecodeWorker, Request
from snaresynth.models.base import read_metadata
from snaresynth.models.registry import DEFAULT_MODEL
from snaresynth.testing.daemon import Daemon
from snaresynth.testing.osc import OscClient
from snaresynth.testing.procs import load_average, memory_kib, proc_tree, stop_process
from snaresynth.testing.synths import SOUNDFONT

TARGETS = {"ready_s": 1.0, "rss_mib": 250.0, "install_mb": 400.0, "decode_p99_ms": 2.0}
FLUID_PACKAGES = ("fluidsynth", "libfluidsynth3", "fluid-soundfont-gm")


# --- the daemon ----------------------------------------------------------------------------------

def tree_rss_mib(pid: int) -> tuple[float, list[float]]:
    """Total and per-process VmRSS (MiB) of ``pid`` and its descendants."""
    each = [memory_kib(p).get("VmRSS", 0) / 1024 for p in proc_tree(pid)]
    return sum(each), each


SERVE_EXTRA: list[str] = []
WEB_URL = re.compile(r"\| web (http://\S+)")


def daemon_env(workdir: Path) -> dict[str, str] | None:
    """Warm caches include bytecode: with PYTHONDONTWRITEBYTECODE set every start would compile
    the package's sources again, so the daemons get a private bytecode cache instead."""
    if not os.environ.get("PYTHONDONTWRITEBYTECODE"):
        return None
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    return env


def start(home: Path, decode: str, env: dict[str, str] | None) -> tuple[float, Daemon]:
    t0 = time.monotonic()
    daemon = Daemon.in_home(home, "--audio", "null", "--http-port", "0", "--decode", decode,
                            *SERVE_EXTRA, env=env, timeout=120)
    return time.monotonic() - t0, daemon


def page_after_ready(daemon: Daemon) -> float | None:
    """Seconds from the ready line (read) to the page's first answer; None without a page."""
    match = WEB_URL.search(daemon.ready_line)
    if match is None:
        return None
    t0 = time.monotonic()
    with urllib.request.urlopen(match.group(1), timeout=30) as reply:
        reply.read()
    return time.monotonic() - t0


def measure_daemon(decode: str, runs: int, sweep: int, workdir: Path) -> dict:
    env = daemon_env(workdir)
    _, warm = start(workdir / f"{decode}-warm", decode, env)  # caches (numba, bytecode) warm
    warm.stop()
    times, pages = [], []
    for i in range(runs):
        seconds, daemon = start(workdir / f"{decode}-{i}", decode, env)
        times.append(seconds)
        pages.append(page_after_ready(daemon))
        if i < runs - 1:
            daemon.stop()
    time.sleep(1.0)
    at_ready, each_ready = tree_rss_mib(daemon.pid)
    rng = np.random.default_rng(0)
    with OscClient(daemon.osc_port) as osc:
        dims = read_metadata(DEFAULT_MODEL).latent_dim
        for _ in range(sweep):
            osc.send(f"/snaresynth/latent/{int(rng.integers(dims))}", float(rng.uniform()))
            time.sleep(0.01)
        status = osc.wait_settled(timeout=60)
    after_sweep, each_sweep = tree_rss_mib(daemon.pid)
    stop_s = daemon.stop(sig=2)  # SIGINT, as Ctrl-C
    tracebacks = daemon.output().count("Traceback")
    page_s = [p for p in pages if p is not None]
    return {"decode": decode, "ready_s": times, "ready_median_s": float(np.median(times)),
            "page_after_ready_median_s": float(np.median(page_s)) if page_s else None,
            "bytecode_cache": "private (PYTHONPYCACHEPREFIX)" if env else "the environment's",
            "rss_ready_mib": at_ready, "rss_ready_each_mib": each_ready,
            "rss_sweep_mib": after_sweep, "rss_sweep_each_mib": each_sweep,
            "decodes": status.get("decodes"), "daemon_decode_ms_median":
            status.get("decode_ms_median"), "stop_s": stop_s, "tracebacks_on_ctrl_c": tracebacks,
            "noise_lines": noise_lines(daemon.output())}


def noise_lines(output: str) -> int:
    """Lines on the terminal that are neither the daemon's log format nor its ready line."""
    own = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) |^snaresynth ")
    return sum(1 for line in output.splitlines() if line.strip() and not own.match(line))


# --- decode timing -------------------------------------------------------------------------------

@contextlib.contextmanager
def busy_cores(count: int) -> Iterator[None]:
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(count)]
    try:
        time.sleep(0.5)
        yield
    finally:
        for proc in spinners:
            stop_process(proc, timeout=2)


def _worker(mode: str, rt_priority: int, on_ready) -> tuple[object, object]:
    """The decode worker ``serve --decode MODE`` runs, started, and its model's description."""
    if mode == "process":
        from snaresynth.decode.process import ProcessDecodeWorker

        worker = ProcessDecodeWorker(None, on_ready, rt_priority=rt_priority)
        worker.start()
        return worker, worker.decoder
    from snaresynth.models import registry

    decoder = registry.resolve(None, runtime="inference")
    decoder.warm_up()
    thread_worker = DecodeWorker(decoder, on_ready, rt_priority=rt_priority)
    thread_worker.start()
    return thread_worker, decoder


def decode_latencies(mode: str, rt_priority: int, count: int, gap_s: float,
                     seed: int = 0) -> dict:
    """Knob change -> playback buffer ready, through the daemon's own worker, one at a time."""
    done = threading.Event()
    finished: list[float] = []

    def on_ready(*_: object) -> None:  # the worker's thread: the time it published
        finished.append(time.perf_counter())
        done.set()

    worker, decoder = _worker(mode, rt_priority, on_ready)
    rng = np.random.default_rng(seed)
    ms = []
    try:
        for i in range(count + 10):  # 10 not counted: caches and clocks warm
            key = tuple(int(v) for v in rng.integers(0, KNOB_STEPS + 1, decoder.latent_dim))
            done.clear()
            t0 = time.perf_counter()
            worker.submit(Request(target=0, key=key, model_rate=int(decoder.sample_rate),
                                  out_rate=48000))
            if not done.wait(30):
                raise RuntimeError(f"no buffer within 30 s ({mode}, priority {rt_priority})")
            if i >= 10:
                ms.append(1000 * (finished[-1] - t0))
            time.sleep(gap_s)
    finally:
        worker.stop()
    model_ms = [1000 * v for v in worker.decode_seconds[-count:]]
    return {"median_ms": float(np.median(ms)), "p99_ms": float(np.percentile(ms, 99)),
            "max_ms": float(np.max(ms)), "model_median_ms": float(np.median(model_ms)),
            "model_p99_ms": float(np.percentile(model_ms, 99)),
            "model_max_ms": float(np.max(model_ms)),
            "failures": worker.failures, "realtime_granted": worker.priority.available,
            "demotions": worker.priority.demotions}


def measure_decode(modes: list[str], count: int, gap_s: float) -> dict:
    cores = os.cpu_count() or 2
    out: dict = {"busy_processes": cores, "gap_ms": 1000 * gap_s, "count": count}
    for busy in (False, True):
        with busy_cores(cores) if busy else contextlib.nullcontext():
            for mode in modes:
                for priority in (0, RT_PRIORITY):
                    out[f"{mode} {'busy' if busy else 'idle'} {priority}"] = decode_latencies(
                        mode, priority, count, gap_s, seed=int(busy))
    return out


# --- install size --------------------------------------------------------------------------------

def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(dist: md.Distribution, extras: set[str]) -> list[str]:
    names = []
    for req in dist.requires or []:
        name, _, marker = req.partition(";")
        extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
        if extra and extra.group(1) not in extras:
            continue
        if not extra and marker.strip() and not _marker_holds(marker):
            continue
        names.append(_norm(re.split(r"[\s<>=!~\[(]", name.strip(), maxsplit=1)[0]))
    return names


def _marker_holds(marker: str) -> bool:
    machine = platform.machine()
    if "platform_machine" in marker:
        wanted = re.search(r"platform_machine\s*(==|!=)\s*['\"]([^'\"]+)", marker)
        if wanted:
            return (machine == wanted.group(2)) == (wanted.group(1) == "==")
    if "sys_platform" in marker:
        return sys.platform in marker and "!=" not in marker
    # python_version and the like: the installed set decides (uninstalled names are skipped)
    return "python_version" in marker or "platform_python_implementation" in marker


def closure(root: str, extras: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = [(_norm(root), extras)]
    while todo:
        name, want = todo.pop()
        if name in seen:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        seen.add(name)
        todo.extend((child, set()) for child in _requirement_names(dist, want))
    return seen


def dist_bytes(name: str) -> int:
    dist = md.distribution(name)
    total = 0
    for file in dist.files or []:
        path = Path(dist.locate_file(file))
        with contextlib.suppress(OSError):
            total += path.stat().st_size
    if name == "snaresynth":  # an editable install: its files are the source folder
        package = Path(__file__).resolve().parents[1] / "snaresynth"
        total += sum(p.stat().st_size for p in package.rglob("*") if p.is_file()
                     and "__pycache__" not in p.parts)
    return total


def folder_bytes(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() or p.is_symlink())


def measure_install(venv: Path | None) -> dict:
    core = closure("snaresynth", set())
    out: dict = {"core_mb": sum(dist_bytes(n) for n in core) / 1e6,
                 "core_distributions": sorted(core)}
    for extra in ("train", "plots", "test"):
        extra_set = closure("snaresynth", {extra}) - core
        out[f"{extra}_extra_mb"] = sum(dist_bytes(n) for n in extra_set) / 1e6
    biggest = sorted(((dist_bytes(n) / 1e6, n) for n in core), reverse=True)[:6]
    out["core_biggest_mb"] = [(n, round(mb, 1)) for mb, n in biggest]
    if venv is not None:
        out["venv"] = str(venv)
        out["venv_mb"] = folder_bytes(venv) / 1e6
        site = next(venv.glob("lib/python*/site-packages"), None)
        out["venv_site_packages_mb"] = folder_bytes(site) / 1e6 if site else None
        probe = subprocess.run([str(venv / "bin" / "python"), "-c",
                                "import importlib.util as u; print(bool(u.find_spec('tensorflow'"
                                ")), bool(u.find_spec('keras')))"],
                               capture_output=True, text=True)
        out["venv_has_tensorflow_keras"] = probe.stdout.strip()
    return out


# --- FluidSynth ----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fluidsynth_start(workdir: Path) -> tuple[float, subprocess.Popen]:
    port = free_port()
    cmd = [shutil.which("fluidsynth") or "fluidsynth", "-a", "file", "-o",
           "audio.file.name=/dev/null", "-n", "-i", "-s", "-o", f"shell.port={port}", "-g", "1",
           "-R", "0", "-C", "0", str(SOUNDFONT)]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=workdir, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:  # the shell server starts once the bank is loaded and audio runs
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.1):
            return time.monotonic() - t0, proc
        if proc.poll() is not None or time.monotonic() - t0 > 60:
            raise RuntimeError(f"fluidsynth did not start ({proc.poll()})")
        time.sleep(0.002)


def measure_fluidsynth(runs: int, workdir: Path) -> dict | None:
    if shutil.which("fluidsynth") is None or not SOUNDFONT.exists():
        return None
    _, warm = fluidsynth_start(workdir)
    stop_process(warm)
    times = []
    for i in range(runs):
        seconds, proc = fluidsynth_start(workdir)
        times.append(seconds)
        if i < runs - 1:
            stop_process(proc)
    time.sleep(1.0)
    rss, _ = tree_rss_mib(proc.pid)
    stop_process(proc)
    sizes = {}
    for package in FLUID_PACKAGES:
        query = subprocess.run(["dpkg-query", "-W", "-f=${Installed-Size}", package],
                               capture_output=True, text=True)
        if query.returncode == 0 and query.stdout.strip().isdigit():
            sizes[package] = int(query.stdout) * 1024 / 1e6
    version = subprocess.run(["fluidsynth", "--version"], capture_output=True, text=True)
    return {"ready_s": times, "ready_median_s": float(np.median(times)), "rss_mib": rss,
            "install_mb": sum(sizes.values()), "packages_mb": sizes,
            "version": version.stdout.splitlines()[0] if version.stdout else "?",
            "bank_mb": SOUNDFONT.stat().st_size / 1e6}


# --- report --------------------------------------------------------------------------------------

def mark(value: float, target: float) -> str:
    return "yes" if value <= target else "no"


def report(result: dict) -> str:
    lines = [f"{result['command']}, {result['when']} on {result['machine']} "
             f"(load average {result['load_before']} before, {result['load_after']} after)", "",
             "| | " + " | ".join(f"snaresynth --decode {d['decode']}" for d in result["daemon"])
             + " | FluidSynth | target |",
             "|---|" + "---|" * (len(result["daemon"]) + 2)]
    fluid = result["fluidsynth"]
    dec, inst = result["decode_in_bench"], result["install"]

    def row(name: str, cells: list[str], fluid_cell: str, target: str) -> None:
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {fluid_cell} | {target} |")

    row("start to ready, median (warm caches)",
        [f"{d['ready_median_s']:.2f} s ({min(d['ready_s']):.2f}..{max(d['ready_s']):.2f}) "
         f"{mark(d['ready_median_s'], TARGETS['ready_s'])}" for d in result["daemon"]],
        f"{fluid['ready_median_s']:.2f} s" if fluid else "not installed", "<= 1.0 s")
    row("ready -> the page answers, median",
        [f"{d['page_after_ready_median_s']:.2f} s" if d["page_after_ready_median_s"] is not None
         else "no page" for d in result["daemon"]], "-", "")
    row("resident memory, all processes, at ready",
        [f"{d['rss_ready_mib']:.0f} MiB ({' + '.join(f'{v:.0f}' for v in d['rss_ready_each_mib'])})"
         f" {mark(d['rss_ready_mib'], TARGETS['rss_mib'])}" for d in result["daemon"]],
        f"{fluid['rss_mib']:.0f} MiB" if fluid else "-", "<= 250 MiB")
    row(f"resident memory after {result['sweep']} knob changes",
        [f"{d['rss_sweep_mib']:.0f} MiB ({' + '.join(f'{v:.0f}' for v in d['rss_sweep_each_mib'])})"
         f" {mark(d['rss_sweep_mib'], TARGETS['rss_mib'])}" for d in result["daemon"]],
        "-", "<= 250 MiB")
    row("runtime install", [f"{inst['core_mb']:.0f} MB {mark(inst['core_mb'], 400)}"]
        * len(result["daemon"]),
        f"{fluid['install_mb']:.0f} MB (Debian packages, bank included)" if fluid else "-",
        "<= 400 MB")
    for busy in ("idle", "busy"):
        for priority, name in ((0, "ordinary"), (RT_PRIORITY, f"SCHED_FIFO {RT_PRIORITY}")):
            cells = []
            for d in result["daemon"]:
                m = dec[f"{d['decode']} {busy} {priority}"]
                cells.append(f"model {m['model_median_ms']:.2f} / {m['model_p99_ms']:.2f} ms"
                             + (f" {mark(m['model_p99_ms'], TARGETS['decode_p99_ms'])}"
                                if busy == "busy" else "")
                             + f"; to buffer {m['median_ms']:.2f} / {m['p99_ms']:.2f} ms "
                             f"(max {m['max_ms']:.1f})"
                             + ("" if priority == 0 or m["realtime_granted"]
                                else " (realtime not allowed here)"))
            when = "idle" if busy == "idle" else f"{dec['busy_processes']} cores busy"
            row(f"decode median / p99, {when}, {name}", cells, "-",
                "p99 <= 2 ms" if busy == "busy" else "")
    row("Ctrl-C: stop, tracebacks",
        [f"{d['stop_s']:.2f} s, {d['tracebacks_on_ctrl_c']}" for d in result["daemon"]], "-", "")
    row("terminal lines not the daemon's own",
        [str(d["noise_lines"]) for d in result["daemon"]], "-", "0")
    lines += ["", "decode: " + "; ".join(
        f"{key}: model max {m['model_max_ms']:.1f} ms, {m['failures']} failed, "
        f"{m['demotions']} demotions" for key, m in dec.items() if isinstance(m, dict))
        + f"; {dec['count']} knob changes {dec['gap_ms']:.0f} ms apart per condition; model ="
        " the decoder's own time in the worker, to buffer = submit -> the playback buffer"
        " published (queueing, scheduling, resampling to 48 kHz included)",
        "bytecode cache of the daemons: " + ", ".join(
            f"{d['decode']}: {d['bytecode_cache']}" for d in result["daemon"]),
        f"install: {inst['core_mb']:.0f} MB over {len(inst['core_distributions'])} "
              f"distributions, biggest {inst['core_biggest_mb']}; extras beside it: train "
              f"{inst['train_extra_mb']:.0f} MB, plots {inst['plots_extra_mb']:.0f} MB, test "
              f"{inst['test_extra_mb']:.0f} MB"]
    if "venv" in inst:
        lines.append(f"--venv {inst['venv']}: {inst['venv_mb']:.0f} MB in all, site-packages "
                     f"{inst['venv_site_packages_mb']:.0f} MB; tensorflow, keras importable: "
                     f"{inst['venv_has_tensorflow_keras']}")
    if fluid:
        lines.append(f"FluidSynth: {fluid['version']}, bank {fluid['bank_mb']:.0f} MB, "
                     f"packages {fluid['packages_mb']}")
    else:
        lines.append("FluidSynth: not installed (Debian fluidsynth + fluid-soundfont-gm), "
                     "no reference column")
    return "\n".join(lines)


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.machine()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="counted starts per synth")
    parser.add_argument("--decode", nargs="+", default=["thread", "process"],
                        choices=["thread", "process"])
    parser.add_argument("--sweep", type=int, default=200, help="knob changes sent over OSC")
    parser.add_argument("--decodes", type=int, default=500, help="timed decodes per condition")
    parser.add_argument("--gap-ms", type=float, default=10.0,
                        help="pause between knob changes in the decode timing (a hand on a knob)")
    parser.add_argument("--venv", type=Path, help="also measure this environment's folder")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--serve-args", default="", metavar="ARGS",
                        help="more serve options, e.g. '--no-http --midi-in none'")
    args = parser.parse_args()
    SERVE_EXTRA.extend(args.serve_args.split())
    result: dict = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "machine": f"{cpu_name()}, "
                               f"{os.cpu_count()} cores, Linux {platform.release()}",
                    "load_before": load_average(), "sweep": args.sweep,
                    "command": " ".join(["bench/footprint.py", *sys.argv[1:]])}
    with tempfile.TemporaryDirectory(prefix="footprint-") as tmp:
        workdir = Path(tmp)
        result["daemon"] = [measure_daemon(d, args.runs, args.sweep, workdir)
                            for d in args.decode]
        result["fluidsynth"] = measure_fluidsynth(args.runs, workdir)
    result["decode_in_bench"] = measure_decode(args.decode, args.decodes, args.gap_ms / 1000)
    result["install"] = measure_install(args.venv)
    result["load_after"] = load_average()
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
