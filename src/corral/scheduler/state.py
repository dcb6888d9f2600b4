"""What the scheduler keeps between cycles, kept up to date as jobs start and end.

A cycle must cost about what it decides, not what is running: with thousands of jobs
running, rebuilding quota usage, per-user limits and fair shares from the running set at
every cycle would dominate. :class:`ClusterState` holds the snapshot of free capacity and
those tallies, and changes them by one job at a time: :meth:`ClusterState.start` when a
job starts (the cycle calls it for its own placements), :meth:`ClusterState.end` when it
stops. A projection (estimates) works on a :meth:`copy`.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from ..capacity.node import Node
from ..errors import CorralError
from .fairshare import UserShares, dominant_share
from .quota import QuotaState, UserUsage
from .snapshot import Snapshot
from .queues import QueueSpec
from .types import RunningJob


class ClusterState:
    def __init__(self, nodes: Iterable[Node], queues: Mapping[str, QueueSpec],
                 running: Iterable[RunningJob] = (), *, track_usage: bool = False, cordoned: Iterable[str] = ()):
        self.nodes = list(nodes)
        #: Keep :attr:`held_share` (for fair share's decayed usage).
        self.track_usage = track_usage
        self.queues: dict[str, QueueSpec] = dict(queues)
        #: Nodes being drained: what runs there stays counted, nothing new starts there.
        self.cordoned = frozenset(cordoned)
        self.snapshot = Snapshot(self.nodes, cordoned=self.cordoned)
        self.capacity = self.snapshot.capacity
        self.running: dict[int, RunningJob] = {}
        #: node -> {job id: the running job}, for the jobs with a piece there.
        self.by_node: dict[str, dict[int, RunningJob]] = {}
        self.quota = QuotaState(self.queues, self.capacity)
        self.users = UserUsage()
        self.shares = UserShares(self.capacity)
        #: Per user, the sum of their running jobs' dominant shares (what fair share's
        #: decayed usage integrates; :class:`corral.daemon.fairuse.FairUsage`).
        self.held_share: dict[str, float] = {}
        self._user_jobs: dict[str, int] = {}
        #: Running jobs being stopped for a preemption (``stopping_for`` set), by id.
        self.stopping: dict[int, RunningJob] = {}
        self._limits = any(q.has_user_limits for q in self.queues.values())
        self._fair = any(q.order.by_user for q in self.queues.values())
        for r in running:
            self.start(r)

    # -- changes ---------------------------------------------------------------------------
    def start(self, run: RunningJob) -> None:
        """A job holds its allocation from now on."""
        if run.id in self.running:
            raise CorralError(f"job {run.id} is already running")
        self.snapshot.assume(run.allocation)
        self._add(run)

    def _add(self, run: RunningJob, sign: int = 1) -> None:
        requests = run.requests
        if sign > 0:
            self.running[run.id] = run
            for node in run.allocation.nodes:
                self.by_node.setdefault(node, {})[run.id] = run
            if run.stopping_for is not None:
                self.stopping[run.id] = run
        else:
            self.stopping.pop(run.id, None)
        if self.quota.active:
            self.quota.add(run.queue, requests, sign)
        if self._limits:
            self.users.add(run.queue, run.user, requests, sign)
        if self._fair:
            self.shares.add(run.user, requests, sign)
        if not self.track_usage:
            return
        user = run.user
        count = self._user_jobs.get(user, 0) + sign
        if count:
            self._user_jobs[user] = count
            self.held_share[user] = self.held_share.get(user, 0.0) + sign * dominant_share(requests, self.capacity)
        else:           # exactly zero when the last job ends (no float residue)
            self._user_jobs.pop(user, None)
            self.held_share.pop(user, None)

    def end(self, job_id: int) -> RunningJob | None:
        """The job stopped: its allocation is free again. None when it was not running."""
        run = self.running.pop(job_id, None)
        if run is None:
            return None
        for node in run.allocation.nodes:
            on = self.by_node.get(node)
            if on is not None:
                on.pop(job_id, None)
                if not on:
                    del self.by_node[node]
        self.snapshot.forget(run.allocation)
        self._add(run, -1)
        return run

    def replace(self, run: RunningJob) -> None:
        """Update what is known of a running job (its time limit, or that it is being
        stopped for a preemption); its allocation must not change."""
        old = self.running.get(run.id)
        if old is None:
            raise CorralError(f"job {run.id} is not running")
        if old.allocation != run.allocation:
            raise CorralError(f"job {run.id}: a running job's allocation cannot change")
        self.running[run.id] = run
        for node in run.allocation.nodes:
            self.by_node[node][run.id] = run
        if run.stopping_for is not None:
            self.stopping[run.id] = run
        else:
            self.stopping.pop(run.id, None)
        if (old.queue, old.user) != (run.queue, run.user):
            self._add(old, -1)
            self._add(run)

    # -- questions -------------------------------------------------------------------------
    @property
    def tracks_users(self) -> bool:
        """Whether per-user limits are kept (some queue has them)."""
        return self._limits

    @property
    def tracks_shares(self) -> bool:
        """Whether users' allocations are kept for fair share (some queue orders by it)."""
        return self._fair

    def on_node(self, node: str) -> list[RunningJob]:
        return list(self.by_node.get(node, {}).values())

    def copy(self) -> "ClusterState":
        """An independent copy (for projections)."""
        return ClusterState(self.nodes, self.queues, self.running.values(), track_usage=self.track_usage,
                            cordoned=self.cordoned)

    def set_nodes(self, nodes: Iterable[Node], cordoned: Iterable[str] = ()) -> None:
        """The nodes changed (one joined, left or was lost; one is drained or no longer):
        everything is recomputed from the running jobs -- rare, so simplest. A running
        job's pieces on a node that is gone count nowhere."""
        fresh = ClusterState(nodes, self.queues, self.running.values(), track_usage=self.track_usage,
                             cordoned=cordoned)
        self.__dict__.update(fresh.__dict__)
