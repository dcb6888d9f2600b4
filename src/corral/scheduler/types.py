"""Inputs and outputs of the scheduler core: plain, immutable data."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..job import Allocation, Reason  # noqa: F401  (re-exported for callers)
from ..resources import Resources, format_quantity


@dataclass(frozen=True)
class PendingJob:
    """What the scheduler needs to know about a waiting job."""

    id: int
    requests: Resources
    priority: int = 0
    seq: int = 0
    #: Expected run time in seconds: the time limit in the daemon, the trace's actual
    #: duration in a simulation (oracle knowledge). None when unknown.
    estimate: float | None = None

    @property
    def shape(self) -> Resources:
        """Jobs with equal shapes fit or fail together within one cycle."""
        return self.requests


@dataclass(frozen=True)
class Shortfall:
    """One resource a job cannot get: how much it asks, how much is free, of how much."""

    resource: str
    requested: int
    free: int
    total: int

    def describe(self) -> str:
        q = lambda v: format_quantity(self.resource, v)  # noqa: E731
        return f"insufficient {self.resource}: requests {q(self.requested)}, free {q(self.free)} of {q(self.total)}"


@dataclass(frozen=True)
class Waiting:
    """Why a job did not start in this cycle (typed reason plus its numbers)."""

    reason: Reason
    shortfalls: tuple[Shortfall, ...] = ()
    behind: int | None = None          # strict order: the blocked job it waits behind
    nodes: int = 1
    lines: tuple[str, ...] = ()        # unschedulable: why it can never fit

    @property
    def message(self) -> str:
        if self.reason is Reason.INSUFFICIENT_RESOURCES:
            text = "; ".join(s.describe() for s in self.shortfalls)
            return text if self.nodes == 1 else f"{text} (best of {self.nodes} nodes)"
        if self.reason is Reason.PRIORITY and self.behind is not None:
            return f"waiting behind job {self.behind} (strict order)"
        if self.reason is Reason.UNSCHEDULABLE:
            return "can never fit the node as it is now: " + "; ".join(self.lines)
        return ""


@dataclass(frozen=True)
class Placement:
    job_id: int
    allocation: Allocation


@dataclass
class CycleResult:
    placements: list[Placement] = field(default_factory=list)
    #: The queue the cycle ran on (a PendingQueue); placed jobs are still in it.
    queue: object = None
    #: Reasons already known (strict order); shapes that did not fit are explained on
    #: first access of :attr:`waiting_shapes` (the simulator never asks, the daemon
    #: asks right after the cycle).
    _known: dict = field(default_factory=dict)
    _explain: object = None          # () -> dict[Resources, Waiting], or None when done

    @property
    def waiting_shapes(self) -> dict[Resources, Waiting]:
        """Why the jobs of each shape left in the queue wait (one reason per shape)."""
        if self._explain is not None:
            self._known.update(self._explain())
            self._explain = None
        return self._known

    def reason_for(self, job: PendingJob) -> Waiting | None:
        return self.waiting_shapes.get(job.shape)

    @property
    def waiting(self) -> dict[int, Waiting]:
        """Per-job reasons for every job not placed (O(queue); for tests and reports)."""
        placed = {p.job_id for p in self.placements}
        out: dict[int, Waiting] = {}
        for job in self.queue or ():  # type: ignore[union-attr]
            if job.id not in placed:
                out[job.id] = self.waiting_shapes[job.shape]
        return out
