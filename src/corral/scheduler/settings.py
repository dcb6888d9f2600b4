"""How a daemon (or a simulation) schedules: its queues and the cycle's switches.

One value built from a daemon config (:meth:`corral.config.Config.scheduling`) or by the
simulator for a policy, and handed to the driver. There is always a ``default`` queue:
without ``queues:`` in the config it is the whole machine, ordered by ``policy``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .policies import DEFAULT_POLICY
from .queues import QueueSpec

DEFAULT_QUEUE = "default"


@dataclass(frozen=True)
class Scheduling:
    queues: tuple[QueueSpec, ...] = (QueueSpec(DEFAULT_QUEUE),)
    #: EASY backfill reservations (from time limits).
    backfill: bool = False
    #: Higher priority, or a queue reclaiming its nominal quota, may preempt.
    preemption: bool = False
    #: Fair share: past usage counts half after this many seconds.
    half_life: float = 7 * 86400.0
    #: ``las``: its level boundaries (GPU-seconds of attained service); empty: the
    #: policy's own (:attr:`~corral.scheduler.policies.las.LeastAttainedService.THRESHOLDS`).
    service_levels: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.service_levels:
            for q in self.queues:
                if q.order.by_service:
                    q.order.THRESHOLDS = tuple(self.service_levels)  # type: ignore[misc]

    @classmethod
    def make(cls, queues: tuple[QueueSpec, ...] = (), policy: str = DEFAULT_POLICY, **switches: object) -> "Scheduling":
        """``queues`` plus a ``default`` queue (the whole machine, ordered by ``policy``)
        unless they name one."""
        if not any(q.name == DEFAULT_QUEUE for q in queues):
            queues = (*queues, QueueSpec(DEFAULT_QUEUE, policy=policy))
        return cls(tuple(queues), **switches)  # type: ignore[arg-type]

    @property
    def queue_map(self) -> dict[str, QueueSpec]:
        return {q.name: q for q in self.queues}

    @property
    def uses_estimates(self) -> bool:
        """Some queue orders by run-time estimates (``sjf``)."""
        return any(q.order.uses_estimates for q in self.queues)

    @property
    def estimates_by_gpus(self) -> bool:
        """Some queue's estimates come from the user's jobs of the same GPU count (``sjf-aging``)."""
        return any(q.order.estimates_by_gpus for q in self.queues)

    @property
    def by_service(self) -> bool:
        """Some queue ranks by attained service and preempts by it (``las``)."""
        return any(q.order.by_service for q in self.queues)

    @property
    def fair_share(self) -> bool:
        """Some queue takes turns between users (``fair-share``): usage history is kept."""
        return any(q.order.by_user for q in self.queues)

    @property
    def default_policy(self) -> str:
        return self.queue_map[DEFAULT_QUEUE].policy
