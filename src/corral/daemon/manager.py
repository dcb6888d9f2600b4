"""The manager: the daemon's jobs, from submit to done, split by role.

* :mod:`.commands` -- submit, update, hold, release, cancel;
* :mod:`.admission` -- gates (hold, dependencies, backoff, array throttle) before the queue;
* :mod:`.driver` -- the scheduling cycle applied: queue, running set, preemptions, usage
  (the simulator runs the same driver);
* :mod:`.lifecycle` -- ends, retries, requeues, time limits.

This module wires them to the store and the executor, recovers after a restart, runs
cycles when something changed (a submit, a cancel, an end *kicks* one, run on the next
turn of the event loop: several kicks make one cycle) and answers the views. Everything
runs on the daemon's event loop thread, so there are no locks; the store is the durable
record, the driver the live view, rebuilt from the store at start.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from typing import TYPE_CHECKING, Any, Callable

from ..errors import NotFound, show_value
from ..priorities import Priorities
from ..executors.base import ExitStatus, Running, StopReason
from ..job import Allocation, JobState, Reason
from ..reasons import Wait
from ..resources import GPU, Resources
from ..scheduler.history import RunTimeHistory
from ..store.base import Store
from .admission import Admission
from .commands import Commands
from .context import Daemon
from .driver import Driver, LiveJob
from .gates import Gates
from .lifecycle import Lifecycle

if TYPE_CHECKING:
    from ..capacity.node import Node
    from ..executors.base import Executor
    from ..scheduler.settings import Scheduling
    from .monitor import Monitor

log = logging.getLogger("corral.manager")

#: Successful run times read back from the store at start (the latest ones), for estimates.
HISTORY_ROWS = 5000
#: Store meta key: the drained nodes (JSON list), kept across restarts.
DRAINED_KEY = "drained_nodes"


class Manager:
    """``loop``: what runs callbacks (the daemon's asyncio loop, or a simulated one with
    ``call_soon``/``call_later``); None runs a cycle at once on every kick (unit tests)."""

    def __init__(self, store: Store, executor: "Executor", scheduling: "Scheduling", *,
                 default_requests: Resources | None = None, kill_grace: float = 10.0,
                 clock: Callable[[], float] = time.time, loop: Any = None, gangs: bool = False):
        self.store = store
        self.executor = executor
        self.scheduling = scheduling
        self.default_requests = default_requests or Resources({"cpu": 1000})
        self.kill_grace = kill_grace
        self.clock = clock
        self.loop = loop
        #: Run-time estimates from the users' recent successful jobs (``sjf``).
        self.history = RunTimeHistory()
        self.gates = Gates()
        #: Nodes an admin drains (``corral drain``): their jobs run on, nothing new starts.
        self.drained: set[str] = set(json.loads(store.get_meta(DRAINED_KEY) or "[]"))
        self.driver = Driver(executor.nodes(), scheduling, executor, clock=clock, journal=store,
                             estimate=self._estimate,
                             gangs=gangs, report=self.on_exit, started=lambda live: self.lifecycle.started(live),
                             cordoned=self.cordoned())
        executor.watch_nodes(self.nodes_changed)
        executor.watch_notes(self.note)
        self.context = Daemon(store=store, executor=executor, driver=self.driver, gates=self.gates,
                              history=self.history, clock=clock, call_soon=self.call_soon,
                              call_later=self.call_later, kick=self.kick, notify=self.notify,
                              default_requests=self.default_requests)
        self.admission = Admission(self.context)
        self.lifecycle = Lifecycle(self.context, self.admission)
        self.commands = Commands(self.context, self.admission, self.lifecycle)
        self._waiters: dict[int, list[asyncio.Future]] = {}
        self._kicked = False
        #: When a cycle is due for a change no event announces (``las``), if one is set.
        self._wake_at: float | None = None
        #: Set on shutdown: long polls are answered at once with 503 (ask again later).
        self.closing = False
        #: Rates for accounting (config ``cost``) and how long finished jobs are kept.
        self.cost: dict = {}
        #: Priority classes and who may use them (the config's priority_classes).
        self.priorities = Priorities()
        #: Watches that the store's file is the one opened (server: identity.Watch).
        self.store_watch: Any = None
        self.retention: int = 0

    def _estimate(self, job: Job) -> float | None:
        """The run time ``sjf`` and ``sjf-aging`` order by: the time limit, else history
        (for ``sjf-aging`` of the user's jobs of the same GPU count first)."""
        gpus = job.spec.requests.get(GPU, 0) if self.scheduling.estimates_by_gpus else None
        return self.history.estimate(job.user, job.spec.time_limit, gpus=gpus)

    # -- wiring ---------------------------------------------------------------------------------
    @property
    def monitor(self) -> "Monitor | None":
        """Watches running jobs (usage, watchdog, idle GPUs); set by the daemon."""
        return self.context.monitor

    @monitor.setter
    def monitor(self, monitor: "Monitor | None") -> None:
        self.context.monitor = monitor

    def on_exit(self, job_id: int, status: ExitStatus) -> None:
        """The executor's callback for every end."""
        self.lifecycle.on_exit(job_id, status)

    def call_soon(self, fn: Callable, *args: Any) -> None:
        if self.loop is None:
            fn(*args)
        else:
            self.loop.call_soon(fn, *args)

    def call_later(self, delay: float, fn: Callable, *args: Any) -> None:
        if self.loop is not None:
            self.loop.call_later(delay, fn, *args)

    # -- commands -------------------------------------------------------------------------------
    def submit(self, *args: Any, **kw: Any):
        jobs = self.commands.submit(*args, **kw)
        if self.context.metrics is not None:
            for job in jobs:
                self.context.metrics.job_submitted(job.spec.queue)
        return jobs

    def update(self, *args: Any, **kw: Any):
        return self.commands.update(*args, **kw)

    def hold(self, ids: list[int], who: str = "") -> list[int]:
        return self.commands.hold(ids, who)

    def release(self, ids: list[int], who: str = "") -> list[int]:
        return self.commands.release(ids, who)

    def cancel(self, job_id: int) -> str:
        return self.commands.cancel(job_id)

    def stop_job(self, job_id: int, why: StopReason, message: str = "", *, kill_now: bool = False) -> bool:
        """Stop a running job for ``why`` (the stop signal, then SIGKILL after its grace
        period; at once with ``kill_now``). The reason is recorded before any signal."""
        live = self.driver.jobs.get(job_id)
        if live is None or live.run is None:
            return False
        if not self.executor.stop(job_id, why, message):
            return False
        if kill_now:
            self.executor.signal(job_id, signal.SIGKILL)
        return True

    def note(self, job_id: int, reason: Reason, message: str) -> None:
        """An event on a running job (idle-GPU warnings and actions), with its numbers."""
        live = self.driver.jobs.get(job_id)
        if live is not None and live.run is not None:
            self.store.set_reason(job_id, reason, message, now=self.clock(), event=True)

    # -- recovery -------------------------------------------------------------------------------
    def recover(self) -> dict[str, int]:
        """Rebuild the live view from the store after a (re)start.

        Pending jobs are queued again in their order. Each job recorded as running is
        re-adopted if it still runs, finished with its recorded exit status if it ended
        while the daemon was down, or launched now if the daemon died before launching
        it. Allocations come from the store, so nothing is handed out twice."""
        counts = {"pending": 0, "adopted": 0, "ended": 0, "relaunched": 0}
        for user, seconds in self.store.recent_run_times(HISTORY_ROWS):
            self.history.observe(user, seconds)
        running = self.store.list_jobs({JobState.RUNNING})
        for job in running:               # array tasks that run hold their array's slots
            if job.array_id is not None and job.spec.array_limit:
                self.gates.array_limit[job.array_id] = job.spec.array_limit
                self.gates.array_active.setdefault(job.array_id, set()).add(job.id)
        now = self.clock()
        ended: list[tuple[int, ExitStatus]] = []
        for job in running:
            if job.allocation is None:
                log.error("job %d is running without an allocation; marking it failed", job.id)
                self.store.finish_job(job.id, JobState.FAILED, Reason.SUPERVISOR_LOST,
                                      message="running without an allocation", ended_at=now)
                continue
            live = self.driver.adopt(job, job.allocation, job.started_at or now)
            outcome = self.executor.adopt(job)
            if isinstance(outcome, Running):
                self.store.set_reason(job.id, Reason.ADOPTED, "re-adopted after a daemon restart")
                self.lifecycle.started(live)
                counts["adopted"] += 1
            elif isinstance(outcome, ExitStatus):
                ended.append((job.id, outcome))
                counts["ended"] += 1
            else:
                self.executor.launch(job, job.allocation)
                self.lifecycle.started(live)
                counts["relaunched"] += 1
        if ended:
            self.lifecycle.finish(ended)
        self.executor.recovered()
        for job in self.store.list_jobs({JobState.PENDING}):
            self.admission.offer(job)
            counts["pending"] += 1
        self.kick()
        return counts

    # -- nodes ----------------------------------------------------------------------------------
    def nodes_changed(self) -> None:
        """The engine's nodes changed (joined, left, lost): schedule on what is there now.
        Jobs on a lost node end through the executor (NodeLost)."""
        self.driver.set_nodes(self.executor.nodes(), self.cordoned())
        self.kick()

    def cordoned(self) -> set[str]:
        """Nodes nothing new starts on: drained in corral, or not ready in the engine's
        own view (a node its engine drains)."""
        return set(self.drained) | {n for n, s in self.executor.node_states().items() if s == "NotReady"}

    def node_states(self) -> dict[str, str]:
        """Ready, NotReady, Lost (the engine's word) or Draining, by node."""
        states = self.executor.node_states()
        return {name: ("Draining" if name in self.drained and state == "Ready" else state)
                for name, state in states.items()}

    def drain(self, name: str, drain: bool = True) -> bool:
        """Stop (or resume) starting jobs on node ``name``; its running jobs run on. False
        when it already was (not) draining."""
        known = self.node_states()
        if name not in known and name not in self.drained:
            shown = name if name.isprintable() and len(name) <= 80 else show_value(name)
            raise NotFound(f"no such node: {shown} (nodes: {', '.join(sorted(known)) or 'none'})")
        if (name in self.drained) == drain:
            return False
        (self.drained.add if drain else self.drained.discard)(name)
        self.store.set_meta(DRAINED_KEY, json.dumps(sorted(self.drained)))
        self.driver.set_nodes(self.executor.nodes(), self.cordoned())
        self.kick()
        return True

    # -- scheduling -----------------------------------------------------------------------------
    def kick(self) -> None:
        if self._kicked:
            return
        self._kicked = True
        self.call_soon(self.cycle)

    def cycle(self) -> None:
        self._kicked = False
        self.lifecycle.flush()                # ends that came in this turn count first
        self._kicked = False
        metrics = self.context.metrics
        if metrics is None:
            self.driver.cycle()
        else:
            started = time.perf_counter()
            decided = self.driver.cycle()
            metrics.cycle_took(time.perf_counter() - started)
            for pre in decided.preemptions if decided is not None else ():
                live = self.driver.jobs.get(pre.preemptor)
                metrics.preemption(live.job.spec.queue if live is not None else "", pre.kind.value, len(pre.victims))
        self.executor.after_cycle()
        self._wake_for_change()

    def _wake_for_change(self) -> None:
        """Under a policy that ranks by attained service (``las``): a cycle when a running
        job is demoted or a waiting one falls due, which no event announces."""
        if not self.driver.pending:
            return
        at = self.driver.next_change()
        if at is None:
            return
        now = self.clock()
        if self._wake_at is not None and now < self._wake_at <= at:
            return                        # one already comes, no later than this
        self._wake_at = at
        self.call_later(max(at - now, 0.0) + 0.01, self._woken, at)

    def _woken(self, at: float) -> None:
        if self._wake_at == at:
            self._wake_at = None
        self.kick()

    # -- waiting for jobs -----------------------------------------------------------------------
    def future_for(self, job_id: int) -> asyncio.Future:
        assert self.loop is not None
        fut = self.loop.create_future()
        self._waiters.setdefault(job_id, []).append(fut)
        return fut

    def drop_future(self, job_id: int, fut: asyncio.Future) -> None:
        futs = self._waiters.get(job_id)
        if futs and fut in futs:
            futs.remove(fut)
            if not futs:
                del self._waiters[job_id]

    def notify(self, job_id: int) -> None:
        for fut in self._waiters.pop(job_id, []):
            if not fut.done():
                fut.set_result(job_id)

    def release_waiters(self) -> None:
        """Answer every long poll now and refuse new ones (on shutdown: the client asks
        the next daemon)."""
        self.closing = True
        for job_id in list(self._waiters):
            self.notify(job_id)

    # -- views ----------------------------------------------------------------------------------
    @property
    def nodes(self) -> list["Node"]:
        return self.driver.nodes

    @property
    def running(self) -> dict[int, Allocation]:
        """Running job id -> its allocation."""
        return self.driver.running_allocations()

    @property
    def pending_count(self) -> int:
        return len(self.driver.pending) + sum(1 for live in self.driver.jobs.values()
                                              if live.queued is None and live.run is None)

    def live(self, job_id: int) -> LiveJob | None:
        return self.driver.jobs.get(job_id)

    def waiting_for(self, job_id: int) -> Wait | None:
        """Why a queued job waits, as of the last cycle."""
        return self.driver.reason_of(job_id)

    def queue_positions(self) -> dict[int, int]:
        return self.driver.positions()

    def estimated_starts(self, limit: int = 200) -> dict[int, float | None]:
        return self.driver.estimated_starts(limit)

    def node(self, name: str) -> "Node":
        """A node by name: one corral schedules on, or one the engine still knows (lost)."""
        for n in self.driver.nodes:
            if n.name == name:
                return n
        for n in self.executor.known_nodes():
            if n.name == name:
                return n
        raise NotFound(f"no such node: {name}")

    def holders(self) -> dict[str, dict[str, dict[int, int]]]:
        """node -> {"gpus": {gpu index: job id}, "cores": {core id: job id}}."""
        out: dict[str, dict[str, dict[int, int]]] = {n.name: {"gpus": {}, "cores": {}} for n in self.nodes}
        for job_id, run in self.driver.state.running.items():
            for piece in run.allocation.pieces:
                entry = out.setdefault(piece.node, {"gpus": {}, "cores": {}})
                for g in piece.gpus:
                    entry["gpus"][g] = job_id
                for c in piece.cores:
                    entry["cores"][c] = job_id
        return out

    def allocated(self, node_name: str) -> Resources:
        total = Resources()
        for run in self.driver.state.on_node(node_name):
            piece = run.allocation.piece_on(node_name)
            if piece is not None:
                total = total.add(piece.requests)
        return total

    def shared_cores(self, node_name: str) -> tuple[int, ...]:
        """Cores not held exclusively by any running job: where fractional jobs run."""
        node = self.node(node_name)
        taken = {c for run in self.driver.state.on_node(node_name)
                 for c in (run.allocation.piece_on(node_name) or run.allocation.pieces[0]).cores}
        return tuple(c for c in node.cores if c not in taken)

    # -- retention ------------------------------------------------------------------------------
    def prune(self, older_than: float) -> list[int]:
        """Delete finished jobs that ended more than ``older_than`` seconds ago, with their
        history, usage and what the executor keeps of them (logs); returns their ids."""
        ids = self.store.prune(self.clock() - older_than)
        for job_id in ids:
            self.executor.remove(job_id)
        return ids

    def close(self) -> None:
        self.release_waiters()
        if self.monitor is not None:
            self.monitor.close()
        self.executor.close()
