#!/usr/bin/env python3
"""corral in front of Ray, side by side with Ray's own Jobs API, on one local Ray cluster.

    .venv/bin/python benchmarks/bench_ray.py [--jobs 200] [--jobs-api-jobs 200] [--latency-runs 30]
                                             [--running 50] [--json-out PATH]

One local 3-node Ray cluster (``LocalRayCluster``: ``ray start`` per node, 4 CPUs and 2
fake GPUs each, health checks every second, the dashboard on for the Jobs API) serves
both sides in the same run:

(a) throughput: N short jobs (``true``) submitted at once -- corral: one SDK
    ``Client.submit`` call with N documents (``cpu: 100m``), then waiting for all;
    Jobs API: N ``JobSubmissionClient.submit_job(entrypoint="true")`` calls, then
    polling until every job is terminal. Jobs/s = N / (wall time from the first submit
    to the last end). Every job must succeed on both sides.
(b) submit -> start latency, one job at a time on an idle cluster: each job runs ``sh -c
    'date +%s%N > FILE'``; the latency is that timestamp minus the time just before the
    submit call (p50, p95).
(c) node loss: with n0 and n1 drained, a job runs on n2; n2's Ray processes are
    SIGKILLed (``LocalRayCluster.kill_node``); the time until corral shows the job queued
    again (``NodeLost``) and until it runs again on another node.
(d) the corral daemon's CPU with 3 nodes and M running jobs (``sleep``): CPU seconds of
    the daemon process over 20 s, as a share of one core.

Targets (issue): (a) >= 10x the Jobs API's jobs/s, (b) corral p50 < 100 ms, (c) node
loss -> requeued in < 10 s. The script stops the daemon and exactly the Ray processes
it started.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchenv import EngineCorral, cpu_model

REPO = Path(__file__).resolve().parent.parent
GiB = 2**30
TERMINAL = ("Succeeded", "Failed", "Cancelled")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = lambda r: "| " + " | ".join(str(x).ljust(w) for x, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


class Corral(EngineCorral):
    def __init__(self, cluster, root: str):
        super().__init__(root, f"engine: {{type: ray, address: \"{cluster.address}\"}}\n",
                         {k: cluster.env[k] for k in ("RAY_AUTH_MODE", "RAY_USAGE_STATS_ENABLED", "RAY_TMPDIR")},
                         prefix="cbr")

    def daemon_pid(self) -> int:
        return int(Path(self.home, "daemon.lock").read_text().split()[0])

    def close(self) -> None:
        from corral.executors.ray import launch_root

        home = self.home
        super().close()
        shutil.rmtree(launch_root(home), ignore_errors=True)


def stamp_command(path: Path) -> list[str]:
    return ["sh", "-c", f"date +%s%N > {path}"]


def read_stamp(path: Path, timeout: float = 120.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = path.read_text().strip()
            if text:
                return int(text) / 1e9
        except OSError:
            pass
        time.sleep(0.005)
    raise SystemExit(f"no timestamp in {path} after {timeout:g} s")


def corral_side(cluster, args, root: Path) -> dict:
    c = Corral(cluster, str(root))
    out: dict = {}
    try:
        # (a) throughput
        t0 = time.time()
        ids = c.submit(["true"], args.jobs)
        views = [c.client.wait_for(i) for i in ids]
        wall = time.time() - t0
        bad = [v["id"] for v in views if v["state"] != "Succeeded"]
        if bad:
            raise SystemExit(f"corral: {len(bad)} jobs did not succeed, e.g. {c.state(bad[0])}")
        starts = [v["started_at"] - v["submitted_at"] for v in views]
        out["throughput"] = {"jobs": args.jobs, "wall_s": wall, "jobs_per_s": args.jobs / wall,
                             "queue_to_start_p50_s": pct(starts, 0.5), "queue_to_start_p95_s": pct(starts, 0.95)}
        # (b) latency
        lat = []
        for i in range(args.latency_runs):
            f = root / f"c{i}"
            t = time.time()
            [job] = c.submit(stamp_command(f))
            lat.append(read_stamp(f) - t)
            c.client.wait_for(job)
        out["latency"] = {"runs": len(lat), "p50_s": pct(lat, 0.5), "p95_s": pct(lat, 0.95)}
        # (d) daemon CPU with M running jobs
        import psutil

        ids = c.submit(["sleep", "600"], args.running)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if sum(1 for i in ids if c.state(i)["state"] == "Running") == args.running:
                break
            time.sleep(0.5)
        proc = psutil.Process(c.daemon_pid())
        time.sleep(3)
        a = proc.cpu_times()
        time.sleep(20)
        b = proc.cpu_times()
        cpu = (b.user - a.user) + (b.system - a.system)
        out["daemon_cpu"] = {"running": args.running, "window_s": 20, "cpu_s": cpu, "share_of_core": cpu / 20}
        c.client.request("POST", "/v1/jobs/cancel", {"ids": ids})
        for i in ids:
            c.client.wait_for(i)
        # (c) node loss
        c.cli("drain", "n0")
        c.cli("drain", "n1")
        [job] = c.submit(["sleep", "600"])
        while c.state(job)["state"] != "Running":
            time.sleep(0.05)
        c.cli("undrain", "n0")
        c.cli("undrain", "n1")
        t = time.monotonic()
        cluster.kill_node("n2")
        requeued = running = None
        while time.monotonic() - t < 120:
            v = c.state(job)
            if requeued is None and (v["state"] == "Pending" or v.get("attempts", 1) > 1):
                requeued = time.monotonic() - t
            if v["state"] == "Running" and v["node"] != "n2":
                running = time.monotonic() - t
                requeued = requeued if requeued is not None else running
                break
            time.sleep(0.05)
        out["node_loss"] = {"requeued_s": requeued, "running_again_s": running}
        c.client.request("POST", "/v1/jobs/cancel", {"ids": [job]})
        c.client.wait_for(job)
    finally:
        c.close()
    return out


def jobs_api_side(cluster, args, root: Path) -> dict:
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(cluster.dashboard_url)
    done = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}
    out: dict = {}
    t0 = time.time()
    ids = [client.submit_job(entrypoint="true") for _ in range(args.jobs_api_jobs)]
    pending = set(ids)
    failed = []
    while pending:
        for i in list(pending):
            st = client.get_job_status(i)
            if st in done:
                pending.discard(i)
                if st != JobStatus.SUCCEEDED:
                    failed.append(i)
        time.sleep(0.2)
    wall = time.time() - t0
    if failed:
        raise SystemExit(f"Jobs API: {len(failed)} jobs did not succeed, e.g. {client.get_job_info(failed[0])}")
    out["throughput"] = {"jobs": args.jobs_api_jobs, "wall_s": wall, "jobs_per_s": args.jobs_api_jobs / wall}
    lat = []
    for i in range(args.latency_runs):
        f = root / f"r{i}"
        t = time.time()
        job = client.submit_job(entrypoint=" ".join(f"'{a}'" for a in stamp_command(f)))
        lat.append(read_stamp(f) - t)
        while client.get_job_status(job) not in done:
            time.sleep(0.1)
    out["latency"] = {"runs": len(lat), "p50_s": pct(lat, 0.5), "p95_s": pct(lat, 0.95)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--jobs-api-jobs", type=int, default=200)
    ap.add_argument("--latency-runs", type=int, default=30)
    ap.add_argument("--running", type=int, default=50)
    ap.add_argument("--json-out")
    args = ap.parse_args()
    try:
        import ray  # noqa: F401
    except ImportError:
        print("ray is not installed: pip install 'corral[ray]' (make test installs it)", file=sys.stderr)
        return 2
    from corral.executors.ray.cluster import LocalRayCluster, NodeSpec

    env = {"cpu_model": cpu_model(), "cores": len(os.sched_getaffinity(0)), "python": platform.python_version(),
           "ray": __import__("ray").__version__,
           "commit": subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True).stdout.strip()}
    root = Path(tempfile.mkdtemp(prefix="cbw", dir="/tmp"))
    cluster = LocalRayCluster([NodeSpec("n0", cpus=4, gpus=2, memory=4 * GiB),
                               NodeSpec("n1", cpus=4, gpus=2, gpu_model="A100", memory=4 * GiB),
                               NodeSpec("n2", cpus=4, gpus=2, memory=4 * GiB)], dashboard=True)
    print("starting a local 3-node Ray cluster ...", flush=True)
    t = time.monotonic()
    try:
        cluster.start()
        env["cluster_start_s"] = time.monotonic() - t
        print(f"  up in {env['cluster_start_s']:.1f} s; Jobs API side ...", flush=True)
        ray_api = jobs_api_side(cluster, args, root)
        print("  corral side ...", flush=True)
        corral = corral_side(cluster, args, root)
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    ratio = corral["throughput"]["jobs_per_s"] / ray_api["throughput"]["jobs_per_s"]
    ms = lambda s: f"{1000 * s:.0f} ms"  # noqa: E731
    print()
    print(table(["measure", "corral on Ray", "Ray Jobs API", "corral / Jobs API"], [
        ["short jobs, end to end", f"{corral['throughput']['jobs']} in {corral['throughput']['wall_s']:.1f} s",
         f"{ray_api['throughput']['jobs']} in {ray_api['throughput']['wall_s']:.1f} s", ""],
        ["jobs/s", f"{corral['throughput']['jobs_per_s']:.1f}", f"{ray_api['throughput']['jobs_per_s']:.2f}",
         f"{ratio:.0f}x"],
        ["submit -> start p50", ms(corral["latency"]["p50_s"]), ms(ray_api["latency"]["p50_s"]),
         f"{ray_api['latency']['p50_s'] / corral['latency']['p50_s']:.0f}x faster"],
        ["submit -> start p95", ms(corral["latency"]["p95_s"]), ms(ray_api["latency"]["p95_s"]), ""],
    ]))
    nl = corral["node_loss"]
    print()
    print(table(["corral on Ray", "measured"], [
        ["node killed -> job queued again (NodeLost)", f"{nl['requeued_s']:.1f} s" if nl["requeued_s"] else "-"],
        ["node killed -> job running on another node", f"{nl['running_again_s']:.1f} s"
         if nl["running_again_s"] else "-"],
        [f"daemon CPU, 3 nodes, {corral['daemon_cpu']['running']} running jobs",
         f"{100 * corral['daemon_cpu']['share_of_core']:.1f} % of a core"],
    ]))
    targets = [
        ("throughput >= 10x the Jobs API", f"{ratio:.0f}x", ratio >= 10),
        ("submit -> start p50 < 100 ms", ms(corral["latency"]["p50_s"]), corral["latency"]["p50_s"] < 0.1),
        ("node loss -> requeued < 10 s", f"{nl['requeued_s']:.1f} s" if nl["requeued_s"] else "never",
         bool(nl["requeued_s"]) and nl["requeued_s"] < 10),
    ]
    print()
    print(table(["target", "measured", "status"], [[a, b, "met" if ok else "MISSED"] for a, b, ok in targets]))
    print(f"\n{env}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"environment": env, "corral": corral, "jobs_api": ray_api},
                                                  indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
