"""``GET /metrics``: Prometheus text a scraper and promtool accept, with values that match
the daemon's jobs, nodes and GPUs (read from memory: a scrape does not touch the store)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from asgi_client import call
from corral.capacity.gpu import GpuSample
from corral.daemon import faults
from corral.daemon.api import create_app
from corral.executors.base import ExitStatus
from corral.spec import build_spec
from manager_helpers import GiB, manager

CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture
def scene():
    m = manager(gpus=2, cores=4, memory=8 * GiB)
    app = create_app(m, {"home": "/srv/corral"}, lambda: None)
    spec = lambda gpus: build_spec(["true"], requests={"nvidia.com/gpu": gpus, "cpu": "500m"})  # noqa: E731
    [a] = m.submit([spec(1)], {}, user="alice")
    [b] = m.submit([spec(1)], {}, user="bob")
    [c] = m.submit([spec(2)], {}, user="alice")                    # waits: no GPU left
    m.on_exit(b.id, ExitStatus(ended_at=m.clock(), exit_code=3))
    m.cycle()
    return m, app, a, b, c


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def scrape(app) -> str:
    answer = call(app, "GET", "/metrics")
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return answer.body.decode()


def test_jobs_nodes_and_histograms_match_the_daemon(scene):
    m, app, a, b, c = scene
    got = samples(scrape(app))
    assert got[("corral_jobs_running", (("queue", "default"),))] == 1
    pending = {k: v for k, v in got.items() if k[0] == "corral_jobs_pending"}
    assert pending == {("corral_jobs_pending", (("queue", "default"), ("reason", "InsufficientResources"))): 1}
    assert got[("corral_jobs_submitted_total", (("queue", "default"),))] == 3
    assert got[("corral_jobs_ended_total", (("queue", "default"), ("reason", "Error"), ("state", "Failed")))] == 1
    assert got[("corral_job_wait_seconds_count", (("queue", "default"),))] == 2      # a and b started
    assert got[("corral_job_run_seconds_count", (("queue", "default"), ("state", "Failed")))] == 1
    assert got[("corral_scheduling_cycle_seconds_count", ())] >= 1
    node = lambda kind, r: got[(f"corral_node_resource_{kind}", (("node", "n1"), ("resource", r)))]  # noqa: E731
    assert (node("allocatable", "nvidia.com/gpu"), node("allocated", "nvidia.com/gpu"), node("free", "nvidia.com/gpu")) \
        == (2, 1, 1)
    assert node("allocated", "cpu") == 0.5 and node("capacity", "memory") == 8 * GiB       # base units
    assert got[("corral_node_up", (("node", "n1"), ("state", "Ready")))] == 1


def test_gpu_readings_carry_the_holding_job_and_user(scene):
    m, app, a, b, c = scene
    from corral.daemon.monitor import Monitor

    m.monitor = Monitor(m.store, m.executor, stop_job=m.stop_job, note=lambda *x: None)
    gpu = m.executor.launched[a.id].allocation.pieces[0].gpus[0]
    m.monitor.gpus[("n1", gpu)] = GpuSample(gpu, utilization=37.0, memory_used=3 * GiB, power=212.5)
    got = samples(scrape(app))
    labels = (("gpu", str(gpu)), ("job", str(a.id)), ("model", m.executor.nodes()[0].gpus[gpu].model),
              ("node", "n1"), ("user", "alice"))
    assert got[("corral_gpu_utilization_ratio", labels)] == 0.37
    assert got[("corral_gpu_memory_used_bytes", labels)] == 3 * GiB
    assert got[("corral_gpu_power_watts", labels)] == 212.5


def test_store_errors_are_counted(scene, monkeypatch):
    m, app, *_ = scene
    monkeypatch.setattr(faults, "store_errors", {})
    faults.count("recording job ends")
    faults.count("recording job ends")
    got = samples(scrape(app))
    assert got[("corral_store_errors_total", (("operation", "recording job ends"),))] == 2


def _promtool() -> str | None:
    found = shutil.which("promtool")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus"]
        if subprocess.run(install, capture_output=True, timeout=900, env=env).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=600, env=env)
            subprocess.run(install, capture_output=True, timeout=900, env=env)
        found = shutil.which("promtool")
    return found


def test_promtool_accepts_the_page(scene):
    promtool = _promtool()
    if promtool is None:
        if CI:
            pytest.fail("promtool is missing (apt-get install prometheus); CI=true: this test must run")
        pytest.skip("promtool is missing (apt-get install prometheus)")
    res = subprocess.run([promtool, "check", "metrics"], input=scrape(scene[1]), capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_grafana_dashboard_asks_only_for_metrics_the_daemon_serves(scene, monkeypatch):
    import json
    import re
    from pathlib import Path

    from corral.daemon.monitor import Monitor

    m, app, a, *_ = scene
    m.monitor = Monitor(m.store, m.executor, stop_job=m.stop_job, note=lambda *x: None)
    m.monitor.gpus[("n1", 0)] = GpuSample(0, utilization=0.0, memory_used=0, power=60.0)
    monkeypatch.setattr(faults, "store_errors", {"recording job ends": 1})
    served = {name for name, _ in samples(scrape(app))} | {"corral_gpu_idle"}    # idle: only while one is
    dashboard = json.loads((Path(__file__).parents[2] / "docs/grafana/corral-dashboard.json").read_text())
    asked = {name for p in dashboard["panels"] for t in p["targets"] for name in re.findall(r"corral_\w+", t["expr"])}
    assert asked and asked <= served, asked - served
