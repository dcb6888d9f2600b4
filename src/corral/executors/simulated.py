"""A simulated executor: jobs that "run" in virtual time, for the simulator and the tests.

:class:`SimWorld` is the simulated cluster: a virtual clock with timers (the simulator's
event queue, and an event loop the daemon's manager can run on: ``call_soon``,
``call_later``, ``call_at``, ``time``), its nodes, and the jobs running there. It outlives
an executor, as a machine outlives a daemon: a new :class:`SimulatedExecutor` on the same
world adopts what the old one launched, and learns how the jobs that ended meanwhile
ended.

What a job does is a :class:`Program` -- how long it runs, its exit code, what it writes,
how it takes its stop signal -- given by the world's ``program_for(job)``. The simulator
gives each trace job its duration; tests give what they need.

It honours the executor contract (``tests/contract/test_executor.py``): launch failures
(a job whose allocation names a node the world does not have) are ends, every launch
ends exactly once, ``stop`` sends the job's stop signal and SIGKILL after its grace
period, and the end says why corral stopped it.
"""

from __future__ import annotations

import heapq
import signal as _signal
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable

from .base import Capabilities, ExitCallback, Executor, ExitStatus, Running, StopReason

if TYPE_CHECKING:
    from ..capacity.node import Node
    from ..job import Allocation, Job


@dataclass(frozen=True)
class Program:
    """What a simulated job does."""

    #: How long it runs (virtual seconds) when nobody stops it.
    seconds: float
    exit_code: int = 0
    #: What it writes to stdout (all of it when it starts).
    output: bytes = b""
    #: Seconds it takes to exit after its stop signal (0: at once).
    stop_delay: float = 0.0
    #: It catches its stop signal and exits with this code (None: the signal kills it).
    stop_exit_code: int | None = None
    #: It ignores its stop signal: only SIGKILL, after the grace period, ends it.
    ignores_stop: bool = False


class _Timer:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _Proc:
    """A job "running" in the world."""

    __slots__ = ("job_id", "program", "started", "stop_signal", "grace", "end_timer", "kill_timer", "stopped_for",
                 "stop_message", "signals", "watcher")

    def __init__(self, job_id: int, program: Program, started: float, stop_signal: int, grace: float,
                 watcher: "SimulatedExecutor | None"):
        self.job_id, self.program, self.started = job_id, program, started
        self.stop_signal, self.grace, self.watcher = stop_signal, grace, watcher
        self.end_timer: _Timer | None = None
        self.kill_timer: _Timer | None = None
        self.stopped_for: StopReason | None = None
        self.stop_message = ""
        self.signals: list[int] = []


class SimWorld:
    """Virtual time and the simulated machines (see the module docstring).

    Timers due at the same time run in the order of ``(time, priority, order scheduled)``;
    ``call_soon`` runs after every timer already due now (like an event loop's next turn)."""

    def __init__(self, nodes: Iterable["Node"] = (), program_for: Callable[["Job"], Program] | None = None,
                 *, start: float = 0.0):
        self.nodes: list["Node"] = list(nodes)
        self.node_names = {n.name for n in self.nodes}
        self.program_for = program_for or (lambda job: Program(0.0))
        self.now = float(start)
        self._heap: list[tuple[float, int, int, _Timer, Callable, tuple]] = []
        self._seq = 0
        self.procs: dict[int, _Proc] = {}
        #: Ends that happened while no executor watched (the daemon was down).
        self.unreported: dict[int, ExitStatus] = {}
        self.logs: dict[int, bytes] = {}

    # -- the clock ----------------------------------------------------------------------------
    def time(self) -> float:
        return self.now

    __call__ = time

    def call_at(self, when: float, fn: Callable, *args: Any, priority: int = 1) -> _Timer:
        timer = _Timer()
        self._seq += 1
        heapq.heappush(self._heap, (max(float(when), self.now), priority, self._seq, timer, fn, args))
        return timer

    def call_later(self, delay: float, fn: Callable, *args: Any) -> _Timer:
        return self.call_at(self.now + max(0.0, delay), fn, *args)

    def call_soon(self, fn: Callable, *args: Any) -> _Timer:
        return self.call_at(self.now, fn, *args, priority=9)

    def next_time(self) -> float | None:
        """When the next timer is due (None: nothing left)."""
        heap = self._heap
        while heap and heap[0][3].cancelled:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def run_due(self, below: int | None = None) -> int:
        """Run every timer due at the current time (including those they schedule for now);
        with ``below``, only those of a lower priority (the rest stay due)."""
        ran = 0
        heap = self._heap
        now = self.now
        pop = heapq.heappop
        while heap:
            top = heap[0]
            if top[0] > now or (below is not None and top[1] >= below):
                break
            pop(heap)
            if not top[3].cancelled:
                top[4](*top[5])
                ran += 1
        return ran

    def advance(self, until: float | None = None) -> bool:
        """Move the clock to the next timer (not past ``until``) and run what is due.
        False when nothing was left to run."""
        nxt = self.next_time()
        if nxt is None or (until is not None and nxt > until):
            if until is not None:
                self.now = max(self.now, until)
            return False
        self.now = max(self.now, nxt)
        self.run_due()
        return True

    def run(self, until: float | None = None, max_steps: int = 10_000_000) -> None:
        """Run timers until none is left (or ``until``)."""
        for _ in range(max_steps):
            if not self.advance(until):
                return
        raise RuntimeError("SimWorld.run: too many steps")

    # -- jobs --------------------------------------------------------------------------------
    def _end(self, proc: _Proc, exit_code: int | None, sig: int | None) -> None:
        self.procs.pop(proc.job_id, None)
        for t in (proc.end_timer, proc.kill_timer):
            if t is not None:
                t.cancel()
        status = ExitStatus(ended_at=self.now, exit_code=exit_code, signal=sig, stopped_for=proc.stopped_for,
                            stop_message=proc.stop_message)
        if proc.watcher is not None:
            proc.watcher._ended(proc.job_id, status)
        else:
            self.unreported[proc.job_id] = status


