"""Job states, the transition table, and typed reasons.

A job is always in one :class:`JobState` with a :class:`Reason` beside it. The legal
state changes are the :data:`TRANSITIONS` table; anything else raises
:class:`~corral.errors.InvalidTransition`. Reasons are a fixed vocabulary (like squeue's
reason codes and Kueue's requeue reasons), never free strings; the free-text part is the
``message`` that goes with them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidTransition


class JobState(str, enum.Enum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    def __str__(self) -> str:
        return self.value


TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.PENDING: frozenset({JobState.RUNNING, JobState.CANCELLED, JobState.FAILED}),
    # Running -> Pending: requeued (idle-GPU reclaim, later preemption), same id.
    JobState.RUNNING: frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.PENDING}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}


def check_transition(job_id: int, old: JobState, new: JobState) -> None:
    if new not in TRANSITIONS[old]:
        allowed = ", ".join(s.value for s in sorted(TRANSITIONS[old], key=lambda s: s.value)) or "none (terminal)"
        raise InvalidTransition(
            f"invalid transition for job {job_id}: {old.value} -> {new.value} (allowed from {old.value}: {allowed})"
        )


class Reason(str, enum.Enum):
    # Pending
    QUEUED = "Queued"                              # not yet looked at by a scheduling cycle
    INSUFFICIENT_RESOURCES = "InsufficientResources"
    PRIORITY = "Priority"                          # waiting behind an earlier job (strict order)
    UNSCHEDULABLE = "Unschedulable"                # no node could hold it now (capacity shrank)
    REQUEUED = "Requeued"                          # stopped by corral and put back in the queue
    HELD = "Held"                                  # held by its owner or an admin
    DEPENDENCY = "Dependency"                      # waiting for other jobs to end
    ARRAY_LIMIT = "ArrayLimit"                     # its array already runs its %N tasks
    RETRY_BACKOFF = "RetryBackoff"                 # failed; runs again after a backoff
    QUOTA = "QuotaExceeded"                        # its queue's quota (with borrowing) is used up
    USER_LIMIT = "UserLimit"                       # the user's limit in its queue is reached
    RESERVED = "Reserved"                          # resources reserved for an earlier job (backfill)
    FAIR_SHARE = "FairShare"                       # another user's turn (fair share)
    PREEMPTING = "Preempting"                      # lower-priority jobs are being stopped for it
    PREEMPTED = "Preempted"                        # stopped for a higher-priority job or a quota reclaim
    # Running
    LAUNCHED = "Launched"
    ADOPTED = "Adopted"                            # re-adopted by a restarted daemon
    GPU_IDLE = "GpuIdle"                           # holds GPUs that stay idle (a reclaim warning)
    # Terminal
    COMPLETED = "Completed"                        # exit code 0
    ERROR = "Error"                                # non-zero exit code
    SIGNALED = "Signaled"                          # killed by a signal corral did not send
    CANCELLED = "CancelledByUser"
    TIMED_OUT = "TimedOut"                         # stopped at its time limit
    LAUNCH_FAILED = "LaunchFailed"                 # e.g. the program does not exist
    SUPERVISOR_LOST = "SupervisorLost"             # the job's supervisor vanished without a status
    OOM_KILLED = "OOMKilled"                       # killed by the kernel at its cgroup memory limit
    MEMORY_LIMIT_EXCEEDED = "MemoryLimitExceeded"  # killed by corral's watchdog over its memory limit
    IDLE_GPU_RECLAIMED = "IdleGpuReclaimed"        # cancelled because its GPUs stayed idle
    DEPENDENCY_FAILED = "DependencyFailed"         # a job it depends on ended the wrong way
    PREEMPTED_NOT_REQUEUED = "PreemptedNotRequeued"  # preempted, and it asked not to be requeued

    def __str__(self) -> str:
        return self.value


#: The states each reason may stand beside.
REASON_STATES: dict[Reason, JobState] = {
    Reason.QUEUED: JobState.PENDING,
    Reason.INSUFFICIENT_RESOURCES: JobState.PENDING,
    Reason.PRIORITY: JobState.PENDING,
    Reason.UNSCHEDULABLE: JobState.PENDING,
    Reason.REQUEUED: JobState.PENDING,
    Reason.HELD: JobState.PENDING,
    Reason.DEPENDENCY: JobState.PENDING,
    Reason.ARRAY_LIMIT: JobState.PENDING,
    Reason.RETRY_BACKOFF: JobState.PENDING,
    Reason.QUOTA: JobState.PENDING,
    Reason.USER_LIMIT: JobState.PENDING,
    Reason.RESERVED: JobState.PENDING,
    Reason.FAIR_SHARE: JobState.PENDING,
    Reason.PREEMPTING: JobState.PENDING,
    Reason.PREEMPTED: JobState.PENDING,
    Reason.LAUNCHED: JobState.RUNNING,
    Reason.ADOPTED: JobState.RUNNING,
    Reason.GPU_IDLE: JobState.RUNNING,
    Reason.COMPLETED: JobState.SUCCEEDED,
    Reason.ERROR: JobState.FAILED,
    Reason.SIGNALED: JobState.FAILED,
    Reason.CANCELLED: JobState.CANCELLED,
    Reason.TIMED_OUT: JobState.FAILED,
    Reason.LAUNCH_FAILED: JobState.FAILED,
    Reason.SUPERVISOR_LOST: JobState.FAILED,
    Reason.OOM_KILLED: JobState.FAILED,
    Reason.MEMORY_LIMIT_EXCEEDED: JobState.FAILED,
    Reason.IDLE_GPU_RECLAIMED: JobState.CANCELLED,
    Reason.DEPENDENCY_FAILED: JobState.CANCELLED,
    Reason.PREEMPTED_NOT_REQUEUED: JobState.CANCELLED,
}


@dataclass(frozen=True)
class Allocation:
    """What a running job holds: its requests, on one node, with specific devices.

    ``gpus`` are GPU indices on the node, ``cores`` are CPU ids given exclusively (empty
    when the CPU request is fractional and the job runs on the shared pool).
    """

    node: str
    requests: "Any"  # corral.resources.Resources
    gpus: tuple[int, ...] = ()
    cores: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "requests": self.requests.as_dict(),
                "gpus": list(self.gpus), "cores": list(self.cores)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Allocation":
        from .resources import Resources

        return cls(node=data["node"], requests=Resources(data["requests"]),
                   gpus=tuple(data.get("gpus", ())), cores=tuple(data.get("cores", ())))


@dataclass
class Job:
    """A job record as the store keeps it."""

    id: int
    spec: "Any"  # corral.spec.JobSpec
    state: JobState = JobState.PENDING
    reason: Reason = Reason.QUEUED
    message: str = ""
    submitted_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    signal: int | None = None
    allocation: Allocation | None = None
    #: Environment captured from the submitter (like sbatch's --export=ALL); the spec's
    #: own ``env`` is applied on top of it.
    base_env: dict[str, str] = field(default_factory=dict)
    #: Submission order, strictly increasing; with priority it orders the queue.
    seq: int = 0
    #: Who submitted it (user name; the daemon takes it from the caller's credentials).
    user: str = ""
    #: How many times it was started (a requeued job starts again).
    attempts: int = 0
    #: The submitter's uid and gid (from the socket's peer credentials); None: unknown.
    uid: int | None = None
    gid: int | None = None
    #: Array jobs: the id of the array's first task, and this task's index.
    array_id: int | None = None
    array_index: int | None = None
    #: Held: not considered by the scheduler until released.
    held: bool = False
    #: Not started before this time (retry backoff).
    not_before: float | None = None

    @property
    def terminal(self) -> bool:
        return self.state.terminal
