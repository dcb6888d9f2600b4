"""Plain-text tables and small formatters for the CLI (no heavy imports)."""

from __future__ import annotations

import re
import time

#: Control characters (C0 but tab, DEL, C1): what a terminal would obey, not show.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with its control characters escaped (``\\x1b``): what one user's job
    says (its command, workdir, launch error) is printed to other users' terminals,
    which must not take an escape sequence or a line break from it."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def table(headers: list[str], rows: list[list[str]]) -> str:
    rows = [[printable(cell) for cell in row] for row in rows]
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
        text = f"{head}{job.get('message') or job.get('reason', '')}".strip()
        start = job.get("estimated_start")
        if start:
            text += f" (starts in ~{duration(start - time.time())})" if start > time.time() else " (starts now)"
        return text
    if state == "Running":
        if job.get("reason") == "GpuIdle" and job.get("message"):
            return f"GpuIdle: {job['message']}"
        return job.get("reason", "")
    return f"{job.get('reason', '')}: {job.get('message', '')}".strip(": ")


def requests(job: dict) -> str:
    """``cpu=1,mem=8Gi,gpu=A100:2``; with ``nodes=2`` last for a job on several nodes (the
    amounts are then per node)."""
    req = job.get("requests", {})
    models = "|".join(job.get("gpu_models") or ())
    parts = []
    for key, label in (("cpu", "cpu"), ("memory", "mem"), ("nvidia.com/gpu", "gpu")):
        if key in req:
            parts.append(f"{label}={models + ':' if key == 'nvidia.com/gpu' and models else ''}{req[key]}")
    parts += [f"{k}={v}" for k, v in req.items() if k not in ("cpu", "memory", "nvidia.com/gpu")]
    if (job.get("nodes") or 1) > 1:
        parts.append(f"nodes={job['nodes']}")
    return ",".join(parts)


_UNITS = ("B", "Ki", "Mi", "Gi", "Ti", "Pi")


def size(amount: float | None) -> str:
    """Bytes in binary units with one decimal: 3328599654 -> "3.1Gi"."""
    if amount is None:
        return "-"
    value, unit = float(amount), 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value /= 1024
        unit += 1
    if unit == 0:
        return f"{int(value)}B"
    return f"{value:.1f}{_UNITS[unit]}"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def usage_lines(job: dict) -> list[str]:
    """The Usage and Efficiency part of ``corral show`` (seff-like), with hints."""
    out: list[str] = []
    live = job.get("live")
    if live:
        gpu = ""
        if live.get("gpu_util") is not None or live.get("gpu_memory") is not None:
            gpu = (f", GPU {pct(live.get('gpu_util'))} util, {size(live.get('gpu_memory'))} GPU memory"
                   + (f", {live['gpu_power']:.0f} W" if live.get("gpu_power") is not None else ""))
        cpu = "-" if live.get("cpu") is None else f"{live['cpu']:.2f}"
        out.append(f"  Now:       {cpu} CPUs busy, memory {size(live.get('memory'))} "
                   f"(peak {size(live.get('memory_peak'))}){gpu} [{live.get('source') or '-'}]")
        if live.get("idle_for"):
            out.append(f"  Idle GPUs: idle for {duration(live['idle_for'])}")
    eff = job.get("efficiency") or {}
    if "memory_peak" in eff or "cpu_efficiency" in eff:
        out.append("  Efficiency:")
        req = eff.get("memory_request")
        mem = f"    Memory:  peak {size(eff.get('memory_peak'))}"
        if req:
            mem += f" of {size(req)} requested ({eff['memory_efficiency'] * 100:.0f}%)"
        out.append(mem)
        if eff.get("cpu_efficiency") is not None:
            out.append(f"    CPU:     {eff['cpu_used']:.2f} CPUs busy on average, "
                       f"{eff['cpu_efficiency'] * 100:.0f}% of the allocation "
                       f"({duration(eff.get('cpu_seconds'))} CPU time)")
        if "gpu_hours" in eff:
            if eff.get("gpu_util") is None and eff.get("gpu_memory_peak") is None:
                seen = "utilization and memory not reported by the GPUs"
            else:
                seen = (f"mean utilization {pct(eff.get('gpu_util'))}, peak GPU memory "
                        f"{size(eff.get('gpu_memory_peak'))}")
            out.append(f"    GPU:     {seen}, {eff['gpu_hours']:.3g} GPU-hours "
                       f"({eff.get('idle_gpu_hours', 0):.3g} idle), {eff.get('energy_kwh', 0):.3g} kWh")
    for hint in eff.get("hints") or []:
        out.append(f"  Hint:      {hint}")
    return out


def fit(headers: list[str], rows: list[list[str]], width: int, shrink: tuple[str, ...]) -> list[list[str]]:
    """``rows`` with the cells of the ``shrink`` columns (by header, first named first)
    cut, ending in ``…``, so that :func:`table` fits in ``width`` characters."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    over = sum(widths) + 2 * (len(widths) - 1) - width
    cuts: dict[int, int] = {}
    for name in shrink:
        if over <= 0:
            break
        if name not in headers:
            continue
        i = headers.index(name)
        floor = max(len(name), 8)
        cut = min(over, widths[i] - floor)
        if cut > 0:
            cuts[i] = widths[i] - cut
            over -= cut
    if not cuts:
        return rows
    return [[c if i not in cuts or len(c) <= cuts[i] else c[:cuts[i] - 1] + "…" for i, c in enumerate(r)]
            for r in rows]
