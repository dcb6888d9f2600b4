"""Why a pending job waits: one typed vocabulary, with the numbers as typed fields.

Every wait is one frozen dataclass below. Each names the stored :class:`~corral.job.Reason`
it stands for (``reason``), says itself in one line (``message``, what ``ps`` prints) and
gives its numbers as plain typed fields (``fields()``, what the API returns beside the
message). The scheduler core produces the resource, order, quota, limit, reservation,
fair-share and preemption waits; the daemon's gates the hold, dependency, array and
backoff ones; engines add theirs here too. Nothing in the decision path passes strings:
a caller that wants to know *why* matches on the class, never parses the message.

Messages are kept stable: they are what people read and what tests check.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from .durations import format_duration
from .job import Reason
from .resources import format_quantity


def _q(resource: str, amount: int) -> str:
    return format_quantity(resource, amount)


class Wait(ABC):
    """Base of every typed wait."""

    reason: ClassVar[Reason]

    @property
    @abstractmethod
    def message(self) -> str:
        """The wait in one line, with its numbers."""

    @property
    def name(self) -> str:
        """The stored reason's name (``InsufficientResources``, ``QuotaExceeded`` ...)."""
        return self.reason.value

    def fields(self) -> dict[str, Any]:
        """The numbers behind the message, JSON-ready (for the API)."""
        return _plain(asdict(self))  # type: ignore[call-overload]


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# -- resources ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Shortfall:
    """One resource a job cannot get: how much it asks, how much is free, of how much."""

    resource: str
    requested: int
    free: int
    total: int
    #: What kind, when the job asks for one (the GPU models it accepts: ``A100``).
    kind: str = ""
    #: The request is the daemon's default, not the job's (set by the daemon's views,
    #: which know the job's spec; the scheduler never does).
    defaulted: bool = False

    def describe(self) -> str:
        q = lambda v: _q(self.resource, v)  # noqa: E731
        what = f"{self.resource} ({self.kind})" if self.kind else self.resource
        note = f" (the default; set {DEFAULT_HINTS.get(self.resource, '--requests ' + self.resource + '=N')})" \
            if self.defaulted else ""
        return f"insufficient {what}: requests {q(self.requested)}{note}, free {q(self.free)} of {q(self.total)}"


#: How a job sets a request the daemon would otherwise default.
DEFAULT_HINTS = {"cpu": "--cpus", "memory": "--mem", "nvidia.com/gpu": "--gpus"}


def note_defaults(wait: "Wait", defaulted: "tuple[str, ...] | frozenset[str]") -> "Wait":
    """``wait`` with its shortfalls on ``defaulted`` resources marked as the default's
    (``insufficient cpu: requests 1 (the default; set --cpus), free 0 of 2``)."""
    if not defaulted or not isinstance(wait, InsufficientResources):
        return wait
    from dataclasses import replace

    marked = tuple(replace(s, defaulted=True) if s.resource in defaulted else s for s in wait.shortfalls)
    return replace(wait, shortfalls=marked) if marked != wait.shortfalls else wait


@dataclass(frozen=True)
class InsufficientResources(Wait):
    """It fits a node, but not now: the resources short on the closest node."""

    reason: ClassVar[Reason] = Reason.INSUFFICIENT_RESOURCES
    shortfalls: tuple[Shortfall, ...] = ()
    nodes: int = 1
    #: True for a job spread over several nodes (a gang): free counts are cluster-wide.
    across_nodes: bool = False
    #: A job of replicas on this many nodes: the shortfalls are those of the node that
    #: would be the last one it needs (the ``replicas``-th best), per replica.
    replicas: int = 1

    @property
    def message(self) -> str:
        text = "; ".join(s.describe() for s in self.shortfalls)
        if self.across_nodes:
            return f"{text} (across {self.nodes} nodes)"
        if self.replicas > 1:
            return (f"{text} per replica on the {_ordinal(self.replicas)} best of {self.nodes} nodes "
                    f"(it needs {self.replicas} nodes)")
        return text if self.nodes == 1 else f"{text} (best of {self.nodes} nodes)"


@dataclass(frozen=True)
class Unschedulable(Wait):
    """No node could ever hold it as the nodes are now (one shrank after submit)."""

    reason: ClassVar[Reason] = Reason.UNSCHEDULABLE
    lines: tuple[str, ...] = ()
    nodes: int = 1

    @property
    def message(self) -> str:
        return "can never fit the node as it is now: " + "; ".join(self.lines)


@dataclass(frozen=True)
class NodesDraining(Wait):
    """It would fit, but only on nodes being drained (nothing new starts there)."""

    reason: ClassVar[Reason] = Reason.NODES_DRAINING
    nodes: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        return f"the nodes that could hold it are draining: {', '.join(self.nodes)}"


# -- order -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Behind(Wait):
    """A strict queue: it waits behind the first job there that cannot start."""

    reason: ClassVar[Reason] = Reason.PRIORITY
    job_id: int = 0

    @property
    def message(self) -> str:
        return f"waiting behind job {self.job_id} (strict order)"


@dataclass(frozen=True)
class Queued(Wait):
    """Not looked at by a scheduling cycle yet."""

    reason: ClassVar[Reason] = Reason.QUEUED

    @property
    def message(self) -> str:
        return ""


# -- quotas and limits -------------------------------------------------------------------

