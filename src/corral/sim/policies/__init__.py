"""The policies ``corral sim`` compares.

Two kinds, side by side:

* the scheduler core's single-queue policies (:data:`corral.scheduler.POLICIES`:
  ``best-effort-fifo``, ``strict-fifo``, ``sjf``), run on the fast path
  (:func:`corral.scheduler.schedule_on`, the daemon's cycle without queues); ``sjf``
  there orders by the real durations (oracle), ``sjf-history`` (:mod:`.sjf_history`) by
  run times learned from the jobs completed so far, as the daemon's ``sjf`` does;
* :class:`~.base.TenantPolicy` s, run through the daemon's multi-tenant cycle
  (:func:`corral.scheduler.tenancy.schedule_tenants`): ``easy-backfill``
  (:mod:`.easy_backfill`) and ``fair-share`` (:mod:`.fair_share`);
* preemptive :class:`~.preemptive.PreemptivePolicy` s, run by the engine's preemptive
  loop (:mod:`corral.sim.preemptive`): ``srtf`` (:mod:`.srtf`, oracle) and ``tiresias``
  (:mod:`.tiresias`, discretized 2D least-attained-service).

:func:`resolve` turns a name into either; :func:`is_oracle` says whether a policy reads
the trace's real run times (a yardstick, not deployable).
"""

from __future__ import annotations

from typing import Iterable

from ...errors import ValidationError
from .base import DEFAULT_QUEUE, TenantPolicy
from .easy_backfill import easy_backfill
from .fair_share import DEFAULT_HALF_LIFE, fair_share
from .preemptive import PreemptivePolicy
from .sjf_history import sjf_history
from .srtf import srtf
from .tiresias import DEFAULT_THRESHOLDS, parse_promote_knob, parse_thresholds, tiresias

#: Name -> factory(estimate_factor=, half_life=) of the multi-tenant policies.
TENANT_POLICIES = {"easy-backfill": easy_backfill, "fair-share": fair_share}
#: Name -> factory(thresholds=) of the preemptive policies.
PREEMPTIVE_POLICIES = {"srtf": srtf, "tiresias": tiresias}
#: Name -> factory of the core policies run on estimates learned from history (fast path).
HISTORY_POLICIES = {"sjf-history": sjf_history}


def policy_names() -> list[str]:
    from ...scheduler import POLICIES

    return [*POLICIES, *HISTORY_POLICIES, *TENANT_POLICIES, *PREEMPTIVE_POLICIES]


def resolve(name: str, *, estimate_factor: float = 1.0, half_life: float = DEFAULT_HALF_LIFE,
            tiresias_thresholds=DEFAULT_THRESHOLDS, tiresias_promote_knob: float | None = None):
    """A core :class:`~corral.scheduler.policies.Policy`, a :class:`TenantPolicy` or a
    :class:`PreemptivePolicy`."""
    from ...scheduler import POLICIES, get_policy

    if name in PREEMPTIVE_POLICIES:
        return PREEMPTIVE_POLICIES[name](thresholds=tiresias_thresholds, promote_knob=tiresias_promote_knob)
    if name in HISTORY_POLICIES:
        return HISTORY_POLICIES[name]()

    factory = TENANT_POLICIES.get(name)
    if factory is not None:
        return factory(estimate_factor=estimate_factor, half_life=half_life)
    if name in POLICIES:
        return get_policy(name)
    raise ValidationError("policy", name, "expected one of: " + ", ".join(sorted(policy_names())))


def is_oracle(policy, jobs: Iterable = ()) -> bool:
    """True when ``policy`` uses the real run times of (some of) ``jobs``."""
    if isinstance(policy, TenantPolicy):
        return policy.oracle_for(jobs)
    return bool(getattr(policy, "oracle", False))


__all__ = ["TenantPolicy", "TENANT_POLICIES", "HISTORY_POLICIES", "sjf_history", "PreemptivePolicy", "PREEMPTIVE_POLICIES", "DEFAULT_THRESHOLDS",
           "parse_thresholds", "parse_promote_knob", "srtf", "tiresias", "DEFAULT_QUEUE", "DEFAULT_HALF_LIFE", "resolve", "is_oracle",
           "policy_names", "easy_backfill", "fair_share"]
