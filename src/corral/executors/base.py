"""The executor interface: the one seam a backend plugs into.

An executor owns *how* a job runs (local process sessions, an engine's tasks); the
daemon owns *whether*, *when* and *where*. The daemon hands it a job and the allocation
the scheduler chose (one :class:`~corral.job.Piece` per node: node, GPUs, cores) and the
executor runs exactly that. Everything particular to one backend stays in its own folder
(the local executor's run-as-user, cgroups, device rules, shared cores and job
directories are in :mod:`corral.executors.local`).

Rules every executor follows (one contract suite, ``tests/contract/test_executor.py``,
runs against each):

* ``launch`` never raises for a job that cannot start: the failure is an end reported
  through ``on_exit`` (``launch_error``), like any other end;
* every launch ends exactly once through ``on_exit`` with an :class:`ExitStatus` (exit
  code or signal, and ``stopped_for`` when corral stopped it), also across a daemon
  restart: a new executor ``adopt`` s what the old one launched;
* ``stop`` sends the job its stop signal, then SIGKILL after its grace period;
* what an executor cannot do, it says in :attr:`Executor.capabilities`, and the daemon
  does not ask (no logs, no usage sampling, ...).
"""

from __future__ import annotations

import enum
import signal as _signal
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ClassVar, Iterable

from ..job import JobState, Reason

if TYPE_CHECKING:
    from ..capacity.gpu import GpuSample
    from ..capacity.node import Node
    from ..job import Allocation, Job


class StopReason(str, enum.Enum):
    """Why corral itself stopped a job (recorded before the job is signalled)."""

    CANCEL = "cancel"
    TIME_LIMIT = "time-limit"
    MEMORY_LIMIT = "memory-limit"        # the watchdog saw it over its memory limit
    IDLE_CANCEL = "idle-cancel"          # idle-GPU reclaim: cancel
    REQUEUE = "requeue"                  # stopped to be queued again (idle-GPU reclaim)
    PREEMPT = "preempt"                  # preempted; queued again
    PREEMPT_END = "preempt-end"          # preempted; it asked not to be requeued


@dataclass(frozen=True)
class ExitStatus:
    """How a job ended, as its executor saw it."""

    ended_at: float
    exit_code: int | None = None
    signal: int | None = None
    launch_error: str | None = None
    #: Set when corral asked the job to stop (cancel, time limit, preemption ...).
    stopped_for: StopReason | None = None
    #: The executor lost the job without an exit status (a supervisor vanished).
    lost: bool = False
    #: Why corral stopped it, in words with the numbers (e.g. the watchdog's reading).
    stop_message: str = ""
    #: From the job's cgroup, when it had one: OOM kills, peak and limit (bytes), CPU time.
    oom_kills: int = 0
    memory_peak: int | None = None
    memory_limit: int | None = None
    cpu_seconds: float | None = None
    #: The node (one of its nodes) was lost: the job ended with it (an engine's nodes).
    node_lost: str = ""
    #: The engine did not start it within its start timeout (a gang's placement group
    #: never became ready): nothing of it ran, it is released.
    start_timeout: bool = False

    def classify(self) -> tuple[JobState, Reason, str]:
        """Terminal state (Pending: requeued), typed reason and message for this exit."""
        if self.node_lost:
            return JobState.PENDING, Reason.NODE_LOST, self.stop_message or f"node {self.node_lost} was lost"
        if self.start_timeout:
            return JobState.PENDING, Reason.START_TIMEOUT, self.stop_message or "not started in time"
        if self.lost:
            return (JobState.FAILED, Reason.SUPERVISOR_LOST,
                    self.stop_message or "job supervisor ended without recording an exit status")
        if self.launch_error is not None:
            return JobState.FAILED, Reason.LAUNCH_FAILED, self.launch_error
        how = describe_exit(self.exit_code, self.signal)
        if self.stopped_for is StopReason.CANCEL:
            return JobState.CANCELLED, Reason.CANCELLED, f"cancelled by request ({how})"
        if self.stopped_for is StopReason.TIME_LIMIT:
            return JobState.FAILED, Reason.TIMED_OUT, f"time limit reached ({how})"
        if self.stopped_for is StopReason.MEMORY_LIMIT:
            return JobState.FAILED, Reason.MEMORY_LIMIT_EXCEEDED, self.stop_message or "exceeded its memory limit"
        if self.stopped_for is StopReason.IDLE_CANCEL:
            return JobState.CANCELLED, Reason.IDLE_GPU_RECLAIMED, self.stop_message or "GPUs idle"
        if self.stopped_for is StopReason.REQUEUE:
            return JobState.PENDING, Reason.REQUEUED, self.stop_message or "requeued"
        if self.stopped_for is StopReason.PREEMPT:
            return JobState.PENDING, Reason.PREEMPTED, f"{self.stop_message or 'preempted'} ({how})"
        if self.stopped_for is StopReason.PREEMPT_END:
            return (JobState.CANCELLED, Reason.PREEMPTED_NOT_REQUEUED,
                    f"{self.stop_message or 'preempted'}; not requeued ({how})")
        if self.oom_kills and not (self.exit_code == 0 and self.signal is None):
            limit = f" {_human(self.memory_limit)}" if self.memory_limit else ""
            peak = f" (peak {_human(self.memory_peak)})" if self.memory_peak else ""
            return JobState.FAILED, Reason.OOM_KILLED, f"exceeded memory limit{limit}{peak}; {how}"
        where = f" ({self.stop_message})" if self.stop_message else ""   # e.g. a gang's failing replica
        if self.signal is not None:
            return JobState.FAILED, Reason.SIGNALED, f"killed by signal {signal_name(self.signal)}{where}"
        if self.exit_code == 0:
            return JobState.SUCCEEDED, Reason.COMPLETED, "exit code 0"
        return JobState.FAILED, Reason.ERROR, f"exit code {self.exit_code}{where}"


