"""JSON views of jobs and nodes, as the API returns them (and ``--json`` prints)."""

from __future__ import annotations

from typing import Any

from ..job import Job, JobState
from ..resources import GPU, Resources, format_quantity
from ..reasons import note_defaults
from .manager import Manager


def job_view(job: Job, manager: Manager, positions: dict[int, int] | None = None,
             estimates: dict[int, float | None] | None = None,
             *, detail: bool = False, private: bool = True) -> dict[str, Any]:
    """``private=False``: for a caller who is neither the job's owner nor an admin (the
    job's environment is left out)."""
    spec = job.spec
    alloc = job.allocation
    reason, message = job.reason.value, job.message
    numbers = None
    if job.state is JobState.PENDING:
        waiting = manager.waiting_for(job.id)
        if waiting is not None:
            waiting = note_defaults(waiting, spec.defaulted)     # "requests 1 (the default; set --cpus)"
            reason, message, numbers = waiting.name, waiting.message, waiting.fields()
    first = alloc.pieces[0] if alloc is not None else None
    view: dict[str, Any] = {
        "id": job.id,
        "name": spec.name,
        "state": job.state.value,
        "reason": reason,
        "message": message,
        "exit_code": job.exit_code,
        "signal": job.signal,
        "priority": spec.priority,
        "requests": spec.requests.formatted(),
        "limits": spec.limits.formatted(),
        "node": first.node if first else None,
        "gpus": list(first.gpus) if first else [],
        "cpus": list(first.cores) if first else [],
        "submitted_at": job.submitted_at,
        "started_at": job.started_at,
        "ended_at": job.ended_at,
        "command": list(spec.command),
    }
    if numbers is not None:
        view["reason_detail"] = numbers
    if alloc is not None and not alloc.single:
        view["pieces"] = [p.to_dict() for p in alloc.pieces]
    if first is not None and alloc.gpu_count:
        try:
            view["gpus_simulated"] = any(manager.node(p.node).simulated_gpus for p in alloc.pieces if p.gpus)
        except Exception:  # noqa: BLE001 - a node that is gone
            view["gpus_simulated"] = False
    if job.state is JobState.RUNNING and first is not None and not first.cores:
        try:
            view["cpus_shared"] = list(manager.shared_cores(first.node))
        except Exception:  # noqa: BLE001 - a node that is gone
            view["cpus_shared"] = []
    if job.state is JobState.PENDING:
        if positions is None:
            positions = manager.queue_positions()
        view["queue_position"] = positions.get(job.id)
        if job.id in manager.driver.pending:
            if estimates is None:
                estimates = manager.estimated_starts()
            view["estimated_start"] = estimates.get(job.id)
    view["user"] = job.user
    view["attempts"] = job.attempts
    view["queue"] = spec.queue
    view["held"] = job.held
    if job.array_id is not None:
        view["array_id"], view["array_index"] = job.array_id, job.array_index
        if spec.array_limit:
            view["array_limit"] = spec.array_limit
    if spec.dependencies:
        view["dependencies"] = [f"{kind}:{dep}" for kind, dep in spec.dependencies]
    if spec.retries:
        view["retries"] = spec.retries
    if spec.resumable:
        view["resumable"], view["served"] = True, job.served
    # Where it may run (``requests`` and ``limits`` above are per node).
    if spec.gpu_models:
        view["gpu_models"] = list(spec.gpu_models)
    if spec.node_selector:
        view["node_selector"] = dict(spec.node_selector)
    if spec.nodes != 1:
        view["nodes"] = spec.nodes
    if spec.pty:
        where = getattr(manager.executor, "pty_location", None)
        view["pty"] = where(job.id) if where is not None else ""
    if job.not_before is not None and job.state is JobState.PENDING:
        view["not_before"] = job.not_before
    live = manager.monitor.live_view(job.id) if manager.monitor is not None and job.state is JobState.RUNNING else None
    if live is not None:
        view["live"] = live
    if detail:
        from ..monitor.efficiency import summarize

        usage = manager.store.job_usage([job.id]).get(job.id)
        view["usage"] = usage.to_dict() if usage is not None else None
        view["efficiency"] = summarize(job, usage, manager.clock())
        view["enforcement"] = _enforcement(manager, job)
        view["stop_signal"] = spec.stop_signal or "SIGTERM"
        view["kill_grace"] = spec.kill_grace if spec.kill_grace is not None else manager.kill_grace
        if alloc is not None and alloc.gpu_count and manager.monitor is not None:
            view["idle_policy"] = manager.monitor.idle_policy.merged(spec.idle_gpu).describe()
        executor = manager.executor
        logs = {}
        if executor.capabilities.logs:
            for stream in ("stdout", "stderr"):
                where = executor.log_location(job.id, stream)
                if where is not None:
                    logs[stream] = where
        view.update({
            "workdir": spec.workdir,
            "env": dict(spec.env),
            "labels": dict(spec.labels),
            "time_limit": spec.time_limit,
            "pids": _pids(manager, job),
            "logs": logs,
            "events": [
                {"ts": e.ts, "from": e.from_state.value if e.from_state else None, "to": e.to_state.value,
                 "reason": e.reason.value, "message": e.message}
                for e in manager.store.events(job.id)
            ],
        })
        if not private:
            del view["env"]
    return view


