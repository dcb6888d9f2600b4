#!/usr/bin/env python3
"""Core loop benchmark: corral side by side with task-spooler (``tsp``) in the same run.

Run it with the project's interpreter (``make bench`` does this)::

    .venv/bin/python benchmarks/bench_core.py [--latency-runs 50] [--jobs 1000] [--cli-runs 30]
                                              [--json-out results.json]

Three measurements, each printed as a table with a corral column, a task-spooler column
and their ratio:

(a) submit -> start latency on an idle machine (p50/p95). Every job runs
    ``sh -c 'date +%s%N > FILE'``; the latency is the timestamp in FILE minus the time
    taken just before the submit (the SDK's ``Client.submit``, the ``corral submit``
    CLI, or ``tsp sh -c ...``). Both sides pay the same ``sh``/``date`` exec cost.
    Each job is waited for before the next one is submitted.
(b) N trivial jobs (``true``) on 2 CPU slots, wall time from the first submit until all
    are done: ``tsp true`` once per job (``tsp -S 2``); ``corral submit --cpus 1 -- true``
    once per job (both from one ``sh`` loop, so the driver adds no per-call cost); and
    one SDK ``Client.submit`` call with all N documents. "Done" is
    detected the same way on both sides: wait for the last job added (``tsp -w`` /
    ``Client.wait``), then check that nothing is queued or running (``tsp -l`` /
    ``/v1/health``). Every corral job must have Succeeded.
(c) the CLI's own start-up: one ``corral submit --cpus 100m -- true`` call and one
    ``corral ps`` call against ``tsp true`` / ``tsp -l``, and against the bare
    interpreter corral runs on (``python -c pass``, same binary) and ``python3 -c pass``
    from PATH. The submitted job is waited for (untimed) between runs, so the machine
    is idle and the queue stays empty.

corral runs with a fresh ``CORRAL_HOME`` under /tmp (Unix socket paths are limited to
107 bytes) and a ``config.yaml`` with ``reserve: {cpu: "0"}`` so all cores are
allocatable; jobs request ``cpu: 1``, so on a 2-core machine 2 run at once, the same as
``tsp -S 2``. tsp gets a private ``TS_SOCKET`` and ``TMPDIR`` (its output files), and
is killed with ``tsp -K`` at the end. If ``tsp`` is missing it is installed with
``apt-get install -y task-spooler`` when running as root; otherwise the task-spooler
columns are skipped with a message.

Stdlib only (besides corral's own SDK).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchenv import cpu_model, find_corral  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

REPO = Path(__file__).resolve().parent.parent
TERMINAL = ("Succeeded", "Failed", "Cancelled")

try:
    from corral.client import Client
except ImportError:  # run with a python that lacks the package: use the checkout's src/
    sys.path.insert(0, str(REPO / "src"))
    from corral.client import Client


# helpers ---------------------------------------------------------------------------------
def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def pct(data: list[float], q: float) -> float:
    """The q-th percentile (0..100), linear interpolation between closest ranks."""
    xs = sorted(data)
    if not xs:
        return float("nan")
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summary(data: list[float]) -> dict:
    if not data:
        return {}
    return {"n": len(data), "p50": statistics.median(data), "p95": pct(data, 95),
            "mean": statistics.fmean(data), "min": min(data), "max": max(data)}


def fmt(x: float | None, unit: str = "") -> str:
    if x is None:
        return "n/a"
    if x != x:  # nan
        return "n/a"
    if abs(x) >= 100:
        return f"{x:.0f}{unit}"
    if abs(x) >= 10:
        return f"{x:.1f}{unit}"
    return f"{x:.2f}{unit}"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0 or a != a or b != b:
        return "n/a"
    return f"{a / b:.2f}x"


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [title, ""]
    lines.append("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        cells = [str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(cmd: list[str], env: dict | None = None, check: bool = True, capture: bool = True,
        timeout: float | None = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {(proc.stderr or '').strip()[-500:]}")
    return proc


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
    """Wall time of one command in ms (stdout captured, as a script would)."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    dt = (time.perf_counter() - t0) * 1000.0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return dt, proc


