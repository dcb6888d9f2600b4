"""Inputs and outputs of the scheduler core: plain, immutable data.

Queues are in :mod:`.queues`; why a job waits is the typed vocabulary of
:mod:`corral.reasons`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..frozen import fast_init
from ..job import Allocation
from ..reasons import PreemptionKind
from ..resources import GPU, Resources


@fast_init
@dataclass(frozen=True, slots=True)
class PendingJob:
    """What the scheduler needs to know about a waiting job."""

    id: int
    requests: Resources
    priority: int = 0
    seq: int = 0
    #: The queue it was submitted to.
    queue: str = "default"
    #: Who submitted it (fair share and per-user limits).
    user: str = ""
    #: Its time limit in seconds (None: none): when it ends at the latest, what backfill
    #: relies on. The daemon enforces it.
    time_limit: float | None = None
    #: Expected run time in seconds, for ordering by it (``sjf``): the time limit, else an
    #: estimate from history; in a simulation possibly the real duration (an oracle).
    #: None: unknown.
    estimate: float | None = None
    #: Placed over several nodes, all pieces or none: replicas (``requests.replicas`` >
    #: 1, ``--nodes N``), or a job larger than any one node split across nodes.
    gang: bool = False
    #: Once running, it may be preempted (``--no-preempt``: False).
    preemptible: bool = True
    #: It may preempt others to start (a priority class with ``preempt: false``: False).
    preempts: bool = True
    #: When it was submitted (seconds, the clock the cycle's ``now`` reads): what a
    #: policy that ages waiting jobs (``sjf-aging``) measures the wait from.
    submitted: float = 0.0
    #: Seconds it ran in earlier attempts whose work it kept (a resumable job preempted
    #: by attained service): what ``las`` ranks by.
    served: float = 0.0
    #: Once running, it keeps its work when stopped (it checkpoints): ``las`` may preempt
    #: it by attained service.
    resumable: bool = False

    @property
    def shape(self) -> Resources:
        """Jobs with equal shapes fit or fail together within one cycle."""
        return self.requests


@fast_init
@dataclass(frozen=True, slots=True)
class RunningJob:
    """What the scheduler needs to know about a running job."""

    id: int
    allocation: Allocation
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
    #: Seconds run in earlier attempts whose work it kept (see :class:`PendingJob`).
    served: float = 0.0
    #: When it was submitted (``las`` ranks it as if it waited again).
    submitted: float = 0.0
    #: It keeps its work when stopped: a victim for preemption by attained service.
    resumable: bool = False
    #: It was due when it started (``las``'s bound): never preempted by attained service.
    protected: bool = False

    @property
    def requests(self) -> Resources:
        return self.allocation.requests

    @property
    def gpu_count(self) -> int:
        return self.requests.get(GPU, 0)


@fast_init
@dataclass(frozen=True, slots=True)
class Placement:
    job_id: int
    allocation: Allocation


@dataclass(frozen=True)
class Preemption:
    """Stop ``victims`` (all on ``node``) so that ``preemptor`` can start there."""

    preemptor: int
    victims: tuple[int, ...]
    node: str
    kind: PreemptionKind
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