def _enforcement(manager: Manager, job: Job) -> dict[str, Any]:
    """How this job's limits are held, in words (never silently unenforced)."""
    from ..executors.gpu_share import describe_share, mps_running
    from ..resources import CPU, MEMORY

    described = manager.executor.describe()
    e = described.get("enforcement") or {"mode": "none", "hard": False, "description": "limits not enforced"}
    limits = job.spec.limits
    out: dict[str, Any] = {"mode": e["mode"], "hard": bool(e["hard"]), "description": e["description"]}
    items = []
    mem, cpu = limits.get(MEMORY), limits.get(CPU)
    pids_limit = described.get("pids_limit") or 0
    if e["hard"]:
        if mem:
            items.append(f"memory {format_quantity(MEMORY, mem)} hard (cgroup, OOM kill)")
        if cpu:
            items.append(f"cpu {format_quantity(CPU, cpu)} hard (CFS quota)")
        if pids_limit:
            items.append(f"pids {pids_limit} hard")
    elif e["mode"] == "watchdog":
        if mem:
            items.append(f"memory {format_quantity(MEMORY, mem)} watched (killed when over, "
                         f"checked every {_secs(manager)})")
        if cpu:
            items.append(f"cpu {format_quantity(CPU, cpu)} not enforced (measured only)")
    else:
        items += [f"{name} {text} not enforced" for name, text in limits.formatted().items()]
    for piece in (job.allocation.pieces if job.allocation is not None else ()):
        line = describe_share(piece, mps_running())
        if line:
            items.append(line)
    out["limits"] = items
    return out


def _secs(manager: Manager) -> str:
    interval = manager.monitor.sample_interval if manager.monitor is not None else 0
    return f"{interval:g}s"


def top_view(manager: Manager, info: dict[str, Any]) -> dict[str, Any]:
    """What ``corral top`` shows: running jobs with their latest readings, and GPUs."""
    running = manager.store.get_jobs(manager.running)
    monitor = manager.monitor
    jobs = []
    for job in running:
        first = job.allocation.pieces[0] if job.allocation else None
        jobs.append({
            "id": job.id, "name": job.spec.name, "user": job.user, "reason": job.reason.value,
            "message": job.message, "started_at": job.started_at,
            "requests": job.spec.requests.formatted(), "limits": job.spec.limits.formatted(),
            "node": first.node if first else None,
            "gpus": list(first.gpus) if first else [], "cpus": list(first.cores) if first else [],
            "live": monitor.live_view(job.id) if monitor is not None else None,
        })
    holders = manager.holders()
    gpus = []
    for node in manager.nodes:
        held = holders.get(node.name, {"gpus": {}})["gpus"]
        for g in node.gpus:
            sample = monitor.gpus.get((node.name, g.index)) if monitor is not None else None
            gpus.append({"node": node.name, "index": g.index, "model": g.model, "memory": g.memory,
                         "simulated": g.simulated, "job": held.get(g.index),
                         "sample": sample.to_dict() if sample is not None else None})
    return {"jobs": jobs, "gpus": gpus, "pending": manager.pending_count,
            "sample_interval": monitor.sample_interval if monitor is not None else None,
            "enforcement": info.get("enforcement"), "now": manager.clock()}