def read_stamp(path: Path, deadline_s: float = 10.0) -> int:
    """The nanosecond timestamp a job wrote (waits briefly for the write to land)."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            text = path.read_text().strip()
            if text:
                return int(text)
        except FileNotFoundError:
            pass
        if time.monotonic() > end:
            raise RuntimeError(f"job never wrote {path}")
        time.sleep(0.001)


def interpreter_of(script: str) -> str:
    """The interpreter in a console script's shebang (the one corral runs on)."""
    try:
        with open(script, "rb") as f:
            first = f.readline().decode(errors="replace").strip()
        if first.startswith("#!"):
            interp = first[2:].strip().split()[0]
            if os.path.exists(interp):
                return interp
    except OSError:
        pass
    return sys.executable


# environment -------------------------------------------------------------------------------
def git_commit() -> str:
    try:
        return run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], timeout=10).stdout.strip()
    except Exception:
        return "unknown"


def tsp_version() -> str | None:
    try:
        out = run(["dpkg-query", "-W", "-f", "${Version}", "task-spooler"], timeout=10).stdout.strip()
        if out:
            return out
    except Exception:
        pass
    try:
        out = run(["tsp", "-V"], check=False, timeout=10)
        text = (out.stdout or "") + (out.stderr or "")
        return text.strip().splitlines()[0] if text.strip() else None
    except Exception:
        return None


