"""The trace model the simulator replays: jobs with submit times, run times and requests.

A :class:`Trace` is what every loader (:mod:`corral.sim.loaders`) returns, whatever the
source format. Its jobs are sorted by submit time, numbered ``0..n-1`` in that order, and
their submit times are seconds from the trace start (the first job at 0). Rows a loader
dropped are never lost silently: :attr:`Trace.skipped` counts them and
:attr:`Trace.skip_reasons` says why.

Fractional GPUs (Alibaba's GPU-sharing pods, ``gpu_milli`` < 1000) request that share of
one GPU (``corral.dev/gpu-milli``, :mod:`corral.scheduler.shares`) in
:attr:`TraceJob.requests`; :attr:`TraceJob.gpu_fraction` keeps the fraction too. A job's
allowed GPU models (Alibaba ``gpu_spec``) are its request's GPU-model constraint.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ValidationError
from ..resources import Resources


@dataclass(frozen=True)
class TraceJob:
    """One job of a trace.

    ``submit`` is seconds from the trace start, ``duration`` seconds of run time on its
    requested resources, ``requests`` canonical :class:`~corral.resources.Resources` (cpu
    millicores, memory bytes, ``nvidia.com/gpu`` count), ``user`` whatever the trace
    offers for fairness (user, team, virtual cluster or queue).
    """

    id: int
    submit: float
    duration: float
    requests: Resources
    user: str
    name: str = ""
    #: Requested wall time, when the trace records one (e.g. SWF's requested time).
    time_limit: float | None = None
    #: Fraction of one GPU asked for (Alibaba ``gpu_milli / 1000`` when below 1); the job
    #: requests that share (``corral.dev/gpu-milli``) in ``requests``.
    gpu_fraction: float | None = None
    #: GPU models the job may run on (Alibaba ``gpu_spec``); empty means any. The same
    #: models are the constraint of ``requests``.
    gpu_models: tuple[str, ...] = ()


@dataclass
class Trace:
    """Jobs sorted by submit time (ids ``0..n-1``), and what the loader dropped."""

    jobs: list[TraceJob]
    source: str
    #: Rows dropped while loading (malformed ones under ``on_error="skip"``, and rows the
    #: format says cannot be replayed, e.g. pods still running when the trace ended).
    skipped: int = 0
    #: Why rows were dropped: reason -> count (the counts add up to ``skipped``).
    skip_reasons: dict[str, int] = field(default_factory=dict)
    #: The trace's own machines (:class:`corral.capacity.node.Node`), when it has them.
    nodes: list[Any] | None = None
    #: False for a job list without times (every job submitted at 0, no run time): only
    #: the packing mode (:mod:`corral.sim.packing`) replays it.
    timed: bool = True

    def __len__(self) -> int:
        return len(self.jobs)

    def __repr__(self) -> str:   # a trace can hold 100k jobs: summarise
        nodes = "" if self.nodes is None else f", nodes={len(self.nodes)}"
        return f"Trace(source={self.source!r}, jobs={len(self.jobs)}, skipped={self.skipped}{nodes})"

    def _derive(self, jobs: list[TraceJob], note: str, *, scale: float = 1.0) -> "Trace":
        """A new trace of ``jobs`` (in submit order), re-based so the first submits at 0,
        submit times divided by ``scale``, ids renumbered."""
        base = jobs[0].submit if jobs else 0.0
        out = [replace(j, id=i, submit=(j.submit - base) / scale) for i, j in enumerate(jobs)]
        return Trace(jobs=out, source=f"{self.source} {note}", skipped=self.skipped,
                     skip_reasons=dict(self.skip_reasons),
                     nodes=list(self.nodes) if self.nodes is not None else None, timed=self.timed)

    def rescale_load(self, factor: float) -> "Trace":
        """The same jobs arriving ``factor`` times as densely: every inter-arrival gap is
        divided by ``factor`` (2.0 doubles the offered load, 0.5 halves it); durations and
        requests are unchanged."""
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) \
                or not math.isfinite(factor) or factor <= 0:
            raise ValidationError("load factor", factor, "expected a number above 0, e.g. 2.0")
        return self._derive(self.jobs, f"(load x{factor:g})", scale=float(factor))

    def head(self, n: int) -> "Trace":
        """The first ``n`` jobs by submit time."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValidationError("job count", n, "expected a whole number of jobs, 0 or more")
        return self._derive(self.jobs[:n], f"(first {n} jobs)")

    def window(self, start: float, end: float | None = None) -> "Trace":
        """Jobs submitted in ``[start, end)`` seconds of this trace (``end=None``: to the
        end), re-based so the first of them submits at 0."""
        if end is not None and end < start:
            raise ValidationError("window", f"{start}..{end}", "expected start <= end")
        jobs = [j for j in self.jobs if j.submit >= start and (end is None or j.submit < end)]
        return self._derive(jobs, f"(window {start:g}s..{'end' if end is None else f'{end:g}s'})")