def usage_view(manager: Manager, since: str, by: str) -> dict[str, Any]:
    from ..durations import parse_duration
    from ..errors import ValidationError
    from ..monitor.accounting import GROUPINGS, account, totals

    if by not in GROUPINGS:
        raise ValidationError("by", by, f"expected one of: {', '.join(GROUPINGS)}")
    window = parse_duration(since, "since", bare_unit=86400, what="window", examples="expected e.g. 7d, 24h, 30m")
    now = manager.clock()
    start = now - window
    jobs = [j for j in manager.store.list_jobs() if j.started_at is not None
            and (j.ended_at is None or j.ended_at >= start)]
    rows = manager.store.usage_rows(since=start)
    lines = account(jobs, rows, since=start, now=now, by=by, cost=manager.cost or None)
    return {"since": start, "now": now, "window": window, "by": by,
            "currency": (manager.cost or {}).get("currency"),
            "lines": [line.to_dict() for line in lines], "total": totals(lines).to_dict()}


def queues_view(manager: Manager) -> list[dict[str, Any]]:
    """Each queue: its quota, what its running jobs use, what it borrows, what waits."""
    usage: dict[str, Resources] = {}
    running: dict[str, int] = {}
    for job in manager.driver.state.running.values():
        usage[job.queue] = usage.get(job.queue, Resources()).add(job.requests)
        running[job.queue] = running.get(job.queue, 0) + 1
    pending: dict[str, int] = {}
    for live in manager.driver.jobs.values():
        if live.run is None:
            pending[live.job.spec.queue] = pending.get(live.job.spec.queue, 0) + 1
    out = []
    for name, q in sorted(manager.driver.queues.items()):
        used = usage.get(name, Resources())
        nominal = dict(q.nominal) if q.nominal is not None else None
        borrowed = {r: used.get(r, 0) - n for r, n in (nominal or {}).items() if used.get(r, 0) > n}
        fmt_map = lambda m: None if m is None else {r: format_quantity(r, v) for r, v in sorted(m.items())}  # noqa: E731
        out.append({
            "name": name, "policy": q.policy, "nominal": fmt_map(nominal),
            "borrowing_limit": fmt_map(dict(q.borrowing_limit) if q.borrowing_limit is not None else None),
            "lending_limit": fmt_map(dict(q.lending_limit) if q.lending_limit is not None else None),
            "max_user_gpus": q.max_user_gpus, "max_user_jobs": q.max_user_jobs,
            "usage": fmt_map(dict(used.items())), "borrowed": fmt_map(borrowed),
            "running": running.get(name, 0), "pending": pending.get(name, 0),
        })
    return out


def _pids(manager: Manager, job: Job) -> dict[str, int] | None:
    """The job's main processes by role, where the executor can tell."""
    if job.state is not JobState.RUNNING:
        return None
    return manager.executor.processes(job.id) or None


def node_view(manager: Manager, info: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    holders = manager.holders()
    states = manager.node_states()
    for node in manager.executor.known_nodes():
        allocated = manager.allocated(node.name)
        allocatable = node.allocatable
        names = sorted(set(node.capacity) | set(allocated), key=_key)
        if GPU not in names:
            names.append(GPU)
        resources = {}
        for name in names:
            cap, alc, used = node.capacity.get(name, 0), allocatable.get(name, 0), allocated.get(name, 0)
            resources[name] = {
                "capacity": format_quantity(name, cap),
                "reserved": format_quantity(name, node.reserve.get(name, 0)),
                "allocatable": format_quantity(name, alc),
                "allocated": format_quantity(name, used),
                "free": format_quantity(name, max(alc - used, 0)),
                "raw": {"capacity": cap, "allocatable": alc, "allocated": used, "free": max(alc - used, 0)},
            }
        held = holders.get(node.name, {"gpus": {}, "cores": {}})
        out.append({
            "name": node.name,
            "state": states.get(node.name, "Ready"),
            "address": node.address or None,
            "gpu_model": ", ".join(node.gpu_models) or None,
            "labels": dict(node.labels),
            "resources": resources,
            "gpus": [
                {"index": g.index, "uuid": g.uuid, "model": g.model, "memory": g.memory,
                 "memory_human": format_quantity("memory", g.memory),
                 "simulated": g.simulated, "job": held["gpus"].get(g.index),
                 "links": {str(i): lvl.name for i, lvl in g.links}}
                for g in node.gpus
            ],
            "cores": [{"id": c, "job": held["cores"].get(c)} for c in node.cores],
            "gpu_source": info.get("gpu_source", ""),
            "simulated_gpus": node.simulated_gpus,
            "policy": manager.scheduling.default_policy,
            "engine": manager.executor.name,
            "enforcement": info.get("enforcement"),
            "idle_gpu": info.get("idle_gpu"),
        })
    return out


def _key(name: str):
    from ..resources import sort_key

    return sort_key(name)


__all__ = ["job_view", "node_view", "Resources"]
