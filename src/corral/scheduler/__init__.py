"""The pure scheduler core (no I/O, no clock): nodes + allocations + pending -> decisions."""

from .core import explain, infeasible, schedule, schedule_on
from .policies import DEFAULT_POLICY, POLICIES, get_policy
from .queue import PendingQueue
from .snapshot import Snapshot
from .types import (CODES, QUEUE_POLICIES, Amounts, CycleResult, PendingJob, Placement, Preemption, QueueSpec,
                    Reservation, RunningJob, Shortfall, Waiting)
from .backfill import earliest_start
from .preemption import plan_preemption
from .quota import QuotaState
from .tenancy import TenantContext, TenantResult, schedule_tenants
from .estimate import estimate_starts

__all__ = ["schedule", "schedule_on", "infeasible", "explain", "Snapshot", "CycleResult", "PendingJob",
           "Placement", "Shortfall", "Waiting", "PendingQueue", "get_policy", "POLICIES", "DEFAULT_POLICY",
           # multi-tenant scheduling
           "schedule_tenants", "TenantContext", "TenantResult", "QueueSpec", "RunningJob", "Preemption",
           "Reservation", "Amounts", "QuotaState", "plan_preemption", "earliest_start", "estimate_starts",
           "CODES", "QUEUE_POLICIES"]
