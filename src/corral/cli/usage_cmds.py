"""Monitoring commands: top (live view), usage (accounting), queues, prune (retention).
Plain dicts over :class:`~corral.client.Connection`, as in :mod:`.job_cmds`."""

from __future__ import annotations

import sys
import time

from ..client import Connection, urlencode
from . import format as fmt


def _json(data) -> None:
    import json

    print(json.dumps(data, indent=2, sort_keys=True))


# top -------------------------------------------------------------------------------------
def frame(data: dict, now: float | None = None, *, interval: float | None = None, width: int | None = None) -> str:
    """One screen of ``corral top``: ``interval`` is the refresh interval in use (None:
    one frame); ``width``: every line cut to it (the terminal's)."""
    now = now or data.get("now") or time.time()
    jobs = data.get("jobs", [])
    enforcement = (data.get("enforcement") or {}).get("description", "")
    every = f"every {interval:g}s - " if interval else ""
    head = (f"corral top - {every}{time.strftime('%H:%M:%S', time.localtime(now))}  "
            f"{len(jobs)} running, {data.get('pending', 0)} pending  "
            f"(sampled every {data.get('sample_interval') or '-'}s; limits {enforcement or '-'})")
    rows = []
    for j in jobs:
        live = j.get("live") or {}
        mem_limit = j.get("limits", {}).get("memory")
        mem = fmt.size(live.get("memory")) + (f"/{mem_limit}" if mem_limit else "")
        cpu_limit = j.get("limits", {}).get("cpu")
        cpu = ("-" if live.get("cpu") is None else f"{live['cpu']:.2f}") + (f"/{cpu_limit}" if cpu_limit else "")
        gpu_mem = fmt.size(live.get("gpu_memory")) if live.get("gpu_memory") is not None else "-"
        power = f"{live['gpu_power']:.0f}W" if live.get("gpu_power") is not None else "-"
        idle = fmt.duration(live.get("idle_for")) if live.get("idle_for") else "-"
        rows.append([str(j["id"]), j.get("name") or "-", j.get("user") or "-",
                     fmt.duration(now - j["started_at"]) if j.get("started_at") else "-",
                     cpu, mem, fmt.size(live.get("memory_peak")), fmt.ids(j.get("gpus", [])),
                     fmt.pct(live.get("gpu_util")), gpu_mem, power, idle])
    out = [head, "", fmt.table(["ID", "NAME", "USER", "TIME", "CPU", "MEM", "PEAK", "GPUS", "GPU%", "GPUMEM",
                                "POWER", "IDLE"], rows) if rows else "no running jobs"]
    gpus = data.get("gpus", [])
    if gpus:
        grows = []
        for g in gpus:
            s = g.get("sample") or {}
            used = s.get("memory_used")
            grows.append([str(g["index"]), g["model"] + (" (simulated)" if g.get("simulated") else ""),
                          fmt.pct(s.get("utilization")),
                          (fmt.size(used) if used is not None else "-") + "/" + fmt.size(g.get("memory")),
                          f"{s['power']:.0f}W" if s.get("power") is not None else "-",
                          f"job {g['job']}" if g.get("job") else "free"])
        out += ["", fmt.table(["GPU", "MODEL", "UTIL", "MEMORY", "POWER", "HELD BY"], grows)]
    return cut("\n".join(out), width)


def cut(text: str, width: int | None) -> str:
    """Every line of ``text`` at most ``width`` characters (None: as it is)."""
    if not width or width <= 0:
        return text
    return "\n".join(line[:width] for line in text.split("\n"))


def _terminal_width() -> int | None:
    import os

    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns
    except (OSError, ValueError):
        return None



def cmd_top(args) -> int:
    conn = Connection(args.home)
    if args.json:
        _json(conn.request("GET", "/v1/top"))
        return 0
    interval = args.interval if args.interval and args.interval > 0 else 2.0
    if args.once or not sys.stdout.isatty():
        print(frame(conn.request("GET", "/v1/top")))
        return 0
    from . import topkeys

    try:
        with topkeys.Keys(sys.stdin) as keys:
            footer = "(q or Ctrl-C to quit)" if keys.active else "(Ctrl-C to quit)"
            while True:
                width = _terminal_width()
                text = frame(conn.request("GET", "/v1/top"), interval=interval, width=width)
                sys.stdout.write("\x1b[H\x1b[2J" + text + "\n\n" + cut(footer, width) + "\n")
                sys.stdout.flush()
                if keys.wait(interval) == "quit":
                    return 0
    except KeyboardInterrupt:
        return 0


