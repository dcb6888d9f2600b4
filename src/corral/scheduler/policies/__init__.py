"""Ordering policies, one module each (see :mod:`.base` for the interface)."""

from __future__ import annotations

from .base import QueuePolicy
from .best_effort_fifo import BestEffortFifo
from .fair_share import FairSharePolicy
from .las import LeastAttainedService
from .priority import Priority
from .sjf import ShortestJobFirst
from .sjf_aging import AgedShortestJobFirst
from .strict_fifo import StrictFifo

POLICIES: dict[str, type[QueuePolicy]] = {
    cls.name: cls for cls in (BestEffortFifo, StrictFifo, Priority, ShortestJobFirst, FairSharePolicy,
                               AgedShortestJobFirst, LeastAttainedService)
}

DEFAULT_POLICY = BestEffortFifo.name


def get_policy(name: str) -> QueuePolicy:
    from ...errors import ValidationError

    try:
        return POLICIES[name]()
    except KeyError:
        raise ValidationError("policy", name, "expected one of: " + ", ".join(POLICIES)) from None


__all__ = ["POLICIES", "DEFAULT_POLICY", "QueuePolicy", "get_policy", "BestEffortFifo", "StrictFifo", "Priority",
           "ShortestJobFirst", "FairSharePolicy", "AgedShortestJobFirst", "LeastAttainedService"]
