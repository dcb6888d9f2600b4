"""A job's efficiency, like Slurm's ``seff``, with right-sizing hints: pure arithmetic.

Compares what a job asked for with what it used -- peak memory against the memory
request, CPU time against cores x elapsed, mean GPU utilization -- and turns large gaps
into one-line advice: ``peak memory 3.1Gi of 16Gi requested: request 4Gi next time``.
"""

from __future__ import annotations

import math
from typing import Any

from ..job import Job, Reason
from ..resources import CPU, GPU, MEMORY, format_quantity
from ..store.base import JobUsage

_MI = 1 << 20
_GI = 1 << 30
#: Headroom added to the peak when suggesting a request.
HEADROOM = 1.2
#: Below this fraction of the request used, suggest asking for less.
WASTE = 0.5
#: Mean GPU utilization under this (percent) earns a hint.
LOW_GPU = 20.0


def suggest_memory(peak: int) -> int:
    """A request with headroom over ``peak``: whole GiB from 1Gi up, else 256Mi steps."""
    want = peak * HEADROOM
    if want >= _GI:
        return math.ceil(want / _GI) * _GI
    return max(256 * _MI, math.ceil(want / (256 * _MI)) * 256 * _MI)


def suggest_cpu(used_cores: float) -> int:
    """Whole cores (millicores) with headroom over the mean use; at least one."""
    return max(1, math.ceil(used_cores * HEADROOM - 1e-9)) * 1000


def summarize(job: Job, usage: JobUsage | None, now: float) -> dict[str, Any]:
    """The efficiency report of one job (running or finished)."""
    alloc = job.allocation
    requests = alloc.requests if alloc is not None else job.spec.demand
    out: dict[str, Any] = {"hints": []}
    if job.started_at is None:
        return out
    elapsed = max((job.ended_at or now) - job.started_at, 0.0)
    out["elapsed"] = elapsed
    mem_req = requests.get(MEMORY, 0)
    mem_lim = job.spec.limits.get(MEMORY, 0)
    cpu_req = requests.get(CPU, 0)
    gpus = requests.get(GPU, 0)
    hints: list[str] = out["hints"]
    if usage is not None:
        peak = usage.memory_peak
        out["memory_peak"] = peak
        out["memory_request"] = mem_req or None
        if mem_req:
            out["memory_efficiency"] = peak / mem_req
        if cpu_req and elapsed > 0:
            out["cpu_used"] = usage.cpu_seconds / elapsed             # mean cores busy
            out["cpu_efficiency"] = usage.cpu_seconds / (cpu_req / 1000.0 * elapsed)
        out["cpu_seconds"] = usage.cpu_seconds
        if gpus:
            out["gpu_util"] = usage.gpu_util
            out["gpu_memory_peak"] = usage.gpu_memory_peak
            out["gpu_hours"] = usage.gpu_seconds / 3600.0
            out["idle_gpu_hours"] = usage.idle_gpu_seconds / 3600.0
            out["energy_kwh"] = usage.energy_j / 3.6e6
        # Hints.
        if job.reason in (Reason.OOM_KILLED, Reason.MEMORY_LIMIT_EXCEEDED):
            pass                          # said below, with or without usage data
        elif mem_req >= 256 * _MI and peak and peak < WASTE * mem_req:
            suggestion = suggest_memory(peak)
            if suggestion < mem_req:
                hints.append(f"peak memory {format_quantity(MEMORY, peak)} of {format_quantity(MEMORY, mem_req)} "
                             f"requested: request {format_quantity(MEMORY, suggestion)} next time")
        used = out.get("cpu_used")
        if used is not None and cpu_req >= 2000 and out["cpu_efficiency"] < WASTE and elapsed >= 60:
            suggestion = suggest_cpu(used)
            if suggestion < cpu_req:
                hints.append(f"used {used:.1f} of {format_quantity(CPU, cpu_req)} CPUs on average: "
                             f"request {format_quantity(CPU, suggestion)} next time")
        util = usage.gpu_util
        if gpus and util is not None and util < LOW_GPU and elapsed >= 60:
            hints.append(f"mean GPU utilization {util:.0f}% on {gpus} GPU{'s' if gpus > 1 else ''}: "
                         "the GPUs mostly waited (data loading, CPU work, idle) -- fewer GPUs or a faster "
                         "input pipeline would do")
    if job.reason in (Reason.OOM_KILLED, Reason.MEMORY_LIMIT_EXCEEDED) and (mem_lim or mem_req):
        limit = mem_lim or mem_req
        peak = usage.memory_peak if usage is not None else 0
        more = suggest_memory(max(peak, limit) * 3 // 2)
        hints.insert(0, f"ran out of memory at its {format_quantity(MEMORY, limit)} limit: "
                        f"request more next time, e.g. {format_quantity(MEMORY, more)}")
    return out
