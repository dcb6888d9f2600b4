"""Prometheus metrics (``GET /metrics``), in Prometheus' conventions: base units
(seconds, bytes, watts, ratios), ``_total`` counters, labels for what varies.

Cheap to scrape: nothing here reads the store. Gauges are computed at scrape time from
what the daemon keeps in memory anyway -- the driver's live jobs (pending with their
reasons, running with their allocations), the nodes, the monitor's latest GPU readings
-- and counters and histograms are updated as things happen (a cycle ran, a job
started, a job ended, the store refused a write).

==========================================  ==========================================
``corral_jobs_pending{queue,reason}``       jobs waiting, by why
``corral_jobs_running{queue}``              jobs running
``corral_jobs_submitted_total{queue}``      jobs stored by submits
``corral_jobs_ended_total{queue,state,reason}``  jobs that ended
``corral_job_wait_seconds{queue}``          submit to start (histogram)
``corral_job_run_seconds{queue,state}``     start to end (histogram)
``corral_node_resource_{capacity,allocatable,allocated,free}{node,resource}``
                                            cpu in cores, memory in bytes, GPUs and
                                            extended resources in units
``corral_node_up{node,state}``              1 for the node's state (Ready, Draining, Lost)
``corral_gpu_utilization_ratio{node,gpu,model,job,user}``  0..1
``corral_gpu_memory_used_bytes{...}``, ``corral_gpu_power_watts{...}``
``corral_gpu_idle{node,gpu,job,user}``      1 while the holding job's GPUs count as idle
``corral_scheduling_cycle_seconds``         one scheduling cycle (histogram)
``corral_preemptions_total{queue,kind}``    running jobs stopped for another, by the
                                            preemptor's queue and why (priority,
                                            reclaim, service)
``corral_store_errors_total{operation}``    writes the store refused (full, locked, read-only)
``corral_up``, ``corral_daemon_start_time_seconds``
==========================================  ==========================================
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Iterator

from . import faults

if TYPE_CHECKING:
    from .manager import Manager

WAIT_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400)
RUN_BUCKETS = (1, 10, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400)
CYCLE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CPU = "cpu"


def _unit(resource: str, amount: int) -> float:
    """Base units: cpu millicores -> cores; memory is bytes already; counts stay."""
    return amount / 1000 if resource == CPU else float(amount)



class Metrics:
    """The daemon's registry: the event counters, and a collector for the gauges."""

    def __init__(self, manager: "Manager", clock=time.time):
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.manager = manager
        self.started = clock()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.submitted = Counter("corral_jobs_submitted", "Jobs stored by submits.", ["queue"], registry=r)
        self.ended = Counter("corral_jobs_ended", "Jobs that ended, by final state and reason.",
                             ["queue", "state", "reason"], registry=r)
        self.wait = Histogram("corral_job_wait_seconds", "Seconds from submit to start.", ["queue"],
                              buckets=WAIT_BUCKETS, registry=r)
        self.run = Histogram("corral_job_run_seconds", "Seconds from start to end.", ["queue", "state"],
                             buckets=RUN_BUCKETS, registry=r)
        self.cycle = Histogram("corral_scheduling_cycle_seconds", "Seconds one scheduling cycle took.",
                               buckets=CYCLE_BUCKETS, registry=r)
        self.preempted = Counter("corral_preemptions", "Running jobs stopped for another job, by the "
                                 "preemptor's queue and the kind (priority, reclaim, service).",
                                 ["queue", "kind"], registry=r)
        r.register(_Gauges(self))

    # events ------------------------------------------------------------------------------
    def job_submitted(self, queue: str, count: int = 1) -> None:
        self.submitted.labels(queue).inc(count)

    def job_started(self, queue: str, waited: float) -> None:
        self.wait.labels(queue).observe(max(waited, 0.0))

    def job_ended(self, queue: str, state: str, reason: str, ran: float | None) -> None:
        self.ended.labels(queue, state, reason).inc()
        if ran is not None:
            self.run.labels(queue, state).observe(max(ran, 0.0))

    def cycle_took(self, seconds: float) -> None:
        self.cycle.observe(seconds)

    def preemption(self, queue: str, kind: str, victims: int) -> None:
        self.preempted.labels(queue, kind).inc(victims)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class _Gauges:
    """What is true now, read from the daemon's memory at each scrape."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def describe(self) -> list:
        return []                     # the families are known only once collected

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        m = self.metrics.manager
        driver = m.driver
        pending = GaugeMetricFamily("corral_jobs_pending", "Jobs waiting, by queue and why.",
                                    labels=["queue", "reason"])
        running = GaugeMetricFamily("corral_jobs_running", "Jobs running, by queue.", labels=["queue"])
        waits: dict[tuple[str, str], int] = {}
        runs: dict[str, int] = {}
        for live in list(driver.jobs.values()):
            job = live.job
            queue = job.spec.queue
            if job.id in driver.state.running:
                runs[queue] = runs.get(queue, 0) + 1
            else:
                reason = live.wait.reason.value if live.wait is not None else job.reason.value
                waits[(queue, reason)] = waits.get((queue, reason), 0) + 1
        for (queue, reason), n in sorted(waits.items()):
            pending.add_metric([queue, reason], n)
        for queue, n in sorted(runs.items()):
            running.add_metric([queue], n)
        yield pending
        yield running

        families = {kind: GaugeMetricFamily(f"corral_node_resource_{kind}", f"Per node and resource: {kind} "
                                            "(cpu in cores, memory in bytes, GPUs in units).",
                                            labels=["node", "resource"])
                    for kind in ("capacity", "allocatable", "allocated", "free")}
        up = GaugeMetricFamily("corral_node_up", "1 for the node's state.", labels=["node", "state"])
        states = m.node_states()
        for node in m.executor.known_nodes():
            allocated = m.allocated(node.name)
            names = sorted(set(node.capacity) | set(allocated))
            for name in names:
                cap, alc, used = node.capacity.get(name, 0), node.allocatable.get(name, 0), allocated.get(name, 0)
                for kind, value in (("capacity", cap), ("allocatable", alc), ("allocated", used),
                                    ("free", max(alc - used, 0))):
                    families[kind].add_metric([node.name, name], _unit(name, value))
            up.add_metric([node.name, states.get(node.name, "Ready")], 1)
        yield from families.values()
        yield up

        util = GaugeMetricFamily("corral_gpu_utilization_ratio", "GPU utilization over the last sample (0..1).",
                                 labels=["node", "gpu", "model", "job", "user"])
        mem = GaugeMetricFamily("corral_gpu_memory_used_bytes", "GPU memory in use.",
                                labels=["node", "gpu", "model", "job", "user"])
        power = GaugeMetricFamily("corral_gpu_power_watts", "GPU power draw.",
                                  labels=["node", "gpu", "model", "job", "user"])
        idle = GaugeMetricFamily("corral_gpu_idle", "1 while the holding job's GPU counts as idle (reclaim "
                                 "warnings follow).", labels=["node", "gpu", "job", "user"])
        monitor = m.monitor
        holders = m.holders()
        models = {(n.name, g.index): g.model for n in m.executor.known_nodes() for g in n.gpus}
        for (node, index), sample in sorted((monitor.gpus if monitor is not None else {}).items()):
            job_id = holders.get(node, {}).get("gpus", {}).get(index)
            live = driver.jobs.get(job_id) if job_id is not None else None
            labels = [node, str(index), models.get((node, index), ""), str(job_id or ""),
                      live.job.user if live is not None else ""]
            if sample.utilization is not None:
                util.add_metric(labels, sample.utilization / 100.0)
            if sample.memory_used is not None:
                mem.add_metric(labels, float(sample.memory_used))
            if sample.power is not None:
                power.add_metric(labels, float(sample.power))
        if monitor is not None:
            for job_id, watch in list(monitor.watches.items()):
                tracker = watch.tracker
                if tracker is None or tracker.idle_since is None:
                    continue
                live = driver.jobs.get(job_id)
                for node, index in watch.gpus:
                    idle.add_metric([node, str(index), str(job_id), live.job.user if live is not None else ""], 1)
        yield util
        yield mem
        yield power
        yield idle

        errors = CounterMetricFamily("corral_store_errors", "Writes the store refused (disk full, locked, "
                                     "read-only), by operation.", labels=["operation"])
        for operation, n in sorted(faults.store_errors.items()):
            errors.add_metric([operation], n)
        yield errors
        yield GaugeMetricFamily("corral_up", "1 while the daemon serves.", value=1)
        yield GaugeMetricFamily("corral_daemon_start_time_seconds", "When the daemon started (Unix time).",
                                value=self.metrics.started)
