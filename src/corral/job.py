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
from .frozen import fast_init


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
    # Running -> Pending: requeued (preemption, idle-GPU reclaim, a retry), same id.
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
    NODES_DRAINING = "NodesDraining"               # only drained nodes could hold it
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
    NODE_LOST = "NodeLost"                         # its node was lost; queued again
    START_TIMEOUT = "StartTimeout"                 # its engine did not start it in time; queued again
    # Running
    LAUNCHED = "Launched"
    ADOPTED = "Adopted"                            # re-adopted by a restarted daemon
    ENGINE_PENDING = "EnginePending"               # placed; its engine holds it pending (Slurm's reason)
    GPU_IDLE = "GpuIdle"                           # holds GPUs that stay idle (a reclaim warning)
    LOG_TRUNCATED = "LogTruncated"                 # wrote more than the log limit; the rest is dropped
    TIME_LIMIT = "TimeLimit"                       # reached its time limit: stop signal sent, SIGKILL next
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
    NODE_FAIL = "NodeFail"                         # its node was lost, and it asked not to be requeued

    def __str__(self) -> str:
        return self.value


#: The states each reason may stand beside.
REASON_STATES: dict[Reason, JobState] = {
    Reason.QUEUED: JobState.PENDING,
    Reason.INSUFFICIENT_RESOURCES: JobState.PENDING,
    Reason.PRIORITY: JobState.PENDING,
    Reason.UNSCHEDULABLE: JobState.PENDING,
    Reason.NODES_DRAINING: JobState.PENDING,
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
    Reason.NODE_LOST: JobState.PENDING,
    Reason.START_TIMEOUT: JobState.PENDING,
    Reason.PREEMPTED: JobState.PENDING,
    Reason.LAUNCHED: JobState.RUNNING,
    Reason.ENGINE_PENDING: JobState.RUNNING,
    Reason.ADOPTED: JobState.RUNNING,
    Reason.GPU_IDLE: JobState.RUNNING,
    Reason.LOG_TRUNCATED: JobState.RUNNING,
    Reason.TIME_LIMIT: JobState.RUNNING,
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
    Reason.NODE_FAIL: JobState.FAILED,
    Reason.PREEMPTED_NOT_REQUEUED: JobState.CANCELLED,
}


@fast_init
@dataclass(frozen=True, slots=True)
class Piece:
    """The part of an allocation on one node: its requests there, with specific devices.

    ``gpus`` are GPU indices on the node, ``cores`` are CPU ids given exclusively (empty
    when the CPU request is fractional and the job runs on the shared pool)."""

    node: str
    requests: "Any"  # corral.resources.Resources
    gpus: tuple[int, ...] = ()
    cores: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "requests": self.requests.as_dict(),
                "gpus": list(self.gpus), "cores": list(self.cores)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Piece":
        from .resources import Resources

        return cls(node=data["node"], requests=Resources(data["requests"]),
                   gpus=tuple(data.get("gpus", ())), cores=tuple(data.get("cores", ())))


class Allocation:
    """What a running job holds: one :class:`Piece` per node it runs on.

    Most jobs run on one node: ``Allocation(node, requests, gpus, cores)`` builds that
    one piece, and :attr:`node`, :attr:`gpus` and :attr:`cores` read it. A job that
    spans nodes (a gang) is ``Allocation(pieces=[...])``; for it those three raise, since
    GPU and core ids only mean something on their own node -- use :attr:`pieces`.
    Immutable and hashable.
    """

    __slots__ = ("pieces", "requests", "nodes")

    def __init__(self, node: str | None = None, requests: "Any" = None, gpus: tuple[int, ...] = (),
                 cores: tuple[int, ...] = (), *, pieces: "Any" = None):
        if pieces is not None:
            if node is not None or requests is not None or gpus or cores:
                raise TypeError("Allocation takes either node/requests/gpus/cores or pieces, not both")
            parts = pieces if type(pieces) is tuple else tuple(pieces)
            if not parts:
                raise ValueError("an allocation has at least one piece")
        else:
            if node is None or requests is None:
                raise TypeError("Allocation needs a node and requests (or pieces)")
            parts = (Piece(node, requests, tuple(gpus), tuple(cores)),)
        total = parts[0].requests
        if len(parts) == 1:
            nodes: tuple[str, ...] = (parts[0].node,)
        else:
            nodes = tuple(p.node for p in parts)
            if len(set(nodes)) != len(nodes):
                raise ValueError(f"an allocation has one piece per node, got nodes {list(nodes)}")
            for p in parts[1:]:
                total = total.add(p.requests)
        _set_pieces(self, parts)
        _set_requests(self, total)
        _set_nodes(self, nodes)          # the nodes of the pieces, in order

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Allocation is immutable")

    def __reduce__(self):
        return (_from_pieces, (self.pieces,))

    def __copy__(self) -> "Allocation":
        return self

    def __deepcopy__(self, memo: dict) -> "Allocation":
        return self

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Allocation) and self.pieces == other.pieces

    def __hash__(self) -> int:
        return hash(self.pieces)

    def __repr__(self) -> str:
        if len(self.pieces) == 1:
            p = self.pieces[0]
            return f"Allocation(node={p.node!r}, requests={p.requests!r}, gpus={p.gpus}, cores={p.cores})"
        return f"Allocation(pieces={list(self.pieces)!r})"

    @property
    def single(self) -> bool:
        """True when the allocation is on one node."""
        return len(self.pieces) == 1

    def _only(self) -> Piece:
        if len(self.pieces) != 1:
            from .errors import CorralError

            raise CorralError(f"the allocation spans {len(self.pieces)} nodes ({', '.join(self.nodes)}): "
                              "read its pieces")
        return self.pieces[0]

    @property
    def node(self) -> str:
        """The node of a one-node allocation."""
        return self._only().node

    @property
    def gpus(self) -> tuple[int, ...]:
        """The GPU indices of a one-node allocation."""
        return self._only().gpus

    @property
    def cores(self) -> tuple[int, ...]:
        """The exclusive cores of a one-node allocation."""
        return self._only().cores

    def piece_on(self, node: str) -> Piece | None:
        for p in self.pieces:
            if p.node == node:
                return p
        return None

    @property
    def gpu_count(self) -> int:
        return sum(len(p.gpus) for p in self.pieces)

    def to_dict(self) -> dict[str, Any]:
        """One node: ``{"node", "requests", "gpus", "cores"}`` (the form stored since the
        start); several: ``{"pieces": [...]}``."""
        if len(self.pieces) == 1:
            return self.pieces[0].to_dict()
        return {"pieces": [p.to_dict() for p in self.pieces]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Allocation":
        if "pieces" in data:
            return cls(pieces=[Piece.from_dict(p) for p in data["pieces"]])
        p = Piece.from_dict(data)
        return cls(p.node, p.requests, p.gpus, p.cores)


# Set the slots through their descriptors: Allocation's own __setattr__ refuses.
_set_pieces = Allocation.pieces.__set__          # type: ignore[attr-defined]
_set_requests = Allocation.requests.__set__      # type: ignore[attr-defined]
_set_nodes = Allocation.nodes.__set__            # type: ignore[attr-defined]


def _from_pieces(pieces: tuple[Piece, ...]) -> Allocation:
    return Allocation(pieces=pieces)


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
    #: How many of its retries it has used (failed and went back to the queue).
    retried: int = 0
    #: Seconds it ran in earlier attempts whose work it kept: a resumable job preempted
    #: by attained service (``policy: las``) continues from its checkpoint.
    served: float = 0.0

    @property
    def terminal(self) -> bool:
        return self.state.terminal
