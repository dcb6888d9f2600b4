"""Plain-text tables and small formatters for the CLI (no heavy imports)."""

from __future__ import annotations

import time


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()]
    for row in rows:
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return "\n".join(lines)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(max(seconds, 0))
    if s < 60:
        return f"{s}s" if seconds >= 1 or seconds == 0 else f"{seconds:.1f}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def ago(ts: float | None, now: float | None = None) -> str:
    if not ts:
        return "-"
    return duration((now or time.time()) - ts)


def runtime(job: dict, now: float | None = None) -> str:
    start, end = job.get("started_at"), job.get("ended_at")
    if not start:
        return "-"
    return duration((end or now or time.time()) - start)


def ids(values: list[int]) -> str:
    """[0, 1, 2, 5] -> "0-2,5"."""
    if not values:
        return "-"
    values = sorted(values)
    parts = []
    start = prev = values[0]
    for v in values[1:] + [None]:  # type: ignore[list-item]
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return ",".join(parts)


def why(job: dict) -> str:
    state = job["state"]
    if state == "Pending":
        pos = job.get("queue_position")
        head = f"#{pos} " if pos else ""
        return f"{head}{job.get('message') or job.get('reason', '')}".strip()
    if state == "Running":
        return job.get("reason", "")
    return f"{job.get('reason', '')}: {job.get('message', '')}".strip(": ")


def requests(job: dict) -> str:
    req = job.get("requests", {})
    parts = []
    for key, label in (("cpu", "cpu"), ("memory", "mem"), ("nvidia.com/gpu", "gpu")):
        if key in req:
            parts.append(f"{label}={req[key]}")
    parts += [f"{k}={v}" for k, v in req.items() if k not in ("cpu", "memory", "nvidia.com/gpu")]
    return ",".join(parts)
