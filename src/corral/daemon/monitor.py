"""The monitor: measures every running job every few seconds and acts on what it sees.

One timer on the daemon's event loop (no thread, no per-job process). Each tick:

* asks the executor for each job's usage (:meth:`~corral.executors.base.Executor.sample`:
  the local executor reads the job's cgroup counters, or its process tree from one scan
  of ``/proc``);
* samples the GPUs that running jobs hold (:meth:`~corral.executors.base.Executor.sample_gpus`:
  NVML, or the simulated probe) and attributes them: a GPU belongs to exactly one job, so
  its utilization and power are that job's; GPU memory is the sum over the job's own
  processes when the driver lists them;
* **watchdog** (no cgroups): a job over its memory limit is killed at once and ends
  ``MemoryLimitExceeded`` with the reading that triggered it;
* **idle GPUs**: feeds each GPU job's highest utilization to its
  :class:`~corral.monitor.idle.IdleTracker` and carries out the actions that fall due
  (warn, signal, cancel, requeue), each recorded as an event with its numbers;
* accumulates a usage bucket per job and writes one :class:`~corral.store.base.UsageRow`
  per job per ``series_interval`` (and a last one when the job ends).

The latest reading of each job (``live``) and of each GPU (``gpus``) is kept in memory
for ``corral top``, ``show`` and ``nodes``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ..durations import format_duration
from ..executors.base import ExitStatus, Reading, StopReason
from ..job import Allocation, Reason
from ..monitor.idle import IdlePolicy, IdleTracker
from ..resources import MEMORY, format_quantity
from ..store.base import UsageRow
from .faults import log_failure

if TYPE_CHECKING:
    from ..capacity.gpu import GpuSample
    from ..executors.base import Executor
    from ..spec import JobSpec
    from ..store.base import Store

log = logging.getLogger("corral.monitor")


@dataclass
class Live:
    """The latest reading of one running job."""

    t: float
    cpu: float | None = None            # cores busy over the last sample period
    memory: int | None = None           # working set (cgroup) or RSS of its processes, bytes
    memory_peak: int | None = None
    pids: int | None = None             # processes (cgroup pids.current or tree size)
    gpu_util: float | None = None       # mean over its GPUs, percent
    gpu_util_max: float | None = None
    gpu_memory: int | None = None       # bytes
    gpu_power: float | None = None      # watts
    idle_for: float = 0.0               # seconds its GPUs have been idle
    source: str = ""                    # "cgroup" or "procfs"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Bucket:
    t0: float
    t1: float
    cpu_seconds: float = 0.0
    memory: int = 0
    memory_peak: int = 0
    util_sum: float = 0.0
    util_dt: float = 0.0
    gpu_memory: int | None = None
    energy_j: float = 0.0
    gpu_seconds: float = 0.0
    idle_gpu_seconds: float = 0.0

    def row(self, job_id: int) -> UsageRow:
        return UsageRow(job_id, self.t0, self.t1, cpu_seconds=self.cpu_seconds, memory=self.memory,
                        memory_peak=self.memory_peak,
                        gpu_util=self.util_sum / self.util_dt if self.util_dt > 0 else None,
                        gpu_memory=self.gpu_memory, energy_j=self.energy_j, gpu_seconds=self.gpu_seconds,
                        idle_gpu_seconds=self.idle_gpu_seconds)


@dataclass
class _Watch:
    job_id: int
    #: The GPUs it holds, as (node, index).
    gpus: tuple[tuple[str, int], ...]
    memory_limit: int | None
    tracker: IdleTracker | None
    bucket: _Bucket
    cpu_total: float | None = None      # last cumulative CPU seconds read
    last: float = 0.0                   # time of the last sample
    peak: int = 0
    stopping: bool = False              # the watchdog or reclaim already acted
    actions: list[str] = field(default_factory=list)


class Monitor:
    """Watches the jobs ``executor`` runs and records their usage in ``store``.
    ``stop_job(job_id, why, message, kill_now=)`` stops one (the watchdog, idle-GPU
    reclaim); ``note(job_id, reason, message)`` records an event on one.
    ``watchdog``: kill jobs over their memory limit when nothing else holds it (the
    executor's limits are not hard); by default, when the executor samples usage but has
    no cgroups."""

    def __init__(self, store: "Store", executor: "Executor", *, stop_job: Callable[..., bool],
                 note: Callable[[int, Reason, str], None], sample_interval: float = 2.0,
                 series_interval: float = 30.0, idle_policy: IdlePolicy | None = None,
                 clock: Callable[[], float] = time.time, watchdog: bool | None = None,
                 log_limit: int = 0):
        self.store = store
        #: Bytes a job may write per log stream (0: no limit).
        self.log_limit = log_limit
        self.executor = executor
        self.stop_job = stop_job
        self.note = note
        self.sample_interval = sample_interval
        self.series_interval = series_interval
        self.idle_policy = idle_policy or IdlePolicy()
        self.clock = clock
        caps = self.executor.capabilities
        self.watchdog = (caps.usage and not caps.cgroups) if watchdog is None else watchdog
        self.watches: dict[int, _Watch] = {}
        self.live: dict[int, Live] = {}
        #: The latest reading of each GPU, by (node, index).
        self.gpus: dict[tuple[str, int], "GpuSample"] = {}
        self.ticks = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    # lifecycle -------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._schedule()

    def _schedule(self) -> None:
        if self._loop is not None and self.watches:
            if self._timer is None:
                self._timer = self._loop.call_later(self.sample_interval, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        try:
            self.tick()
        except Exception:  # noqa: BLE001 - a bad sample must not stop monitoring
            log_failure(log, "sampling running jobs")
        self._schedule()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        rows = [w.bucket.row(job_id) for job_id, w in self.watches.items() if w.bucket.t1 > w.bucket.t0]
        if rows:
            try:
                self.store.record_usage(rows)
            except Exception:  # noqa: BLE001 - shutting down; the next daemon goes on
                log_failure(log, "saving usage at shutdown")

    # jobs come and go ------------------------------------------------------------------
    def job_started(self, job_id: int, alloc: Allocation, spec: "JobSpec") -> None:
        now = self.clock()
        gpus = tuple((p.node, g) for p in alloc.pieces for g in p.gpus)
        tracker = None
        if gpus:
            policy = self.idle_policy.merged(spec.idle_gpu)
            if policy.enabled:
                tracker = IdleTracker(policy)
        self.watches[job_id] = _Watch(job_id, gpus, spec.limits.get(MEMORY) or None, tracker, _Bucket(now, now),
                                      last=now)
        self._schedule()

    def job_ended(self, job_id: int, status: ExitStatus) -> UsageRow | None:
        if self.log_limit:      # what it wrote since the last look, held to the limit too
            self._cap_logs([job_id])          # (a job may flood and end between two looks)
        return self._ended(job_id, status)

    def _ended(self, job_id: int, status: ExitStatus) -> UsageRow | None:
        """The job's last usage row (the caller records the rows of a batch of ends in
        one transaction), or None when there is nothing to record."""
        watch = self.watches.pop(job_id, None)
        self.live.pop(job_id, None)
        if not self.watches and self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if watch is None:
            return None
        bucket = watch.bucket
        end = max(status.ended_at or self.clock(), bucket.t1)
        self._hold(watch, bucket, end, idle=False)
        if status.cpu_seconds is not None and watch.cpu_total is not None:
            bucket.cpu_seconds += max(0.0, status.cpu_seconds - watch.cpu_total)
        elif status.cpu_seconds is not None:
            bucket.cpu_seconds += status.cpu_seconds
        if status.memory_peak:
            bucket.memory_peak = max(bucket.memory_peak, status.memory_peak)
        if bucket.t1 > bucket.t0 or bucket.cpu_seconds or bucket.memory_peak:
            return bucket.row(job_id)
        return None

    # sampling --------------------------------------------------------------------------
    def tick(self) -> None:
        """Measure every running job once; act; write finished buckets."""
        if not self.watches:
            return
        self.ticks += 1
        now = self.clock()
        readings = self.executor.sample(list(self.watches)) if self.executor.capabilities.usage else {}
        held: dict[str, list[int]] = {}
        for w in self.watches.values():
            for node, g in w.gpus:
                held.setdefault(node, []).append(g)
        samples: dict[tuple[str, int], GpuSample] = {}
        for node, indices in sorted(held.items()):
            try:
                for g, sample in self.executor.sample_gpus(node, sorted(set(indices))).items():
                    samples[(node, g)] = sample
            except Exception:  # noqa: BLE001 - an unreadable GPU is unknown, not fatal
                log.exception("sampling the GPUs of %s failed", node)
        self.gpus.update(samples)
        rows: list[UsageRow] = []
        for job_id, watch in list(self.watches.items()):
            self._sample(watch, now, readings.get(job_id), samples)
            if now - watch.bucket.t0 >= self.series_interval:
                rows.append(watch.bucket.row(job_id))
                watch.bucket = _Bucket(now, now)
        if rows:
            self.store.record_usage(rows)
        if self.log_limit:
            self._cap_logs(list(self.watches))

    def _cap_logs(self, job_ids: list[int]) -> None:
        for job_id, stream, size in self.executor.cap_logs(job_ids, self.log_limit):
            self.note(job_id, Reason.LOG_TRUNCATED, f"{stream} cut at {format_quantity('memory', self.log_limit)} "
                                                     f"({size:,} bytes written): the rest is dropped")

    def _sample(self, watch: _Watch, now: float, reading: Reading | None,
                samples: dict[tuple[str, int], "GpuSample"]) -> None:
        live = Live(t=now)
        cpu_total: float | None = None
        if reading is not None:
            live.source = reading.source
            cpu_total = reading.cpu_seconds
            live.memory = reading.memory
            live.pids = reading.processes
            watch.peak = max(watch.peak, reading.memory_peak or 0, reading.memory or 0)
        live.memory_peak = watch.peak or None
        dt = max(now - watch.last, 0.0)
        used = 0.0
        if cpu_total is not None:
            if watch.cpu_total is not None:
                used = max(0.0, cpu_total - watch.cpu_total)   # processes that exited take theirs along
                live.cpu = used / dt if dt > 0 else None
            watch.cpu_total = cpu_total
        # GPUs: each belongs to this job alone while it holds it.
        utils = [samples[g].utilization for g in watch.gpus if g in samples and samples[g].utilization is not None]
        powers = [samples[g].power for g in watch.gpus if g in samples and samples[g].power is not None]
        if utils:
            live.gpu_util = sum(utils) / len(utils)
            live.gpu_util_max = max(utils)
        if powers:
            live.gpu_power = sum(powers)
        live.gpu_memory = self._gpu_memory(watch, reading, samples)
        # A sample's utilization covers the period since the previous one: that period
        # counts as wasted when every GPU of the job stayed under the threshold.
        known = bool(utils) and len(utils) == len(watch.gpus)
        threshold = watch.tracker.policy.threshold if watch.tracker is not None else self.idle_policy.threshold
        idle = known and live.gpu_util_max is not None and live.gpu_util_max < threshold
        if watch.tracker is not None and watch.gpus:
            verdict = watch.tracker.observe(now, live.gpu_util_max if known else None)
            live.idle_for = verdict.idle_for
            if verdict.resumed:
                self.note(watch.job_id, Reason.LAUNCHED,
                                  f"GPUs {_ids(watch.gpus)} in use again (utilization {live.gpu_util_max:.0f}%)")
            for action in verdict.actions:
                self._idle_action(watch, action, live)
        # Usage bucket.
        bucket = watch.bucket
        bucket.cpu_seconds += used
        bucket.memory = max(bucket.memory, live.memory or 0)
        bucket.memory_peak = max(bucket.memory_peak, watch.peak)
        if live.gpu_memory is not None:
            bucket.gpu_memory = max(bucket.gpu_memory or 0, live.gpu_memory)
        if live.gpu_util is not None:
            bucket.util_sum += live.gpu_util * dt
            bucket.util_dt += dt
        if live.gpu_power is not None:
            bucket.energy_j += live.gpu_power * dt
        self._hold(watch, bucket, now, idle=idle)
        watch.last = now
        self.live[watch.job_id] = live
        # Watchdog: without a cgroup nothing else holds the memory limit.
        if (self.watchdog and watch.memory_limit and live.memory is not None and live.memory > watch.memory_limit
                and not watch.stopping):
            watch.stopping = True
            message = (f"exceeded memory limit {format_quantity(MEMORY, watch.memory_limit)} "
                       f"(rss {format_quantity(MEMORY, live.memory)}, watchdog)")
            log.warning("job %d %s: killing it", watch.job_id, message)
            self.stop_job(watch.job_id, StopReason.MEMORY_LIMIT, message, kill_now=True)

    def _hold(self, watch: _Watch, bucket: _Bucket, now: float, *, idle: bool) -> None:
        """Count GPU-seconds held (and idle) from the bucket's last point up to ``now``."""
        dt = max(now - bucket.t1, 0.0)
        if watch.gpus:
            bucket.gpu_seconds += len(watch.gpus) * dt
            if idle:
                bucket.idle_gpu_seconds += len(watch.gpus) * dt
        bucket.t1 = max(bucket.t1, now)

    def _gpu_memory(self, watch: _Watch, reading: Reading | None,
                    samples: dict[tuple[str, int], "GpuSample"]) -> int | None:
        mine = [samples[g] for g in watch.gpus if g in samples]
        if not mine:
            return None
        pids = set(reading.pids) if reading is not None else set()
        by_process = [mem for s in mine for pid, mem in s.processes.items() if pid in pids and mem is not None]
        if by_process:
            return sum(by_process)
        used = [s.memory_used for s in mine if s.memory_used is not None]
        return sum(used) if used else None

    # idle GPUs -------------------------------------------------------------------------
    def _idle_action(self, watch: _Watch, action: str, live: Live) -> None:
        tracker = watch.tracker
        assert tracker is not None
        policy = tracker.policy
        head = (f"GPUs {_ids(watch.gpus)} idle for {format_duration(int(live.idle_for))} "
                f"(utilization {live.gpu_util_max or 0:.0f}% < {policy.threshold:g}%)")
        following = policy.actions[tracker.stage:] if tracker.stage < len(policy.actions) else ()
        nxt = f"; next: {following[0]} in {format_duration(policy.step)}" if following else ""
        watch.actions.append(action)
        if action == "warn":
            self.note(watch.job_id, Reason.GPU_IDLE, f"{head}: warning{nxt}")
        elif action == "signal":
            import signal as _signal

            sent = self.executor.signal(watch.job_id, int(getattr(_signal, policy.signal)))
            what = f"sent {policy.signal}" if sent else f"could not send {policy.signal}"
            self.note(watch.job_id, Reason.GPU_IDLE, f"{head}: {what}{nxt}")
        elif action in ("cancel", "requeue") and not watch.stopping:
            watch.stopping = True
            why = StopReason.IDLE_CANCEL if action == "cancel" else StopReason.REQUEUE
            verb = "cancelled" if action == "cancel" else "requeued"
            self.note(watch.job_id, Reason.GPU_IDLE, f"{head}: {action}")
            self.stop_job(watch.job_id, why, f"{verb}: {head}")

    # views -----------------------------------------------------------------------------
    def live_view(self, job_id: int) -> dict[str, Any] | None:
        live = self.live.get(job_id)
        if live is None:
            return None
        out = live.to_dict()
        watch = self.watches.get(job_id)
        if watch is not None and watch.tracker is not None:
            out["idle_policy"] = watch.tracker.policy.describe()
            out["idle_actions"] = list(watch.actions)
        return out


def _ids(gpus: tuple[tuple[str, int], ...]) -> str:
    nodes = {n for n, _ in gpus}
    if len(nodes) <= 1:
        return ",".join(str(g) for _, g in gpus)
    return ",".join(f"{n}:{g}" for n, g in gpus)
