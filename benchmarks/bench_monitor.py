#!/usr/bin/env python3
"""Monitoring overhead: the CPU corral's daemon uses to watch its jobs, next to Slurm's.

Run it as root with the project's interpreter (psutil is one of corral's dependencies)::

    .venv/bin/python benchmarks/bench_monitor.py [--seconds 60] [--jobs 50]
                                                 [--peer slurm|tsp|none] [--json-out PATH]

corral's daemon measures every running job every ``sample_interval`` (default 2 s:
cgroup counters, or one ``/proc`` scan when a job has no cgroup, GPU readings, idle-GPU
tracking) and writes one usage row per job per ``series_interval`` (30 s). The targets:
the daemon under 1 % of one core when idle, under 3 % with 50 running jobs.

Each row of the result is one window of ``--seconds`` wall seconds in which nothing is
submitted or queried: the CPU time (user + system, from ``psutil.Process.cpu_times``)
that the processes below used during the window, divided by the window, in percent of
one core.

* **corral**, a fresh ``CORRAL_HOME`` under /tmp per configuration, ``reserve: {cpu: "0"}``
  and the ``enforcement`` / ``sample_interval`` of the row in its ``config.yaml``.
  "daemon" is the daemon process (its pid from ``daemon.lock``); "total" adds the
  launcher (the daemon's forked child that forks supervisors) and every job supervisor
  (the launcher's forked children). They are found by walking the process tree from the
  daemon: children with the daemon's own command line, two levels deep. The jobs'
  processes (``sleep``, the supervisors' children) are not counted. Rows: idle (no
  jobs), and N jobs of ``sleep 100000`` each requesting ``cpu: 10m`` (so 50 fit on 2
  cores), submitted as one SDK batch, measured once all are Running, with
  ``enforcement: cgroup`` and ``enforcement: watchdog``, and with cgroups at
  ``sample_interval: 0.5s``. After each window the script checks that the daemon has a
  reading for every job from the last two intervals (so it was sampling them), that all
  are still Running, and that ``daemon.log`` has no ERROR or traceback.
* **Slurm** (``--peer slurm``, the default): a private single-host cluster (its own
  munged socket, ports, state and spool directories under /tmp) with
  ``JobAcctGatherType=jobacct_gather/linux`` and ``JobAcctGatherFrequency=task=2``, so
  every job's step daemon samples its processes every 2 s, the same job as corral's
  monitor. ``SlurmdParameters=config_overrides`` declares 64 CPUs so N one-CPU jobs run
  at once. "daemon" is slurmctld + slurmd; "total" adds every ``slurmstepd`` of this
  cluster (one per batch job). Rows: idle, and N ``sbatch -c 1 --mem=10M --wrap 'sleep
  100000'`` jobs once ``squeue`` shows them all Running. The packages (``slurmctld slurmd
  slurm-client munge``) are installed with apt-get when missing.
* **task-spooler** (``--peer tsp``, or when Slurm cannot be set up): ``tsp -S N`` and N
  ``tsp sleep 100000``; "daemon" is the tsp server, "total" adds the N waiting tsp
  clients. task-spooler does no per-job sampling at all: it is a floor, not a peer.

The peer is skipped with a message when the script does not run as root or apt-get is
missing. Everything started is stopped at the end (jobs cancelled and waited for, then
``corral down``; ``scancel``, the Slurm daemons and munged stopped; temporary
directories removed); leftover processes are killed by pid and reported.

Exit status 0 unless the corral part fails (an error, jobs not all Running, no readings,
an error in the daemon's log, or processes left behind).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from bench_core import Corral, Tsp, ensure_tsp, git_commit, log, run, table, tsp_version
from benchenv import cpu_model, find_corral  # benchmarks/ is on sys.path when run as a script

CLK = time.monotonic


# measuring -------------------------------------------------------------------------------
def _key(p: psutil.Process) -> tuple[int, float]:
    return (p.pid, p.create_time())


def cpu_snapshot(groups: dict[str, list[psutil.Process]]) -> dict[str, dict]:
    """{group: {(pid, create_time): user+system seconds}} for the processes still alive."""
    out: dict[str, dict] = {}
    for name, procs in groups.items():
        d = {}
        for p in procs:
            try:
                with p.oneshot():
                    t = p.cpu_times()
                    d[_key(p)] = t.user + t.system
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        out[name] = d
    return out


def host_busy() -> float:
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0)


def measure(find, seconds: float) -> dict:
    """CPU seconds per process group over one window. ``find()`` returns
    {group: [Process]}; it is called at the start and at the end of the window, and a
    process found only at the end counts from its start (it began inside the window)."""
    g0 = find()
    s0 = cpu_snapshot(g0)
    h0, t0 = host_busy(), CLK()
    load0 = os.getloadavg()[0]
    time.sleep(seconds)
    wall = CLK() - t0
    h1 = host_busy()
    s1 = cpu_snapshot(find())
    res = {"wall_s": wall, "host_busy_pct": (h1 - h0) / wall * 100.0, "loadavg_start": load0,
           "loadavg_end": os.getloadavg()[0], "groups": {}}
    for name in set(s0) | set(s1):
        a, b = s0.get(name, {}), s1.get(name, {})
        cpu = sum(v - a.get(k, 0.0) for k, v in b.items())
        res["groups"][name] = {"cpu_s": cpu, "pct": cpu / wall * 100.0, "n_start": len(a), "n_end": len(b),
                               "vanished": len(set(a) - set(b)), "appeared": len(set(b) - set(a))}
    return res


def pct_of(m: dict, *names: str) -> float:
    return sum(m["groups"].get(n, {}).get("cpu_s", 0.0) for n in names) / m["wall_s"] * 100.0


def wait_for(pred, timeout: float, what: str, step: float = 0.2):
    end = CLK() + timeout
    while True:
        v = pred()
        if v:
            return v
        if CLK() > end:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


def kill_pids(pids: set[int], what: str) -> list[str]:
    """SIGKILL whichever of these processes are still alive (by pid); one line per kill."""
    left = []
    for pid in sorted(pids):
        try:
            p = psutil.Process(pid)
            if p.status() == psutil.STATUS_ZOMBIE:
                continue
            left.append(f"{what}: pid {pid} ({' '.join(p.cmdline())[:80]}) was still alive; killed")
            p.kill()
        except psutil.NoSuchProcess:
            pass
    return left


def alive(pids: set[int]) -> set[int]:
    out = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.add(pid)
        except psutil.NoSuchProcess:
            pass
    return out


# corral --------------------------------------------------------------------------------------
class CorralRun:
    """One private corral daemon with the given settings."""

    def __init__(self, base: Path, corral_bin: str, label: str, enforcement: str, sample_interval: float | None):
        d = base / label
        d.mkdir()
        self.c = Corral(d, corral_bin)
        cfg = 'reserve: {cpu: "0"}\n' + f"enforcement: {enforcement}\n"
        if sample_interval:
            # a YAML number: the string form ("0.5s") is rounded to whole seconds by corral
            cfg += f"sample_interval: {sample_interval:g}\n"
        self.asked_interval = sample_interval or 2.0
        (self.c.home / "config.yaml").write_text(cfg)
        self.enforcement = enforcement
        self.interval = 2.0
        self.ids: list[int] = []
        self.daemon: psutil.Process | None = None
        self.seen: set[int] = set()       # every pid of ours: daemon, launcher, supervisors, jobs

    def start(self) -> None:
        self.c.start()
        pid = int((self.c.home / "daemon.lock").read_text().split()[0])
        self.daemon = psutil.Process(pid)
        self.seen.add(pid)
        info = self.c.client.top()
        self.interval = float(info.sample_interval or 2.0)
        if abs(self.interval - self.asked_interval) > 1e-9:
            raise RuntimeError(f"config.yaml asks for sample_interval {self.asked_interval:g}, "
                               f"the daemon reports {self.interval:g}")
        mode = info.enforcement.mode if info.enforcement is not None else None
        if mode != self.enforcement:
            raise RuntimeError(f"asked for enforcement {self.enforcement}, the daemon says {info.enforcement}")

    def find(self) -> dict[str, list[psutil.Process]]:
        """daemon / launcher / supervisors: the daemon's forked copies, two levels down."""
        d = self.daemon
        try:
            cmd = d.cmdline()
            launchers = [p for p in d.children() if _cmd(p) == cmd]
        except psutil.NoSuchProcess:
            raise RuntimeError(f"the corral daemon (pid {d.pid}) is gone; see {self.c.home / 'daemon.log'}")
        sups = []
        for ln in launchers:
            try:
                sups += [p for p in ln.children() if _cmd(p) == cmd]
            except psutil.NoSuchProcess:
                pass
        for p in launchers + sups:
            self.seen.add(p.pid)
            try:
                self.seen.update(c.pid for c in p.children(recursive=True))
            except psutil.NoSuchProcess:
                pass
        return {"daemon": [d], "launcher": launchers, "supervisors": sups}

    def submit(self, n: int) -> None:
        docs = [self.c.doc(["sleep", "100000"], "10m") for _ in range(n)]
        self.ids = [j.id for j in self.c.client.submit(docs)]
        wait_for(lambda: self.c.client.health().running == n, 60, f"{n} corral jobs Running")

    def check_sampling(self) -> list[str]:
        """Problems: jobs not Running, or without a recent reading."""
        top = self.c.client.top()
        now = top.now or time.time()
        jobs = {j.id: j for j in top.jobs}
        out = []
        missing = [i for i in self.ids if i not in jobs]
        if missing:
            out.append(f"{len(missing)} of {len(self.ids)} jobs no longer Running (e.g. {missing[:5]})")
        want = "cgroup" if self.enforcement == "cgroup" else "procfs"
        stale = [i for i, j in jobs.items() if j.live is None or now - j.live.t > 2 * self.interval + 1]
        wrong = [i for i, j in jobs.items() if j.live is not None and j.live.source != want]
        if stale:
            out.append(f"{len(stale)} running jobs without a reading from the last {2 * self.interval:g} s")
        if wrong:
            out.append(f"{len(wrong)} jobs read from {jobs[wrong[0]].live.source!r}, expected {want!r}")
        return out

    def log_problems(self) -> list[str]:
        try:
            text = (self.c.home / "daemon.log").read_text(errors="replace")
        except OSError:
            return []
        bad = [ln for ln in text.splitlines() if " ERROR " in ln or " CRITICAL " in ln or ln.startswith("Traceback")]
        return [f"daemon.log: {ln[:300]}" for ln in bad[:10]]

    def stop(self) -> list[str]:
        """Cancel and wait for the jobs, `corral down`, then make sure nothing of ours is left."""
        problems = []
        try:
            if self.ids and self.c.up:
                self.c.client.cancel(self.ids)
                self.c.client.wait(self.ids)
        except Exception as exc:  # noqa: BLE001 - still bring the daemon down
            problems.append(f"cancelling the jobs failed: {exc}")
        self.c.stop()
        try:
            wait_for(lambda: not alive(self.seen), 15, "corral's processes to exit")
        except RuntimeError:
            problems += kill_pids(self.seen, "corral")
        return problems


