"""JSON views of jobs and nodes, as the API returns them (and ``--json`` prints)."""

from __future__ import annotations

from typing import Any

from ..job import Job, JobState
from ..resources import GPU, Resources, format_quantity
from .manager import Manager


def job_view(job: Job, manager: Manager, positions: dict[int, int] | None = None,
             *, detail: bool = False) -> dict[str, Any]:
    spec = job.spec
    alloc = job.allocation
    reason, message = job.reason.value, job.message
    if job.state is JobState.PENDING:
        waiting = manager.waiting_for(job.id)
        if waiting is not None:
            reason, message = waiting.reason.value, waiting.message
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
        "node": alloc.node if alloc else None,
        "gpus": list(alloc.gpus) if alloc else [],
        "cpus": list(alloc.cores) if alloc else [],
        "submitted_at": job.submitted_at,
        "started_at": job.started_at,
        "ended_at": job.ended_at,
        "command": list(spec.command),
    }
    if alloc is not None and alloc.gpus:
        try:
            view["gpus_simulated"] = manager.node(alloc.node).simulated_gpus
        except Exception:  # noqa: BLE001 - a node that is gone
            view["gpus_simulated"] = False
    if job.state is JobState.RUNNING and alloc is not None and not alloc.cores:
        view["cpus_shared"] = list(manager.shared_cores(alloc.node))
    if job.state is JobState.PENDING:
        if positions is None:
            positions = manager.queue_positions()
        view["queue_position"] = positions.get(job.id)
    if detail:
        paths = getattr(manager.executor, "log_path", None)
        view.update({
            "workdir": spec.workdir,
            "env": dict(spec.env),
            "labels": dict(spec.labels),
            "time_limit": spec.time_limit,
            "pids": _pids(manager, job),
            "logs": {"stdout": str(paths(job.id, "stdout")), "stderr": str(paths(job.id, "stderr"))} if paths else {},
            "events": [
                {"ts": e.ts, "from": e.from_state.value if e.from_state else None, "to": e.to_state.value,
                 "reason": e.reason.value, "message": e.message}
                for e in manager.store.events(job.id)
            ],
        })
    return view


def _pids(manager: Manager, job: Job) -> dict[str, int] | None:
    reader = getattr(manager.executor, "pids", None)
    if reader is None or job.state is not JobState.RUNNING:
        return None
    return reader(job.id)


def node_view(manager: Manager, info: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    holders = manager.holders()
    for node in manager.nodes:
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
            "policy": manager.policy.name,
        })
    return out


def _key(name: str):
    from ..resources import sort_key

    return sort_key(name)


__all__ = ["job_view", "node_view", "Resources"]
