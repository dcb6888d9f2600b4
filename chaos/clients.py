"""Concurrent clients: many clients submit at once (each submit a request of its own,
with an idempotency key; some sent twice, as a client retrying after a lost answer
would), while others read; then one request cancels everything while readers go on.
Every acknowledged submit must be stored exactly once, and no request may fail.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid

from harness import Home, Result, wait_for


class Client(threading.Thread):
    def __init__(self, home: Home, n: int, number: int):
        super().__init__(daemon=True)
        self.home, self.n, self.number = home, n, number
        self.acked: dict[str, int] = {}       # key -> job id
        self.repeats_differing: list[str] = []
        self.errors: list[str] = []
        self.latencies: list[float] = []

    def run(self) -> None:
        from corral.client import Connection
        from corral.errors import CorralError

        conn = Connection(self.home.home, autostart=False, timeout=120.0)
        for i in range(self.n):
            key = uuid.uuid4().hex
            body = {"jobs": [{"flags": {"command": ["true"], "hold": True, "requests": {"cpu": "10m"},
                                        "name": f"k{self.number}-{i}", "workdir": self.home.workdir}}],
                    "idempotency_key": key}
            try:
                started = time.perf_counter()
                job_id = conn.request("POST", "/v1/jobs", body)["jobs"][0]["id"]
                self.latencies.append(time.perf_counter() - started)
                self.acked[key] = job_id
                if i % 10 == 3:                # a retry of the same batch: the same job, nothing new
                    again = conn.request("POST", "/v1/jobs", body)["jobs"][0]["id"]
                    if again != job_id:
                        self.repeats_differing.append(f"key {key}: {job_id} then {again}")
                if i % 25 == 0:
                    conn.request("GET", "/v1/jobs?limit=50")
            except (CorralError, OSError) as exc:
                self.errors.append(f"client {self.number} submit {i}: {exc}")


class Reader(threading.Thread):
    """Asks for the health and one job again and again until told to stop."""

    def __init__(self, home: Home, job_id: int):
        super().__init__(daemon=True)
        self.home, self.job_id = home, job_id
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.errors: list[str] = []

    def run(self) -> None:
        from corral.client import Connection
        from corral.errors import CorralError

        conn = Connection(self.home.home, autostart=False, timeout=120.0)
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                conn.request("GET", f"/v1/jobs/{self.job_id}")
            except (CorralError, OSError) as exc:
                self.errors.append(str(exc))
            self.latencies.append(time.perf_counter() - started)
            time.sleep(0.01)


def run(short: bool) -> Result:
    result = Result("clients")
    n_clients, per_client = (20, 20) if short else (20, 250)
    home = Home(prefix="cxk")
    try:
        home.write_config("simulate_gpus: 2\n")
        home.up()
        clients = [Client(home, per_client, i) for i in range(n_clients)]
        started = time.perf_counter()
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        elapsed = time.perf_counter() - started
        acked = {k: v for c in clients for k, v in c.acked.items()}
        stored = home.jobs()
        ids = [j["id"] for j in stored]
        latencies = sorted(x for c in clients for x in c.latencies)
        errors = [e for c in clients for e in c.errors]
        differing = [d for c in clients for d in c.repeats_differing]
        repeats = sum(1 for c in clients for i in range(len(c.acked)) if i % 10 == 3)

        reader = Reader(home, ids[0] if ids else 1)
        reader.start()
        time.sleep(0.3)
        cancel_started = time.perf_counter()
        answer = home.request("POST", "/v1/jobs/cancel", {"ids": ids}, timeout=300)
        cancel_seconds = time.perf_counter() - cancel_started
        reader.stop.set()
        reader.join()
        during = [x for x in reader.latencies] or [0.0]
        cancelled = wait_for(lambda: all(j["state"] == "Cancelled" for j in home.jobs()), timeout=120)

        result.figures.update({
            "clients": n_clients,
            "submits acknowledged": f"{len(acked)} of {n_clients * per_client}",
            "repeated submits (same key)": repeats,
            "jobs stored": len(stored),
            "stored once": len(stored) == len(acked) == len(set(acked.values())) and set(ids) == set(acked.values()),
            "failed requests": len(errors) + len(reader.errors),
            "submits/s": round(len(acked) / elapsed, 1),
            "submit latency p50 / max": f"{statistics.median(latencies) * 1000:.0f} / {latencies[-1] * 1000:.0f} ms"
            if latencies else "-",
            f"cancel of {len(ids)} in one request": f"{cancel_seconds:.2f} s (HTTP {answer.status})",
            "reads during it: max latency": f"{max(during) * 1000:.0f} ms over {len(reader.latencies)} reads",
        })
        result.check(not errors, f"{len(errors)} requests failed, e.g. {errors[:3]}")
        result.check(not reader.errors, f"reads failed during the cancel: {reader.errors[:3]}")
        result.check(len(acked) == n_clients * per_client, "not every submit was acknowledged")
        result.check(len(stored) == len(acked), f"{len(stored)} jobs stored for {len(acked)} acknowledged submits")
        result.check(len(set(acked.values())) == len(acked), "two submits were told the same job id")
        result.check(set(ids) == set(acked.values()), "the stored ids are not the acknowledged ones")
        result.check(not differing, f"a repeated submit got another job: {differing[:3]}")
        result.check(answer.status == 200, f"the big cancel answered {answer.status}: {answer.body[:200]!r}")
        result.check(bool(cancelled), "not every job was cancelled")
        result.check("Traceback" not in home.daemon_log(), "a traceback in daemon.log")
    finally:
        home.close()
    return result