def _human(amount: int | None) -> str:
    from ..resources import format_quantity

    return format_quantity("memory", amount or 0)


def signal_name(sig: int) -> str:
    try:
        return _signal.Signals(sig).name
    except ValueError:
        return str(sig)


def describe_exit(exit_code: int | None, sig: int | None) -> str:
    if sig is not None:
        return f"signal {signal_name(sig)}"
    return f"exit code {exit_code}" if exit_code is not None else "no exit status recorded"


@dataclass(frozen=True)
class Running:
    """A job the executor is watching; ``handle`` is how it knows it (a pid, an engine id)."""

    job_id: int
    handle: str = ""


@dataclass(frozen=True)
class Capabilities:
    """What an executor can do. The daemon asks only for what is declared."""

    #: The job's stdout/stderr can be read (:meth:`Executor.read_log`).
    logs: bool = False
    #: CPU time, memory and processes can be sampled (:meth:`Executor.sample`).
    usage: bool = False
    #: Memory and CPU limits are hard (the kernel's cgroups), not only watched.
    cgroups: bool = False
    #: A job's own stop signal and grace period are honoured.
    stop_signals: bool = False
    #: The job gets exactly its allocation's GPUs and cores, no others.
    device_pinning: bool = False
    #: Allocations that span several nodes can be launched.
    gangs: bool = False
    #: The nodes come from the executor (:meth:`Executor.nodes`), not the config.
    inventory: bool = False
    #: Interactive jobs (``spec.pty``): the job's process gets a pseudo-terminal.
    interactive: bool = False

    def to_dict(self) -> dict[str, bool]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Reading:
    """One sample of a running job's usage (:meth:`Executor.sample`)."""

    job_id: int
    #: CPU seconds used since it started (all its processes, exited ones included where
    #: the source counts them); None: unknown.
    cpu_seconds: float | None = None
    #: Working set (cgroup) or resident memory of its processes, bytes.
    memory: int | None = None
    memory_peak: int | None = None
    #: How many processes (tasks) it has.
    processes: int | None = None
    #: Its process ids (to attribute GPU memory by process).
    pids: tuple[int, ...] = ()
    #: Where the numbers come from ("cgroup", "procfs", an engine's name).
    source: str = ""


ExitCallback = Callable[[int, ExitStatus], None]


