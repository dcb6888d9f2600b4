"""The pure scheduler core (no I/O, no clock): cluster state + pending jobs -> decisions.

One pipeline (:mod:`.cycle`) serves the daemon, its start-time estimates (:mod:`.estimate`)
and the simulator. See :mod:`.cycle` for its phases.
"""

from .cycle import CycleContext, Decisions, schedule
from .estimate import estimate_starts
from .feasibility import explain, infeasible
from .policies import DEFAULT_POLICY, POLICIES, QueuePolicy, get_policy
from .queue import PendingQueue, PendingSet
from .snapshot import Snapshot
from .state import ClusterState
from .queues import Amounts, QueueSpec
from .types import PendingJob, Placement, Preemption, Reservation, RunningJob

__all__ = ["schedule", "CycleContext", "Decisions", "estimate_starts", "explain", "infeasible", "DEFAULT_POLICY",
           "POLICIES", "QueuePolicy", "get_policy", "PendingQueue", "PendingSet", "Snapshot", "ClusterState",
           "Amounts", "PendingJob", "Placement", "Preemption", "QueueSpec", "Reservation", "RunningJob"]
