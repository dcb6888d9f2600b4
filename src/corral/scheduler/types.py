"""Inputs and outputs of the scheduler core: plain, immutable data."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator, Mapping

from ..durations import format_duration
from ..job import Allocation, Reason  # noqa: F401  (re-exported for callers)
from ..resources import GPU, Resources, format_quantity


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
    #: The queue it was submitted to (multi-tenant scheduling, :mod:`.tenancy`).
    queue: str = "default"
    #: Who submitted it (fair share and per-user limits).
    user: str = ""

    @property
    def time_limit(self) -> float | None:
        """The time limit backfill relies on (the daemon's ``estimate`` is the limit)."""
        return self.estimate

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
    #: A reason the :class:`Reason` enum does not have (one of :data:`CODES`), with
    #: ``reason`` set to the nearest enum member for callers that only know the enum.
    code: str | None = None
    #: The numbers behind ``code``: a :class:`QuotaDetail`, :class:`UserLimitDetail`,
    #: :class:`ReservedDetail`, :class:`FairShareDetail` or :class:`PreemptingDetail`.
    detail: object = None

    @property
    def name(self) -> str:
        """The reason's name: the code when there is one, else the enum's value."""
        return self.code or self.reason.value

    @property
    def message(self) -> str:
        if self.code is not None and self.detail is not None:
            return self.detail.describe()  # type: ignore[attr-defined]
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


# --- multi-tenant scheduling (see :mod:`corral.scheduler.tenancy`) ---------------------

#: Waiting codes outside the :class:`Reason` enum (``Waiting.code``).
QUOTA_EXCEEDED = "QuotaExceeded"
USER_LIMIT = "UserLimit"
RESERVED = "Reserved"
FAIR_SHARE = "FairShare"
PREEMPTING = "Preempting"
CODES = (QUOTA_EXCEEDED, USER_LIMIT, RESERVED, FAIR_SHARE, PREEMPTING)

#: Ordering policies a queue may use.
QUEUE_POLICIES = ("strict-fifo", "priority", "fair-share")


def _q(resource: str, amount: int) -> str:
    return format_quantity(resource, amount)


@dataclass(frozen=True)
class QuotaShortfall:
    """One resource over quota: the request, the queue's use, its nominal quota and
    what it could still get now (within nominal plus borrowable), all canonical."""

    queue: str
    resource: str
    requested: int
    used: int
    nominal: int
    available: int

    def describe(self) -> str:
        q = lambda v: _q(self.resource, v)  # noqa: E731
        head = f"queue {self.queue}: quota {self.resource}: requests {q(self.requested)}, in use {q(self.used)}"
        within = max(0, self.nominal - self.used)
        if self.used + self.requested <= self.nominal:
            # Within its nominal quota, but other queues borrow the part it lends.
            lent = max(0, within - self.available)
            return f"{head} of nominal {q(self.nominal)} ({q(lent)} of it borrowed by other queues)"
        borrowable = max(0, self.available - within)
        return f"{head} of nominal {q(self.nominal)} + borrowable {q(borrowable)}"


@dataclass(frozen=True)
class QuotaDetail:
    shortfalls: tuple[QuotaShortfall, ...] = ()
    unknown_queue: str | None = None
    known: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.unknown_queue is not None:
            return f"queue {self.unknown_queue} is not defined (queues: {', '.join(self.known) or 'none'})"
        return "; ".join(s.describe() for s in self.shortfalls)


@dataclass(frozen=True)
class UserLimitDetail:
    user: str
    queue: str
    limit: str          # "max_user_gpus" | "max_user_jobs"
    value: int
    using: int

    def describe(self) -> str:
        return f"user {self.user or '(unknown)'}: {self.limit} {self.value} in queue {self.queue} (using {self.using})"


@dataclass(frozen=True)
class ReservedDetail:
    job_id: int         # the job the capacity is reserved for
    node: str
    shadow: float       # when it starts at the latest (absolute, the cycle's clock)
    within: int         # seconds from the cycle's ``now`` to ``shadow`` (rounded up)

    def describe(self) -> str:
        when = "it starts now" if self.within <= 0 else f"it starts within {format_duration(self.within)}"
        return f"reserved for job {self.job_id} ({when})"


@dataclass(frozen=True)
class FairShareDetail:
    user: str
    share: float
    other: str
    other_share: float

    def describe(self) -> str:
        return (f"fair share: user {self.user or '(unknown)'}'s share {self.share:.2f} "
                f"is above {self.other or '(unknown)'}'s {self.other_share:.2f}")


@dataclass(frozen=True)
class PreemptingDetail:
    victims: tuple[int, ...]
    kind: str           # "priority" | "reclaim"

    def describe(self) -> str:
        jobs = ("job " if len(self.victims) == 1 else "jobs ") + ", ".join(str(v) for v in self.victims)
        why = "lower priority" if self.kind == "priority" else "reclaiming quota other queues borrow"
        return f"preempting {jobs} ({why})"


class Amounts(Mapping[str, int]):
    """An immutable, hashable mapping of resource amounts that keeps explicit zeros.

    Quotas need zeros (``borrowing_limit: {gpu: 0}`` = never borrow GPUs, which is not
    the same as naming no limit), and :class:`~corral.resources.Resources` drops them.
    Names are canonicalised (``gpu`` -> ``nvidia.com/gpu``); values are canonical ints.
    """

    __slots__ = ("_items", "_dict")

    def __init__(self, amounts: Mapping[str, int] = ()):  # type: ignore[assignment]
        from ..resources import canonical_name

        clean: dict[str, int] = {}
        for name, value in dict(amounts).items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                from ..errors import CorralError

                raise CorralError(f"quota amount for {name} must be a non-negative integer, got {value!r}")
            clean[canonical_name(name)] = value
        self._dict = clean
        self._items = tuple(sorted(clean.items()))

    @classmethod
    def parse(cls, values: Mapping[str, object]) -> "Amounts":
        """From user quantities (``{"gpu": 4, "cpu": "32", "memory": "0"}``), zeros kept."""
        from ..resources import canonical_name, parse_quantity

        return cls({canonical_name(str(k)): parse_quantity(str(k), v) for k, v in values.items()})

    def __getitem__(self, name: str) -> int:
        return self._dict[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def __contains__(self, name: object) -> bool:
        return name in self._dict

    def __hash__(self) -> int:
        return hash(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._dict == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return "Amounts(" + ", ".join(f"{n}={format_quantity(n, v)}" for n, v in self._items) + ")"


@dataclass(frozen=True)
class QueueSpec:
    """A queue with a quota (Kueue's ClusterQueue; all queues form one cohort).

    Resources a ``nominal`` mapping does not name are not limited by quota (only by
    the nodes). See :mod:`corral.scheduler.quota` for the exact borrowing rule.

    The three quota mappings accept :class:`~corral.resources.Resources` or any mapping
    of canonical amounts and are stored as :class:`Amounts`, which keep zeros: pass a
    plain dict (or ``Amounts.parse``) to say ``0`` -- ``Resources`` drops zero amounts.
    """

    name: str
    #: Guaranteed share; None = the whole machine.
    nominal: Mapping[str, int] | None = None
    #: How much beyond nominal it may borrow, per resource (None or a missing
    #: resource = unlimited).
    borrowing_limit: Mapping[str, int] | None = None
    #: How much of its unused nominal others may borrow (None or a missing resource =
    #: all of it).
    lending_limit: Mapping[str, int] | None = None
    policy: str = "priority"
    #: GPUs one user's running jobs may hold in this queue.
    max_user_gpus: int | None = None
    #: Running jobs one user may have in this queue.
    max_user_jobs: int | None = None
    #: Kept for configuration files; backfill is decided per cycle
    #: (:attr:`TenantContext.backfill`), so this flag is not read by the core.
    backfill: bool = True

    def __post_init__(self) -> None:
        for name in ("nominal", "borrowing_limit", "lending_limit"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Amounts):
                object.__setattr__(self, name, Amounts(value))
        if self.policy not in QUEUE_POLICIES:
            from ..errors import ValidationError

            raise ValidationError("queue policy", self.policy, "expected one of: " + ", ".join(QUEUE_POLICIES))


@dataclass(frozen=True)
class RunningJob:
    """What the multi-tenant scheduler needs to know about a running job."""

    id: int
    requests: Resources
    node: str
    gpus: tuple[int, ...] = ()
    cores: tuple[int, ...] = ()
    priority: int = 0
    queue: str = "default"
    user: str = ""
    started_at: float = 0.0
    #: When it ends at the latest (start + time limit); None = no limit.
    expected_end: float | None = None
    preemptible: bool = True
    #: Set while corral stops it for a preemption: the preemptor's id. Such a job is
    #: never chosen again, and its preemptor waits for it instead of planning anew.
    stopping_for: int | None = None

    @property
    def allocation(self) -> Allocation:
        return Allocation(node=self.node, requests=self.requests, gpus=self.gpus, cores=self.cores)

    @property
    def gpu_count(self) -> int:
        return self.requests.get(GPU, 0)


@dataclass(frozen=True)
class Preemption:
    """Stop ``victims`` (all on ``node``) so that ``preemptor`` can start there."""

    preemptor: int
    victims: tuple[int, ...]
    node: str
    reason: str                 # "priority" | "reclaim"
    #: Where the preemptor would go once the victims are gone (informative).
    allocation: Allocation | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Reservation:
    """EASY backfill's reservation: ``job_id`` starts on ``node`` by ``shadow`` at the
    latest; ``extra`` is what is free there at that time beyond its needs."""

    job_id: int
    node: str
    shadow: float
    extra: Resources = field(default_factory=Resources)


def seconds_until(now: float, when: float) -> int:
    return max(0, math.ceil(when - now))
