"""Helpers for the scheduler's unit tests: one cycle from plain inputs, and invariants."""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Mapping

from corral.job import Allocation
from corral.resources import CPU, GPU
from corral.scheduler import ClusterState, CycleContext, Decisions, PendingJob, QueueSpec, RunningJob, schedule


def one_queue(policy: str = "best-effort-fifo") -> dict[str, QueueSpec]:
    return {"default": QueueSpec("default", policy=policy)}


def state_of(nodes, running: Mapping[int, Allocation] | Iterable[RunningJob] = (), queues=None) -> ClusterState:
    """A cluster state with these running jobs (allocations by id, or RunningJobs)."""
    if isinstance(running, Mapping):
        running = [RunningJob(i, a) for i, a in running.items()]
    return ClusterState(nodes, queues or one_queue(), running)


def cycle(nodes, running, pending: Iterable[PendingJob], policy: str = "best-effort-fifo", **ctx) -> Decisions:
    """One cycle on a fresh state: one queue with ``policy``."""
    return schedule(state_of(nodes, running, one_queue(policy)), list(pending), CycleContext(ctx.pop("now", 0.0), **ctx))


def placed(res: Decisions) -> list[int]:
    return [p.job_id for p in res.placements]


def check_invariants(nodes, running: Mapping[int, Allocation]) -> None:
    """Nothing over-committed; no GPU or core held twice; devices match requests."""
    by_node = {n.name: n for n in nodes}
    used: dict[str, Counter] = {n.name: Counter() for n in nodes}
    gpus_seen: set[tuple[str, int]] = set()
    cores_seen: set[tuple[str, int]] = set()
    for alloc in running.values():
        for piece in alloc.pieces:
            used[piece.node].update(piece.requests.as_dict())
            assert len(piece.gpus) == piece.requests.get(GPU, 0)
            for g in piece.gpus:
                assert (piece.node, g) not in gpus_seen, "one GPU given to two running jobs"
                gpus_seen.add((piece.node, g))
            for c in piece.cores:
                assert (piece.node, c) not in cores_seen, "one core given to two running jobs"
                cores_seen.add((piece.node, c))
            cpu = piece.requests.get(CPU, 0)
            if by_node[piece.node].cores:
                assert len(piece.cores) == (cpu // 1000 if cpu % 1000 == 0 else 0)
    for name, counter in used.items():
        alloc = by_node[name].allocatable
        for res, amount in counter.items():
            assert amount <= alloc.get(res, 0), f"over-commit of {res} on {name}"
