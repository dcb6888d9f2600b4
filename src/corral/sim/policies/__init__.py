"""The policies ``corral sim`` compares.

Every one but the research references is a :class:`SimPolicy`: settings for the daemon's
own scheduling pipeline and driver (queues, ordering policy, backfill, preemption, fair
share), plus what the replay tells the scheduler about run times:

* ``best-effort-fifo`` (the default), ``strict-fifo``, ``priority``, ``fair-share``
  (DRF between the trace's users -- Philly's virtual clusters, Alibaba's qos classes,
  SWF's user ids -- with decayed past usage, ``--half-life``): as the daemon runs them;
* ``sjf`` (oracle): shortest job first on the trace's real durations, a yardstick;
  ``sjf-history``: the same ordering on run times learned as the replay goes (a job's
  time limit, else the median of its user's last 20 completed jobs) -- what the daemon's
  ``policy: sjf`` does;
* ``sjf-aging``: shortest expected run time first with aging and a bound on the wait
  (:mod:`corral.scheduler.policies.sjf_aging`), on run times learned as the replay goes
  (per user and GPU count) -- as the daemon runs it; no oracle;
* ``las``: least attained service first, in levels, preempting by it
  (:mod:`corral.scheduler.policies.las`) -- as the daemon runs it, every trace job taken
  as resumable (a preempted job keeps its work; its stop is instant); no oracle;
* ``easy-backfill``: backfill reservations from time limits: a job's requested time when
  the trace records one (SWF), else its real duration x ``--estimate-factor`` (an
  oracle);
* ``config``: a daemon config file (``--config``), as the daemon would run it
  (:func:`from_config`).

``srtf`` and ``tiresias`` are research references with their own preemptive loop
(:mod:`corral.sim.research`). :func:`resolve` turns a name into a policy;
:func:`is_oracle` says whether a policy reads the trace's real run times.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Iterable

from ...errors import ValidationError
from ...scheduler.policies import POLICIES
from ...scheduler.settings import DEFAULT_QUEUE, Scheduling
from ..research import (DEFAULT_THRESHOLDS, RESEARCH_POLICIES, PreemptivePolicy, parse_promote_knob,
                        parse_thresholds)

DEFAULT_HALF_LIFE = 7 * 86400.0

#: How the replay tells ``sjf`` a job's run time.
REQUESTED, HISTORY, ORACLE = "requested", "history", "oracle"


@dataclass(frozen=True)
class SimPolicy:
    """A policy replayed through the daemon's driver and scheduling cycle."""

    name: str
    scheduling: Scheduling
    #: What ``sjf`` orders by: the requested time only, run times learned from the jobs
    #: completed so far (as the daemon), or the real durations (an oracle).
    order_by: str = REQUESTED
    #: Jobs without a requested time are told ``duration x estimate_factor`` as their time
    #: limit (backfill's estimate; an oracle). None: only requested times.
    estimate_factor: float | None = None
    #: The trace's jobs keep their work when preempted (they checkpoint): a preemption
    #: by attained service (``las``) then costs them nothing but the wait.
    resumable: bool = False

    def __post_init__(self) -> None:
        k = self.estimate_factor
        if k is not None and (isinstance(k, bool) or not isinstance(k, (int, float)) or not math.isfinite(k)
                              or k <= 0):
            raise ValidationError("estimate factor", k, "expected a number above 0, e.g. 1.0 or 2")

    def queue_for(self, job) -> str:
        """The queue a trace job goes to: the one named after its user, else ``default``."""
        user = getattr(job, "user", "")
        if user and user != DEFAULT_QUEUE and user in self.scheduling.queue_map:
            return user
        return DEFAULT_QUEUE

    def limit(self, job) -> float | None:
        """The time limit the scheduler is told (what backfill relies on)."""
        requested = getattr(job, "time_limit", None)
        if requested is not None and requested > 0:
            return float(requested)
        if self.estimate_factor is not None:
            return float(job.duration) * self.estimate_factor
        return None

    def oracle_for(self, jobs: Iterable) -> bool:
        """True when some job's run time as the scheduler sees it is its real duration."""
        if self.order_by == ORACLE and self.scheduling.uses_estimates:
            return True
        if self.estimate_factor is None:
            return False
        return any(not (getattr(j, "time_limit", None) or 0) > 0 for j in jobs)

    @property
    def oracle(self) -> bool:
        return self.order_by == ORACLE or self.estimate_factor is not None


