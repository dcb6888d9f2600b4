"""A local Ray cluster of several nodes on this host, for tests, demos and benchmarks.

corral never starts a production Ray cluster: it connects to one (``engine: {type: ray,
address: ...}``). To try the Ray engine on one machine -- the integration tests, ``make
demo-ray``, the benchmark -- :class:`LocalRayCluster` starts a head and workers as
separate ``ray start --block`` processes, each with explicit ports, its own custom
resource and labels (``corral.dev/node``), fake GPUs (``--num-gpus``), a private temp
dir and token auth off (for this local cluster only), and fast health checks so a node
that dies is noticed in seconds. It stops exactly the processes it started (each node's
session and descendants), never with ``ray stop``, which kills every Ray process on the
host.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..ports import free_ports

#: The label every node of a local cluster carries: its corral node name.
NODE_LABEL = "corral.dev/node"
#: The label that names a node's GPU model.
GPU_MODEL_LABEL = "corral.dev/gpu-model"
_READY = ("This command will now block forever", "Ray runtime started")


#: Worker port ranges come from below the kernel's ephemeral range (32768-60999 by
#: default), where the other ports -- asked of the kernel -- never land.
_WORKER_PORTS = (10000, 32000)
_WORKER_RANGE = 100


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _worker_range(taken: list[tuple[int, int]]) -> int:
    """The first port of a range of worker ports no other node of this cluster has and
    nothing on the host listens on now."""
    import random

    rng = random.Random()
    for _ in range(500):
        base = rng.randrange(_WORKER_PORTS[0], _WORKER_PORTS[1] - _WORKER_RANGE)
        if any(base <= hi and lo <= base + _WORKER_RANGE for lo, hi in taken):
            continue
        if all(_port_free(p) for p in range(base, base + _WORKER_RANGE + 1)):
            return base
    raise RuntimeError("no free range of worker ports for a Ray node")


def ray_env(tmp: str) -> dict[str, str]:
    """The environment for this cluster's processes and its drivers: no token auth, no
    usage stats, Ray's cluster-address file in the cluster's own temp dir."""
    env = dict(os.environ)
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", RAY_TMPDIR=tmp,
               RAY_DEDUP_LOGS="0")
    return env


@dataclass
class NodeSpec:
    name: str
    cpus: int = 2
    gpus: int = 0
    gpu_model: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    memory: int | None = None          # bytes; None: Ray's default


@dataclass
class _Started:
    spec: NodeSpec
    proc: subprocess.Popen
    log: Path


class LocalRayCluster:
    """``LocalRayCluster([NodeSpec("n0", gpus=2), ...]).start()``: the first node is the
    head. :attr:`address` is the GCS address to give ``engine.address``."""

    def __init__(self, nodes: list[NodeSpec], *, root: str | None = None, dashboard: bool = False,
                 object_store: int = 80 * 2**20, health_period_ms: int = 1000, health_threshold: int = 3):
        if not nodes:
            raise ValueError("a cluster needs at least one node")
        self.specs = list(nodes)
        self.dashboard = dashboard
        self.object_store = object_store
        self.health = {"health_check_period_ms": health_period_ms,
                       "health_check_failure_threshold": health_threshold,
                       "health_check_timeout_ms": health_period_ms}
        # Unix socket paths under the temp dir must stay short (< 108 bytes).
        self.root = Path(root or tempfile.mkdtemp(prefix="corral-ray-", dir="/tmp"))
        self.tmp = str(self.root / "t")
        self.address = ""
        self.dashboard_url = ""
        self.nodes: dict[str, _Started] = {}
        #: Job processes a node killed with ``leave_jobs`` left behind (stopped by :meth:`stop`).
        self.orphans: list = []
        self._gcs_port = 0
        self._worker_ranges: list[tuple[int, int]] = []

    @property
    def env(self) -> dict[str, str]:
        return ray_env(str(self.root))

    def _ray(self) -> str:
        exe = Path(sys.executable).with_name("ray")
        return str(exe) if exe.exists() else "ray"

    def _args(self, spec: NodeSpec, head: bool) -> list[str]:
        p = free_ports(9)
        base = _worker_range(self._worker_ranges)
        self._worker_ranges.append((base, base + _WORKER_RANGE))
        labels = {NODE_LABEL: spec.name, **({GPU_MODEL_LABEL: spec.gpu_model} if spec.gpu_model else {}), **spec.labels}
        args = [self._ray(), "start", "--block", "--node-ip-address", "127.0.0.1",
                "--num-cpus", str(spec.cpus), "--num-gpus", str(spec.gpus),
                "--object-store-memory", str(self.object_store),
                "--node-manager-port", str(p[0]), "--object-manager-port", str(p[1]),
                "--min-worker-port", str(base), "--max-worker-port", str(base + _WORKER_RANGE),
                "--dashboard-agent-listen-port", str(p[3]), "--dashboard-agent-grpc-port", str(p[4]),
                "--runtime-env-agent-port", str(p[5]), "--metrics-export-port", str(p[6]),
                "--labels", ",".join(f"{k}={v}" for k, v in labels.items()),
                "--resources", json.dumps({f"corral/node:{spec.name}": 1})]
        if spec.memory is not None:
            args += ["--memory", str(spec.memory)]
        if head:
            args += ["--head", "--port", str(self._gcs_port), "--ray-client-server-port", str(p[7]),
                     "--temp-dir", self.tmp, "--include-dashboard", "true" if self.dashboard else "false",
                     "--system-config", json.dumps(self.health)]
            if self.dashboard:
                args += ["--dashboard-port", str(p[8]), "--dashboard-host", "127.0.0.1"]
                self.dashboard_url = f"http://127.0.0.1:{p[8]}"
        else:
            args += ["--address", self.address]
        return args

    def start(self, timeout: float = 180.0) -> "LocalRayCluster":
        self.root.mkdir(parents=True, exist_ok=True)
        self._gcs_port = free_ports(1)[0]
        self.address = f"127.0.0.1:{self._gcs_port}"
        try:
            self.start_node(self.specs[0], head=True, timeout=timeout)
            for spec in self.specs[1:]:
                self.start_node(spec, timeout=timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def start_node(self, spec: NodeSpec, *, head: bool = False, timeout: float = 180.0) -> None:
        """Start (or start again) one node and wait until it runs."""
        log = self.root / f"{spec.name}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(self._args(spec, head), env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.nodes[spec.name] = _Started(spec, proc, log)
        deadline = time.monotonic() + timeout
        while True:
            text = log.read_text(errors="replace")
            if any(marker in text for marker in _READY):
                return
            if proc.poll() is not None:
                raise RuntimeError(f"ray node {spec.name} failed to start (exit {proc.returncode}): "
                                   f"{text.strip().splitlines()[-1] if text.strip() else 'no output'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"ray node {spec.name} did not start within {timeout:g} s (log: {log})")
            time.sleep(0.2)

    def _processes(self, started: _Started) -> list:
        """Every process of one node: its ``ray start`` session, and their descendants."""
        import psutil

        pid = started.proc.pid
        found: dict[int, object] = {}
        try:
            root = psutil.Process(pid)
            found[pid] = root
            for child in root.children(recursive=True):
                found[child.pid] = child
        except psutil.Error:
            pass
        for proc in psutil.process_iter():
            try:
                if os.getsid(proc.pid) == pid:
                    found.setdefault(proc.pid, proc)
            except OSError:
                continue
        return list(found.values())

    def kill_node(self, name: str, *, leave_jobs: bool = False) -> None:
        """SIGKILL every process of one node: a machine dying. With ``leave_jobs`` only
        Ray's own processes die (its raylet, workers and launcher) and the jobs' processes
        -- sessions of their own -- live on, as on a machine whose Ray crashed: what
        corral must kill when the node comes back."""
        started = self.nodes.pop(name)
        procs = self._processes(started)
        if leave_jobs:
            def ray_own(proc) -> bool:
                try:
                    return os.getsid(proc.pid) == started.proc.pid or proc.pid == started.proc.pid
                except OSError:
                    return False

            self.orphans += [p for p in procs if not ray_own(p)]
            procs = [p for p in procs if ray_own(p)]
        for proc in procs:
            try:
                proc.send_signal(signal.SIGKILL)
            except Exception:  # noqa: BLE001 - gone already
                pass
        try:
            started.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def stop(self) -> None:
        """Stop every node this object started (workers first), then remove its files."""
        import psutil

        order = list(self.nodes)[1:] + list(self.nodes)[:1]
        procs = [p for p in self.orphans if p.is_running()]
        self.orphans = []
        for name in order:
            procs.extend(self._processes(self.nodes[name]))
        for proc in procs:
            try:
                proc.send_signal(signal.SIGTERM)
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(procs, timeout=3)
        for proc in alive:           # gcs_server and raylet may ignore SIGTERM for a while
            try:
                proc.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(alive, timeout=5)
        for started in self.nodes.values():
            try:
                started.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.nodes.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "LocalRayCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
