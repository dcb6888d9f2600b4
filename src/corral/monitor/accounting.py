"""Accounting: who used what, over a window -- pure arithmetic, no I/O, no clock.

What a job *held* is billed from its allocation and how long it held it inside the
window (like Slurm's TRES billing): CPU-hours (cores x hours), memory GiB-hours and
GPU-hours. What it *did* comes from the usage series the daemon records: CPU time
actually used, energy drawn by its GPUs (from NVML power) and wasted GPU-hours (GPUs held
while under the idle threshold). Optional rates turn these into a cost.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable

from ..job import Job
from ..resources import CPU, GPU, MEMORY
from ..store.base import UsageRow

GROUPINGS = ("user", "job", "queue")
_GIB = float(1 << 30)


@dataclass
class UsageLine:
    key: str                      # the user name, or the job id
    jobs: int = 0
    hours: float = 0.0            # wall-clock hours held (sum over jobs)
    cpu_hours: float = 0.0        # allocated cores x hours
    cpu_used_hours: float = 0.0   # CPU time actually used
    memory_gib_hours: float = 0.0
    gpu_hours: float = 0.0
    energy_kwh: float = 0.0
    wasted_gpu_hours: float = 0.0
    cost: float | None = None
    name: str = ""                # the job's name (by job)
    user: str = ""                # the job's user (by job)

    @property
    def cpu_efficiency(self) -> float | None:
        return self.cpu_used_hours / self.cpu_hours if self.cpu_hours > 0 else None

    def to_dict(self) -> dict:
        out = asdict(self)
        out["cpu_efficiency"] = self.cpu_efficiency
        return out


def held_seconds(job: Job, since: float, now: float) -> float:
    """How long ``job`` held its allocation inside ``[since, now]``."""
    if job.started_at is None:
        return 0.0
    end = job.ended_at if job.ended_at is not None else now
    return max(0.0, min(end, now) - max(job.started_at, since))


def account(jobs: Iterable[Job], rows: Iterable[UsageRow], *, since: float, now: float,
            by: str = "user", cost: dict | None = None) -> list[UsageLine]:
    """Usage lines grouped ``by`` user, job or queue, busiest (GPU-hours, then CPU-hours) first.

    ``rows`` are usage-series rows; only the part of each row inside the window counts
    (pro rata). Jobs that held nothing inside the window are left out.
    """
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}, got {by!r}")
    lines: dict[str, UsageLine] = {}
    job_key: dict[int, str] = {}
    held_gpu_hours: dict[int, float] = {}
    for job in jobs:
        held = held_seconds(job, since, now)
        if held <= 0 or job.allocation is None:
            continue
        key = (job.user or "?") if by == "user" else job.spec.queue if by == "queue" else str(job.id)
        job_key[job.id] = key
        line = lines.get(key)
        if line is None:
            line = lines[key] = UsageLine(key=key)
            if by == "job":
                line.name, line.user = job.spec.name, job.user
        req = job.allocation.requests
        hours = held / 3600.0
        line.jobs += 1
        line.hours += hours
        line.cpu_hours += req.get(CPU, 0) / 1000.0 * hours
        line.memory_gib_hours += req.get(MEMORY, 0) / _GIB * hours
        line.gpu_hours += req.get(GPU, 0) * hours
        held_gpu_hours[job.id] = req.get(GPU, 0) * hours
    # Measured amounts, per job first: a job's wasted GPU-hours are capped at the GPU-hours
    # it held in the window (samples straddle its start and end by up to one period).
    measured: dict[int, list[float]] = {}
    for row in rows:
        if row.job_id not in job_key:
            continue
        span = row.t1 - row.t0
        if span <= 0:                     # a point: in the window or not
            share = 1.0 if since <= row.t0 <= now else 0.0
        else:
            share = max(0.0, min(row.t1, now) - max(row.t0, since)) / span
        if share <= 0:
            continue
        m = measured.setdefault(row.job_id, [0.0, 0.0, 0.0])
        m[0] += row.cpu_seconds * share / 3600.0
        m[1] += row.energy_j * share / 3.6e6
        m[2] += row.idle_gpu_seconds * share / 3600.0
    for job_id, (cpu_used, kwh, wasted) in measured.items():
        line = lines[job_key[job_id]]
        line.cpu_used_hours += cpu_used
        line.energy_kwh += kwh
        line.wasted_gpu_hours += min(wasted, held_gpu_hours[job_id])
    if cost:
        for line in lines.values():
            line.cost = price(line, cost)
    return sorted(lines.values(), key=lambda l: (-l.gpu_hours, -l.cpu_hours, _natural(l.key)))


def _natural(key: str) -> tuple:
    """Job ids sort as numbers (9 before 10), names as text."""
    return (0, int(key), "") if key.isdigit() else (1, 0, key)


def price(line: UsageLine, rates: dict) -> float:
    """Cost of one line: CPU-hours, GiB-hours, GPU-hours and kWh at their hourly rates."""
    return (line.cpu_hours * float(rates.get("cpu", 0.0))
            + line.memory_gib_hours * float(rates.get("memory", 0.0))
            + line.gpu_hours * float(rates.get(GPU, 0.0))
            + line.energy_kwh * float(rates.get("energy", 0.0)))


def totals(lines: list[UsageLine]) -> UsageLine:
    out = UsageLine(key="total")
    for line in lines:
        out.jobs += line.jobs
        out.hours += line.hours
        out.cpu_hours += line.cpu_hours
        out.cpu_used_hours += line.cpu_used_hours
        out.memory_gib_hours += line.memory_gib_hours
        out.gpu_hours += line.gpu_hours
        out.energy_kwh += line.energy_kwh
        out.wasted_gpu_hours += line.wasted_gpu_hours
        if line.cost is not None:
            out.cost = (out.cost or 0.0) + line.cost
    return out