def _cmd(p: psutil.Process) -> list[str] | None:
    try:
        return p.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def corral_rows(base: Path, corral_bin: str, seconds: float, n: int, settle: float,
                problems: list[str]) -> list[dict]:
    rows = []
    configs = [("cgroup", None, True), ("watchdog", None, False), ("cgroup", 0.5, False)]
    for enforcement, interval, with_idle in configs:
        label = f"{enforcement}{f'-{interval:g}s' if interval else ''}"
        name = f"corral ({enforcement}{f', {interval:g}s' if interval else ''})"
        r = CorralRun(base, corral_bin, label, enforcement, interval)
        try:
            r.start()
            if with_idle:
                time.sleep(settle)
                log(f"{name}: idle, {seconds:g} s window ...")
                m = measure(r.find, seconds)
                rows.append(_corral_row(name, "idle", m, 0, r.interval))
            r.submit(n)
            time.sleep(settle)
            log(f"{name}: {n} running, {seconds:g} s window ...")
            m = measure(r.find, seconds)
            rows.append(_corral_row(name, f"{n} running", m, n, r.interval))
            problems += [f"{name}: {p}" for p in r.check_sampling()]
            sups = m["groups"]["supervisors"]
            if sups["n_end"] != n or sups["vanished"]:
                problems.append(f"{name}: {sups['n_end']} supervisors at the end of the window "
                                f"({sups['vanished']} vanished), expected {n}")
        finally:
            problems += [f"{name}: {p}" for p in r.stop()]
            problems += [f"{name}: {p}" for p in r.log_problems()]
    return rows


