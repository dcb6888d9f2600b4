"""The executor interface: start a job on its allocation, stop it, tell when it ended.

An executor owns *how* a job runs (a local process session, a Ray task, a Slurm step);
the daemon owns *whether* and *when*. Executors report every end through the
``on_exit`` callback exactly once per launch, with an :class:`ExitStatus`.
"""

from __future__ import annotations

import enum
import signal as _signal
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable

from ..job import JobState, Reason


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
class LaunchRequest:
    job_id: int
    argv: tuple[str, ...]
    env: dict[str, str]
    workdir: str
    #: CPU ids the job may run on (None: leave affinity alone).
    cores: tuple[int, ...] | None
    kill_grace: float = 10.0
    name: str = ""
    #: Sent to the job's process group when corral stops it (then SIGKILL after the grace).
    stop_signal: int = _signal.SIGTERM
    #: The job's cgroup: ``{"support": CgroupSupport.to_dict(), "key": "job-42",
    #: "limits": Limits.to_dict()}``; None: no cgroup (the watchdog measures the job).
    cgroup: dict | None = None
    #: Run the job as this user (a root daemon in system mode: the job's submitter);
    #: None: as the daemon's own user. ``user`` names it (for supplementary groups).
    uid: int | None = None
    gid: int | None = None
    user: str = ""


@dataclass(frozen=True)
class ExitStatus:
    """How a job's process ended, as its supervisor saw it."""

    ended_at: float
    exit_code: int | None = None
    signal: int | None = None
    launch_error: str | None = None
    #: Set when corral asked the job to stop (cancel, later time limit, preemption).
    stopped_for: StopReason | None = None
    #: The supervisor vanished without recording a status.
    lost: bool = False
    #: Why corral stopped it, in words with the numbers (e.g. the watchdog's reading).
    stop_message: str = ""
    #: From the job's cgroup, when it had one: OOM kills, peak and limit (bytes), CPU time.
    oom_kills: int = 0
    memory_peak: int | None = None
    memory_limit: int | None = None
    cpu_seconds: float | None = None

    def classify(self) -> tuple[JobState, Reason, str]:
        """Terminal state, typed reason and message for this exit."""
        if self.lost:
            return JobState.FAILED, Reason.SUPERVISOR_LOST, "job supervisor ended without recording an exit status"
        if self.launch_error is not None:
            return JobState.FAILED, Reason.LAUNCH_FAILED, self.launch_error
        if self.stopped_for is StopReason.CANCEL:
            how = describe_exit(self.exit_code, self.signal)
            return JobState.CANCELLED, Reason.CANCELLED, f"cancelled by request ({how})"
        how = describe_exit(self.exit_code, self.signal)
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
            limit = _human(self.memory_limit) if self.memory_limit else "?"
            peak = f" (peak {_human(self.memory_peak)})" if self.memory_peak else ""
            return JobState.FAILED, Reason.OOM_KILLED, f"exceeded memory limit {limit}{peak}; {how}"
        if self.signal is not None:
            return JobState.FAILED, Reason.SIGNALED, f"killed by signal {signal_name(self.signal)}"
        if self.exit_code == 0:
            return JobState.SUCCEEDED, Reason.COMPLETED, "exit code 0"
        return JobState.FAILED, Reason.ERROR, f"exit code {self.exit_code}"


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
    return f"exit code {exit_code}"


@dataclass
class Running:
    """A job the executor is watching."""

    job_id: int
    supervisor_pid: int
    supervisor_start: int | None = None
    extra: dict = field(default_factory=dict)


ExitCallback = Callable[[int, ExitStatus], None]


class Executor(ABC):
    """What the daemon needs from a place that runs jobs."""

    @abstractmethod
    def launch(self, request: LaunchRequest) -> Running:
        """Start the job; launch failures are reported through ``on_exit``, not raised."""

    @abstractmethod
    def stop(self, job_id: int, why: StopReason) -> bool:
        """Ask a running job to stop (SIGTERM, then SIGKILL after the grace period).
        Returns False when the job is not running here."""

    def signal(self, job_id: int, sig: int) -> bool:
        """Send ``sig`` to the job's processes without stopping it (e.g. a checkpoint
        signal). Returns False when the job is not running here."""
        return False

    @abstractmethod
    def adopt(self, job_id: int) -> Running | ExitStatus | None:
        """After a daemon restart: re-attach to a job recorded as running.

        Returns :class:`Running` when it still runs (its end will come through
        ``on_exit``), an :class:`ExitStatus` when it ended meanwhile, or ``None`` when
        it was never launched (the daemon died between admitting and launching it)."""

    @abstractmethod
    def close(self) -> None:
        """Stop watching; running jobs keep running."""