class SimulatedExecutor(Executor):
    """Runs :class:`Program` s on a :class:`SimWorld` (see the module docstring)."""

    name = "simulated"
    capabilities = Capabilities(logs=True, usage=False, cgroups=False, stop_signals=True, device_pinning=True,
                                gangs=True, inventory=True)

    def __init__(self, world: SimWorld, on_exit: ExitCallback, *, kill_grace: float = 10.0):
        self.world = world
        self._on_exit = on_exit
        self.kill_grace = kill_grace
        self.launched = 0
        self._closed = False

    def nodes(self) -> list["Node"]:
        return list(self.world.nodes)

    def launch(self, job: "Job", allocation: "Allocation") -> None:
        world = self.world
        missing = [n for n in allocation.nodes if n not in world.node_names]
        if missing or job.id in world.procs:
            why = (f"no such node: {', '.join(missing)}" if missing else f"job {job.id} is already running")
            world.call_soon(self._ended, job.id, ExitStatus(ended_at=world.now, launch_error=f"launch failed: {why}"))
            return
        program = world.program_for(job)
        spec = job.spec
        stop_signal = int(getattr(_signal, spec.stop_signal)) if spec.stop_signal else int(_signal.SIGTERM)
        grace = float(spec.kill_grace if spec.kill_grace is not None else self.kill_grace)
        proc = _Proc(job.id, program, world.now, stop_signal, grace, self)
        world.procs[job.id] = proc
        if program.output:
            world.logs[job.id] = program.output
        proc.end_timer = world.call_at(world.now + program.seconds, world._end, proc, program.exit_code, None,
                                       priority=0)
        self.launched += 1

    def stop(self, job_id: int, why: StopReason, message: str = "") -> bool:
        proc = self.world.procs.get(job_id)
        if proc is None or proc.watcher is not self:
            return False
        if proc.stopped_for is None:
            proc.stopped_for, proc.stop_message = why, message
        world = self.world
        proc.signals.append(proc.stop_signal)
        if proc.kill_timer is None:
            proc.kill_timer = world.call_at(world.now + proc.grace, world._end, proc, None, int(_signal.SIGKILL),
                                            priority=0)
        program = proc.program
        if not program.ignores_stop and program.stop_delay < proc.grace:
            if proc.end_timer is not None:
                proc.end_timer.cancel()
            # It ends of its stop signal after its stop delay: killed by it (as a process
            # that does not catch it is), or exiting with its own code (one that catches it).
            code = program.stop_exit_code
            proc.end_timer = world.call_at(world.now + program.stop_delay, world._end, proc, code,
                                           None if code is not None else proc.stop_signal, priority=0)
        return True

    def signal(self, job_id: int, sig: int) -> bool:
        proc = self.world.procs.get(job_id)
        if proc is None or proc.watcher is not self:
            return False
        proc.signals.append(int(sig))
        return True

    def adopt(self, job: "Job") -> Running | ExitStatus | None:
        world = self.world
        proc = world.procs.get(job.id)
        if proc is not None:
            proc.watcher = self
            return Running(job.id, f"sim:{job.id}")
        return world.unreported.pop(job.id, None)

    def read_log(self, job_id: int, stream: str, offset: int = 0, size: int = 1 << 20) -> bytes | None:
        data = self.world.logs.get(job_id)
        if data is None:
            return b"" if job_id in self.world.procs else None
        data = data if stream == "stdout" else b""
        return data[max(offset, 0):max(offset, 0) + size]

    def remove(self, job_id: int) -> None:
        self.world.logs.pop(job_id, None)

    def running(self) -> set[int]:
        return {j for j, p in self.world.procs.items() if p.watcher is self}

    def _ended(self, job_id: int, status: ExitStatus) -> None:
        if self._closed:
            self.world.unreported[job_id] = status
            return
        self._on_exit(job_id, status)

    def close(self) -> None:
        """Stop watching; the world's jobs keep running (the next executor adopts them)."""
        self._closed = True
        for proc in self.world.procs.values():
            if proc.watcher is self:
                proc.watcher = None


__all__ = ["Program", "SimWorld", "SimulatedExecutor"]
