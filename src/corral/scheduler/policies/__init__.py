"""Ordering policies, one module each. A policy orders the pending queue and says
whether the queue is strict (a job that does not fit blocks everything behind it) or
best-effort (later jobs that fit may start; Kueue's BestEffortFIFO)."""

from __future__ import annotations

from .base import Policy
from .fifo import BestEffortFifo, StrictFifo
from .sjf import ShortestJobFirst

POLICIES: dict[str, type[Policy]] = {
    BestEffortFifo.name: BestEffortFifo,
    StrictFifo.name: StrictFifo,
    ShortestJobFirst.name: ShortestJobFirst,
}

DEFAULT_POLICY = BestEffortFifo.name


def get_policy(name: str) -> Policy:
    from ...errors import ValidationError

    try:
        return POLICIES[name]()
    except KeyError:
        raise ValidationError("policy", name, "expected one of: " + ", ".join(sorted(POLICIES))) from None


__all__ = ["POLICIES", "DEFAULT_POLICY", "Policy", "get_policy", "BestEffortFifo", "StrictFifo", "ShortestJobFirst"]
