#!/usr/bin/env python3
"""corral in front of Slurm, side by side with sbatch alone, on one local Slurm cluster.

    .venv/bin/python benchmarks/bench_slurm.py [--jobs 200] [--rounds 3] [--latency-runs 20]
                                               [--json-out PATH] [--skip-slurm-node-loss]

A local 3-node Slurm (``LocalSlurmCluster``: slurmctld and three slurmd on this host, 4
CPUs, 4000 MB and 2 fake GPUs each, ``SlurmdTimeout=10``) serves both sides in the same
run (needs root):

(a) throughput: N short jobs (``true``, 1 CPU) -- corral: one SDK ``Client.submit`` with N
    documents, then waiting for all; Slurm alone: N ``sbatch --wrap true`` calls (one
    each, as a script would), then polling ``squeue`` until none is left. Jobs/s = N /
    (wall time from the first submit to the last end). Every job must succeed. Each
    measurement gets a fresh cluster (slurmctld keeps finished jobs for ``MinJobAge``,
    which a side going second would pay for), and the rounds alternate which side goes
    first; the table gives the median of the rounds and each round's ratio.
(b) submit -> start latency, one job at a time on an idle cluster: each job runs
    ``date +%s%N > FILE``; the latency is that timestamp minus the time just before the
    submit (p50, p95).
(c) node loss: with n0 and n1 drained (corral: ``corral drain``; Slurm alone: the job
    pinned with ``-w n2``, the others free), a job runs on n2, n2's slurmd is SIGKILLed;
    the time until the job is queued again and until it runs on another node. Slurm
    alone: a default (requeueable) ``sbatch`` job, capped at 240 s.

Targets (issue): (a) no slower than sbatch alone; (c) node loss -> requeued under 20 s.
The script stops the daemon and exactly the Slurm daemons it started.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

from benchenv import EngineCorral, cpu_model
from bench_ray import pct, read_stamp, stamp_command, table

REPO = Path(__file__).resolve().parent.parent


class Corral(EngineCorral):
    requests = {"cpu": "1", "memory": "100Mi"}

    def __init__(self, cluster, root: str):
        super().__init__(root, f"engine: {{type: slurm, partition: {cluster.partition}}}\n",
                         {"SLURM_CONF": cluster.conf}, prefix="cbs")


def corral_throughput(cluster, args, root: Path) -> dict:
    c = Corral(cluster, str(root))
    try:
        t0 = time.time()
        ids = c.submit(["true"], args.jobs)
        views = [c.client.wait_for(i) for i in ids]
        wall = time.time() - t0
        bad = [v["id"] for v in views if v["state"] != "Succeeded"]
        if bad:
            raise SystemExit(f"corral: {len(bad)} jobs did not succeed, e.g. {c.state(bad[0])}")
    finally:
        c.close()
    return {"jobs": args.jobs, "wall_s": wall, "jobs_per_s": args.jobs / wall}


def corral_side(cluster, args, root: Path) -> dict:
    c = Corral(cluster, str(root))
    out: dict = {}
    try:
        lat = []
        for i in range(args.latency_runs):
            f = root / f"c{i}"
            t = time.time()
            [job] = c.submit(stamp_command(f))
            lat.append(read_stamp(f) - t)
            c.client.wait_for(job)
        out["latency"] = {"runs": len(lat), "p50_s": pct(lat, 0.5), "p95_s": pct(lat, 0.95)}
        c.cli("drain", "n0")
        c.cli("drain", "n1")
        [job] = c.submit(["sleep", "600"])
        while not (c.state(job)["state"] == "Running" and c.state(job)["reason"] == "Launched"
                   and "running in Slurm" in c.state(job)["message"]):
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
            if v["state"] == "Running" and v["node"] != "n2" and "running in Slurm" in v["message"]:
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


def sbatch(cluster, *args: str) -> str:
    res = subprocess.run(["sbatch", "--parsable", *args], env=cluster.env, capture_output=True, text=True,
                         timeout=120)
    if res.returncode != 0:
        raise SystemExit(f"sbatch: {res.stderr.strip()}")
    return res.stdout.strip().split(";")[0]


def squeue(cluster, *args: str) -> list[list[str]]:
    res = subprocess.run(["squeue", "-h", "-o", "%i %T %N", *args], env=cluster.env, capture_output=True,
                         text=True, timeout=60)
    return [line.split() for line in res.stdout.splitlines() if line.strip()]


def slurm_throughput(cluster, args, root: Path) -> dict:
    t0 = time.time()
    for i in range(args.jobs):
        sbatch(cluster, "-c", "1", "--mem=100M", "-o", "/dev/null", "--wrap", "true")
    while squeue(cluster):
        time.sleep(0.05)
    wall = time.time() - t0
    return {"jobs": args.jobs, "wall_s": wall, "jobs_per_s": args.jobs / wall}


def slurm_side(cluster, args, root: Path) -> dict:
    out: dict = {}
    lat = []
    for i in range(args.latency_runs):
        f = root / f"s{i}"
        t = time.time()
        sbatch(cluster, "-c", "1", "--mem=100M", "-o", "/dev/null", "--wrap", " ".join(stamp_command(f)[2:]))
        lat.append(read_stamp(f) - t)
        while squeue(cluster):
            time.sleep(0.05)
    out["latency"] = {"runs": len(lat), "p50_s": pct(lat, 0.5), "p95_s": pct(lat, 0.95)}
    if args.skip_slurm_node_loss:
        return out
    job = sbatch(cluster, "-w", "n2", "-c", "1", "--mem=100M", "-o", "/dev/null", "--wrap", "sleep 600")
    while not any(r[0] == job and r[1] == "RUNNING" for r in squeue(cluster)):
        time.sleep(0.05)
    # Later runs may use the other nodes: the pin is what a requeued job keeps, so lift it.
    subprocess.run(["scontrol", "update", f"JobId={job}", "ReqNodeList="], env=cluster.env, capture_output=True)
    t = time.monotonic()
    cluster.kill_node("n2")
    requeued = running = None
    while time.monotonic() - t < 240:
        rows = {r[0]: r for r in squeue(cluster)}
        row = rows.get(job)
        if row is not None and requeued is None and row[1] in ("PENDING", "REQUEUED", "REQUEUE_HOLD"):
            requeued = time.monotonic() - t
        if row is not None and row[1] == "RUNNING" and len(row) > 2 and row[2] != "n2":
            running = time.monotonic() - t
            break
        time.sleep(0.2)
    out["node_loss"] = {"requeued_s": requeued, "running_again_s": running}
    subprocess.run(["scancel", job], env=cluster.env, capture_output=True)
    cluster.start_node("n2")
    cluster.wait_idle(["n0", "n1", "n2"], 120)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3, help="throughput rounds, each side on a fresh cluster")
    ap.add_argument("--latency-runs", type=int, default=20)
    ap.add_argument("--skip-slurm-node-loss", action="store_true", help="Slurm alone takes minutes")
    ap.add_argument("--json-out")
    args = ap.parse_args()
    from corral.executors.slurm.cluster import LocalSlurmCluster, SlurmNodeSpec, missing

    why = missing()
    if why:
        print(why, file=sys.stderr)
        return 2
    # sinfo --version wants a configuration source, even to print its version.
    version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "slurm-client"], capture_output=True,
                             text=True).stdout.strip() if shutil.which("dpkg-query") else ""
    env = {"cpu_model": cpu_model(), "cores": len(os.sched_getaffinity(0)), "python": platform.python_version(),
           "slurm": version,
           "commit": subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True).stdout.strip()}
    root = Path(tempfile.mkdtemp(prefix="cbw", dir="/tmp"))

    def fresh() -> LocalSlurmCluster:
        return LocalSlurmCluster([SlurmNodeSpec(n, cpus=4, memory_mb=4000, gpus=2) for n in ("n0", "n1", "n2")])

    rounds: list[dict] = []
    try:
        for r in range(args.rounds):
            sides = [("sbatch", slurm_throughput), ("corral", corral_throughput)]
            got: dict = {}
            for name, measure in (sides if r % 2 == 0 else sides[::-1]):
                print(f"round {r + 1}: {name} throughput on a fresh cluster ...", flush=True)
                cluster = fresh()
                try:
                    cluster.start()
                    got[name] = measure(cluster, args, root)
                finally:
                    cluster.stop()
            got["ratio"] = got["corral"]["jobs_per_s"] / got["sbatch"]["jobs_per_s"]
            rounds.append(got)
        cluster = fresh()
        print("latency and node loss on a fresh cluster ...", flush=True)
        try:
            cluster.start()
            print("  sbatch side ...", flush=True)
            alone = slurm_side(cluster, args, root)
            print("  corral side ...", flush=True)
            corral = corral_side(cluster, args, root)
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for side in ("corral", "sbatch"):
        rates = [g[side]["jobs_per_s"] for g in rounds]
        walls = [g[side]["wall_s"] for g in rounds]
        (corral if side == "corral" else alone)["throughput"] = {
            "jobs": args.jobs, "wall_s": median(walls), "jobs_per_s": median(rates), "rounds": rates}
    ratios = [g["ratio"] for g in rounds]
    ratio = median(ratios)
    ms = lambda s: f"{1000 * s:.0f} ms"  # noqa: E731
    sec = lambda s: f"{s:.1f} s" if s is not None else "-"  # noqa: E731
    print()
    print(table(["measure", "corral on Slurm", "sbatch alone", "corral / sbatch"], [
        ["short jobs, end to end (median)", f"{corral['throughput']['jobs']} in {corral['throughput']['wall_s']:.1f} s",
         f"{alone['throughput']['jobs']} in {alone['throughput']['wall_s']:.1f} s", ""],
        ["jobs/s (median of the rounds)", f"{corral['throughput']['jobs_per_s']:.2f}",
         f"{alone['throughput']['jobs_per_s']:.2f}", f"{ratio:.2f}x"],
        ["corral / sbatch, each round", "", "", " ".join(f"{x:.2f}x" for x in ratios)],
        ["submit -> start p50", ms(corral["latency"]["p50_s"]), ms(alone["latency"]["p50_s"]), ""],
        ["submit -> start p95", ms(corral["latency"]["p95_s"]), ms(alone["latency"]["p95_s"]), ""],
        ["node killed -> job queued again", sec(corral["node_loss"]["requeued_s"]),
         sec(alone.get("node_loss", {}).get("requeued_s")), ""],
        ["node killed -> running on another node", sec(corral["node_loss"]["running_again_s"]),
         sec(alone.get("node_loss", {}).get("running_again_s")), ""],
    ]))
    nl = corral["node_loss"]["requeued_s"]
    targets = [("jobs/s no lower than sbatch alone", f"{ratio:.2f}x (median of {len(ratios)} rounds)", ratio >= 1.0),
               ("node loss -> requeued < 20 s", sec(nl), nl is not None and nl < 20)]
    print()
    print(table(["target", "measured", "status"], [[a, b, "met" if ok else "MISSED"] for a, b, ok in targets]))
    print(f"\n{env}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"environment": env, "corral": corral, "slurm": alone,
                                                   "rounds": rounds}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