def from_config(config, name: str = "config") -> SimPolicy:
    """The policy a :class:`corral.config.Config` describes, as the daemon runs it: its
    queues (a trace job goes to the queue named after its user field when there is one),
    ``policy``, ``fair_share``, ``backfill`` (on requested times only) and ``preemption``
    (a victim stops at once and is requeued with its work lost). Under ``las`` (a queue
    that ranks by attained service) the trace's jobs are taken as resumable, as
    :func:`resolve` does: a preempted job keeps its work. No oracle knowledge."""
    scheduling = config.scheduling
    return SimPolicy(name, scheduling, order_by=HISTORY, resumable=scheduling.by_service)


def load_config_policy(path: str, name: str = "config") -> SimPolicy:
    """Read and validate the daemon config file at ``path`` (one-line errors naming the
    file and field) and return its policy; a missing file is an error here."""
    from ...config import load_config

    if not os.path.isfile(path):
        raise ValidationError("--config", path, "expected an existing daemon config file (YAML)",
                              detail="no such file")
    return from_config(load_config(path), name)


def policy_names() -> list[str]:
    return [*POLICIES, "sjf-history", "easy-backfill", *RESEARCH_POLICIES]


def resolve(name: str, *, estimate_factor: float = 1.0, half_life: float = DEFAULT_HALF_LIFE,
            tiresias_thresholds=DEFAULT_THRESHOLDS, tiresias_promote_knob: float | None = None,
            reference_rules: str = "paper"):
    """A :class:`SimPolicy`, or a research reference (:class:`PreemptivePolicy`; its
    ``reference_rules``: ``paper`` or ``corral``, see :mod:`corral.sim.research`)."""
    if name in RESEARCH_POLICIES:
        return RESEARCH_POLICIES[name](thresholds=tiresias_thresholds, promote_knob=tiresias_promote_knob,
                                       rules=reference_rules)
    h = half_life
    if isinstance(h, bool) or not isinstance(h, (int, float)) or not math.isfinite(h) or h <= 0:
        raise ValidationError("half-life", h, "expected a positive number of seconds, e.g. 7d")
    if name == "sjf-history":
        return SimPolicy(name, Scheduling.make(policy="sjf"), order_by=HISTORY)
    if name == "sjf":
        return SimPolicy(name, Scheduling.make(policy="sjf"), order_by=ORACLE)
    if name == "easy-backfill":
        return SimPolicy(name, Scheduling.make(policy="best-effort-fifo", backfill=True),
                         estimate_factor=estimate_factor)
    if name in POLICIES and POLICIES[name].by_service:      # las: the jobs checkpoint, as its papers assume
        return SimPolicy(name, Scheduling.make(policy=name), resumable=True)
    if name in POLICIES and POLICIES[name].uses_estimates:   # sjf-aging: learned run times, as the daemon
        return SimPolicy(name, Scheduling.make(policy=name), order_by=HISTORY)
    if name in POLICIES:
        return SimPolicy(name, Scheduling.make(policy=name, half_life=float(half_life)))
    raise ValidationError("policy", name, "expected one of: " + ", ".join(policy_names()))


def is_oracle(policy, jobs: Iterable = ()) -> bool:
    """True when ``policy`` uses the real run times of (some of) ``jobs``."""
    if isinstance(policy, SimPolicy):
        return policy.oracle_for(jobs)
    return bool(getattr(policy, "oracle", False))


__all__ = ["SimPolicy", "from_config", "load_config_policy", "policy_names", "resolve", "is_oracle",
           "PreemptivePolicy", "RESEARCH_POLICIES", "DEFAULT_THRESHOLDS", "DEFAULT_HALF_LIFE", "parse_thresholds",
           "parse_promote_knob", "REQUESTED", "HISTORY", "ORACLE"]