@dataclass(frozen=True)
class SampleInfo:
    """What :meth:`Trace.sample` kept and dropped, so a sample is never a silent cut."""

    seed: int
    #: Window start in seconds of the original trace (None: no window, the whole trace).
    start: float | None
    window: float | None
    #: Jobs submitted in the window (all jobs without one).
    in_window: int
    #: Dropped by the filters: shorter than ``min_duration``; at least ``max_gpu_time``
    #: GPU-seconds; past the ``jobs`` cap.
    too_short: int
    too_big: int
    over_cap: int
    kept: int
    #: Dropped for asking more than ``max_gpus`` GPUs (e.g. more than the whole cluster).
    too_wide: int = 0


def sample(trace: Trace, *, seed: int = 0, window: float | None = None, jobs: int | None = None,
           min_duration: float = 0.0, max_gpu_time: float | None = None,
           max_gpus: int | None = None) -> tuple[Trace, SampleInfo]:
    """A reproducible sample of ``trace``: the jobs submitted in a ``window``-second window
    whose start ``random.Random(seed)`` draws uniformly in ``[0, span - window]`` (``span``
    = the last submit, so the window lies inside the trace; no window: every job), that
    run at least ``min_duration`` seconds and use less than ``max_gpu_time`` GPU-seconds
    (duration x GPUs) on at most ``max_gpus`` GPUs, the first ``jobs`` of them in submit
    order; every job left out is counted in :class:`SampleInfo`. The same trace, seed
    and options always give the same sample. Re-based so the first job submits at 0."""
    for name, value, lo in (("window", window, 0.0), ("max GPU time", max_gpu_time, 0.0)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value <= lo):
            raise ValidationError(name, value, "expected a positive number of seconds, e.g. 8h")
    if isinstance(min_duration, bool) or not isinstance(min_duration, (int, float)) \
            or not math.isfinite(min_duration) or min_duration < 0:
        raise ValidationError("min duration", min_duration, "expected seconds, 0 or more, e.g. 60")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ValidationError("job count", jobs, "expected a whole number of jobs, 1 or more")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValidationError("seed", seed, "expected a whole number, e.g. 0")
    start = None
    picked = trace.jobs
    if window is not None:
        span = trace.jobs[-1].submit if trace.jobs else 0.0
        start = random.Random(seed).uniform(0.0, max(0.0, span - window))
        picked = [j for j in trace.jobs if start <= j.submit < start + window]
    too_short = too_big = over_cap = too_wide = 0
    kept: list[TraceJob] = []
    for j in picked:
        if j.duration < min_duration:
            too_short += 1
        elif max_gpu_time is not None and j.duration * j.requests.get("nvidia.com/gpu", 0) >= max_gpu_time:
            too_big += 1
        elif max_gpus is not None and j.requests.get("nvidia.com/gpu", 0) > max_gpus:
            too_wide += 1
        elif jobs is not None and len(kept) >= jobs:
            over_cap += 1
        else:
            kept.append(j)
    parts = [f"seed {seed}"] + ([f"{window / 3600:g} h window at day {start / 86400:.2f}"]
                                if window is not None and start is not None else []) \
        + ([f"first {jobs}"] if jobs is not None else [])
    info = SampleInfo(seed=seed, start=start, window=window, in_window=len(picked), too_short=too_short,
                      too_big=too_big, over_cap=over_cap, kept=len(kept), too_wide=too_wide)
    return trace._derive(kept, "(sample: " + ", ".join(parts) + ")"), info
