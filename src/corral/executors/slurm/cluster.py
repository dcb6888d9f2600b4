"""A real Slurm cluster of several nodes on this host, for tests, demos and benchmarks.

corral never starts a production Slurm: it submits to the one a site runs (``engine:
{type: slurm, partition: NAME}``). To try the Slurm engine on one machine,
:class:`LocalSlurmCluster` writes a ``slurm.conf`` with one ``NodeName`` line per node
(Debian's build has ``MULTIPLE_SLURMD``: every ``slurmd`` runs on this host under its own
name and port), fake GPUs as character devices listed in ``gres.conf`` (Slurm hands them
out and sets ``CUDA_VISIBLE_DEVICES`` as it would for real ones), no authentication
(``auth/none``: this cluster only), a job-completion file (``sacct -c`` reads it without a
database) and a short ``SlurmdTimeout`` so a dead node is noticed in seconds. It starts
``slurmctld`` and each ``slurmd`` in the foreground as its own processes and stops
exactly those, by pid. Needs root (slurmd runs jobs as their users).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..ports import free_ports

#: The Debian packages the cluster needs (installed by the test setup as root).
PACKAGES = ("slurmctld", "slurmd", "slurm-client")
#: Where Debian puts the daemons.
SLURMCTLD = "/usr/sbin/slurmctld"
SLURMD = "/usr/sbin/slurmd"


def missing() -> str:
    """Why a local Slurm cannot start here ('' when it can)."""
    if os.geteuid() != 0:
        return "a local Slurm cluster needs root (slurmd runs jobs as their users)"
    for exe in (SLURMCTLD, SLURMD, "/usr/bin/sbatch"):
        if not Path(exe).exists():
            return f"{exe} is missing (apt-get install {' '.join(PACKAGES)})"
    return ""


def install() -> str:
    """Install Slurm with apt-get when root and it is missing; '' on success, else why not."""
    why = missing()
    if not why or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return why
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    if res.returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=900, env=env)
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    if res.returncode != 0:
        lines = (res.stderr or res.stdout).strip().splitlines()
        return f"cannot install Slurm: {lines[-1] if lines else 'apt-get failed'}"
    return missing()


@dataclass
class SlurmNodeSpec:
    name: str
    cpus: int = 4
    memory_mb: int = 4000
    gpus: int = 0
    gpu_model: str | None = None       # a GRES type, e.g. a100


class LocalSlurmCluster:
    """``LocalSlurmCluster([SlurmNodeSpec("n0", gpus=2), ...]).start()``; :attr:`conf` is
    the ``slurm.conf`` to give clients (``SLURM_CONF``), :attr:`partition` its one
    partition."""

    def __init__(self, nodes: list[SlurmNodeSpec], *, root: str | None = None, partition: str = "corral",
                 slurmd_timeout: int = 10):
        if not nodes:
            raise ValueError("a cluster needs at least one node")
        self.specs = {n.name: n for n in nodes}
        self.partition = partition
        self.slurmd_timeout = slurmd_timeout
        self.root = Path(root or tempfile.mkdtemp(prefix="corral-slurm-", dir="/tmp"))
        self.conf = str(self.root / "slurm.conf")
        self.ctld: subprocess.Popen | None = None
        self.slurmds: dict[str, subprocess.Popen] = {}
        self._ports: dict[str, int] = {}

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, SLURM_CONF=self.conf)

    @property
    def jobcomp(self) -> str:
        return str(self.root / "jobcomp.txt")

    # -- configuration -----------------------------------------------------------------------
    def _write_config(self) -> None:
        r = self.root
        for sub in ("state", "spool", "log", "gpus"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        ports = free_ports(1 + len(self.specs))
        ctld_port = ports[0]
        self._ports = {name: port for name, port in zip(self.specs, ports[1:])}
        lines = [
            "ClusterName=corraltest",
            "SlurmctldHost=localhost(127.0.0.1)",
            f"SlurmctldPort={ctld_port}",
            "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/none", "CredType=cred/none",
            f"StateSaveLocation={r}/state",
            f"SlurmdSpoolDir={r}/spool/%n",
            f"SlurmctldPidFile={r}/slurmctld.pid",
            f"SlurmdPidFile={r}/slurmd-%n.pid",
            f"SlurmctldLogFile={r}/log/slurmctld.log",
            f"SlurmdLogFile={r}/log/slurmd-%n.log",
            "SlurmctldDebug=info", "SlurmdDebug=info",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core_Memory",
            "SchedulerType=sched/backfill", "DefMemPerCPU=500",
            # Slurm may put off scheduling a submitted batch job by up to 3 s by default
            # (2.5 s submit -> start here); a site that runs many short jobs sets 0.
            "SchedulerParameters=batch_sched_delay=0",
            "SlurmdParameters=config_overrides",
            "GresTypes=gpu", "MpiDefault=none", "ReturnToService=2",
            f"SlurmdTimeout={self.slurmd_timeout}", "InactiveLimit=0", "KillWait=5", "MinJobAge=300",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/linux", "JobAcctGatherFrequency=task=2",
            "JobCompType=jobcomp/filetxt", f"JobCompLoc={self.jobcomp}",
        ]
        gres = ["AutoDetect=off"]
        for spec in self.specs.values():
            gres_field = ""
            if spec.gpus:
                kind = f"gpu:{spec.gpu_model}" if spec.gpu_model else "gpu"
                gres_field = f" Gres={kind}:{spec.gpus}"
                devdir = r / "gpus" / spec.name
                devdir.mkdir(parents=True, exist_ok=True)
                for i in range(spec.gpus):
                    dev = devdir / f"nvidia{i}"
                    if not dev.exists():
                        os.mknod(dev, 0o666 | 0o020000, os.makedev(195, i))   # a character device
                typ = f" Type={spec.gpu_model}" if spec.gpu_model else ""
                last = spec.gpus - 1
                files = f"{devdir}/nvidia[0-{last}]" if last else f"{devdir}/nvidia0"
                gres.append(f"NodeName={spec.name} Name=gpu{typ} File={files}")
            lines.append(f"NodeName={spec.name} NodeHostname=localhost NodeAddr=127.0.0.1 "
                         f"Port={self._ports[spec.name]} CPUs={spec.cpus} RealMemory={spec.memory_mb}"
                         f"{gres_field} State=UNKNOWN")
        names = ",".join(self.specs)
        lines.append(f"PartitionName={self.partition} Nodes={names} Default=YES MaxTime=INFINITE State=UP")
        (r / "slurm.conf").write_text("\n".join(lines) + "\n")
        (r / "gres.conf").write_text("\n".join(gres) + "\n")
        (r / "cgroup.conf").write_text("CgroupPlugin=cgroup/v1\n")

    # -- processes ---------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> "LocalSlurmCluster":
        why = missing()
        if why:
            raise RuntimeError(why)
        self._write_config()
        try:
            log = open(self.root / "log" / "slurmctld.out", "w")
            self.ctld = subprocess.Popen([SLURMCTLD, "-D", "-i", "-f", self.conf], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, env=self.env)
            log.close()
            for name in self.specs:
                self.start_node(name)
            self.wait_idle(list(self.specs), timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def start_node(self, name: str) -> None:
        """Start (or start again) one node's slurmd."""
        log = open(self.root / "log" / f"slurmd-{name}.out", "w")
        self.slurmds[name] = subprocess.Popen([SLURMD, "-D", "-f", self.conf, "-N", name], stdout=log,
                                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                              start_new_session=True, env=self.env)
        log.close()

    def states(self) -> dict[str, str]:
        """Each node's state as ``sinfo`` prints it (``idle``, ``mix``, ``down*`` ...)."""
        res = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %t"], capture_output=True, text=True, timeout=30,
                             env=self.env)
        out = {}
        for line in res.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2:
                out[parts[0]] = parts[1]
        return out

    def wait_idle(self, names: list[str], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            if self.ctld is not None and self.ctld.poll() is not None:
                raise RuntimeError(f"slurmctld exited ({self.ctld.returncode}): {self._tail('slurmctld.log')}")
            states = self.states()
            if all(states.get(n, "").rstrip("*") in ("idle", "mix", "alloc") and not states[n].endswith("*")
                   for n in names):
                return
            time.sleep(0.2)
        raise RuntimeError(f"Slurm nodes not idle within {timeout:g} s: {states} ({self._tail('slurmctld.log')})")

    def _tail(self, name: str) -> str:
        try:
            lines = (self.root / "log" / name).read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return lines[-1] if lines else "empty log"

    def kill_node(self, name: str) -> None:
        """SIGKILL one node's slurmd: a machine whose Slurm died (its jobs' processes live
        on, as Slurm leaves them, until the node returns)."""
        proc = self.slurmds.pop(name)
        proc.kill()
        proc.wait(timeout=10)

    def _job_processes(self) -> list:
        """What this cluster's slurmds started and left (slurmstepd, which renames itself
        and outlives a killed slurmd, and the jobs' processes under it): found by the files
        under this cluster's root that a slurmstepd holds open (its node's log)."""
        import psutil

        root = str(self.root) + "/"
        found = []
        for proc in psutil.process_iter(["name"]):
            try:
                if proc.info["name"] != "slurmstepd":
                    continue
                fds = os.listdir(f"/proc/{proc.pid}/fd")
                if any(os.readlink(f"/proc/{proc.pid}/fd/{fd}").startswith(root) for fd in fds):
                    found.append(proc)
                    found.extend(proc.children(recursive=True))
            except (psutil.Error, OSError):
                continue
        return found

    def stop(self) -> None:
        """Stop what this object started (slurmds, slurmctld, and the job steps they left),
        then remove its files."""
        for proc in [*self.slurmds.values(), *([self.ctld] if self.ctld else [])]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*self.slurmds.values(), *([self.ctld] if self.ctld else [])]:
            try:
                proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        try:
            procs = self._job_processes()
        except Exception:  # noqa: BLE001
            procs = []
        if procs:
            import psutil

            for p in procs:
                try:
                    p.kill()
                except psutil.Error:
                    pass
            psutil.wait_procs(procs, timeout=5)
        self.slurmds.clear()
        self.ctld = None
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "LocalSlurmCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
