"""A fake executor and a manager on an in-memory store, for the manager's unit tests (the
test decides when and how jobs end)."""

from __future__ import annotations

from dataclasses import dataclass

from corral.capacity.node import make_node
from corral.daemon.manager import Manager
from corral.executors.base import Capabilities, Executor, ExitStatus, Running, StopReason
from corral.executors.environment import job_environment
from corral.job import Allocation, Job
from corral.scheduler.settings import Scheduling
from corral.store import MemoryStore

GiB = 2**30


@dataclass
class Launch:
    """What a launch got: the job, its allocation, and the environment any executor gives it."""

    job: Job
    allocation: Allocation
    env: dict[str, str]


class FakeExecutor(Executor):
    """Records launches and stops; never ends a job by itself."""

    name = "fake"
    capabilities = Capabilities(stop_signals=True, device_pinning=True)

    def __init__(self, nodes=(), adopt_results=None):
        self._nodes = list(nodes)
        self.launched: dict[int, Launch] = {}
        self.order: list[int] = []
        self.stopped: list[int] = []
        self.why: dict[int, StopReason] = {}
        self.signals: list[tuple[int, int]] = []
        self.adopt_results = adopt_results or {}

    def nodes(self):
        return list(self._nodes)

    def launch(self, job: Job, allocation: Allocation) -> None:
        piece = allocation.pieces[0]
        self.launched[job.id] = Launch(job, allocation, job_environment(job, piece, piece.cores))
        self.order.append(job.id)

    def stop(self, job_id: int, why: StopReason, message: str = "") -> bool:
        self.stopped.append(job_id)
        self.why[job_id] = why
        return job_id in self.launched or job_id in self.adopt_results

    def signal(self, job_id: int, sig: int) -> bool:
        self.signals.append((job_id, sig))
        return True

    def adopt(self, job: Job):
        result = self.adopt_results.get(job.id)
        return Running(job.id, str(result)) if isinstance(result, int) else result

    def close(self) -> None:
        """Nothing to let go of."""


class Clock:
    """Virtual time; ``tick`` seconds pass on every read (0: it stands still)."""

    def __init__(self, now: float = 1000.0, tick: float = 0.0):
        self.now = now
        self.tick = tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


def manager(store=None, executor=None, *, gpus: int = 4, cores: int = 4, memory: int = 8 * GiB, policy: str = "best-effort-fifo",
            scheduling: Scheduling | None = None, clock=None, tick: float = 1.0) -> Manager:
    node = make_node("n1", cores=cores, memory=memory, gpus=gpus)
    ex = executor or FakeExecutor([node])
    if not ex.nodes():
        ex._nodes = [node]       # type: ignore[attr-defined]
    return Manager(store or MemoryStore(), ex, scheduling or Scheduling.make(policy=policy),
                   clock=clock or Clock(tick=tick))    # no loop: cycles run at once
