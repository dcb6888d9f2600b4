"""API read latency with a full store: ``/metrics`` scrapes and the dashboard's API calls,
corral side by side with task-spooler listing the same queue, in the same run.

The store holds ``--jobs`` jobs (default 10,000: held, so they stay queued) and
``--running`` of them run (default 50, ``sleep``), as issue 14's target says; then each
request is timed ``--runs`` times over the Unix socket (what a Prometheus scrape or the
dashboard pays, without HTTP client overhead) and over TCP with a bearer token. The
peer: task-spooler listing its queue (``tsp -l``, the only listing it has) of 900 queued
jobs -- it keeps a process per queued job and takes about 1,000 connections, so 10,000 do
not fit -- next to ``corral ps`` listing as many (both pay a process start).

    .venv/bin/python benchmarks/bench_api.py [--jobs 10000] [--running 50] [--runs 30]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_core import ensure_tsp, tsp_version  # noqa: E402
from benchenv import cpu_model, find_corral  # noqa: E402

TARGET_MS = 50.0
#: task-spooler keeps a process (and a connection) per queued job and accepts about 1,000
#: connections (TS_MAXCONN): its queue is listed at 900.
TSP_QUEUED = 900


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(address, path: str, token: str | None = None) -> tuple[int, bytes]:
    """One GET; ``address`` a Unix socket path or (host, port)."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(60)
        s.connect(address)
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: corral\r\nConnection: close\r\n{auth}\r\n".encode())
        data = b""
        while chunk := s.recv(1 << 16):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def timed(fn, runs: int) -> tuple[float, float]:
    """Median and p95 in milliseconds."""
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.95))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--running", type=int, default=50)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    corral = find_corral()
    if corral is None:
        return 1
    base = Path(tempfile.mkdtemp(prefix="ba", dir="/tmp"))
    home = base / "h"
    home.mkdir()
    port = free_port()
    (home / "config.yaml").write_text(f"simulate_gpus: 4\nlisten: 127.0.0.1:{port}\nreserve: {{cpu: \"0\"}}\n")
    env = dict(os.environ, CORRAL_HOME=str(home))
    tsp_dir = base / "tsp"
    tsp_dir.mkdir()
    tsp_env = dict(os.environ, TS_SOCKET=str(tsp_dir / "sock"), TMPDIR=str(tsp_dir), TS_MAXFINISHED="10")
    tsp = ensure_tsp()
    try:
        subprocess.run([corral, "up"], env=env, check=True, capture_output=True, timeout=60)
        from corral.client import Connection

        conn = Connection(str(home), autostart=False)
        t0 = time.perf_counter()
        workdir = str(base)
        for i in range(args.running):
            gpus = {"gpus": 1} if i < 4 else {}
            conn.request("POST", "/v1/jobs", {"jobs": [{"flags": {"command": ["sleep", "3600"], "requests": {
                "cpu": "10m", "memory": "8Mi"}, "workdir": workdir, **gpus}}]})
        left = args.jobs - args.running
        while left > 0:
            n = min(500, left)
            conn.request("POST", "/v1/jobs", {"jobs": [{"flags": {"command": ["true"], "hold": True, "workdir": workdir,
                                                                  "requests": {"cpu": "10m"}}}] * n})
            left -= n
        fill = time.perf_counter() - t0
        deadline = time.time() + 120
        while conn.request("GET", "/v1/health")["running"] < args.running and time.time() < deadline:
            time.sleep(0.2)
        health = conn.request("GET", "/v1/health")
        token = conn.request("POST", "/v1/tokens", {"name": "bench", "scope": "read"})["token"]
        sock = str(home / "corral.sock")
        tcp = ("127.0.0.1", port)
        # What a Prometheus scrape and each dashboard page ask for (src/corral/ui/app.js),
        # timed as one page: its calls one after another.
        job = args.running
        pages = [
            ("/metrics (a scrape)", ["/metrics"]),
            ("queue page", ["/v1/jobs?state=Pending&limit=100", "/v1/jobs?state=Running&limit=200",
                            "/v1/jobs?state=Succeeded&state=Failed&state=Cancelled&last=15", "/v1/whoami"]),
            ("nodes page", ["/v1/nodes", "/v1/top"]),
            ("job page", [f"/v1/jobs/{job}", f"/v1/ui/jobs/{job}/series?points=300", f"/v1/ui/jobs/{job}/log"]),
            ("usage page (24 h)", ["/v1/ui/usage/timeline?since=24h&by=user&buckets=24",
                                   "/v1/ui/usage/timeline?since=24h&by=queue&buckets=24"]),
            ("`corral usage --since 7d` (not the dashboard's)", ["/v1/usage?since=7d&by=user"]),
        ]
        rows = []
        for name, paths in pages:
            size = 0
            for path in paths:
                status, body = http(sock, path)
                size += len(body)
                if status != 200:
                    print(f"warning: {path} answered {status}: {body[:200]!r}", file=sys.stderr)
            p50, p95 = timed(lambda: [http(sock, path) for path in paths], args.runs)
            t50, t95 = timed(lambda: [http(tcp, path, token) for path in paths], args.runs)
            rows.append((name, size, p50, p95, t50, t95))
        cli50, cli95 = timed(lambda: subprocess.run([corral, "ps"], env=env, capture_output=True), max(5, args.runs // 3))
        tsp_row = None
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}   # its server keeps the pipes
        if tsp:
            subprocess.run([tsp, "-S", "1"], env=tsp_env, **quiet)
            gate = tsp_dir / "go"              # its running job ends when the benchmark does
            subprocess.run([tsp, "sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.2; done"], env=tsp_env, **quiet)
            for _ in range(TSP_QUEUED - 1):
                subprocess.run([tsp, "true"], env=tsp_env, **quiet)
            tsp_row = timed(lambda: subprocess.run([tsp, "-l"], env=tsp_env, **quiet), max(5, args.runs // 3))
        corral_small = timed(lambda: subprocess.run([corral, "ps", "-n", str(TSP_QUEUED)], env=env, **quiet),
                             max(5, args.runs // 3))
    finally:
        subprocess.run([corral, "down"], env=env, capture_output=True, timeout=60)
        if tsp:
            (tsp_dir / "go").touch()
            subprocess.run([tsp, "-w"], env=tsp_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
            subprocess.run([tsp, "-K"], env=tsp_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        kill_jobs(home)
        remove_cgroups(str(home))
        shutil.rmtree(base, ignore_errors=True)

    print(f"# API reads with {args.jobs:,} jobs in the store, {health['running']} running "
          f"({cpu_model()}, {os.cpu_count()} cores); filled in {fill:.1f} s; {args.runs} runs each")
    print(f"\n| what (its calls in a row) | bytes | socket p50 | socket p95 | TCP+token p50 | TCP+token p95 | target |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, size, p50, p95, t50, t95 in rows:
        ok = "met" if max(p50, t50) <= TARGET_MS else "MISSED"
        print(f"| {name} | {size:,} | {p50:.1f} ms | {p95:.1f} ms | {t50:.1f} ms | {t95:.1f} ms | {ok} (<= 50 ms) |")
    print(f"\n| listing the queue from a shell | corral | task-spooler {tsp_version() or '-'} |")
    print("|---|---:|---:|")
    peer = f"{tsp_row[0]:.1f} ms (p95 {tsp_row[1]:.1f})" if tsp_row else "not installed"
    print(f"| {TSP_QUEUED:,} jobs listed (`corral ps -n {TSP_QUEUED}` / `tsp -l`, {TSP_QUEUED:,} queued) | "
          f"{corral_small[0]:.1f} ms (p95 {corral_small[1]:.1f}) | {peer} |")
    print(f"| `corral ps` (pending + running of {args.jobs:,}) | {cli50:.1f} ms (p95 {cli95:.1f}) | - |")
    return 0


def remove_cgroups(home: str) -> None:
    """The daemon's parent cgroups: its shutdown leaves them while the jobs still run."""
    if os.geteuid() != 0:
        return
    from corral.executors.local.cgroups import remove_parent
    from corral.executors.local.enforcement import home_parents

    time.sleep(1.0)                      # the supervisors remove their jobs' groups as the jobs die
    for support in home_parents(home):
        remove_parent(support)


def kill_jobs(home: Path) -> None:
    """The benchmark's own sleeping jobs (the daemon leaves running jobs running)."""
    import signal

    from corral.executors.local.supervisor import read_state

    for jobdir in home.glob("jobs/*"):
        try:
            state = read_state(str(jobdir))
            if state is not None and state.job is not None:
                os.killpg(state.job, signal.SIGKILL)
        except OSError:
            pass


if __name__ == "__main__":
    sys.exit(main())