class Executor(ABC):
    """What the daemon needs from a place that runs jobs."""

    #: The name the config's ``engine: {type: ...}`` uses.
    name: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities()

    @abstractmethod
    def nodes(self) -> list["Node"]:
        """The nodes jobs can run on, as the executor sees them now."""

    @abstractmethod
    def launch(self, job: "Job", allocation: "Allocation") -> None:
        """Start ``job`` on exactly ``allocation``. Its end -- a launch failure included --
        comes through ``on_exit``."""

    @abstractmethod
    def stop(self, job_id: int, why: StopReason, message: str = "") -> bool:
        """Ask a running job to stop: its stop signal, then SIGKILL after its grace
        period. ``why`` and ``message`` come back in the job's :class:`ExitStatus`.
        False when the job is not running here."""

    def signal(self, job_id: int, sig: int) -> bool:
        """Send ``sig`` to the job's processes without stopping it (e.g. a checkpoint
        signal). False when the job is not running here or signals cannot be sent."""
        return False

    @abstractmethod
    def adopt(self, job: "Job") -> Running | ExitStatus | None:
        """After a daemon restart: re-attach to a job recorded as running.

        :class:`Running` when it still runs (its end will come through ``on_exit``), an
        :class:`ExitStatus` when it ended meanwhile, or ``None`` when it was never
        launched (the daemon died between recording the start and launching it)."""

    def sample(self, job_ids: Iterable[int]) -> dict[int, Reading]:
        """The latest usage of these running jobs (capability ``usage``); jobs it cannot
        read are left out."""
        return {}

    def sample_gpus(self, node: str, indices: Iterable[int]) -> dict[int, "GpuSample"]:
        """Utilization, memory and power of these GPUs of ``node`` (their index there);
        GPUs it cannot read are left out."""
        return {}

    def processes(self, job_id: int) -> dict[str, int]:
        """The running job's main processes by role (e.g. ``{"supervisor": pid, "job": pid}``),
        where the executor knows them; empty otherwise."""
        return {}

    def read_log(self, job_id: int, stream: str, offset: int = 0, size: int = 1 << 20) -> bytes | None:
        """Up to ``size`` bytes of the job's ``stream`` ("stdout" or "stderr") from
        ``offset`` (capability ``logs``); None when there is no such log (yet)."""
        return None

    def log_location(self, job_id: int, stream: str) -> str | None:
        """Where the job's log lives, for people (a path); None when not a file."""
        return None

    def remove(self, job_id: int) -> None:
        """A finished job is deleted (retention): drop what the executor keeps of it
        (its directory, logs). Nothing to do by default."""

    def cap_logs(self, job_ids: list[int], limit: int) -> list[tuple[int, str, int]]:
        """Hold running jobs' logs to ``limit`` bytes per stream: what a job writes
        beyond it is dropped, after a marker line. The (job, stream, size) cut for the
        first time. Nothing by default (an executor whose logs are not files here)."""
        return []

    def known_nodes(self) -> list["Node"]:
        """Every node the engine knows, lost ones too (for ``corral nodes``); the
        schedulable ones are :meth:`nodes`."""
        return self.nodes()

    def node_states(self) -> dict[str, str]:
        """Each node's state as the engine sees it: ``Ready``, ``NotReady`` or ``Lost``
        (capability ``inventory``; corral adds ``Draining``). Every node Ready by default."""
        return {n.name: "Ready" for n in self.nodes()}

    def watch_nodes(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the daemon's event loop) whenever :meth:`nodes` or
        :meth:`node_states` change (capability ``inventory``). Nothing by default: the
        nodes are fixed."""

    def watch_notes(self, callback: Callable[[int, Reason, str], None]) -> None:
        """Call ``callback(job_id, reason, message)`` (on the daemon's event loop) when
        the engine has news of a running job -- it holds it pending, with its own reason,
        or started it. Nothing by default."""

    def after_cycle(self) -> None:
        """The scheduler's pass is over: every launch it decided was handed to
        :meth:`launch` (called on the daemon's event loop). Nothing by default."""

    def recovered(self) -> None:
        """After a restart, once every job recorded as running was adopted: what runs on
        the nodes that corral no longer counts (a lost node's jobs) may be killed now."""

    def describe(self) -> dict:
        """How this executor runs jobs, for ``corral nodes`` (e.g. how limits are held)."""
        return {"engine": self.name, "capabilities": self.capabilities.to_dict()}

    @abstractmethod
    def close(self) -> None:
        """Stop watching; running jobs keep running."""


__all__ = ["StopReason", "ExitStatus", "Running", "Capabilities", "Reading", "ExitCallback", "Executor",
           "describe_exit", "signal_name"]
