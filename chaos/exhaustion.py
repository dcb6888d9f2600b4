"""Resource exhaustion by jobs: a job floods its log, one allocates far past its memory
limit, one forks until it cannot, one opens files until it cannot -- all at once, next
to a well-behaved job. Each must be stopped at its own limit with a reason that says
so, the others must not notice, nothing may be left running, and the daemon must keep
answering the whole time.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from harness import Home, Result, is_root, wait_for

LOG_LIMIT = 8 << 20
PIDS_LIMIT = 64
TERMINAL = ("Succeeded", "Failed", "Cancelled")

FORKER = r"""
import os, time
n = 0
for _ in range(1000):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(120)
        os._exit(0)
    n += 1
print("forked", n, flush=True)
"""

FILES = r"""
import os
fds = []
try:
    while True:
        fds.append(os.open("/dev/null", os.O_RDONLY))
except OSError as exc:
    print("opened", len(fds), exc.strerror, flush=True)
"""


class Pinger(threading.Thread):
    """Asks the daemon for its health every 50 ms; records the slowest answer."""

    def __init__(self, home: Home):
        super().__init__(daemon=True)
        self.home = home
        self.stop = threading.Event()
        self.worst = 0.0
        self.failed = 0
        self.count = 0

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.perf_counter()
            if self.home.request("GET", "/v1/health", timeout=30).status != 200:
                self.failed += 1
            self.worst = max(self.worst, time.perf_counter() - started)
            self.count += 1
            time.sleep(0.05)


def run(short: bool) -> Result:
    result = Result("exhaustion")
    home = Home(prefix="cxe")
    flood_mib = 64 if short else 512
    try:
        home.write_config(f"simulate_gpus: 2\nlog_limit: {LOG_LIMIT}\npids_limit: {PIDS_LIMIT}\n")
        home.up()
        pinger = Pinger(home)
        pinger.start()
        sub = lambda *a: home.cli_json("submit", "--cpus", "100m", *a)["id"]  # noqa: E731
        jobs = {
            "log flood": sub("--name", "flood", "--", "sh", "-c", f"head -c {flood_mib << 20} /dev/zero | tr '\\0' x"),
            "fork bomb": sub("--name", "forks", "--", "python3", "-c", FORKER),
            "open files": sub("--name", "files", "--", "python3", "-c", FILES),
            "good": sub("--name", "good", "--gpus", "1", "--", "sh", "-c", "sleep 1; echo fine"),
        }
        if is_root():      # a memory limit is enforced with a cgroup
            jobs["memory hog"] = sub("--name", "hog", "--mem", "64Mi", "--", "python3", "-c",
                                     "x = bytearray(1 << 30); print(len(x))")
        done = wait_for(lambda: all(home.request("GET", f"/v1/jobs/{i}").json()["state"] in TERMINAL
                                    for i in jobs.values()), timeout=300, interval=0.2)
        pinger.stop.set()
        pinger.join()
        views = {name: home.request("GET", f"/v1/jobs/{i}").json() for name, i in jobs.items()}
        result.check(bool(done), "jobs still running after 5 minutes")

        flood = views["log flood"]
        log_size = Path(home.home, "jobs", str(flood["id"]), "stdout.log").stat().st_size
        cut = any(e["reason"] == "LogTruncated" for e in flood.get("events") or [])
        result.figures["log flood"] = (f"wrote {flood_mib} MiB, kept {log_size / 2**20:.1f} MiB (limit "
                                       f"{LOG_LIMIT >> 20} MiB), LogTruncated event: {cut}")
        result.check(log_size <= LOG_LIMIT + 4096, f"the flooding job's log grew to {log_size} bytes")
        result.check(cut, "no LogTruncated event for the flooding job")

        forks = home.cli("logs", str(jobs["fork bomb"])).stdout.strip()
        result.figures["fork bomb"] = f"{forks or '(nothing printed)'} (pids limit {PIDS_LIMIT}), " \
                                      f"{views['fork bomb']['state']}"
        if is_root():
            n = int(forks.split()[-1]) if forks.startswith("forked") else -1
            result.check(0 <= n < PIDS_LIMIT, f"the fork bomb forked {n} times under a pids limit of {PIDS_LIMIT}")

        files = home.cli("logs", str(jobs["open files"])).stdout.strip()
        result.figures["open files"] = f"{files or '(nothing printed)'}, {views['open files']['state']}"
        result.check(files.startswith("opened"), f"the file-opening job printed {files!r}")

        if "memory hog" in views:
            hog = views["memory hog"]
            result.figures["memory hog"] = f"asked 1 GiB under a 64 MiB limit: {hog['state']} {hog['reason']}"
            result.check(hog["reason"] in ("OOMKilled", "MemoryLimitExceeded"),
                         f"the memory hog ended {hog['state']} {hog['reason']}")
        good = views["good"]
        result.figures["the well-behaved job"] = f"{good['state']}"
        result.check(good["state"] == "Succeeded" and home.cli("logs", str(good["id"])).stdout.strip() == "fine",
                     f"the well-behaved job ended {good['state']} {good['reason']}")
        left = wait_for(lambda: not home.job_pids(), timeout=20)
        result.figures["job processes left"] = len(home.job_pids())
        result.check(bool(left), f"job processes still alive after their jobs ended: {home.job_pids()}")
        result.figures["daemon answers"] = (f"{pinger.count} health checks, {pinger.failed} failed, "
                                            f"slowest {pinger.worst * 1000:.0f} ms")
        result.check(pinger.failed == 0, f"{pinger.failed} health checks failed while jobs exhausted resources")
        result.check("Traceback" not in home.daemon_log(), "a traceback in daemon.log")
    finally:
        home.close()
    return result