def _corral_row(name: str, state: str, m: dict, n: int, interval: float) -> dict:
    g = m["groups"]
    return {"system": name, "state": state, "jobs": n, "interval_s": interval, "window_s": m["wall_s"],
            "daemon_pct": pct_of(m, "daemon"), "total_pct": pct_of(m, "daemon", "launcher", "supervisors"),
            "host_busy_pct": m["host_busy_pct"], "raw": m,
            "notes": f"launcher {g['launcher']['pct']:.3f}%, {g['supervisors']['n_end']} supervisors "
                     f"{g['supervisors']['pct']:.3f}%; sample every {interval:g}s"}


# Slurm ---------------------------------------------------------------------------------------
SLURM_PKGS = ["slurmctld", "slurmd", "slurm-client", "munge"]
SLURM_BINS = ["slurmctld", "slurmd", "slurmstepd", "sbatch", "squeue", "scancel", "sinfo", "munged"]


def _which(b: str) -> str | None:
    return shutil.which(b) or next((p for p in (f"/usr/sbin/{b}", f"/usr/bin/{b}") if os.access(p, os.X_OK)), None)


def ensure_slurm() -> str | None:
    """None when Slurm is usable (installing it if needed), else why not."""
    if all(_which(b) for b in SLURM_BINS):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "Slurm is not installed, and installing it needs root and apt-get"
    log("installing " + " ".join(SLURM_PKGS) + " with apt-get ...")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", *SLURM_PKGS]
    quiet = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    if subprocess.run(cmd, check=False, **quiet).returncode != 0:
        subprocess.run(["apt-get", "update"], check=False, **quiet)
        subprocess.run(cmd, check=False, **quiet)
    missing = [b for b in SLURM_BINS if not _which(b)]
    return f"apt-get install {' '.join(SLURM_PKGS)} left these missing: {missing}" if missing else None