def ensure_tsp() -> str | None:
    """Path of tsp, installing the Debian package when root; None (with a message) if unavailable."""
    path = shutil.which("tsp")
    if path:
        return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("tsp not found; installing task-spooler with apt-get (running as root)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        ok = subprocess.run(["apt-get", "install", "-y", "task-spooler"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
        if not ok:
            subprocess.run(["apt-get", "update"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            subprocess.run(["apt-get", "install", "-y", "task-spooler"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        path = shutil.which("tsp")
        if path:
            return path
    print("NOTE: task-spooler (tsp) is not installed and could not be installed "
          "(needs root and apt-get: `apt-get install -y task-spooler`); "
          "the task-spooler columns are skipped.", flush=True)
    return None


# the two systems -----------------------------------------------------------------------------
class Corral:
    def __init__(self, base: Path, corral_bin: str, cpus: str = "1"):
        self.home = base / "ch"
        self.home.mkdir()
        (self.home / "config.yaml").write_text('reserve: {cpu: "0"}\n' + os.environ.get("BENCH_CORRAL_CONFIG", ""))
        self.bin = corral_bin
        self.cpus = cpus
        self.env = dict(os.environ, CORRAL_HOME=str(self.home))
        self.client = Client(str(self.home), autostart=False)
        self.up = False

    def start(self) -> None:
        out = run([self.bin, "up"], env=self.env, timeout=60)
        self.up = True
        log(out.stdout.strip())

    def stop(self) -> None:
        if self.up:
            run([self.bin, "down"], env=self.env, check=False, timeout=60)
            self.up = False

    def doc(self, command: list[str], cpu: str | None = None) -> dict:
        return {"spec": {"command": command, "resources": {"requests": {"cpu": cpu or self.cpus}}}}

    def cli_submit(self, argv: list[str], cpus: str | None = None) -> tuple[float, int]:
        # plain output, as people type it (``--json`` costs the CLI extra start-up time)
        dt, proc = timed([self.bin, "submit", "--cpus", cpus or self.cpus, "--", *argv], self.env)
        return dt, _job_id(proc.stdout)

    def drain(self, last_id: int) -> None:
        """Wait for the last job, then until nothing is pending or running."""
        self.client.wait([last_id])
        while True:
            h = self.client.health()
            if not h.pending and not h.running:
                return
            time.sleep(0.002)

    def states(self, ids: list[int]) -> dict[str, int]:
        wanted = set(ids)
        counts: dict[str, int] = {}
        for view in self.client.jobs():
            if view.id in wanted:
                counts[view.state.value] = counts.get(view.state.value, 0) + 1
                wanted.discard(view.id)
        if wanted:
            counts["missing"] = len(wanted)
        return counts


def _job_id(stdout: str) -> int:
    """The id from ``submitted job 12, pending``."""
    m = re.search(r"\bjob (\d+)", stdout)
    if not m:
        raise RuntimeError(f"cannot find a job id in `corral submit` output: {stdout.strip()[:200]!r}")
    return int(m.group(1))


class Tsp:
    def __init__(self, base: Path, tsp_bin: str, slots: int = 2):
        self.dir = base / "ts"
        self.dir.mkdir()
        self.bin = tsp_bin
        self.env = dict(os.environ, TS_SOCKET=str(self.dir / "ts.sock"), TMPDIR=str(self.dir),
                        TS_MAXFINISHED="1000000", TS_SAVELIST_DIR=str(self.dir), TS_SLOTS=str(slots))
        self.env.pop("TS_ONFINISH", None)
        self.env.pop("TS_ENV", None)
        self.slots = slots
        self.up = False

    def start(self) -> None:
        run([self.bin, "-S", str(self.slots)], env=self.env, timeout=30)
        self.up = True
        got = run([self.bin, "-S"], env=self.env, timeout=30).stdout.strip()
        if got != str(self.slots):
            raise RuntimeError(f"tsp -S {self.slots} did not take: tsp -S says {got!r}")

    def stop(self) -> None:
        if self.up:
            run([self.bin, "-K"], env=self.env, check=False, timeout=30)
            self.up = False

    def submit(self, argv: list[str]) -> tuple[float, int]:
        dt, proc = timed([self.bin, *argv], self.env)
        return dt, int(proc.stdout.strip().split()[-1])

    def listing(self) -> list[tuple[str, str, str]]:
        """(id, state, e-level) per job from ``tsp -l``."""
        out = run([self.bin, "-l"], env=self.env, timeout=60).stdout
        rows = []
        for line in out.splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 2:
                elevel = parts[3] if parts[1] == "finished" and len(parts) > 3 else ""
                rows.append((parts[0], parts[1], elevel))
        return rows

    def drain(self, last_id: int | None = None) -> None:
        cmd = [self.bin, "-w"] + ([str(last_id)] if last_id is not None else [])
        run(cmd, env=self.env, check=False, timeout=None)
        while any(state != "finished" for _, state, _ in self.listing()):
            time.sleep(0.002)

    def clear(self) -> None:
        run([self.bin, "-C"], env=self.env, timeout=30)


# (a) submit -> start latency -----------------------------------------------------------------
def bench_latency(c: Corral, t: Tsp | None, runs: int, workdir: Path) -> dict:
    res: dict[str, list[float]] = {"corral_sdk": [], "corral_sdk_recorded": [], "corral_sdk_call": [],
                                   "corral_cli": [], "corral_cli_call": [], "tsp": [], "tsp_call": []}
    cpu = c.cpus

    def stamp_cmd(path: Path) -> list[str]:
        return ["sh", "-c", f"date +%s%N > {path}"]

    def one_sdk(i: int, record: bool) -> None:
        f = workdir / f"sdk-{i}"
        doc = c.doc(stamp_cmd(f), cpu)
        t0 = time.time_ns()
        [job] = c.client.submit([doc])
        t1 = time.time_ns()
        view = c.client.wait([job.id])[0]
        ts = read_stamp(f)
        if view.state != "Succeeded":
            raise RuntimeError(f"latency job {job.id} ended {view.state.value}: {view.message}")
        if record:
            res["corral_sdk"].append((ts - t0) / 1e6)
            res["corral_sdk_call"].append((t1 - t0) / 1e6)
            if view.started_at:
                res["corral_sdk_recorded"].append(view.started_at * 1000.0 - t0 / 1e6)

    def one_cli(i: int, record: bool) -> None:
        f = workdir / f"cli-{i}"
        t0 = time.time_ns()
        _, job_id = c.cli_submit(stamp_cmd(f), cpu)
        t1 = time.time_ns()
        view = c.client.wait([job_id])[0]
        ts = read_stamp(f)
        if view.state != "Succeeded":
            raise RuntimeError(f"latency job {job_id} ended {view.state.value}: {view.message}")
        if record:
            res["corral_cli"].append((ts - t0) / 1e6)
            res["corral_cli_call"].append((t1 - t0) / 1e6)

    def one_tsp(i: int, record: bool) -> None:
        f = workdir / f"tsp-{i}"
        t0 = time.time_ns()
        _, job_id = t.submit(stamp_cmd(f))
        t1 = time.time_ns()
        t.drain(job_id)
        ts = read_stamp(f)
        if record:
            res["tsp"].append((ts - t0) / 1e6)
            res["tsp_call"].append((t1 - t0) / 1e6)

    # one untimed warm-up each, then interleave so drift hits every column alike
    for i in range(-1, runs):
        one_sdk(i, i >= 0)
        one_cli(i, i >= 0)
        if t is not None:
            one_tsp(i, i >= 0)
    return res


# (b) N trivial jobs ----------------------------------------------------------------------
def bench_throughput(c: Corral, t: Tsp | None, n: int) -> dict:
    out: dict = {"jobs": n}

    if t is not None:
        t.clear()
        log(f"(b) tsp: {n} x `tsp true` ...")
        out_file = t.dir / "submits.txt"
        t0 = time.perf_counter()
        shell_loop(t.bin, ["true"], n, out_file, t.env)
        t_sub = time.perf_counter()
        last = int(out_file.read_text().split()[-1])
        t.drain(last)
        t1 = time.perf_counter()
        rows = [r for r in t.listing()]
        ok = sum(1 for _, state, e in rows if state == "finished" and e == "0")
        out["tsp"] = {"wall_s": t1 - t0, "submit_s": t_sub - t0, "finished_ok": ok, "listed": len(rows)}
        t.clear()

    log(f"(b) corral batch: one Client.submit with {n} documents ...")
    docs = [c.doc(["true"]) for _ in range(n)]
    env = dict(os.environ)
    t0 = time.perf_counter()
    t0_wall = time.time()
    jobs = c.client.submit(docs, base_env=env)
    t_sub = time.perf_counter()
    ids = [j.id for j in jobs]
    c.drain(ids[-1])
    t1 = time.perf_counter()
    out["corral_batch"] = {"wall_s": t1 - t0, "submit_s": t_sub - t0, "states": c.states(ids),
                           "recorded_s": _recorded_span(c, ids, t0_wall)}

    log(f"(b) corral CLI: {n} x `corral submit --cpus 1 -- true` ...")
    out_file = c.home / "submits.txt"
    t0 = time.perf_counter()
    t0_wall = time.time()
    shell_loop(c.bin, ["submit", "--cpus", c.cpus, "--", "true"], n, out_file, c.env)
    t_sub = time.perf_counter()
    ids = [int(m) for m in re.findall(r"\bjob (\d+)", out_file.read_text())]
    if len(ids) != n:
        raise RuntimeError(f"expected {n} job ids from the corral submit loop, found {len(ids)}")
    c.drain(ids[-1])
    t1 = time.perf_counter()
    out["corral_cli"] = {"wall_s": t1 - t0, "submit_s": t_sub - t0, "states": c.states(ids),
                         "recorded_s": _recorded_span(c, ids, t0_wall)}
    return out


def shell_loop(cmd: str, argv: list[str], n: int, out_file: Path, env: dict) -> None:
    """Run ``cmd ARGV...`` n times from one ``sh`` loop, as a user's script would (a Python
    ``subprocess`` loop adds ~1 ms of driver overhead per call on a small machine)."""
    script = 'n=$1; shift; out=$1; shift; i=0; while [ "$i" -lt "$n" ]; do "$@" || exit 1; i=$((i+1)); done > "$out"'
    proc = subprocess.run(["sh", "-c", script, "sh", str(n), str(out_file), cmd, *argv], env=env,
                          stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"submit loop `{cmd} {' '.join(argv)}` failed: {proc.stderr.strip()[-500:]}")


def _recorded_span(c: Corral, ids: list[int], t0_wall: float) -> float | None:
    """Seconds from the first submit to the last ``ended_at`` the daemon recorded."""
    wanted = set(ids)
    ends = [v.ended_at for v in c.client.jobs() if v.id in wanted and v.ended_at]
    return (max(ends) - t0_wall) if ends else None


# (c) CLI start-up ----------------------------------------------------------------------------
def bench_cli(c: Corral, t: Tsp | None, runs: int, venv_python: str) -> dict:
    res: dict[str, list[float]] = {"corral_submit": [], "corral_ps": [], "venv_python": [],
                                   "python3": [], "tsp_submit": [], "tsp_list": []}
    py3 = shutil.which("python3") or "python3"
    for i in range(-1, runs):  # one warm-up round
        rec = i >= 0
        dt, _ = timed([venv_python, "-c", "pass"])
        if rec:
            res["venv_python"].append(dt)
        dt, _ = timed([py3, "-c", "pass"])
        if rec:
            res["python3"].append(dt)
        dt, job_id = c.cli_submit(["true"], "100m")
        if rec:
            res["corral_submit"].append(dt)
        c.drain(job_id)  # untimed: keep the machine idle and the queue empty
        dt, _ = timed([c.bin, "ps"], c.env)
        if rec:
            res["corral_ps"].append(dt)
        if t is not None:
            dt, tid = t.submit(["true"])
            if rec:
                res["tsp_submit"].append(dt)
            t.drain(tid)
            dt, _ = timed([t.bin, "-l"], t.env)
            if rec:
                res["tsp_list"].append(dt)
    res["python3_path"] = py3  # type: ignore[assignment]
    return res


def describe_python(path: str) -> str:
    """``path`` plus a note when it is a script (e.g. a pyenv shim) rather than the binary."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return path
    return f"{path}, a shell-script shim" if head[:2] == b"#!" else path


# report ------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency-runs", type=int, default=50, help="jobs per column in (a) (default 50)")
    ap.add_argument("--jobs", type=int, default=1000, help="trivial jobs per column in (b) (default 1000)")
    ap.add_argument("--cli-runs", type=int, default=30, help="runs per command in (c) (default 30)")
    ap.add_argument("--slots", type=int, default=2,
                    help="tsp slots (default 2; corral jobs request 1 cpu each on a 2-core machine)")
    ap.add_argument("--no-tsp", action="store_true", help="skip the task-spooler columns")
    ap.add_argument("--skip", action="append", default=[], choices=["latency", "throughput", "cli"],
                    help="skip a measurement (repeatable)")
    ap.add_argument("--as-is-bytecode", action="store_true",
                    help="keep PYTHONDONTWRITEBYTECODE if it is set (by default the benchmark unsets it and "
                         "caches bytecode under a private PYTHONPYCACHEPREFIX, as an ordinary install would)")
    ap.add_argument("--json-out", metavar="PATH", help="write the raw numbers as JSON")
    args = ap.parse_args()

    corral_bin = find_corral()
    if not corral_bin:
        return 2
    venv_python = interpreter_of(corral_bin)
    tsp_bin = None if args.no_tsp else ensure_tsp()

    cores = os.cpu_count() or 0
    envinfo = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "commit": git_commit(),
        "cpu_model": cpu_model(),
        "cores": cores,
        "python": platform.python_version(),
        "python_corral_runs_on": run([venv_python, "-c", "import platform; print(platform.python_version())"],
                                     timeout=30).stdout.strip() + f" ({venv_python})",
        "corral_version": run([corral_bin, "--version"], timeout=30).stdout.strip(),
        "tsp_version": tsp_version() if tsp_bin else None,
        "kernel": platform.release(),
        "loadavg_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    if cores != 2:
        log(f"NOTE: this machine has {cores} cores; corral's 1-cpu jobs run {cores} at once "
            f"while tsp runs {args.slots} (the comparison assumes 2 cores)")

    base = Path(tempfile.mkdtemp(prefix="cb", dir="/tmp"))
    # PYTHONDONTWRITEBYTECODE (set in some containers/CI) makes every `corral` CLI call
    # recompile corral's modules from source when the checkout has no __pycache__ (an
    # editable install), which is not what users see. Cache bytecode privately instead.
    if os.environ.get("PYTHONDONTWRITEBYTECODE") and not args.as_is_bytecode:
        os.environ.pop("PYTHONDONTWRITEBYTECODE")
        os.environ["PYTHONPYCACHEPREFIX"] = str(base / "pycache")
        envinfo["bytecode"] = ("PYTHONDONTWRITEBYTECODE was set: unset, bytecode cached under a private "
                               "PYTHONPYCACHEPREFIX (--as-is-bytecode keeps it)")
    elif os.environ.get("PYTHONDONTWRITEBYTECODE"):
        envinfo["bytecode"] = "PYTHONDONTWRITEBYTECODE set (--as-is-bytecode): no bytecode cache is written"
    else:
        envinfo["bytecode"] = "normal (" + (f"PYTHONPYCACHEPREFIX={os.environ['PYTHONPYCACHEPREFIX']}"
                                            if os.environ.get("PYTHONPYCACHEPREFIX") else "__pycache__") + ")"
    results: dict = {"env": envinfo, "args": vars(args)}
    c = Corral(base, corral_bin)
    t = Tsp(base, tsp_bin, args.slots) if tsp_bin else None
    problems: list[str] = []
    try:
        c.start()
        if t is not None:
            t.start()
        stamps = base / "stamps"
        stamps.mkdir()
        if "latency" not in args.skip:
            log(f"(a) submit -> start latency, {args.latency_runs} runs per column ...")
            results["latency_ms"] = bench_latency(c, t, args.latency_runs, stamps)
        if "throughput" not in args.skip:
            results["throughput"] = bench_throughput(c, t, args.jobs)
        if "cli" not in args.skip:
            log(f"(c) CLI start-up, {args.cli_runs} runs per command ...")
            results["cli_ms"] = bench_cli(c, t, args.cli_runs, venv_python)
    finally:
        c.stop()
        if t is not None:
            t.stop()
        shutil.rmtree(base, ignore_errors=True)

    envinfo["loadavg_at_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())

    # print -------------------------------------------------------------------------------
    print()
    print("Environment")
    for k, v in envinfo.items():
        print(f"  {k:22} {v}")
    print(f"  {'slots':22} corral: {cores} x cpu=1 jobs (reserve cpu 0); tsp: -S {args.slots}")
    print()

    summaries: dict = {}
    peer = t is not None
    if "latency_ms" in results:
        L = results["latency_ms"]
        s = {k: summary(v) for k, v in L.items()}
        summaries["latency_ms"] = s
        tp = s["tsp"] if peer else {}
        rows = []
        for key, label in (("corral_sdk", "SDK Client.submit -> job's own timestamp"),
                           ("corral_cli", "CLI corral submit -> job's own timestamp")):
            for stat in ("p50", "p95"):
                rows.append([f"{label}, {stat}", fmt(s[key].get(stat)), fmt(tp.get(stat)) if peer else "skipped",
                             ratio(s[key].get(stat), tp.get(stat))])
        for stat in ("p50", "p95"):
            rows.append([f"(info) SDK submit -> daemon's started_at, {stat}",
                         fmt(s["corral_sdk_recorded"].get(stat)), "", ""])
        for key, label, peer_key in (("corral_sdk_call", "(info) SDK submit call returns", "tsp_call"),
                                     ("corral_cli_call", "(info) CLI submit process exits", "tsp_call")):
            rows.append([f"{label}, p50", fmt(s[key].get("p50")),
                         fmt(s[peer_key].get("p50")) if peer else "skipped",
                         ratio(s[key].get("p50"), s[peer_key].get("p50") if peer else None)])
        print(table(f"(a) submit -> start latency, idle machine, ms ({args.latency_runs} runs; "
                    "task-spooler: `tsp sh -c 'date +%s%N > f'`)",
                    ["measure", "corral", "task-spooler", "ratio"], rows))
        print()

    if "throughput" in results:
        T = results["throughput"]
        n = T["jobs"]
        ts_wall = T["tsp"]["wall_s"] if peer else None
        rows = []
        for key, label in (("corral_batch", f"corral: one SDK submit of {n} documents"),
                           ("corral_cli", f"corral: {n} x `corral submit --cpus 1 -- true`")):
            w = T[key]["wall_s"]
            rows.append([label, f"{w:.2f} s ({n / w:.0f} jobs/s)",
                         f"{ts_wall:.2f} s ({n / ts_wall:.0f} jobs/s)" if peer else "skipped",
                         ratio(w, ts_wall)])
        for key, label in (("corral_batch", "(info) batch: submit call returns"),
                           ("corral_cli", "(info) CLI loop: last submit returns")):
            rows.append([label, f"{T[key]['submit_s']:.2f} s",
                         f"{T['tsp']['submit_s']:.2f} s" if peer else "skipped",
                         ratio(T[key]["submit_s"], T["tsp"]["submit_s"] if peer else None)])
        for key, label in (("corral_batch", "(info) batch: first submit -> last ended_at"),
                           ("corral_cli", "(info) CLI loop: first submit -> last ended_at")):
            rec = T[key].get("recorded_s")
            rows.append([label, f"{rec:.2f} s" if rec is not None else "n/a", "", ""])
        rows.append(["jobs that ended OK",
                     " / ".join(f"{T[k]['states'].get('Succeeded', 0)}" for k in ("corral_batch", "corral_cli"))
                     + f" of {n}",
                     f"{T['tsp']['finished_ok']} of {n}" if peer else "skipped", ""])
        print(table(f"(b) {n} trivial jobs (`true`) on 2 slots, first submit -> all done "
                    "(task-spooler: one `tsp true` per job)",
                    ["measure", "corral", "task-spooler", "ratio"], rows))
        print()
        for k in ("corral_batch", "corral_cli"):
            st = T[k]["states"]
            if st.get("Succeeded", 0) != n:
                problems.append(f"(b) {k}: not all jobs Succeeded: {st}")
        if peer and T["tsp"]["finished_ok"] != n:
            problems.append(f"(b) tsp: {T['tsp']['finished_ok']} of {n} finished with exit 0")

    if "cli_ms" in results:
        C = results["cli_ms"]
        s = {k: summary(v) for k, v in C.items() if isinstance(v, list)}
        summaries["cli_ms"] = s
        vp = s["venv_python"]
        rows = []
        for key, label, peer_key, peer_label in (
                ("corral_submit", "corral submit --cpus 100m -- true", "tsp_submit", "tsp true"),
                ("corral_ps", "corral ps", "tsp_list", "tsp -l")):
            for stat in ("p50", "p95"):
                pv = s[peer_key].get(stat) if peer else None
                rows.append([f"{label} vs {peer_label}, {stat}", fmt(s[key][stat]),
                             fmt(pv) if peer else "skipped", ratio(s[key][stat], pv)])
        for stat in ("p50", "p95"):
            rows.append([f"bare interpreter `{venv_python} -c pass` (corral's), {stat}",
                         fmt(vp[stat]), "", ""])
        for stat in ("p50", "p95"):
            rows.append([f"`python3 -c pass` from PATH ({describe_python(C['python3_path'])}), {stat}",
                         fmt(s["python3"][stat]), "", ""])
        for stat in ("p50", "p95"):
            rows.append([f"corral submit / bare interpreter, {stat}",
                         ratio(s["corral_submit"][stat], vp[stat]), "", ""])
            rows.append([f"corral ps / bare interpreter, {stat}",
                         ratio(s["corral_ps"][stat], vp[stat]), "", ""])
        print(table(f"(c) one CLI call, wall ms ({args.cli_runs} runs; job drained between runs)",
                    ["measure", "corral", "task-spooler", "ratio"], rows))
        print()

    # targets -----------------------------------------------------------------------------
    targets = []
    if "throughput" in results and peer:
        w = results["throughput"]["corral_batch"]["wall_s"]
        targets.append([f"{results['throughput']['jobs']}-job batch no slower than tsp",
                        f"{w:.2f} s vs {ts_wall:.2f} s", "met" if w <= ts_wall else "MISSED"])
    if "latency_ms" in results:
        p = summaries["latency_ms"]["corral_sdk"]["p50"]
        targets.append(["submit -> start p50 < 20 ms (SDK)", f"{p:.1f} ms", "met" if p < 20 else "MISSED"])
        p = summaries["latency_ms"]["corral_cli"]["p50"]
        targets.append(["(same, via the CLI)", f"{p:.1f} ms", "met" if p < 20 else "MISSED"])
    if "cli_ms" in results:
        r = summaries["cli_ms"]["corral_submit"]["p50"] / summaries["cli_ms"]["venv_python"]["p50"]
        targets.append(["one `corral submit` < 2x bare interpreter (p50)", f"{r:.2f}x",
                        "met" if r < 2 else "MISSED"])
    if targets:
        print(table("Targets", ["target", "measured", "status"], targets))
        print()
    results["summaries"] = summaries
    results["targets"] = targets
    results["problems"] = problems
    for p in problems:
        print("PROBLEM:", p)

    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=1, default=str) + "\n")
        log(f"raw numbers written to {args.json_out}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
