"""The daemon's monitor on fakes: a settable clock, an executor whose usage readings and
GPU samples the test sets.

Checks the arithmetic against known inputs (energy = power x time, GPU-seconds held and
idle, CPU time from cumulative counters), the watchdog, the idle-GPU chain and requeue.
"""

from __future__ import annotations

import os

from manager_helpers import Clock, FakeExecutor, manager

from corral.capacity.gpu import GpuSample
from corral.capacity.node import make_node
from corral.daemon.monitor import Monitor
from corral.executors.base import Capabilities, ExitStatus, Reading, StopReason
from corral.job import JobState, Reason
from corral.monitor.idle import IdlePolicy
from corral.spec import build_spec

GiB = 2**30
PAGE = os.sysconf("SC_PAGE_SIZE")
TCK = os.sysconf("SC_CLK_TCK")


class SamplingExecutor(FakeExecutor):
    """A fake executor that reports usage readings (and GPU samples) the test sets."""

    def __init__(self, nodes, *, hard: bool) -> None:
        super().__init__(nodes)
        self.capabilities = Capabilities(usage=True, cgroups=hard, stop_signals=True, device_pinning=True)
        self.readings: dict[int, Reading] = {}
        self.probe = FakeProbe()
        self.stops: list[tuple[int, StopReason, str]] = []

    def stop(self, job_id: int, why: StopReason, message: str = "") -> bool:
        self.stops.append((job_id, why, message))
        return True

    def sample(self, job_ids):
        return {j: self.readings[j] for j in job_ids if j in self.readings}

    def sample_gpus(self, node, indices):
        return self.probe.sample(list(indices))


class FakeProbe:
    name = "fake"

    def __init__(self) -> None:
        self.values: dict[int, GpuSample] = {}

    def sample(self, indices=None):
        return {i: s for i, s in self.values.items() if indices is None or i in indices}


class FakeProc:
    """What the executor reads for each job: one process (pid 5000+id) with this memory and
    CPU time (in clock ticks)."""

    def __init__(self, executor: SamplingExecutor) -> None:
        self.executor = executor

    def set(self, pid: int, *, rss: int, ticks: int) -> None:
        job_id = pid - 5000
        self.executor.readings[job_id] = Reading(job_id, cpu_seconds=ticks / TCK, memory=rss, memory_peak=rss,
                                                 processes=1, pids=(pid,), source="test")


def setup(tmp_path, *, mode="watchdog", idle=None):
    clock = Clock(now=10_000.0, tick=0.0)
    executor = SamplingExecutor([make_node("n1", cores=4, memory=16 * GiB, gpus=2)], hard=mode == "cgroup")
    m = manager(executor=executor, clock=clock)
    probe = executor.probe
    proc = FakeProc(executor)
    m.monitor = Monitor(m.store, executor, stop_job=m.stop_job, note=m.note, sample_interval=1.0,
                        series_interval=10.0, idle_policy=idle or IdlePolicy(), clock=clock)
    return m, clock, executor, probe, proc


def test_energy_gpu_seconds_idle_and_cpu_from_known_inputs(tmp_path):
    m, clock, _, probe, proc = setup(tmp_path)
    [job] = m.submit([build_spec(["train"], requests={"cpu": "2", "nvidia.com/gpu": 2, "memory": "4Gi"})])
    probe.values = {0: GpuSample(0, utilization=0.0, memory_used=GiB, power=300.0),
                    1: GpuSample(1, utilization=0.0, memory_used=GiB, power=300.0)}
    pid = 5000 + job.id
    for second in range(1, 11):                        # ten samples, one per second
        clock.now += 1
        proc.set(pid, rss=GiB, ticks=second * TCK)     # one CPU-second per second
        m.monitor.tick()
    live = m.monitor.live[job.id]
    assert live.cpu == 1.0 and live.memory == GiB and live.gpu_power == 600.0 and live.gpu_util == 0.0
    assert live.gpu_memory == 2 * GiB                  # no per-process figures: the devices' use
    [row] = m.store.usage_rows()                       # one series row after 10 s
    assert (row.t0, row.t1) == (10_000.0, 10_010.0)
    assert row.cpu_seconds == 9.0                      # the first sample only sets the baseline
    assert row.energy_j == 600.0 * 10                  # 2 x 300 W for 10 s
    assert row.gpu_seconds == 2 * 10.0
    assert row.idle_gpu_seconds == 2 * 10.0            # utilization 0 all along
    assert row.gpu_util == 0.0 and row.memory == GiB
    # The job ends 5 s later; the last partial row is written with the end.
    clock.now += 5
    m.on_exit(job.id, ExitStatus(ended_at=clock.now, exit_code=0))
    total = m.store.job_usage([job.id])[job.id]
    assert total.rows == 2 and total.gpu_seconds == 2 * 15.0 and total.energy_j == 6000.0
    assert job.id not in m.monitor.live and not m.monitor.watches