@dataclass(frozen=True)
class QuotaShortfall:
    """One resource over quota: the request, the queue's use, its nominal quota and what it
    could still get now (within nominal plus borrowable), all canonical."""

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
class QuotaExceeded(Wait):
    reason: ClassVar[Reason] = Reason.QUOTA
    shortfalls: tuple[QuotaShortfall, ...] = ()

    @property
    def message(self) -> str:
        return "; ".join(s.describe() for s in self.shortfalls)


@dataclass(frozen=True)
class UnknownQueue(Wait):
    """Its queue is not (or no longer) defined."""

    reason: ClassVar[Reason] = Reason.QUOTA
    queue: str = ""
    known: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        return f"queue {self.queue} is not defined (queues: {', '.join(self.known) or 'none'})"


class UserLimitKind(str, enum.Enum):
    GPUS = "max_user_gpus"
    JOBS = "max_user_jobs"


@dataclass(frozen=True)
class UserLimit(Wait):
    reason: ClassVar[Reason] = Reason.USER_LIMIT
    user: str = ""
    queue: str = ""
    limit: UserLimitKind = UserLimitKind.JOBS
    value: int = 0
    using: int = 0

    @property
    def message(self) -> str:
        return (f"user {self.user or '(unknown)'}: {self.limit.value} {self.value} in queue {self.queue} "
                f"(using {self.using})")


# -- backfill, fair share, preemption ------------------------------------------------------

@dataclass(frozen=True)
class Reserved(Wait):
    """EASY backfill: what it needs on the node is reserved for an earlier job."""

    reason: ClassVar[Reason] = Reason.RESERVED
    job_id: int = 0
    node: str = ""
    shadow: float = 0.0         # when that job starts at the latest (absolute, the cycle's clock)
    within: int = 0             # seconds from the cycle's ``now`` to ``shadow`` (rounded up)

    @property
    def message(self) -> str:
        when = "it starts now" if self.within <= 0 else f"it starts within {format_duration(self.within)}"
        return f"reserved for job {self.job_id} ({when})"


@dataclass(frozen=True)
class FairShare(Wait):
    """It fitted when the cycle began, but a user with a lower share went first."""

    reason: ClassVar[Reason] = Reason.FAIR_SHARE
    user: str = ""
    share: float = 0.0
    other: str = ""
    other_share: float = 0.0

    @property
    def message(self) -> str:
        return (f"fair share: user {self.user or '(unknown)'}'s share {self.share:.2f} "
                f"is above {self.other or '(unknown)'}'s {self.other_share:.2f}")


class PreemptionKind(str, enum.Enum):
    PRIORITY = "priority"       # the victims have a lower priority
    RECLAIM = "reclaim"         # the victims' queues borrow the preemptor's queue's nominal quota
    SERVICE = "service"         # the victims (resumable) have attained more service (``las``)


@dataclass(frozen=True)
class Preempting(Wait):
    reason: ClassVar[Reason] = Reason.PREEMPTING
    victims: tuple[int, ...] = ()
    kind: PreemptionKind = PreemptionKind.PRIORITY

    @property
    def message(self) -> str:
        jobs = ("job " if len(self.victims) == 1 else "jobs ") + ", ".join(str(v) for v in self.victims)
        why = {PreemptionKind.PRIORITY: "lower priority",
               PreemptionKind.SERVICE: "more attained service; they resume from their checkpoint",
               }.get(self.kind, "reclaiming quota other queues borrow")
        return f"preempting {jobs} ({why})"


# -- gates (the daemon keeps such jobs out of the scheduler) -------------------------------

@dataclass(frozen=True)
class Held(Wait):
    reason: ClassVar[Reason] = Reason.HELD
    note: str = "held"          # "held at submit", "held by alice"

    @property
    def message(self) -> str:
        return self.note


@dataclass(frozen=True)
class DependencyWait(Wait):
    """Waiting for other jobs to end: ``(kind, job id, its state)`` each; and for arrays
    (every task of them): ``(kind, array id, tasks ended, tasks)`` each."""

    reason: ClassVar[Reason] = Reason.DEPENDENCY
    waiting_on: tuple[tuple[str, int, str], ...] = ()
    arrays: tuple[tuple[str, int, int, int], ...] = ()

    @property
    def message(self) -> str:
        parts = [f"job {dep} ({kind}; it is {state})" for kind, dep, state in self.waiting_on]
        parts += [f"array {dep} ({kind}; {ended} of {total} tasks ended)" for kind, dep, ended, total in self.arrays]
        return "waiting for " + ", ".join(parts)


@dataclass(frozen=True)
class ArrayThrottle(Wait):
    reason: ClassVar[Reason] = Reason.ARRAY_LIMIT
    array_id: int = 0
    active: int = 0
    limit: int = 0

    @property
    def message(self) -> str:
        return f"array {self.array_id} has {self.active} tasks queued or running (limit %{self.limit})"


@dataclass(frozen=True)
class Backoff(Wait):
    """A failed job with retries left waits before it runs again."""

    reason: ClassVar[Reason] = Reason.RETRY_BACKOFF
    retry: int = 1
    retries: int = 1
    seconds: float = 0.0
    failure: str = ""

    @property
    def message(self) -> str:
        return f"{self.failure}; retry {self.retry} of {self.retries} in {self.seconds:g}s"


__all__ = ["Wait", "Shortfall", "InsufficientResources", "Unschedulable", "NodesDraining", "Behind", "Queued", "QuotaShortfall",
           "QuotaExceeded", "UnknownQueue", "UserLimitKind", "UserLimit", "Reserved", "FairShare",
           "PreemptionKind", "Preempting", "Held", "DependencyWait", "ArrayThrottle", "Backoff"]
