"""The pure scheduler core (no I/O, no clock): nodes + allocations + pending -> decisions."""

from .core import explain, infeasible, schedule, schedule_on
from .policies import DEFAULT_POLICY, POLICIES, get_policy
from .queue import PendingQueue
from .snapshot import Snapshot
from .types import CycleResult, PendingJob, Placement, Shortfall, Waiting

__all__ = ["schedule", "schedule_on", "infeasible", "explain", "Snapshot", "CycleResult", "PendingJob",
           "Placement", "Shortfall", "Waiting", "PendingQueue", "get_policy", "POLICIES", "DEFAULT_POLICY"]