def test_gpu_memory_is_attributed_by_process(tmp_path):
    m, clock, _, probe, proc = setup(tmp_path)
    [job] = m.submit([build_spec(["train"], requests={"nvidia.com/gpu": 1})])
    pid = 5000 + job.id
    proc.set(pid, rss=GiB, ticks=0)
    probe.values = {0: GpuSample(0, utilization=50.0, memory_used=10 * GiB, power=100.0,
                                 processes={pid: 3 * GiB, 99999: 7 * GiB})}
    clock.now += 1
    m.monitor.tick()
    assert m.monitor.live[job.id].gpu_memory == 3 * GiB


def test_watchdog_kills_over_the_memory_limit_once_with_the_numbers(tmp_path):
    m, clock, executor, _, proc = setup(tmp_path)
    [job] = m.submit([build_spec(["train"], requests={"memory": "1Gi"})])
    pid = 5000 + job.id
    proc.set(pid, rss=GiB // 2, ticks=0)
    clock.now += 1
    m.monitor.tick()
    assert executor.stops == []
    proc.set(pid, rss=2 * GiB, ticks=0)
    clock.now += 1
    m.monitor.tick()
    clock.now += 1
    m.monitor.tick()
    assert executor.stops == [(job.id, StopReason.MEMORY_LIMIT, "exceeded memory limit 1Gi (rss 2Gi, watchdog)")]
    assert executor.signals == [(job.id, 9)]           # at once, no grace period
    status = ExitStatus(ended_at=clock.now, signal=9, stopped_for=StopReason.MEMORY_LIMIT,
                        stop_message=executor.stops[0][2])
    m.on_exit(job.id, status)
    ended = m.store.get_job(job.id)
    assert (ended.state, ended.reason) == (JobState.FAILED, Reason.MEMORY_LIMIT_EXCEEDED)


def test_no_watchdog_kill_under_cgroups(tmp_path):
    m, clock, executor, _, proc = setup(tmp_path, mode="cgroup")
    [job] = m.submit([build_spec(["train"], requests={"memory": "1Gi"})])
    proc.set(5000 + job.id, rss=2 * GiB, ticks=0)
    clock.now += 1
    m.monitor.tick()
    assert executor.stops == []                        # the kernel holds the limit, not us


def test_idle_chain_warns_signals_then_requeues_and_activity_resets_it(tmp_path):
    idle = IdlePolicy(threshold=5.0, window=10, step=5, actions=("warn", "signal", "requeue"))
    m, clock, executor, probe, proc = setup(tmp_path, idle=idle)
    [job] = m.submit([build_spec(["train"], requests={"nvidia.com/gpu": 1})])
    proc.set(5000 + job.id, rss=GiB, ticks=0)

    def sample(util: float, seconds: int = 1) -> None:
        probe.values = {0: GpuSample(0, utilization=util, power=50.0)}
        for _ in range(seconds):
            clock.now += 1
            m.monitor.tick()

    sample(2.0, 9)
    assert not [e for e in m.store.events(job.id) if e.reason is Reason.GPU_IDLE]
    sample(2.0, 3)                                     # idle since the first sample: 10 s reached
    [warn] = [e for e in m.store.events(job.id) if e.reason is Reason.GPU_IDLE]
    assert warn.message.startswith("GPUs 0 idle for 10s (utilization 2% < 5%): warning; next: signal in 5s")
    sample(50.0)                                       # busy again: the chain starts over
    last = m.store.events(job.id)[-1]
    assert last.reason is Reason.LAUNCHED and last.message == "GPUs 0 in use again (utilization 50%)"
    sample(0.0, 16)
    assert executor.signals == [(job.id, 10)]          # SIGUSR1, 15 s into the new stretch
    sample(0.0, 5)
    assert executor.stops[-1][:2] == (job.id, StopReason.REQUEUE)
    m.on_exit(job.id, ExitStatus(ended_at=clock.now, signal=15, stopped_for=StopReason.REQUEUE,
                                 stop_message=executor.stops[-1][2]))
    again = m.store.get_job(job.id)
    # Requeued: the same job runs again at once (the GPU is free), attempt 2.
    assert again.state is JobState.RUNNING and again.attempts == 2
    assert [e.reason for e in m.store.events(job.id)].count(Reason.REQUEUED) == 1


def test_unknown_utilization_is_never_idle(tmp_path):
    idle = IdlePolicy(window=2, actions=("warn", "cancel"))
    m, clock, executor, probe, proc = setup(tmp_path, idle=idle)
    [job] = m.submit([build_spec(["train"], requests={"nvidia.com/gpu": 1})])
    proc.set(5000 + job.id, rss=GiB, ticks=0)
    probe.values = {0: GpuSample(0)}                   # the driver says nothing
    for _ in range(10):
        clock.now += 1
        m.monitor.tick()
    assert executor.stops == [] and m.monitor.live[job.id].gpu_util is None