def slurm_version() -> str:
    try:
        return run([_which("slurmctld"), "-V"], timeout=30).stdout.strip()
    except Exception:  # noqa: BLE001
        return "unknown"


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


class Slurm:
    """A private single-host Slurm cluster: its own munged, ports, state and spool."""

    def __init__(self, base: Path, cpus: int):
        self.dir = base / "slurm"
        self.dir.mkdir()
        self.dir.chmod(0o755)
        self.munge = self.dir / "munge"
        self.munge.mkdir()
        self.munge.chmod(0o755)          # munged wants execute for all on its socket's directory
        shutil.chown(self.munge, "munge", "munge")
        for sub in ("state", "spool", "log", "work"):
            (self.dir / sub).mkdir()
        ctld_port, d_port = free_ports(2)
        self.conf = self.dir / "slurm.conf"
        self.conf.write_text(f"""\
ClusterName=bench
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
AuthType=auth/munge
AuthInfo=socket={self.munge}/munge.sock
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={self.dir}/state
SlurmdSpoolDir={self.dir}/spool
SlurmctldPidFile={self.dir}/slurmctld.pid
SlurmdPidFile={self.dir}/slurmd.pid
SlurmctldLogFile={self.dir}/log/slurmctld.log
SlurmdLogFile={self.dir}/log/slurmd.log
SlurmdParameters=config_overrides
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=10
SchedulerType=sched/backfill
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=2
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=8000 State=UNKNOWN
PartitionName=bench Nodes=localhost Default=YES MaxTime=INFINITE State=UP
""")
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        self.ids: list[str] = []
        self.pids: dict[str, int] = {}

    def _pidfile(self, path: Path) -> int | None:
        try:
            return int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def start(self) -> None:
        run(["runuser", "-u", "munge", "--", _which("munged"), f"--socket={self.munge}/munge.sock",
             f"--pid-file={self.munge}/munged.pid", f"--log-file={self.munge}/munged.log",
             f"--seed-file={self.munge}/seed"], timeout=30)
        wait_for(lambda: self._pidfile(self.munge / "munged.pid"), 10, "munged's pid file")
        self.pids["munged"] = self._pidfile(self.munge / "munged.pid")
        run([_which("slurmctld"), "-f", str(self.conf), "-i"], env=self.env, timeout=30)
        run([_which("slurmd"), "-f", str(self.conf), "-N", "localhost"], env=self.env, timeout=30)
        self.pids["slurmctld"] = wait_for(lambda: self._pidfile(self.dir / "slurmctld.pid"), 15, "slurmctld's pid")
        self.pids["slurmd"] = wait_for(lambda: self._pidfile(self.dir / "slurmd.pid"), 15, "slurmd's pid")

        def idle() -> bool:
            out = run([_which("sinfo"), "-h", "-o", "%t"], env=self.env, check=False, timeout=30).stdout.strip()
            return out == "idle"
        wait_for(idle, 60, "the Slurm node to be idle (see " + str(self.dir / "log") + ")", step=0.5)

    def find(self) -> dict[str, list[psutil.Process]]:
        daemons = []
        for name in ("slurmctld", "slurmd"):
            try:
                daemons.append(psutil.Process(self.pids[name]))
            except psutil.NoSuchProcess:
                raise RuntimeError(f"{name} (pid {self.pids[name]}) is gone; see {self.dir / 'log'}")
        return {"daemon": daemons, "slurmstepd": self.stepds()}

    def stepds(self) -> list[psutil.Process]:
        """slurmstepd processes of this cluster (they run in its log directory)."""
        out = []
        for p in psutil.process_iter(["name"]):
            if p.info["name"] != "slurmstepd":
                continue
            try:
                if p.cwd().startswith(str(self.dir)):
                    out.append(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return out

    def submit(self, n: int) -> None:
        for _ in range(n):
            out = run([_which("sbatch"), "--parsable", "-c", "1", "--mem=10M", "-o", "/dev/null", "-e", "/dev/null",
                       "-D", str(self.dir / "work"), "--wrap", "sleep 100000"], env=self.env, timeout=60)
            self.ids.append(out.stdout.strip().split(";")[0])

        def all_running() -> bool:
            out = run([_which("squeue"), "-h", "-t", "R", "-o", "%i"], env=self.env, timeout=30).stdout.split()
            return len(out) >= n
        wait_for(all_running, 120, f"{n} Slurm jobs Running (squeue)", step=0.5)
        wait_for(lambda: len(self.stepds()) >= n, 30, f"{n} slurmstepd processes")

    def running(self) -> int:
        return len(run([_which("squeue"), "-h", "-t", "R", "-o", "%i"], env=self.env, timeout=30).stdout.split())

    def ours(self) -> set[int]:
        """Every live process of this cluster: daemons, step daemons, jobs (cwd under our dir)."""
        pids = set(self.pids.values())
        for p in psutil.process_iter():
            try:
                if p.cwd().startswith(str(self.dir)):
                    pids.add(p.pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied, OSError):
                pass
        return alive(pids)

    def stop(self) -> list[str]:
        problems = []
        if self.ids:
            run([_which("scancel"), *self.ids], env=self.env, check=False, timeout=60)
            try:
                wait_for(lambda: not run([_which("squeue"), "-h", "-o", "%i"], env=self.env, check=False,
                                         timeout=30).stdout.split(), 60, "squeue to empty", step=0.5)
                wait_for(lambda: not self.stepds(), 60, "slurmstepd processes to exit", step=0.5)
            except RuntimeError as exc:
                problems.append(f"slurm: {exc}")
        for name in ("slurmd", "slurmctld", "munged"):
            pid = self.pids.get(name)
            if pid:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        try:
            wait_for(lambda: not self.ours(), 30, "the Slurm daemons and munged to exit", step=0.5)
        except RuntimeError:
            problems += kill_pids(self.ours(), "slurm")
        return problems


def slurm_rows(s: Slurm, seconds: float, n: int, settle: float, version: str) -> list[dict]:
    rows = []
    name = version.replace("slurm-wlm", "slurm")
    time.sleep(settle)
    log(f"{name}: idle, {seconds:g} s window ...")
    m = measure(s.find, seconds)
    rows.append({"system": name, "state": "idle", "jobs": 0, "window_s": m["wall_s"],
                 "daemon_pct": pct_of(m, "daemon"), "total_pct": pct_of(m, "daemon", "slurmstepd"),
                 "host_busy_pct": m["host_busy_pct"], "raw": m, "notes": "slurmctld+slurmd"})
    log(f"{name}: submitting {n} jobs ...")
    s.submit(n)
    time.sleep(settle)
    log(f"{name}: {n} running, {seconds:g} s window ...")
    m = measure(s.find, seconds)
    st = m["groups"]["slurmstepd"]
    running = s.running()
    # evidence that the step daemons were gathering: what they report for one job
    sstat = run([_which("sstat") or "sstat", "-n", "-P", "-j", f"{s.ids[0]}.batch", "-o", "JobID,MaxRSS,AveCPU,NTasks"],
                env=s.env, check=False, timeout=30)
    log(f"sstat {s.ids[0]}.batch: {(sstat.stdout or sstat.stderr).strip()[:200]}")
    rows.append({"system": name, "state": f"{n} running", "jobs": n, "interval_s": 2.0, "window_s": m["wall_s"],
                 "daemon_pct": pct_of(m, "daemon"), "total_pct": pct_of(m, "daemon", "slurmstepd"),
                 "host_busy_pct": m["host_busy_pct"], "raw": m,
                 "sstat": (sstat.stdout or sstat.stderr).strip(),
                 "notes": f"+ {st['n_end']} slurmstepd {st['pct']:.3f}%, jobacct every 2s"
                          + ("" if running == n else f"; only {running} Running at the end")})
    return rows


# task-spooler (fallback: no per-job sampling) ------------------------------------------------
def tsp_rows(base: Path, tsp_bin: str, seconds: float, n: int, settle: float) -> tuple[list[dict], list[str]]:
    t = Tsp(base, tsp_bin, slots=n)
    sock = t.env["TS_SOCKET"]
    ids: list[int] = []

    def procs() -> tuple[list[psutil.Process], list[psutil.Process]]:
        server, clients = [], []
        for p in psutil.process_iter(["name"]):
            if p.info["name"] != "tsp":
                continue
            try:
                if p.environ().get("TS_SOCKET") != sock:
                    continue
                if any(c.laddr == sock for c in p.net_connections(kind="unix")):
                    server.append(p)
                else:
                    clients.append(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return server, clients

    def find() -> dict[str, list[psutil.Process]]:
        server, clients = procs()
        return {"daemon": server, "clients": clients}

    rows, problems = [], []
    name = f"task-spooler {tsp_version() or ''}".strip()
    seen: set[int] = set()
    try:
        t.start()
        time.sleep(settle)
        log(f"{name}: idle, {seconds:g} s window ...")
        m = measure(find, seconds)
        rows.append({"system": name, "state": "idle", "jobs": 0, "window_s": m["wall_s"],
                     "daemon_pct": pct_of(m, "daemon"), "total_pct": pct_of(m, "daemon", "clients"),
                     "host_busy_pct": m["host_busy_pct"], "raw": m, "notes": "server; NO per-job sampling"})
        for _ in range(n):
            ids.append(t.submit(["sleep", "100000"])[1])
        wait_for(lambda: sum(1 for _, st, _ in t.listing() if st == "running") >= n, 60, f"{n} tsp jobs running")
        time.sleep(settle)
        log(f"{name}: {n} running, {seconds:g} s window ...")
        m = measure(find, seconds)
        rows.append({"system": name, "state": f"{n} running", "jobs": n, "window_s": m["wall_s"],
                     "daemon_pct": pct_of(m, "daemon"), "total_pct": pct_of(m, "daemon", "clients"),
                     "host_busy_pct": m["host_busy_pct"], "raw": m,
                     "notes": f"+ {m['groups']['clients']['n_end']} tsp clients; NO per-job sampling"})
    finally:
        server, clients = procs()
        for p in server + clients:
            seen.add(p.pid)
            try:
                seen.update(c.pid for c in p.children(recursive=True))
            except psutil.NoSuchProcess:
                pass
        for i in ids:
            run([t.bin, "-k", str(i)], env=t.env, check=False, timeout=30)
        t.stop()
        try:
            wait_for(lambda: not alive(seen), 15, "task-spooler's processes to exit")
        except RuntimeError:
            problems += kill_pids(seen, "tsp")
    return rows, problems


# report --------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each measured window (default 60)")
    ap.add_argument("--jobs", type=int, default=50, help="running jobs in the loaded rows (default 50)")
    ap.add_argument("--settle", type=float, default=3.0,
                    help="seconds to wait after start-up / all jobs Running before a window (default 3)")
    ap.add_argument("--peer", choices=["slurm", "tsp", "none"], default="slurm",
                    help="the peer measured in the same run (default slurm; falls back to tsp if Slurm fails)")
    ap.add_argument("--json-out", metavar="PATH", help="write the raw numbers as JSON")
    args = ap.parse_args()

    corral_bin = find_corral()
    if not corral_bin:
        return 2

    notes: list[str] = []
    peer = args.peer
    is_root = os.geteuid() == 0
    if peer != "none" and not (is_root and shutil.which("apt-get")):
        notes.append(f"peer ({peer}) skipped: it needs root and apt-get to install and run "
                     f"(running as uid {os.geteuid()}, apt-get {'found' if shutil.which('apt-get') else 'missing'})")
        peer = "none"
    if peer == "slurm":
        why = ensure_slurm()
        if why:
            notes.append(f"Slurm unavailable ({why}); falling back to task-spooler")
            peer = "tsp"

    envinfo = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "commit": git_commit(),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "corral_version": run([corral_bin, "--version"], timeout=30).stdout.strip(),
        "psutil": psutil.__version__,
        "loadavg_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }

    base = Path(tempfile.mkdtemp(prefix="cm", dir="/tmp"))
    base.chmod(0o755)
    rows: list[dict] = []
    problems: list[str] = []
    peer_problems: list[str] = []
    corral_failed = False
    try:
        try:
            rows += corral_rows(base, corral_bin, args.seconds, args.jobs, args.settle, problems)
        except Exception as exc:  # noqa: BLE001 - report it, still run the peer
            corral_failed = True
            problems.append(f"corral: {type(exc).__name__}: {exc}")

        if peer == "slurm":
            envinfo["slurm_version"] = slurm_version()
            s = None
            try:
                s = Slurm(base, cpus=max(64, args.jobs + 8))
                s.start()
                rows += slurm_rows(s, args.seconds, args.jobs, args.settle, envinfo["slurm_version"])
            except Exception as exc:  # noqa: BLE001 - fall back to task-spooler
                notes.append(f"Slurm failed ({type(exc).__name__}: {exc}); falling back to task-spooler")
                peer = "tsp"
                rows = [r for r in rows if not r["system"].startswith("slurm")]
            finally:
                if s is not None:
                    peer_problems += s.stop()
        if peer == "tsp":
            tsp_bin = ensure_tsp()
            if tsp_bin:
                envinfo["tsp_version"] = tsp_version()
                notes.append("task-spooler does NO per-job sampling: its numbers are a floor "
                             "(a queue that watches nothing), not a like-for-like peer")
                try:
                    r, p = tsp_rows(base, tsp_bin, args.seconds, args.jobs, args.settle)
                    rows += r
                    peer_problems += p
                except Exception as exc:  # noqa: BLE001
                    notes.append(f"task-spooler failed: {type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    envinfo["loadavg_at_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())

    # print -------------------------------------------------------------------------------
    print()
    print("Environment")
    for k, v in envinfo.items():
        print(f"  {k:18} {v}")
    print(f"  {'command':18} {' '.join([Path(sys.executable).name, *sys.argv])}")
    print()
    header = ["system", "state", "window", "daemon CPU %", "total CPU %", "host busy %", "notes"]
    trows = [[r["system"], r["state"], f"{r['window_s']:.0f}s", f"{r['daemon_pct']:.2f}%",
              f"{r['total_pct']:.2f}%", f"{r['host_busy_pct']:.0f}%", r["notes"]] for r in rows]
    print(table(f"CPU used over each window, % of one core (CPU seconds / wall seconds x 100; "
                f"host busy: all {os.cpu_count()} cores, % of one core)", header, trows))
    print()

    # marginal cost of watching one job once: CPU above the same system's idle row
    idle = {r["system"].split(" (")[0]: r for r in rows if r["jobs"] == 0}
    mrows = []
    for r in rows:
        i = idle.get(r["system"].split(" (")[0])
        if not r["jobs"] or not r.get("interval_s") or i is None:
            continue
        samples = r["jobs"] * r["window_s"] / r["interval_s"]
        per = {k: (r[k] - i[k]) / 100.0 * r["window_s"] / samples * 1e6 for k in ("daemon_pct", "total_pct")}
        mrows.append([r["system"], r["state"], f"{r['interval_s']:g}s", f"{samples:.0f}",
                      f"{round(per['daemon_pct']) + 0:d} us", f"{round(per['total_pct']) + 0:d} us"])
    if mrows:
        print(table("Marginal CPU per job per sample: (CPU seconds above the system's idle row) / "
                    "(jobs x window / sample interval)",
                    ["system", "state", "interval", "job-samples", "daemon", "total"], mrows))
        print()

    targets = []
    for r in rows:
        if not r["system"].startswith("corral"):
            continue
        if r["jobs"] == 0:
            targets.append([f"{r['system']} idle: daemon under 1% of one core", f"{r['daemon_pct']:.2f}%",
                            "met" if r["daemon_pct"] < 1 else "MISSED"])
        elif r.get("interval_s") == 2.0:
            targets.append([f"{r['system']} {r['state']}: daemon under 3%", f"{r['daemon_pct']:.2f}%",
                            "met" if r["daemon_pct"] < 3 else "MISSED"])
            targets.append(["(same, corral total incl. launcher + supervisors)", f"{r['total_pct']:.2f}%",
                            "met" if r["total_pct"] < 3 else "MISSED"])
    if targets:
        print(table("Targets (default sample_interval 2s)", ["target", "measured", "status"], targets))
        print()
    for n in notes:
        print("NOTE:", n)
    for p in peer_problems:
        print("PEER PROBLEM:", p)
    for p in problems:
        print("PROBLEM:", p)

    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"env": envinfo, "args": vars(args), "rows": rows,
                                                   "targets": targets, "notes": notes, "problems": problems,
                                                   "peer_problems": peer_problems}, indent=1, default=str) + "\n")
        log(f"raw numbers written to {args.json_out}")
    return 1 if (corral_failed or problems) else 0


if __name__ == "__main__":
    sys.exit(main())