# usage -----------------------------------------------------------------------------------
def cmd_usage(args) -> int:
    query = urlencode({"since": args.since or "7d", "by": args.by or "user"})
    data = Connection(args.home).request("GET", f"/v1/usage?{query}")
    if args.json:
        _json(data)
        return 0
    by = data["by"]
    currency = data.get("currency") or ""
    headers = [by.upper()] + (["NAME", "USER"] if by == "job" else []) + [
        "JOBS", "HOURS", "CPU-H", "CPU-EFF", "MEM-GiB-H", "GPU-H", "WASTED-GPU-H", "ENERGY-kWh"]
    with_cost = any(line.get("cost") is not None for line in data["lines"])
    if with_cost:
        headers.append(f"COST{(' ' + currency) if currency else ''}")
    rows = []
    for line in data["lines"] + [data["total"]]:
        eff = line.get("cpu_efficiency")
        row = [line["key"]] + ([line.get("name") or "-", line.get("user") or "-"] if by == "job" else []) + [
            str(line["jobs"]), _num(line["hours"]), _num(line["cpu_hours"]),
            "-" if eff is None else f"{eff * 100:.0f}%", _num(line["memory_gib_hours"]),
            _num(line["gpu_hours"]), _num(line["wasted_gpu_hours"]), _num(line["energy_kwh"], 3)]
        if with_cost:
            row.append("-" if line.get("cost") is None else f"{line['cost']:.2f}")
        rows.append(row)
    since = time.strftime("%Y-%m-%d %H:%M", time.localtime(data["since"]))
    print(f"usage since {since} ({fmt.duration(data['window'])}), by {by}")
    print(fmt.table(headers, rows))
    return 0


def _num(value: float, digits: int = 2) -> str:
    """Fixed decimals, with more for small non-zero amounts (short jobs are not 0.00)."""
    if value and abs(value) < 10 ** -digits:
        return f"{value:.2g}"
    return f"{value:.{digits}f}"


# queues ----------------------------------------------------------------------------------
def cmd_queues(args) -> int:
    data = Connection(args.home).request("GET", "/v1/queues")
    if args.json:
        _json(data)
        return 0

    def res(m: dict | None, empty: str = "-") -> str:
        if m is None:
            return "whole machine" if empty == "whole" else "-"
        return ",".join(f"{k.replace('nvidia.com/', '')}={v}" for k, v in m.items()) or empty

    rows = [[q["name"], q["policy"], res(q["nominal"], "whole"), res(q["borrowing_limit"]), res(q["lending_limit"]),
             res(q["usage"], "0"), res(q["borrowed"], "0"), str(q["running"]), str(q["pending"]),
             "-" if q["max_user_gpus"] is None and q["max_user_jobs"] is None else
             f"gpus {q['max_user_gpus'] if q['max_user_gpus'] is not None else '-'}, "
             f"jobs {q['max_user_jobs'] if q['max_user_jobs'] is not None else '-'}"]
            for q in data["queues"]]
    print(fmt.table(["QUEUE", "POLICY", "NOMINAL", "BORROW-LIMIT", "LEND-LIMIT", "IN USE", "BORROWED", "RUNNING",
                     "PENDING", "PER USER"], rows))
    extras = [name for name, on in (("backfill", data.get("backfill")), ("preemption", data.get("preemption"))) if on]
    n = len(data["queues"])
    print(f"\n{n} queue{'s' if n != 1 else ''}" + (f"; {', '.join(extras)} on" if extras else ""))
    shares = data.get("fair_share") or {}
    if shares:
        print("fair share (decayed past usage): "
              + ", ".join(f"{u or '?'} {s:.2f}" for u, s in sorted(shares.items(), key=lambda kv: -kv[1])))
    return 0


# prune -----------------------------------------------------------------------------------
def cmd_prune(args) -> int:
    body = {} if args.older_than is None else {"older_than": args.older_than}
    data = Connection(args.home).request("POST", "/v1/prune", body)
    if args.json:
        _json(data)
        return 0
    deleted = data["deleted"]
    print(f"deleted {len(deleted)} finished job{'s' if len(deleted) != 1 else ''} older than "
          f"{fmt.duration(data['older_than'])}" + (f": {fmt.ids(deleted)}" if deleted else ""))
    return 0
